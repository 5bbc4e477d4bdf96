"""Every registered backbone is built, run, frozen; weights load offline."""

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
        else:
            size = 224 if name.startswith("vit") else 64
            x = torch.zeros(2, backbone.in_channels, size, size)
        out = backbone.pool(backbone.forward_features(x))
    assert tuple(out.shape) == (2, backbone.num_features)
    assert backbone.n_blocks >= 2
    assert len(backbone.block_names) == backbone.n_blocks
    assert backbone.preprocessing is None or backbone.input_kind == "text" \
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
