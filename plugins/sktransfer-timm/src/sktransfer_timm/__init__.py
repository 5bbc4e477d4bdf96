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
    ``resnet18.a1_in1k``), read from the Hugging Face cache (``$HF_HOME/hub``)
    or the torch hub cache (``$TORCH_HOME/hub/checkpoints``), where
    ``timm.create_model(..., pretrained=True)`` leaves them too. When neither has
    them they are downloaded on first use, as timm does: from the Hugging Face
    Hub through ``huggingface_hub`` (into its cache), or from timm's URL into the
    torch hub cache. With ``SKTRANSFER_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``)
    :class:`sktransfer.MissingWeightsError` says what was looked for, where,
    and what to run on a connected machine.
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

from sktransfer import Backbone, MissingWeightsError, Preprocessing, PretrainedWeights
from sktransfer.backbones import (copy_file, corrupt_file_error, download_advice,
                                  fetch_hub_file, fetch_url, hub_cache_dir, hub_cache_in,
                                  hub_checkpoint_dir, offline_reason, torch_checkpoints_in)

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


def provides_name(name: str) -> bool:
    """Whether ``name`` is ``timm/<model>`` or ``timm/<model>.<pretrained tag>`` for a
    timm model (and one of its tags): what :func:`timm_backbone` builds."""
    try:
        _arch(name)
    except ValueError:
        return False
    return name.startswith(PREFIX)


def _arch(name: str) -> str:
    """The timm name of ``name`` (prefix dropped), checked: a model timm has and, when
    the name carries a pretrained tag (``resnet18.a1_in1k``), one of that model's tags."""
    import timm
    from timm.models import split_model_name_tag

    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    base, tag = split_model_name_tag(arch)
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(PREFIX + c) for c in close)}?" if close else "."
        raise ValueError(f"unknown backbone {name!r}: timm has no model {base!r}{hint} See "
                         f"list_backbones('timm/*').")
    if tag:
        tagged = timm.list_pretrained(f"{base}.*")
        if arch not in tagged:
            known = ", ".join(repr(PREFIX + t) for t in tagged) or "none"
            raise ValueError(f"unknown backbone {name!r}: timm model {base!r} has no "
                             f"pretrained tag {tag!r}; its tagged names are {known} (or use "
                             f"{PREFIX + base!r} for its default weights)")
    return arch


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
        from huggingface_hub import try_to_load_from_cache

        for filename in _hub_filenames(cfg):
            looked.append(f"{repo}/{filename} in {hub_cache_dir()}")
            found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir())
            if isinstance(found, str) and Path(found).is_file():
                return Path(found), looked
    url = cfg.get("url")
    if url:
        path = hub_checkpoint_dir() / url.rsplit("/", 1)[-1].split("?")[0]
        looked.append(str(path))
        if path.is_file():
            return path, looked
    return None, looked


def _hub_filenames(cfg: dict) -> list[str]:
    """The files timm reads from a Hub repository, in its order of preference."""
    names = [cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"]
    return list(dict.fromkeys(f for f in names if f))


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
    arch, path = stated.description, stated.fetch()
    # timm applies its own checkpoint filters (classifier, position embeddings, in_chans)
    try:
        model = timm.create_model(arch, pretrained=True,
                                  pretrained_cfg_overlay={"file": str(path), "source": ""},
                                  **kwargs)
    except Exception as exc:
        if _unreadable(path):
            raise corrupt_file_error(stated, path, exc) from exc
        raise
    return model, f"{arch} ({path})"


def _unreadable(path: Path) -> bool:
    """Whether ``path`` cannot be read as a weights file (truncated, corrupt)."""
    from sktransfer import CorruptWeightsError
    from sktransfer.backbones import load_state_dict_file

    try:
        load_state_dict_file(path)
    except CorruptWeightsError:
        return True
    except ValueError:  # readable, but not what timm wanted: timm's own error says more
        return False
    return False


@dataclass(frozen=True)
class TimmWeights(PretrainedWeights):
    """timm's pretrained weights for one name: looked for in the Hugging Face cache, then
    the torch hub cache (:func:`find_pretrained_file`); downloaded on first use from the
    Hub (``huggingface_hub``) or timm's URL, into the cache each uses."""

    cfg: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def source(self) -> str:
        return "Hugging Face Hub cache" if self.cfg.get("hf_hub_id") else "torch hub cache"

    @property
    def downloadable(self) -> bool:
        return bool(self.cfg.get("hf_hub_id") or self.cfg.get("url"))

    def path(self) -> Path | None:
        return find_pretrained_file(self.cfg)[0]

    def locate(self) -> Path:
        path, looked = find_pretrained_file(self.cfg)
        if path is not None:
            return path
        raise self._missing(looked)

    def _missing(self, looked=None, reason: str | None = None) -> MissingWeightsError:
        looked = looked if looked is not None else find_pretrained_file(self.cfg)[1]
        repo = self.cfg.get("hf_hub_id")
        hub = (f" or `hf download {repo}` (it fills the Hugging Face cache as "
               f"timm.create_model({self.description!r}, pretrained=True) does)") if repo else ""
        off = f" Downloads are off ({reason})." if reason else ""
        return MissingWeightsError(
            f"pretrained weights for backbone {self.backbone!r} are not on this machine: "
            f"looked at {'; '.join(looked)}.{off} To provide them, "
            f"{download_advice(self.backbone)}{hub}; or pass "
            f"weights='/path/to/file.safetensors' (or .pth); weights=None trains from random "
            f"initialisation.")

    def fetch(self, *, to=None, progress: bool = True) -> Path:
        here = self.path()
        if to is None and here is not None:
            return here
        reason = offline_reason()
        repo, url = self.cfg.get("hf_hub_id"), self.cfg.get("url")
        if repo:
            return fetch_hub_file(repo, _hub_filenames(self.cfg), self.backbone,
                                  cache_dir=hub_cache_in(to) if to is not None else None,
                                  missing=lambda: self._missing(reason=reason))
        if url:
            name = url.rsplit("/", 1)[-1].split("?")[0]
            target = (torch_checkpoints_in(to) if to is not None else hub_checkpoint_dir()) / name
            if target.is_file():
                return target
            if here is not None:
                return copy_file(here, target)
            if reason is not None:
                raise self._missing(reason=reason)
            return fetch_url(url, target, self.backbone, progress=progress)
        return self.locate()


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
timm_backbone.provides = provides_name
timm_backbone.check_name = _arch  # raises the "no model" / "no pretrained tag" errors
timm_backbone.pretrained_weights = timm_weights
