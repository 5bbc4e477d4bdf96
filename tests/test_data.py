"""Every accepted input form works in both estimators; every bad input gets a clear error."""

import gc
import os
import resource
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.linear_model import LogisticRegression

from sktransfer import (FeatureExtractor, TransferClassifier, TransferClassifierCV, clear_caches,
                        load_image_folder)
from sktransfer._data import as_input

N = 12


@pytest.fixture(scope="module")
def base():
    rng = np.random.RandomState(0)
    X = rng.randint(0, 255, (N, 32, 32, 3), dtype=np.uint8)
    y = np.array(["a", "b"] * (N // 2))
    X[y == "a", :, :, 0] = 255
    return X, y


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, base):
    X, y = base
    root = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, (img, label) in enumerate(zip(X, y)):
        (root / label).mkdir(exist_ok=True)
        ext = ["png", "jpg", "bmp"][i % 3]
        path = root / label / f"{i}.{ext}"
        Image.fromarray(img).save(path)
        paths.append(str(path))
    (root / "a" / "notes.txt").write_text("not an image")
    return root, paths


def _forms(base, image_files):
    X, y = base
    root, paths = image_files
    pil = [Image.fromarray(x) for x in X]
    modes = [pil[0].convert("L"), pil[1].convert("RGBA"), pil[2].convert("P"),
             pil[3].convert("CMYK"), pil[4].resize((40, 24))] + pil[5:]
    return {
        "nhwc_uint8": X,
        "nchw_float": X.transpose(0, 3, 1, 2).astype(np.float32) / 255,
        "nhw_gray": X[..., 0],
        "nhwc_float64": X.astype(np.float64) / 255,
        "torch_tensor": torch.from_numpy(X.transpose(0, 3, 1, 2).copy()),
        "path_list_str": paths,
        "path_list_Path": [Path(p) for p in paths],
        "path_object_array": np.array(paths, dtype=object),
        "path_series": pd.Series(paths),
        "pil_list": pil,
        "pil_mixed_modes_and_sizes": modes,
    }


FORMS = ["nhwc_uint8", "nchw_float", "nhw_gray", "nhwc_float64", "torch_tensor", "path_list_str",
         "path_list_Path", "path_object_array", "path_series", "pil_list",
         "pil_mixed_modes_and_sizes"]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_in_classifier(form, base, image_files):
    X = _forms(base, image_files)[form]
    _, y = base
    if form.startswith("path"):
        y = np.array([Path(p).parent.name for p in image_files[1]])
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=1, max_epochs=1,
                             batch_size=8, device="cpu", random_state=0).fit(X, y)
    assert clf.predict(X).shape == (N,)
    assert clf.predict_proba(X).shape == (N, 2)
    assert 0 <= clf.score(X, y) <= 1


@pytest.mark.parametrize("form", FORMS)
def test_every_form_in_extractor(form, base, image_files):
    X = _forms(base, image_files)[form]
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu", cache=False).fit(X)
    out = fe.transform(X)
    assert out.shape == (N, 64) and out.dtype == np.float32 and np.isfinite(out).all()


def test_forms_agree_with_each_other(base, image_files):
    forms = _forms(base, image_files)
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu", cache=False).fit(forms["nhwc_uint8"])
    ref = fe.transform(forms["nhwc_uint8"])
    for name in ["nchw_float", "torch_tensor", "pil_list", "path_list_str"]:
        out = fe.transform(forms[name])
        if name == "path_list_str":  # jpg is lossy; png/bmp rows are exact
            exact = [i for i, p in enumerate(image_files[1]) if not p.endswith(".jpg")]
            np.testing.assert_allclose(out[exact], ref[exact], atol=1e-4)
        else:
            np.testing.assert_allclose(out, ref, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("form", ["nhwc_uint8", "path_list_str", "pil_list"])
def test_forms_in_pipeline_and_grid_search(form, base, image_files):
    X = _forms(base, image_files)[form]
    y = np.array([Path(p).parent.name for p in image_files[1]])
    search = GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=1,
                                             device="cpu", random_state=0),
                          {"freeze_depth": [1, "all"]}, cv=2, error_score="raise").fit(X, y)
    assert search.predict(X).shape == (N,)
    pipe = make_pipeline(FeatureExtractor("tiny_cnn", weights=None, device="cpu"),
                         LogisticRegression(max_iter=200))
    GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=2,
                 error_score="raise").fit(X, y)


def test_load_image_folder(image_files):
    root, _ = image_files
    paths, labels = load_image_folder(root)
    assert len(paths) == N and not any(p.endswith(".txt") for p in paths)
    assert sorted(set(labels)) == ["a", "b"]
    only_png, _ = load_image_folder(root, extensions=["png"])
    assert only_png and all(p.endswith(".png") for p in only_png)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_image_folder(root / "missing")
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(root, extensions=[".webp"])


def test_augment_only_while_fitting(base):
    X, y = base
    calls = []

    def augment(x):
        calls.append(x.shape)
        return torch.flip(x, dims=[-1])

    clf = TransferClassifier("tiny_cnn", weights=None, augment=augment, max_epochs=1,
                             device="cpu").fit(X, y)
    assert len(calls) == N and clf.cache_used_ is False
    calls.clear()
    clf.predict(X)
    assert calls == []
    light = TransferClassifier("tiny_cnn", weights=None, augment="light", max_epochs=1,
                               device="cpu").fit(X, y)
    assert light.predict(X).shape == (N,)
    with pytest.raises(ValueError, match="augment must be"):
        TransferClassifier("tiny_cnn", weights=None, augment="heavy", device="cpu").fit(X, y)


class _CountingFlip(torch.nn.Module):
    """A torchvision-style augmentation module that counts its calls (picklable)."""

    def __init__(self, p):
        super().__init__()
        self.p, self.calls = p, 0

    def forward(self, x):
        self.calls += 1
        return torch.flip(x, dims=[-1]) if torch.rand(()) < self.p else x


def test_a_torchvision_transform_is_an_augment_not_a_module_of_the_net(base):
    # torchvision's v2 transforms are nn.Modules; skorch registers any nn.Module
    # attribute as a part of the net, refused one outside initialize() and
    # re-initialised the net when it changed
    import pickle

    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from torchvision.transforms import v2

    X, y = base
    flip = _CountingFlip(p=1.0)
    clf = TransferClassifier("tiny_cnn", weights=None, augment=flip, max_epochs=1,
                             device="cpu", random_state=0).fit(X, y)
    assert flip.calls == N
    assert "augment" not in clf.prefixes_ and "augment" not in clf._modules
    assert clf.get_params()["augment"] is flip
    # the built-in names build a transform too; changing it after fit refits plainly
    light = TransferClassifier("tiny_cnn", weights=None, augment="light", max_epochs=1,
                               device="cpu", random_state=0).fit(X, y)
    assert "augment" not in light._modules
    light.set_params(augment=v2.RandomResizedCrop(32, scale=(0.8, 1.0))).fit(X, y)
    light.set_params(augment=None).fit(X, y)
    assert light.augment_ is None and light.cache_used_
    copy = clone(clf)
    assert copy.augment is not clf.augment and isinstance(copy.augment, _CountingFlip)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    # RandomResizedCrop has a static get_params(img, scale, ratio): scikit-learn's deep
    # get_params (set_params, GridSearchCV, repr) must not call it
    crop = v2.RandomResizedCrop(32, scale=(0.8, 1.0))
    search = GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=1,
                                             device="cpu", random_state=0, augment=crop),
                          {"freeze_depth": [2, 0]}, cv=2).fit(X, y)
    chosen = search.best_estimator_.augment
    assert isinstance(chosen, v2.RandomResizedCrop) and chosen is not crop
    assert chosen.size == crop.size and "augment__size" not in search.get_params()
    # in a grid, such a transform goes inside v2.Compose (the docstring's advice)
    grid = GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=1,
                                           device="cpu", random_state=0),
                        {"augment": [None, v2.Compose([crop])]}, cv=2).fit(X, y)
    assert len(grid.cv_results_["params"]) == 2
    cv = TransferClassifierCV("tiny_cnn", weights=None, augment=crop, freeze_depths=[2, 0],
                              max_epochs=1, device="cpu", random_state=0)
    assert cv.get_params()["augment"] is crop and "augment__size" not in cv.get_params()
    assert clone(cv).set_params(augment=None).augment is None
    assert isinstance(cv.fit(X, y).best_estimator_.augment, v2.RandomResizedCrop)
    assert cv.augment is crop  # the search's own parameter is untouched


def test_image_size_overrides_preprocessing(base):
    X, _ = base
    fe = FeatureExtractor("resnet18", weights=None, image_size=48, layer="stem",
                          device="cpu").fit(X)
    assert fe.preprocessor_.p.crop_size == 48
    assert fe.transform(X).shape == (N, 64)


def test_caller_data_is_not_modified(base, image_files):
    X, y = base
    X_copy, y_copy = X.copy(), y.copy()
    floats = X.astype(np.float32) / 255
    floats_copy = floats.copy()
    TransferClassifier("tiny_cnn", weights=None, augment="light", max_epochs=1,
                       device="cpu").fit(floats, y).predict(X)
    FeatureExtractor("tiny_cnn", weights=None, device="cpu").fit(X).transform(floats)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(floats, floats_copy)


def _bad_inputs(tmp_path, base):
    X, y = base
    nan = X.astype(np.float32) / 255
    nan[3, 1, 1, 1] = np.nan
    inf = X.astype(np.float32) / 255
    inf[0, 0, 0, 0] = np.inf
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    missing = str(tmp_path / "nowhere" / "cat.jpg")
    return [
        ("nan", nan, y, ValueError, "NaN"),
        ("inf", inf, y, ValueError, "infinite"),
        ("empty", X[:0], y[:0], ValueError, "empty"),
        ("empty_list", [], [], ValueError, "empty"),
        ("length_mismatch", X, y[:-1], ValueError, "different lengths"),
        ("one_dim", X.reshape(-1)[:N], y, ValueError, "1 dimension"),
        ("five_dims", X[:, None], y, ValueError, "5 dimensions"),
        ("channels", np.zeros((N, 32, 32, 5), np.uint8), y, ValueError, "channel count"),
        ("missing_path", [missing] * N, y, FileNotFoundError, "nowhere/cat.jpg"),
        ("not_an_image", [str(broken)] * N, y, ValueError, "broken.png"),
        ("text_file", [str(text)] * N, y, ValueError, "readme.txt"),
        ("words_not_paths", ["cat", "dog"] * (N // 2), y, FileNotFoundError, "'cat'"),
        ("unsupported_type", [object()] * N, y, TypeError, "object"),
        ("dict", {"a": X}, y, TypeError, "dict"),
        ("mixed_items", [X[0], "a.png"] * (N // 2), y, TypeError, "mixes"),
        ("complex", X.astype(np.complex64), y, TypeError, "complex"),
        ("bool", X > 3, y, TypeError, "bool"),
        ("negative_ints", X.astype(np.int16) - 300, y, ValueError, "0..255"),
        ("single_class", X, np.array(["a"] * N), ValueError, "at least 2 classes"),
        ("single_string", "photo.jpg", y, TypeError, "single str"),
        ("vectors_to_image_backbone", X.reshape(N, -1).astype(float), y, ValueError,
         "takes images"),
    ]


@pytest.mark.parametrize("case", range(21))
def test_bad_input_is_a_clear_error_in_classifier(case, tmp_path, base):
    name, X, y, err, match = _bad_inputs(tmp_path, base)[case]
    with pytest.raises(err, match=match):
        TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu").fit(X, y)


@pytest.mark.parametrize("case", [i for i in range(21) if i not in (4, 18)])
def test_bad_input_is_a_clear_error_in_extractor(case, tmp_path, base):
    name, X, y, err, match = _bad_inputs(tmp_path, base)[case]
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu")
    with pytest.raises(err, match=match):
        fe.fit(X)
    fe.fit(base[0])
    with pytest.raises(err, match=match):
        fe.transform(X)


def test_predict_after_fit_checks_input_too(base):
    X, y = base
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 32, 32, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="fitted on images.*reads as vectors"):
        clf.predict(np.zeros((2, 5)))


def test_one_image_is_refused_with_the_fix_and_small_gray_batches_still_work(base):
    X, y = base
    one = X[0]  # (32, 32, 3): one RGB image, not 32 grayscale images 32x3 pixels
    fix = r"X looks like one image of shape \(32, 32, 3\).*pass a batch: X\[None\]"
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu").fit(X, y)
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu").fit(X)
    for call in (clf.predict, clf.predict_proba, clf.transform, fe.transform,
                 lambda a: clf.predict(torch.from_numpy(a)),
                 lambda a: TransferClassifier("tiny_cnn", weights=None, max_epochs=1).fit(a, y),
                 lambda a: FeatureExtractor("tiny_cnn", weights=None).fit(a)):
        with pytest.raises(ValueError, match=fix):
            call(one)
    assert clf.predict(one[None]).shape == (1,)
    with pytest.raises(ValueError, match=r"X\[\.\.\., None\]"):
        fe.transform(np.zeros((64, 64, 1), np.uint8))
    # digits-like grayscale batches: 3 or 4 images of 8x8 are batches, whatever n is
    for n in (3, 4, 8):
        gray = np.random.RandomState(n).randint(0, 255, (n, 8, 8), dtype=np.uint8)
        assert clf.predict(gray).shape == (n,)
        assert fe.transform(gray).shape[0] == n
    narrow = np.zeros((10, 16, 3, 1), np.uint8)  # narrow grayscale strips, said explicitly
    assert fe.transform(narrow).shape[0] == 10


def test_large_folder_is_decoded_lazily(tmp_path):
    """Fitting from 300 files decodes them per batch: memory stays bounded."""
    rng = np.random.RandomState(0)
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
        for i in range(150):
            Image.fromarray(rng.randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                tmp_path / c / f"{i}.png")
    paths, labels = load_image_folder(tmp_path)
    import sktransfer._data._decode as data

    loaded = []
    real = data.decode_path

    def counting(path, *args):
        loaded.append(path)
        return real(path, *args)

    data.decode_path = counting
    try:
        # head_warmup=0: uncached, the warm-up would add one (inference) pass of its own;
        # num_workers=0: decoded in this process, where the count is kept
        clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, max_epochs=1,
                                 batch_size=32, device="cpu", cache=False, head_warmup=0,
                                 num_workers=0)
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        clf.fit(paths, labels)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        data.decode_path = real
    assert len(loaded) == len(paths)  # each file decoded once per epoch, in the loader
    assert clf._fit is None  # the fit state (its source) is dropped after fit
    # 300 decoded 64x64 float images would be 14 MiB; the peak grows far less than a
    # decoded copy of the folder at full size would need (ru_maxrss is in KiB)
    assert (after - before) < 200 * 1024


def test_validation_split_is_not_augmented(base):
    from skorch.dataset import ValidSplit

    X, y = base
    seen = []

    def augment(x):
        seen.append(1)
        return x

    TransferClassifier("tiny_cnn", weights=None, augment=augment, max_epochs=1, device="cpu",
                       train_split=ValidSplit(3, stratified=True)).fit(X, y)
    assert len(seen) == N - N // 3  # the training part only


# -- hostile input (issue 14) -------------------------------------------------------------
@pytest.mark.parametrize("to_torch", [False, True])
def test_float_images_outside_unit_range_are_refused(base, to_torch):
    X, y = base
    wrap = (lambda a: torch.from_numpy(np.ascontiguousarray(a))) if to_torch else (lambda a: a)
    with pytest.raises(ValueError, match=r"values in \[0, 255\].*divide by 255.*uint8"):
        as_input(wrap(X.astype(np.float32)))
    normalised = (X.astype(np.float32) / 255 - 0.45) / 0.225
    with pytest.raises(ValueError, match=r"mean/std-normalised"):
        TransferClassifier("tiny_cnn", weights=None, max_epochs=1).fit(wrap(normalised), y)
    as_input(wrap(X.astype(np.float32) / 255))  # in range: accepted


def _wide_image(mode, value, peak):
    """An 8x8 image of ``mode`` holding ``value`` everywhere but one pixel at ``peak``."""
    arr = np.full((8, 8), value, dtype=np.float32 if mode == "F" else np.int32)
    arr[0, 0] = peak
    return Image.fromarray(arr, mode="F") if mode == "F" else \
        Image.fromarray(arr.astype(np.uint16)).convert("I") if mode == "I" else \
        Image.fromarray(arr.astype(np.uint16))


@pytest.mark.parametrize("mode", ["I", "I;16"])
def test_integer_tiffs_are_scaled_by_the_mode_range_not_each_maximum(tmp_path, mode):
    paths = []
    for peak in (1000, 60000):
        img = _wide_image(mode, 500, peak)
        assert img.mode == mode
        path = tmp_path / f"{mode.replace(';', '_')}_{peak}.tif"
        img.save(path)
        paths.append(str(path))
    a, b = (as_input(paths).load(i) for i in range(2))
    assert a[0, 4, 4] == b[0, 4, 4] == pytest.approx(500 / 65535)


def test_wide_modes_out_of_their_range_are_errors():
    big = Image.fromarray(np.full((4, 4), 70000, dtype=np.int32), mode="I")
    with pytest.raises(ValueError, match=r"mode I.*\[70000, 70000\].*0\.\.65535"):
        as_input([big]).load(0)
    hot = Image.fromarray(np.full((4, 4), 3.5, dtype=np.float32), mode="F")
    with pytest.raises(ValueError, match=r"mode F.*\[3\.5, 3\.5\].*\[0, 1\]"):
        as_input([hot]).load(0)
    ok = Image.fromarray(np.full((4, 4), 0.25, dtype=np.float32), mode="F")
    assert as_input([ok]).load(0).max() == pytest.approx(0.25)


def test_exif_orientation_is_honoured(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # landscape as stored: 40 wide, 20 high
    pixels[:, :20, 0] = 255  # left half red
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a portrait phone photo
    path = tmp_path / "portrait.jpg"
    img.save(path, exif=exif, quality=95)
    for source in (as_input([str(path)]), as_input([Image.open(path)])):
        t = source.load(0)
        assert tuple(t.shape) == (3, 40, 20)  # displayed upright: 20 wide, 40 high
        assert t[0, :15].mean() > 0.8 and t[0, 25:].mean() < 0.2  # red ends up on top


def test_folder_link_cycles_and_links_out_of_root_are_skipped(tmp_path):
    root = tmp_path / "root"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / label / f"{label}.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "x.png")
    (root / "zz").symlink_to(root)  # a cycle: would list everything again as "zz"
    (root / "cat" / "loop").symlink_to(root / "cat")
    (root / "kitty").symlink_to(root / "cat")  # the same images under a second label
    (root / "out").symlink_to(outside)
    with pytest.warns(UserWarning) as record:
        paths, labels = load_image_folder(root)
    assert labels.tolist() == ["cat", "dog"]
    assert [Path(p).name for p in paths] == ["cat.png", "dog.png"]
    messages = " ".join(str(w.message) for w in record)
    for name, why in [("zz", "cycle"), ("loop", "cycle"), ("kitty", "already listed"),
                      ("out", "out of the image folder")]:
        assert f"{root / name}" in messages or f"{root / 'cat' / name}" in messages, name
        assert why in messages


def test_looping_and_dangling_file_links_are_skipped_with_a_warning(tmp_path):
    root = tmp_path / "root"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / label / f"{label}.png")
    (root / "cat" / "x1.jpg").symlink_to(root / "cat" / "x2.jpg")
    (root / "cat" / "x2.jpg").symlink_to(root / "cat" / "x1.jpg")  # a cycle
    (root / "dog" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (root / "dog" / "alias.png").symlink_to(root / "dog" / "dog.png")  # a good file link
    with pytest.warns(UserWarning) as record:
        paths, labels = load_image_folder(root)
    assert [Path(p).name for p in paths] == ["cat.png", "alias.png", "dog.png"]
    assert labels.tolist() == ["cat", "dog", "dog"]
    messages = [str(w.message) for w in record]
    for name, why in [("cat/x1.jpg", "link cycle"), ("cat/x2.jpg", "link cycle"),
                      ("dog/gone.jpg", "does not exist")]:
        assert any(str(root / name) in m and why in m for m in messages), name


def test_folder_link_to_a_hidden_store_inside_root_is_followed(tmp_path):
    root = tmp_path / "root"
    (root / ".store" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / ".store" / "cats" / "c.png")
    (root / "dog").mkdir()
    Image.new("RGB", (8, 8)).save(root / "dog" / "d.png")
    (root / "cat").symlink_to(root / ".store" / "cats")
    paths, labels = load_image_folder(root)
    assert labels.tolist() == ["cat", "dog"]


@pytest.mark.timeout(30)
def test_fifo_in_paths_is_an_error_not_a_hang(tmp_path, base):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    Image.fromarray(base[0][0]).save(good)
    with pytest.raises(ValueError, match=r"X\[1\].*pipe\.png.*named pipe"):
        as_input([str(good), str(fifo)])


@pytest.mark.parametrize("form", ["path", "pil", "array"])
@pytest.mark.parametrize("width, height", [(1, 2000), (3000, 20)])
def test_very_elongated_images_are_served_from_their_centred_square(tmp_path, monkeypatch,
                                                                     form, width, height):
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 255, (height, width, 3), dtype=np.uint8)
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    # around the centre the image repeats one line along its long axis, so the filter
    # of PIL's resize, which peeks a little past the square, sees the same pixels
    if height > width:
        pixels[top - 4 * side:top + 5 * side] = pixels[top]
    else:
        pixels[:, left - 4 * side:left + 5 * side] = pixels[:, left:left + 1]
    square = pixels[top:top + side, left:left + side]

    def as_form(array, name):
        if form == "array":
            return array[None]
        if form == "pil":
            return [Image.fromarray(array)]
        Image.fromarray(array).save(tmp_path / f"{name}.png")
        return [str(tmp_path / f"{name}.png")]

    resized = []  # pixels of every resize result: bounded by the crop, not the long side
    interpolate, pil_resize = torch.nn.functional.interpolate, Image.Image.resize
    monkeypatch.setattr(torch.nn.functional, "interpolate", lambda x, size=None, **kw: (
        resized.append(int(np.prod(size))), interpolate(x, size=size, **kw))[1])
    monkeypatch.setattr(Image.Image, "resize", lambda img, size, *a, **kw: (
        resized.append(size[0] * size[1]), pil_resize(img, size, *a, **kw))[1])
    fe = FeatureExtractor("tiny_cnn", weights=None, image_size=64, random_state=0)
    features = fe.fit_transform(as_form(pixels, "long"))
    assert features.shape[0] == 1 and np.isfinite(features).all()
    assert resized and max(resized) <= 64 * 64
    # what the network sees is the centred square
    np.testing.assert_allclose(features, fe.transform(as_form(square, "square")), atol=1e-5)


def test_non_utf8_file_name_works(tmp_path, base):
    folder = os.fsencode(tmp_path) + b"/caf\xe9.png"
    Image.fromarray(base[0][0]).save(folder.decode("utf-8", "surrogateescape"))
    paths = [os.fsdecode(folder)] * 2
    features = FeatureExtractor("tiny_cnn", weights=None, random_state=0).fit_transform(paths)
    assert features.shape[0] == 2


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_large_images_are_reduced_before_float_conversion(tmp_path, ext):
    rng = np.random.RandomState(0)
    big = Image.fromarray(rng.randint(0, 255, (1200, 1600, 3), dtype=np.uint8))
    path = tmp_path / f"big.{ext}"
    big.save(path)
    source = as_input([str(path)])
    assert tuple(source.load(0).shape) == (3, 1200, 1600)  # no target: full size
    reduced = source.load(0, min_side=32)
    assert min(reduced.shape[1:]) >= 64 and reduced.numel() < 3 * 1200 * 1600 / 50
    from_pil = as_input([big]).load(0, min_side=32)
    assert min(from_pil.shape[1:]) >= 64 and from_pil.numel() < 3 * 1200 * 1600 / 50
    fe = FeatureExtractor("tiny_cnn", weights=None, random_state=0).fit([str(path)])
    assert np.isfinite(fe.transform([str(path)])).all()


# -- photos resized in uint8 while decoding (_decode, _resize) ------------------------
def _photo(width, height, seed=0):
    """Smooth colour gradients + grain: compresses and resizes like a photo."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, np.sin(xx / 37.0) * np.cos(yy / 23.0) * 0.5
                     + 0.5], -1) * 200 + 20
    base += rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _preprocessor(interpolation="bilinear", crop=224, resize=256):
    from sktransfer._data import Preprocessor
    from sktransfer.backbones import Preprocessing

    return Preprocessor(Preprocessing(crop, resize, interpolation=interpolation), 3)


def _float_path(source, pre, i=0):
    """The float path: decode (reduced), convert to float, then F.interpolate + crop."""
    return pre.normalize(pre.resize_crop(pre.fix_channels(source.load(i, pre.min_side))))


# tolerance in [0, 1] pixel units, before normalisation: the two paths differ by the
# rounding of the resized pixels to uint8 (measured on these photos: mean 0.27/255,
# max 1.07/255, bilinear and bicubic alike)
MEAN_TOL, MAX_TOL = 0.5 / 255, 2.0 / 255


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("form", ["paths", "pil"])
def test_photos_resized_in_uint8_match_the_float_path(tmp_path, interpolation, form):
    from sktransfer._data import SampleDataset

    pre = _preprocessor(interpolation)
    std = pre.std.view(-1, 1, 1)
    for width, height in ((1600, 1200), (700, 1000), (200, 150)):  # down, portrait, up
        img = _photo(width, height)
        path = tmp_path / f"{width}.jpg"
        img.save(path, quality=90)
        source = as_input([str(path)] if form == "paths" else [Image.open(path)])
        fast = SampleDataset(source, None, pre)[0][0]
        slow = _float_path(source, pre)
        assert fast.shape == slow.shape == (3, 224, 224)
        diff = ((fast - slow) * std).abs()  # back in [0, 1] pixel units
        assert diff.mean() < MEAN_TOL and diff.max() < MAX_TOL, (width, float(diff.mean()))


def test_a_camera_size_jpeg_decodes_to_the_crop(tmp_path, monkeypatch):
    from sktransfer._data import SampleDataset
    from sktransfer._data import _decode

    path = tmp_path / "camera.jpg"
    _photo(4000, 3000).save(path, quality=90)
    pre = _preprocessor()
    seen = []
    real = _decode._uint8_tensor
    monkeypatch.setattr(_decode, "_uint8_tensor",
                        lambda img: seen.append(img.size) or real(img))
    x, _ = SampleDataset(as_input([str(path)]), None, pre)[0]
    assert tuple(x.shape) == (3, 224, 224)
    assert seen == [(224, 224)]  # only the crop ever became a float tensor
    slow = _float_path(as_input([str(path)]), pre)
    assert ((x - slow) * pre.std.view(-1, 1, 1)).abs().mean() < MEAN_TOL


def test_loaders_send_uint8_pixels_that_normalise_to_the_float_samples_exactly(tmp_path):
    from sktransfer._data import Preprocessor, SampleDataset, collate_samples, network_input
    from sktransfer.backbones import Preprocessing

    paths = []
    for i, (mode, size) in enumerate([("RGB", (300, 200)), ("L", (200, 260)),
                                      ("RGBA", (240, 240))]):
        img = _photo(*size, seed=i).convert(mode)
        paths.append(str(tmp_path / f"{i}.png"))
        img.save(paths[-1])
    source = as_input(paths)
    for channels in (3, 1):  # an RGB and a grayscale backbone
        pre = Preprocessor(Preprocessing(64, 72), channels)
        floats = SampleDataset(source, None, pre)
        pixels = SampleDataset(source, None, pre, pixels=True)
        expected = torch.stack([floats[i][0] for i in range(len(paths))])
        raw = [pixels[i][0] for i in range(len(paths))]
        if channels == 3:  # a grey backbone's RGB->grey mix takes float: no uint8 then
            assert all(x.dtype == torch.uint8 for x in raw)
        batch = collate_samples(raw, pre)
        assert batch.dtype == raw[0].dtype
        if batch.dtype == torch.uint8:
            assert batch.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(network_input(batch, pre, "cpu"), expected)
    # a batch mixing uint8 crops and float samples is normalised to one float batch
    pre = Preprocessor(Preprocessing(64, 72), 3)
    mixed = [SampleDataset(source, None, pre, pixels=True)[0][0],
             SampleDataset(source, None, pre)[1][0]]
    batch = collate_samples(mixed, pre)
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.stack([SampleDataset(source, None, pre)[i][0]
                                           for i in range(2)]))


def test_fits_and_features_from_files_match_the_same_images_as_arrays(tmp_path):
    arrays = np.stack([np.asarray(_photo(40, 40, seed=i)) for i in range(8)])
    paths = []
    for i, a in enumerate(arrays):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(a).save(paths[-1])
    fe = FeatureExtractor("tiny_cnn", weights=None, image_size=32, device="cpu", cache=False)
    # files are resized by PIL in uint8, arrays by F.interpolate: close, not equal
    from_files, from_arrays = fe.fit(paths).transform(paths), fe.transform(arrays)
    cosine = (from_files * from_arrays).sum(1) / (
        np.linalg.norm(from_files, axis=1) * np.linalg.norm(from_arrays, axis=1))
    assert cosine.min() > 0.999
    y = np.arange(8) % 2
    params = dict(weights=None, image_size=32, max_epochs=2, batch_size=4, device="cpu",
                  random_state=0, freeze_depth=1, cache=False)
    a = TransferClassifier("tiny_cnn", **params).fit(paths, y).predict_proba(paths)
    b = TransferClassifier("tiny_cnn", **params).fit(arrays, y).predict_proba(arrays)
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_resizing_while_decoding_keeps_exif_orientation_and_modes(tmp_path):
    from sktransfer._data import SampleDataset

    pre = _preprocessor(crop=32, resize=40)
    pixels = np.zeros((200, 400, 3), np.uint8)  # landscape as stored
    pixels[:, :200, 0] = 255  # left half red
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # displayed as a portrait, red on top
    path = tmp_path / "portrait.jpg"
    img.save(path, exif=exif, quality=95)
    x = SampleDataset(as_input([str(path)]), None, pre)[0][0] * pre.std + pre.mean
    assert x[0, :12].mean() > 0.8 and x[0, 20:].mean() < 0.2
    photo = _photo(120, 90)
    for image in (photo.convert("RGBA"), photo.convert("P"), photo.convert("LA"),
                  photo.convert("L"), photo.convert("CMYK"),
                  Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257))):
        source = as_input([image])
        fast = SampleDataset(source, None, pre)[0][0]
        assert tuple(fast.shape) == (3, 32, 32), image.mode
        assert ((fast - _float_path(source, pre)) * pre.std).abs().mean() < MEAN_TOL, image.mode


def test_augment_sees_the_resized_crop_of_a_photo_file(tmp_path):
    path = tmp_path / "photo.jpg"
    _photo(640, 480).save(path, quality=90)
    shapes = []

    def augment(x):
        shapes.append((tuple(x.shape), float(x.min()), float(x.max())))
        return x.flip(-1)

    clf = TransferClassifier("tiny_cnn", weights=None, image_size=24, augment=augment,
                             max_epochs=1, device="cpu", random_state=0)
    clf.fit([str(path)] * 4, ["a", "b"] * 2)
    assert shapes and all(s == (3, 24, 24) and 0 <= lo and hi <= 1 for s, lo, hi in shapes)


# -- decoding workers (_loader) -------------------------------------------------------
@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """16 small JPEG photos in two classes (the first redder), as paths + labels."""
    root = tmp_path_factory.mktemp("photos")
    paths, labels = [], []
    for i in range(16):
        img = np.asarray(_photo(64 + 8 * (i % 3), 48, seed=i)).copy()
        if i % 2 == 0:
            img[..., 0] = 255
        path = root / f"{i}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(str(path))
        labels.append("red" if i % 2 == 0 else "other")
    return paths, np.array(labels)


@pytest.mark.parametrize("freeze_depth", [0, "all"])  # skorch's loaders / the cache fill
def test_workers_fit_and_transform_like_the_main_process(photo_files, freeze_depth,
                                                         monkeypatch):
    from sktransfer._stages import StageRunner

    paths, y = photo_files
    weights = np.linspace(0.5, 2.0, len(paths))
    fill_workers = []
    real = StageRunner.loader
    monkeypatch.setattr(StageRunner, "loader",
                        lambda self, *a: fill_workers.append(self.num_workers) or real(self, *a))
    results = {}
    for workers in (0, 2):
        clear_caches()  # each fit computes its cached activations itself
        clf = TransferClassifier("tiny_cnn", weights=None, image_size=24,
                                 freeze_depth=freeze_depth, max_epochs=2, batch_size=4,
                                 head_warmup=3, random_state=0, device="cpu",
                                 num_workers=workers).fit(paths, y, sample_weight=weights)
        results[workers] = (clf.predict_proba(paths), clf.transform(paths),
                            clf.history[:, "train_loss"])
        loader = clf.get_iterator(clf.get_dataset(as_input(paths), y), training=True)
        assert loader.num_workers == workers
        assert loader.persistent_workers == (workers > 0)
    assert fill_workers == [0, 2]  # the cache fill / the head warm-up's features
    for a, b in zip(results[0], results[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    features = [FeatureExtractor("tiny_cnn", weights=None, image_size=24, batch_size=4,
                                 random_state=0, num_workers=w).fit_transform(paths)
                for w in (0, 2)]
    np.testing.assert_allclose(features[0], features[1], rtol=1e-5, atol=1e-6)


def test_num_workers_auto_decodes_files_in_workers_only(photo_files, base, monkeypatch):
    from sktransfer._data import _loader, resolve_num_workers

    paths, _ = photo_files
    monkeypatch.setattr(_loader, "available_cpus", lambda: 6)
    assert resolve_num_workers("auto", as_input(paths), 4) == 4  # one per batch at most
    assert resolve_num_workers("auto", as_input(paths), 2) == 6  # the cores
    assert resolve_num_workers("auto", as_input(paths), 16) == 0  # one batch: this process
    assert resolve_num_workers("auto", as_input(paths * 40), 2) == 6
    monkeypatch.setattr(_loader, "available_cpus", lambda: 64)
    assert resolve_num_workers("auto", as_input(paths * 40), 2) == _loader.AUTO_MAX_WORKERS
    X, _ = base
    for in_memory in (X, [Image.fromarray(x) for x in X], np.zeros((40, 3), np.float32)):
        assert resolve_num_workers("auto", as_input(in_memory), 2) == 0
    assert resolve_num_workers(3, as_input(X), 2) == 3


def test_explicit_skorch_loader_workers_win(photo_files):
    paths, y = photo_files
    clf = TransferClassifier("tiny_cnn", weights=None, image_size=24, max_epochs=1,
                             batch_size=4, head_warmup=0, device="cpu", num_workers=2,
                             iterator_train__num_workers=0, iterator_valid__num_workers=1)
    clf.fit(paths, y)
    dataset = clf.get_dataset(as_input(paths), y)
    assert clf.get_iterator(dataset, training=True).num_workers == 0
    assert not clf.get_iterator(dataset, training=True).persistent_workers
    assert clf.get_iterator(dataset, training=False).num_workers == 1
    assert clf._input_workers(as_input(paths)) == 0  # the cache fill follows training's
    assert clf.predict(paths).shape == (len(paths),)


@pytest.mark.parametrize("value, error, message", [
    (-1, ValueError, r"num_workers must be 'auto' or an int >= 0, got -1"),
    ("Auto", ValueError, r"num_workers='Auto'\): num_workers must be 'auto' or an int >= 0, "
                         r"got 'Auto' \(did you mean 'auto'\?\)"),
    (1.5, TypeError, r"num_workers must be 'auto' or an int >= 0, got float 1.5"),
    (True, TypeError, r"got bool True"),
])
def test_bad_num_workers_is_a_clear_error(base, value, error, message):
    from sklearn.base import clone

    X, y = base
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, num_workers=value)
    assert clone(clf).get_params()["num_workers"] == value  # stored as given
    with pytest.raises(error, match=message):
        clf.fit(X, y)
    with pytest.raises(error, match=message):
        FeatureExtractor("tiny_cnn", weights=None, num_workers=value).fit(X)


def test_num_workers_is_grid_searchable(base):
    X, y = base
    search = GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=1,
                                             device="cpu"), {"num_workers": [0, "auto"]}, cv=2)
    assert search.fit(X, y).best_params_["num_workers"] in (0, "auto")


def test_list_files_is_the_one_folder_walker(tmp_path):
    from sktransfer._data import list_files

    root = tmp_path / "root"
    (root / "a" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ("top.png", "a/1.png", "a/deep/2.jpg", ".hidden/3.png", "a/.4.png",
                 "a/notes.txt"):
        Image.new("RGB", (4, 4)).save(root / name) if name.endswith(("png", "jpg")) \
            else (root / name).write_text("x")
    (root / "a" / "store").symlink_to(root / ".hidden")  # inside the root, listed nowhere else
    (root / "a" / "copy.png").symlink_to(root / "top.png")
    found = [str(Path(p).relative_to(root)) for p in list_files(root, (".png", "jpg"))]
    assert found == ["a/1.png", "a/copy.png", "a/deep/2.jpg", "a/store/3.png", "top.png"]
    assert list_files(root, [".txt"]) == [str(root / "a" / "notes.txt")]
