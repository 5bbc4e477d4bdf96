"""Text as an input kind (the sktransfer-transformers plugin's backbones).

scikit-learn's estimator checks feed numeric arrays, which a text backbone does
not take, so they do not apply here (they run on the vector backbone in
test_sklearn_checks.py); clone, get/set_params, Pipeline, GridSearchCV and
pickling are checked on texts below.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("sktransfer_transformers")
transformers = pytest.importorskip("transformers")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from sktransfer import FeatureExtractor, MissingWeightsError, TransferClassifier  # noqa: E402
from sktransfer._cache import ACTIVATIONS, clear_caches  # noqa: E402
from sktransfer_transformers import load_docstrings, minilm_l6_dir  # noqa: E402

TEXTS = ["Return the sum of the array elements over a given axis.",
         "Open an image file and return a PIL image.",
         "   Split a string by the occurrences of a pattern.   ",
         "",
         "Tensor " * 300,  # longer than the model's maximum length: truncated
         "Fit the model according to the given training data.",
         "Apply a 2D convolution over an input signal composed of several input planes.",
         "Résumé naïve café — ünïcödé ✓"]
LABELS = np.array(["numpy", "PIL", "stdlib", "stdlib", "torch", "sklearn", "torch", "stdlib"])


def _reference_mean(folder, texts, max_length=256, cls=False):
    """Mean pooling (or CLS) over transformers' AutoModel, written out by hand."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    batch = tokenizer([t.strip() for t in texts], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    if cls:
        return hidden[:, 0].numpy()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


@pytest.fixture(scope="module")
def minilm():
    return FeatureExtractor("minilm_l6", batch_size=3).fit(TEXTS)


def test_minilm_equals_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    expected = st.SentenceTransformer(str(minilm_l6_dir()), device="cpu").encode(
        TEXTS, batch_size=3)
    got = minilm.transform(TEXTS)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)  # normalised


def test_unnormalised_mean_and_cls_equal_hand_written_pooling():
    folder = minilm_l6_dir()
    mean = FeatureExtractor("minilm_l6", layer=-1).fit_transform(TEXTS)
    np.testing.assert_allclose(mean, _reference_mean(folder, TEXTS), atol=1e-5)
    cls = FeatureExtractor("minilm_l6", layer=-1, pooling="cls").fit_transform(TEXTS)
    np.testing.assert_allclose(cls, _reference_mean(folder, TEXTS, cls=True), atol=1e-5)


def test_blocks_and_order_independence(minilm):
    assert minilm.backbone_.block_names == ["embeddings"] + [f"layer{i}" for i in range(6)]
    assert minilm.backbone_.input_kind == "text"
    one_by_one = np.concatenate([minilm.transform([t]) for t in TEXTS])
    np.testing.assert_allclose(minilm.transform(TEXTS), one_by_one, atol=1e-5)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert"])
def test_hf_folder_of_each_family(tmp_path, model_type):
    """A tiny random checkpoint of each family, saved the Hugging Face way, read offline."""
    size = dict(hidden_size=32, num_hidden_layers=8, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=130)
    if model_type == "distilbert":
        size = dict(dim=32, n_layers=8, n_heads=2, hidden_dim=64, max_position_embeddings=130)
    config = transformers.AutoConfig.for_model(model_type, vocab_size=30522, **size)
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(str(minilm_l6_dir())).save_pretrained(tmp_path)
    fe = FeatureExtractor(f"hf/{tmp_path}", layer=-1).fit(TEXTS)
    # 8 layers are grouped two by two
    assert fe.backbone_.block_names == ["embeddings", "layers0-1", "layers2-3", "layers4-5",
                                        "layers6-7"]
    # truncation at the position-embedding limit (RoBERTa's positions start after its pad id)
    limit = 130 if model_type != "roberta" else 130 - config.pad_token_id - 1
    assert fe.backbone_.preprocessing.max_length == limit
    expected = _reference_mean(tmp_path, TEXTS, max_length=limit)
    np.testing.assert_allclose(fe.transform(TEXTS), expected, atol=1e-5)


def test_missing_model_folder_is_a_missing_weights_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="no-such-model"):
        FeatureExtractor(f"hf/{tmp_path / 'no-such-model'}").fit(TEXTS)
    config = transformers.AutoConfig.for_model("bert", vocab_size=30522, hidden_size=16,
                                               num_hidden_layers=1, num_attention_heads=2,
                                               intermediate_size=16)
    config.save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(str(minilm_l6_dir())).save_pretrained(tmp_path)
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        FeatureExtractor(f"hf/{tmp_path}").fit(TEXTS)
    random_init = FeatureExtractor(f"hf/{tmp_path}", weights=None).fit_transform(TEXTS)
    assert random_init.shape == (len(TEXTS), 16)


@pytest.mark.parametrize("bad, error, message", [
    ("a single text", TypeError, r"single str .* pass a list"),
    (["fine", 3], TypeError, r"X\[1\] is int"),
    (["fine", None], ValueError, r"X\[1\] is missing"),
    (["fine", float("nan")], ValueError, r"X\[1\] is missing"),
    (["fine", b"bytes"], TypeError, r"X\[1\] is bytes.*decode"),
    ([], ValueError, "empty"),
    (None, ValueError, "None"),
    (np.zeros((3, 4)), ValueError, r"shape \(3, 4\)"),
])
def test_bad_text_input(minilm, bad, error, message):
    with pytest.raises(error, match=message):
        minilm.transform(bad)
    with pytest.raises(error, match=message):
        TransferClassifier("minilm_l6", max_epochs=1).fit(bad, ["a", "b", "c"][:1])


def test_series_and_one_column_dataframe(minilm):
    pd = pytest.importorskip("pandas")
    expected = minilm.transform(TEXTS[:3])
    np.testing.assert_allclose(minilm.transform(pd.Series(TEXTS[:3])), expected, atol=1e-6)
    np.testing.assert_allclose(minilm.transform(pd.DataFrame({"text": TEXTS[:3]})), expected,
                               atol=1e-6)
    with pytest.raises(ValueError, match="2 columns"):
        minilm.transform(pd.DataFrame({"a": TEXTS[:2], "b": TEXTS[:2]}))
    with pytest.raises(ValueError, match=r"X\[1\] is missing"):
        minilm.transform(pd.Series(["x", None]))


def test_classifier_cache_matches_uncached_and_is_shared():
    clear_caches()
    params = dict(freeze_depth=5, max_epochs=2, random_state=0, batch_size=4, lr=1e-3)
    cached = TransferClassifier("minilm_l6", **params).fit(TEXTS, LABELS)
    assert cached.cache_used_
    misses = ACTIVATIONS.misses
    again = clone(cached).fit(TEXTS, LABELS)  # a grid candidate: the same prefix
    assert ACTIVATIONS.misses == misses and ACTIVATIONS.hits >= len(TEXTS)
    plain = TransferClassifier("minilm_l6", cache=False, **params).fit(TEXTS, LABELS)
    assert not plain.cache_used_
    misses = ACTIVATIONS.misses
    np.testing.assert_allclose(cached.predict_proba(TEXTS), plain.predict_proba(TEXTS),
                               atol=1e-4)
    assert ACTIVATIONS.misses == misses  # predicted from the rows the fit cached
    np.testing.assert_allclose(again.predict_proba(TEXTS), cached.predict_proba(TEXTS),
                               atol=1e-6)
    assert set(cached.predict(TEXTS)) <= set(LABELS)


def test_grid_search_pipeline_and_pickle():
    search = GridSearchCV(TransferClassifier("minilm_l6", max_epochs=1, random_state=0,
                                             batch_size=4),
                          {"freeze_depth": ["all", 6]}, cv=2).fit(TEXTS * 2, np.r_[LABELS, LABELS])
    assert search.best_params_["freeze_depth"] in ("all", 6)
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_allclose(restored.predict_proba(TEXTS),
                               search.best_estimator_.predict_proba(TEXTS), atol=1e-6)
    pipe = make_pipeline(FeatureExtractor("minilm_l6"), LogisticRegression(max_iter=500))
    assert pipe.fit(TEXTS, LABELS).score(TEXTS, LABELS) > 0.5
    fe = pipe[0]
    np.testing.assert_allclose(pickle.loads(pickle.dumps(fe)).transform(TEXTS[:2]),
                               fe.transform(TEXTS[:2]), atol=1e-6)


def test_image_backbone_still_reads_strings_as_paths():
    with pytest.raises(FileNotFoundError, match="image file not found"):
        FeatureExtractor("tiny_cnn", weights=None).fit(["no/such/file.png"])
    with pytest.raises(ValueError, match="augment applies to images"):
        TransferClassifier("minilm_l6", augment="flip", max_epochs=1).fit(TEXTS, LABELS)


def test_docstring_dataset_is_real_and_deterministic():
    texts, labels = load_docstrings(max_chars=120)
    assert set(labels) == {"numpy", "torch", "sklearn", "PIL", "stdlib"}
    assert min(np.unique(labels, return_counts=True)[1]) >= 200
    assert all(isinstance(t, str) and 20 <= len(t) <= 120 for t in texts)
    assert not any("numpy" in t.lower() or "sklearn" in t for t in texts)
    assert load_docstrings(max_chars=120)[0][:50] == texts[:50]


def test_cli_fit_predict_on_a_csv_of_texts(tmp_path, capsys):
    import csv

    from sktransfer.cli import main

    data = tmp_path / "train.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["doc", "pkg"])
        writer.writerows(zip(TEXTS, LABELS))
    model = tmp_path / "m.joblib"
    assert main(["fit", str(data), "--backbone", "minilm_l6", "--text-column", "doc",
                 "--label-column", "pkg", "--epochs", "1", "-q", "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(data), "--text-column", "doc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "text,label,probability" and len(lines) == len(TEXTS) + 1
    assert main(["fit", str(data), "--backbone", "minilm_l6", "-o", str(model)]) != 0
    assert "has no column 'text'; its columns are ['doc', 'pkg']" in capsys.readouterr().err


def test_a_text_model_refuses_image_files_and_arrays_also_after_saving(minilm, tmp_path, capsys):
    import joblib
    from PIL import Image

    from sktransfer.cli import main

    sio = pytest.importorskip("skops.io")
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    clf = TransferClassifier("minilm_l6", max_epochs=1, random_state=0, batch_size=4)
    with pytest.warns(UserWarning, match="once in y"):  # LABELS has three singletons
        clf.fit(TEXTS, LABELS)
    joblib.dump(clf, tmp_path / "text.joblib")
    sio.dump(clf, tmp_path / "text.skops")
    loaded = [clf, joblib.load(tmp_path / "text.joblib"),
              sio.load(tmp_path / "text.skops",
                       trusted=sio.get_untrusted_types(file=tmp_path / "text.skops"))]
    for model in loaded[1:]:  # a saved text model predicts as before
        np.testing.assert_allclose(model.predict_proba(TEXTS), clf.predict_proba(TEXTS),
                                   atol=1e-5)
    for model in loaded:
        for call in (model.predict, model.predict_proba, model.transform):
            with pytest.raises(ValueError, match=r"look like image file paths \('.*photo\.jpg'\);"
                                                 r" this model was fitted on texts"):
                call([str(photo)])
            with pytest.raises(ValueError, match="look like audio file paths"):
                call(["a.wav", "b.WAV"])
            with pytest.raises(ValueError, match=r"fitted on texts .*numeric array of shape "
                                                 r"\(2, 32, 32, 3\)"):
                call(np.zeros((2, 32, 32, 3), np.uint8))
        # texts that mention a file are texts
        assert model.predict(["see photo.jpg", "photo.jpg was lost"]).shape == (2,)
    with pytest.raises(ValueError, match="look like image file paths"):
        FeatureExtractor("minilm_l6").fit([str(photo)])
    sio.dump(minilm, tmp_path / "fe.skops")
    fe_file = tmp_path / "fe.skops"
    fe = sio.load(fe_file, trusted=sio.get_untrusted_types(file=fe_file))
    np.testing.assert_allclose(fe.transform(TEXTS), minilm.transform(TEXTS), atol=1e-5)
    with pytest.raises(ValueError, match="fitted on texts"):
        fe.transform([str(photo)])
    # what `sktransfer predict text.joblib photo.jpg` prints (it used to print a label)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "text.joblib"), str(photo)]) != 0
    assert "this model was fitted on texts" in capsys.readouterr().err
    # and the other way round: texts given to an image model
    images = FeatureExtractor("tiny_cnn", weights=None).fit(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="read as image file paths"):
        images.transform(["a sentence about cats"])
