"""torchvision classification models cut into meaningful blocks.

Each family gets a splitter that returns ``(blocks, block_names, pool,
num_features)`` from a built torchvision model; the head (the final ``Linear``)
is left out. The families are registered as namespaces through the package's
own entry points (``resnet*``, ``vit_*``, ...), so ``list_backbones()`` shows
torchvision's own names.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import torch
from torch import nn

from ._pretrained import torchvision_weights
from ._spec import Backbone, GlobalPool, TokenPool
from ._weights import is_weights_path

__all__ = ["build_torchvision_backbone", "TORCHVISION_FAMILIES"]


def _resnet(model):
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    blocks = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    return blocks, ["stem", "layer1", "layer2", "layer3", "layer4"], GlobalPool(), \
        model.fc.in_features


def _group_by_resolution(modules, size=64):
    """Group consecutive modules that work at the same spatial resolution."""
    groups, current, last = [], [], None
    device = next(modules[0].parameters()).device
    states = [m.training for m in modules]
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, size, size, device=device)
            for module in modules:
                x = module.eval()(x)  # eval: BatchNorm statistics stay untouched
                res = tuple(x.shape[-2:])
                if current and res != last:
                    groups.append(current)
                    current = []
                current.append(module)
                last = res
    finally:
        for module, training in zip(modules, states):
            module.train(training)
    groups.append(current)
    return [g[0] if len(g) == 1 else nn.Sequential(*g) for g in groups]


def _mobilenet(model):
    blocks = _group_by_resolution(list(model.features))
    names = ["stem"] + [f"stage{i}" for i in range(1, len(blocks))]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    if len(linears) > 1:  # mobilenet_v3 keeps a pretrained pre-logits layer
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier[0],
                             model.classifier[1])
        return blocks, names, pool, linears[0].out_features
    return blocks, names, GlobalPool(), linears[-1].in_features


def _efficientnet(model):
    blocks = list(model.features)
    names = ["stem"] + [f"stage{i}" for i in range(1, len(blocks) - 1)] + ["head_conv"]
    return blocks, names, GlobalPool(), model.classifier[-1].in_features


def _regnet(model):
    stages = list(model.trunk_output.children())
    return ([model.stem] + stages, ["stem"] + [f"block{i}" for i in range(1, len(stages) + 1)],
            GlobalPool(), model.fc.in_features)


def _densenet(model):
    f = model.features
    stem = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
    blocks, names = [stem], ["stem"]
    for i in range(1, 5):
        parts = [getattr(f, f"denseblock{i}")]
        parts.append(getattr(f, f"transition{i}") if i < 4 else
                     nn.Sequential(f.norm5, nn.ReLU(inplace=False)))
        blocks.append(nn.Sequential(*parts))
        names.append(f"denseblock{i}")
    return blocks, names, GlobalPool(), model.classifier.in_features


def _shufflenet(model):
    stem = nn.Sequential(model.conv1, model.maxpool)
    blocks = [stem, model.stage2, model.stage3, model.stage4, model.conv5]
    return blocks, ["stem", "stage2", "stage3", "stage4", "conv5"], GlobalPool(), \
        model.fc.in_features


def _pairs(features):
    """ConvNeXt / Swin: [stem, stage, down, stage, down, stage, ...] -> 4 blocks."""
    mods = list(features)
    blocks = [nn.Sequential(mods[0], mods[1])]
    for i in range(2, len(mods), 2):
        blocks.append(nn.Sequential(mods[i], mods[i + 1]))
    return blocks, [f"stage{i}" for i in range(1, len(blocks) + 1)]


def _convnext(model):
    blocks, names = _pairs(model.features)
    norm = model.classifier[0]
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), norm, nn.Flatten(1))
    return blocks, names, pool, model.classifier[-1].in_features


def _swin(model):
    blocks, names = _pairs(model.features)
    pool = nn.Sequential(model.norm, model.permute, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return blocks, names, pool, model.head.in_features


class _ViTEmbedding(nn.Module):
    """Patchify, prepend the class token, add position embeddings."""

    def __init__(self, vit):
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout
        self.patch_size = vit.patch_size
        self.image_size = vit.image_size

    def forward(self, x):
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"this ViT takes {self.image_size}x{self.image_size} images, got "
                             f"{h}x{w}; drop image_size or build it with that size")
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


def _vit(model):
    layers = list(model.encoder.layers)
    n_groups = 4 if len(layers) % 4 == 0 else 3 if len(layers) % 3 == 0 else 2
    size = len(layers) // n_groups
    blocks = [_ViTEmbedding(model)] + [nn.Sequential(*layers[i:i + size])
                                       for i in range(0, len(layers), size)]
    names = ["embed"] + [f"layers{i}-{i + size - 1}" for i in range(0, len(layers), size)]
    return blocks, names, TokenPool("cls", model.encoder.ln), model.hidden_dim


TORCHVISION_FAMILIES = {
    "resnet": _resnet, "resnext": _resnet, "wide_resnet": _resnet,
    "mobilenet_v2": _mobilenet, "mobilenet_v3": _mobilenet,
    "efficientnet": _efficientnet, "regnet": _regnet, "densenet": _densenet,
    "shufflenet": _shufflenet, "convnext": _convnext, "swin": _swin, "vit": _vit,
}

# families whose blocks output token sequences / channels-last maps
def _token_pool(index: int, mode: str) -> nn.Module:
    return TokenPool("mean")


def _channels_last_pool(index: int, mode: str) -> nn.Module:
    return GlobalPool(mode, channels_last=True)


_POOL_FOR_BLOCK = {"vit": _token_pool, "swin": _channels_last_pool}


def _family(name: str) -> str | None:
    for prefix in sorted(TORCHVISION_FAMILIES, key=len, reverse=True):
        if name.startswith(prefix):
            return prefix
    return None


@functools.lru_cache(maxsize=None)
def _torchvision_names() -> tuple[str, ...]:
    """Every torchvision classification model sktransfer can split (enumerates them all:
    for listing only, a look-up of one name uses :func:`_is_torchvision_model`)."""
    import torchvision.models

    return tuple(sorted(n for n in torchvision.models.list_models(module=torchvision.models)
                        if _family(n) is not None))


@functools.lru_cache(maxsize=None)
def _is_torchvision_model(name: str) -> bool:
    """Whether ``name`` is one of torchvision's classification models of a known family."""
    if _family(name) is None:
        return False
    import torchvision.models

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        return False
    # detection, video, ... builders live in sub-packages: not classification models
    return builder.__module__.rsplit(".", 1)[0] == "torchvision.models"


@functools.lru_cache(maxsize=None)
def _defined_in_torchvision_models(name: str) -> bool | None:
    """Whether torchvision's classification modules define a function ``name``, read
    from their source without importing torchvision (about 2 s); None when the
    source cannot be read. A superset of its models: enough to tell a plugin's own
    name (``efficientnet_lite0``) from one of torchvision's."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    pattern = re.compile(rf"^def {re.escape(name)}\(", re.MULTILINE)
    try:
        sources = [f.read_text(encoding="utf-8") for f in folder.glob("*.py")]
    except OSError:
        return None
    if not sources:
        return None
    return any(pattern.search(text) for text in sources)


def build_torchvision_backbone(name: str, weights=None, image_size: int | None = None,
                               **model_kwargs) -> Backbone:
    """Build torchvision model ``name`` as a :class:`Backbone`.

    ``weights``: None, ``"DEFAULT"``, a torchvision weights name (``"IMAGENET1K_V2"``)
    or a file path. Named weights are read from the torch hub cache only; when
    the file is missing the error names it and says how to provide it.
    """
    import torchvision.models

    family = _family(name)
    if family is None or not _is_torchvision_model(name):
        from . import BACKBONES  # the registry's message: every backbone, not only ours

        raise ValueError(BACKBONES.unknown_message(name))
    named = isinstance(weights, str) and not is_weights_path(weights)
    pretrained = torchvision_weights(name, weights if named else "DEFAULT")
    if family == "vit" and image_size is not None and not named:
        model_kwargs.setdefault("image_size", image_size)
    model = torchvision.models.get_model(name, weights=None, **model_kwargs)
    blocks, names, pool, num_features = TORCHVISION_FAMILIES[family](model)
    # ViTs check their exact size themselves; Swin pads to its windows, so the
    # 224 of its metadata is a recommendation, not a limit
    min_size = None if family in ("vit", "swin") else pretrained.min_input_size
    backbone = Backbone(name=name, blocks=blocks, block_names=names, pool=pool,
                        num_features=num_features, preprocessing=pretrained.preprocessing,
                        pool_for_block=_POOL_FOR_BLOCK.get(family), source_module=model,
                        min_input_size=min_size)
    if named:
        pretrained.load_into(backbone)
    return backbone


def _namespace(prefix: str):
    def build(name: str, weights=None, image_size: int | None = None, **kwargs) -> Backbone:
        return build_torchvision_backbone(name, weights=weights, image_size=image_size,
                                          **kwargs)

    build.list_names = lambda: [n for n in _torchvision_names() if n.startswith(prefix)]
    build.provides = lambda name: name.startswith(prefix) and _provides(name)
    build.pretrained_weights = torchvision_weights
    build.__name__ = f"torchvision_{prefix.rstrip('_')}"
    return build


def _provides(name: str) -> bool:
    """Whether torchvision has model ``name``; cheap when torchvision is not imported yet."""
    if "torchvision.models" not in sys.modules:
        defined = _defined_in_torchvision_models(name)
        if defined is False:
            return False
    return _is_torchvision_model(name)


# One namespace per family; the entry points in pyproject.toml point here.
resnet = _namespace("resnet")
resnext = _namespace("resnext")
wide_resnet = _namespace("wide_resnet")
mobilenet = _namespace("mobilenet_")
efficientnet = _namespace("efficientnet_")
regnet = _namespace("regnet_")
densenet = _namespace("densenet")
shufflenet = _namespace("shufflenet_")
convnext = _namespace("convnext_")
swin = _namespace("swin_")
vit = _namespace("vit_")
