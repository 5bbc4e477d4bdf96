"""Every timm model as a sktransfer backbone: ``get_backbone("timm/<timm name>")``.

Registered as the namespace ``timm/*`` through the entry point group
``sktransfer.backbones``::

    [project.entry-points."sktransfer.backbones"]
    "timm/*" = "sktransfer_timm:timm_backbone"

Weights
-------
``None``
    random initialisation.
``"DEFAULT"``
    timm's default pretrained weights for the name (``timm/resnet18`` ->
    ``resnet18.a1_in1k``), read from the local Hugging Face cache
    (``$HF_HOME/hub``) or the torch hub cache (``$TORCH_HOME/hub/checkpoints``)
    only. Nothing is downloaded; when neither has them
    :class:`sktransfer.MissingWeightsError` says what was looked for, where.
a pretrained tag (``"a1_in1k"``)
    the same, for ``<name>.<tag>``; a tag in the name (``timm/resnet18.a1_in1k``)
    works too.
a file path
    loaded by sktransfer itself (full timm checkpoints with their classifier
    are accepted).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

from sktransfer import Backbone, Preprocessing, PretrainedWeights
from sktransfer.backbones import hub_checkpoint_dir, missing_weights_error

from ._split import find_layout, split_model

__all__ = ["timm_backbone", "list_timm_names", "find_pretrained_file", "timm_weights",
           "TimmWeights"]
__version__ = "0.1.0"

PREFIX = "timm/"
_LAYOUTS: dict = {}  # (timm name, image_size, in_channels) -> Layout


def list_timm_names() -> list[str]:
    """All timm architectures, as sktransfer names (``timm/<name>``)."""
    import timm

    return [PREFIX + n for n in timm.list_models()]


def _arch(name: str) -> str:
    import timm
    from timm.models import split_model_name_tag

    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    base, _ = split_model_name_tag(arch)
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(PREFIX + c) for c in close)}?" if close else "."
        raise ValueError(f"unknown backbone {name!r}: timm has no model {base!r}{hint} See "
                         f"list_backbones('timm/*').")
    return arch


def _hf_cache_dir() -> Path:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return Path("~/.cache/huggingface/hub").expanduser()
    return Path(HF_HUB_CACHE)


def find_pretrained_file(cfg: dict) -> tuple[Path | None, list[str]]:
    """A local copy of the weights described by timm's ``pretrained_cfg``.

    Returns ``(path or None, places looked at)``. Looks at ``cfg['file']``, the
    Hugging Face cache (without network: ``try_to_load_from_cache``) and the
    torch hub cache, in that order.
    """
    looked = []
    if cfg.get("file"):
        looked.append(str(cfg["file"]))
        if Path(cfg["file"]).is_file():
            return Path(cfg["file"]), looked
    repo = cfg.get("hf_hub_id")
    if repo:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            try_to_load_from_cache = None
        filenames = [cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"]
        for filename in dict.fromkeys(f for f in filenames if f):
            looked.append(f"{repo}/{filename} in {_hf_cache_dir()}")
            if try_to_load_from_cache is not None:
                found = try_to_load_from_cache(repo, filename, cache_dir=_hf_cache_dir())
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found), looked
    url = cfg.get("url")
    if url:
        path = hub_checkpoint_dir() / url.rsplit("/", 1)[-1].split("?")[0]
        looked.append(str(path))
        if path.is_file():
            return path, looked
    return None, looked


def _preprocessing(model, image_size: int | None) -> Preprocessing:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    crop = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    interpolation = "bicubic" if cfg.get("interpolation") == "bicubic" else "bilinear"
    pre = Preprocessing(crop_size=crop, resize_size=int(math.floor(crop / crop_pct)),
                        mean=tuple(float(v) for v in cfg["mean"]),
                        std=tuple(float(v) for v in cfg["std"]), interpolation=interpolation)
    return pre.with_image_size(image_size)


def _fixed_size(model) -> int | None:
    """The input size a model insists on (ViT, Swin...), or None."""
    embed = getattr(model, "patch_embed", None) or getattr(model, "stem", None)
    size = getattr(embed, "img_size", None)
    if size is None or not getattr(embed, "strict_img_size", True) \
            or getattr(model, "dynamic_img_size", False):
        return None
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _create(arch: str, weights, image_size, in_channels):
    import timm

    kwargs = {} if in_channels in (None, 3) else {"in_chans": in_channels}
    model = timm.create_model(arch, pretrained=False, **kwargs)
    fixed = _fixed_size(model)
    if image_size is not None and fixed is not None and fixed != image_size:
        kwargs["img_size"] = image_size
        model = timm.create_model(arch, pretrained=False, **kwargs)
    if weights is None:
        return model, None
    if weights not in ("DEFAULT", "default"):  # a pretrained tag
        base = arch.split(".", 1)[0]
        arch = f"{base}.{weights}"
        if arch not in timm.list_pretrained(f"{base}.*"):
            tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{base}.*")]
            raise ValueError(f"unknown weights {weights!r} for backbone 'timm/{base}'; use None, "
                             f"'DEFAULT', a file path, or one of timm's tags {tags}")
        model = timm.create_model(arch, pretrained=False, **kwargs)
    stated = _stated_weights(arch, dict(model.pretrained_cfg or {}))
    if stated is None:
        raise ValueError(f"timm has no pretrained weights for {arch!r}; use weights=None or a "
                         f"file path")
    arch, path = stated.description, stated.locate()
    # timm applies its own checkpoint filters (classifier, position embeddings, in_chans)
    model = timm.create_model(arch, pretrained=True,
                              pretrained_cfg_overlay={"file": str(path), "source": ""},
                              **kwargs)
    return model, f"{arch} ({path})"


@dataclass(frozen=True)
class TimmWeights(PretrainedWeights):
    """timm's pretrained weights for one name: looked for in the Hugging Face cache, then
    the torch hub cache (:func:`find_pretrained_file`), never downloaded."""

    cfg: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def source(self) -> str:
        return "Hugging Face or torch hub cache"

    def path(self) -> Path | None:
        return find_pretrained_file(self.cfg)[0]

    def locate(self) -> Path:
        path, looked = find_pretrained_file(self.cfg)
        if path is not None:
            return path
        repo = self.cfg.get("hf_hub_id")
        where = (_hf_cache_dir() / f"models--{repo.replace('/', '--')}") if repo else \
            Path(looked[-1]).parent
        raise missing_weights_error(
            self.backbone, self.filename, where, self.url,
            extra=(f" Looked at: {'; '.join(looked)}. With network access once, "
                   f"timm.create_model({self.description!r}, pretrained=True) fills the "
                   f"Hugging Face cache."))


def _stated_weights(arch: str, cfg: dict) -> TimmWeights | None:
    if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
        return None
    if cfg.get("tag") and "." not in arch:
        arch = f"{arch}.{cfg['tag']}"  # name what is loaded: resnet18 -> resnet18.a1_in1k
    repo = cfg.get("hf_hub_id")
    if repo:
        filename, url = cfg.get("hf_hub_filename") or "model.safetensors", \
            f"https://huggingface.co/{repo}"
    else:
        filename = Path(cfg.get("file") or cfg["url"].split("?")[0]).name
        url = cfg.get("url") or None
    return TimmWeights(backbone=f"{PREFIX}{arch}", filename=filename, url=url,
                       description=arch, cfg=cfg)


def timm_weights(name: str, weights: str = "DEFAULT") -> TimmWeights | None:
    """The pretrained weights of ``timm/<name>`` as sktransfer states them (nothing built).

    ``weights``: ``"DEFAULT"`` or a timm pretrained tag. None when timm has none.
    """
    from timm.models import get_pretrained_cfg

    arch = _arch(name)
    if weights not in ("DEFAULT", "default"):
        arch = f"{arch.split('.', 1)[0]}.{weights}"
    cfg = get_pretrained_cfg(arch)
    return None if cfg is None else _stated_weights(arch, cfg.to_dict())


def timm_backbone(name: str, weights=None, image_size: int | None = None,
                  in_channels: int | None = None) -> Backbone:
    """Build timm model ``name`` (``"timm/<timm name>"``) as a :class:`sktransfer.Backbone`.

    Blocks follow timm's own stages (``feature_info``): e.g. ``timm/resnet18``
    gives ``stem, stage1 ... stage4``; transformers give the embedding then
    groups of transformer blocks. The pool is timm's
    ``forward_head(x, pre_logits=True)``; ``num_features`` is its width.
    Preprocessing comes from ``timm.data.resolve_data_config``.

    Parameters
    ----------
    name : str
        ``"timm/resnet18"``, ``"timm/vit_tiny_patch16_224"``, ... (see
        ``list_backbones("timm/*")``).
    weights : None, "DEFAULT" or a timm pretrained tag
        See the module docstring; files are loaded by sktransfer itself.
    image_size : int, optional
        Models with a fixed input size (ViT, ...) are built for this size.
    in_channels : int, optional
        Input channels (timm adapts the first convolution's pretrained weights).
    """
    arch = _arch(name)
    model, loaded = _create(arch, weights, image_size, in_channels)
    key = (arch.split(".", 1)[0], image_size, in_channels)
    layout = _LAYOUTS.get(key)
    if layout is None:
        size = _fixed_size(model) or image_size or 32
        layout = _LAYOUTS[key] = find_layout(model, size)
    blocks, names, pool, pool_for_block = split_model(model, layout)
    return Backbone(name=name, blocks=blocks, block_names=names, pool=pool,
                    num_features=layout.num_features,
                    preprocessing=_preprocessing(model, image_size),
                    in_channels=in_channels or getattr(model, "in_chans", 3),
                    weights=loaded, pool_for_block=pool_for_block, source_module=model)


timm_backbone.list_names = list_timm_names
timm_backbone.pretrained_weights = timm_weights
