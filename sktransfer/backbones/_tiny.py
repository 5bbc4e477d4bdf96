"""Tiny backbones that need no weights: for tests, examples and sklearn's checks."""

from __future__ import annotations

from torch import nn

from ._spec import Backbone, GlobalPool, Preprocessing

__all__ = ["tiny_cnn", "mlp"]


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def tiny_cnn(weights=None, in_channels: int = 3, width: int = 8) -> Backbone:
    """A four-block CNN (about 10k parameters) for 32x32 images.

    ``weights``: None or a file path (handled by the caller). Images are
    resized to 32x32 unless ``image_size`` says otherwise; normalised to [-1, 1].
    """
    if weights not in (None,):
        raise ValueError("tiny_cnn has no pretrained weights; use weights=None or a file path")
    blocks = [_conv(in_channels, width, 1),
              _conv(width, 2 * width, 2),
              nn.Sequential(_conv(2 * width, 4 * width, 2), _conv(4 * width, 4 * width, 1)),
              _conv(4 * width, 8 * width, 2)]
    return Backbone(name="tiny_cnn", blocks=blocks, pool=GlobalPool(), num_features=8 * width,
                    block_names=["stem", "stage1", "stage2", "stage3"],
                    preprocessing=Preprocessing(32, 32, (0.5,) * in_channels,
                                                (0.5,) * in_channels),
                    in_channels=in_channels)


def mlp(weights=None, in_features: int = 16, hidden: int = 32, depth: int = 3) -> Backbone:
    """A ``depth``-block MLP for 2-D vector input (``in_features`` columns).

    Each block is Linear -> LayerNorm -> ReLU, so ``freeze_depth`` works on
    tabular data exactly as on images.
    """
    if weights not in (None,):
        raise ValueError("mlp has no pretrained weights; use weights=None or a file path")
    if not isinstance(in_features, int) or in_features < 1:
        raise ValueError(f"mlp needs in_features >= 1, got {in_features!r}")
    blocks, width = [], in_features
    for _ in range(depth):
        blocks.append(nn.Sequential(nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU()))
        width = hidden
    return Backbone(name="mlp", blocks=blocks, pool=nn.Identity(), num_features=hidden,
                    block_names=[f"dense{i}" for i in range(depth)], preprocessing=None,
                    input_kind="vector", in_channels=in_features,
                    pool_for_block=_identity_pool)


# Stated without building: these have no pretrained weights (`sktransfer backbones`).
tiny_cnn.pretrained_weights = None
mlp.pretrained_weights = None


def _identity_pool(index: int, mode: str) -> nn.Module:
    return nn.Identity()
