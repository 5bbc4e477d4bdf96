"""The backbone registry, the Backbone description, and what a backbone provider needs.

Public helpers for providers (plugins): :class:`PretrainedWeights` (state a
backbone's weights without building it; find, download and load them),
:func:`torchvision_weights`, :func:`hub_checkpoint_dir`,
:func:`load_state_dict_file`, :func:`load_into_backbone`,
:func:`missing_weights_error`, and for downloads into the ecosystems' caches
:func:`fetch_url`, :func:`fetch_hub_file`, :func:`offline_reason`,
:func:`hub_cache_dir`, :func:`download_advice`. See docs/plugins.md.
"""

from __future__ import annotations

import os

from .._registry import Registry
from ._download import (WeightsDownloadError, copy_file, download_advice, fetch_hub_file,
                        fetch_url, hub_cache_dir, hub_cache_in, offline, offline_reason,
                        torch_checkpoints_in)
from ._pretrained import PretrainedWeights, corrupt_file_error, torchvision_weights
from ._spec import Backbone, GlobalPool, Preprocessing, TextPreprocessing, TokenPool
from ._weights import (CorruptWeightsError, MissingWeightsError, UnsafeWeightsError,
                       hub_checkpoint_dir,
                       is_weights_path, load_into_backbone, load_state_dict_file,
                       missing_weights_error)

__all__ = ["Backbone", "Preprocessing", "TextPreprocessing", "GlobalPool", "TokenPool",
           "register_backbone", "declared_input_kind", "get_backbone", "list_backbones", "build_backbone", "pretrained_weights",
           "PretrainedWeights", "torchvision_weights", "hub_checkpoint_dir",
           "MissingWeightsError", "UnsafeWeightsError", "load_state_dict_file",
           "load_into_backbone", "missing_weights_error", "BACKBONES", "download_weights",
           "WeightsDownloadError", "CorruptWeightsError", "corrupt_file_error", "offline",
           "offline_reason", "hub_cache_dir", "hub_cache_in", "torch_checkpoints_in",
           "fetch_url", "fetch_hub_file", "copy_file", "download_advice"]

BACKBONES = Registry("backbone", "sktransfer.backbones", "list_backbones")


def register_backbone(name=None, builder=None):
    """Register a backbone builder; usable as ``@register_backbone("name")``.

    A builder is called as ``builder(weights=..., **kwargs)`` and returns a
    :class:`Backbone`. It must handle ``weights=None`` (random init) and, when
    it has pretrained weights, ``"DEFAULT"``; weight *files* are loaded by
    sktransfer itself. A name ending in ``*`` (``"mynet/*"``) registers a
    namespace whose builder is called as ``builder(full_name, weights=...)``.
    Optional keyword arguments the caller fills in when the builder accepts
    them: ``image_size``, ``in_features`` (vector input), ``in_channels``.

    A builder may state its pretrained weights without being called, in a
    ``pretrained_weights`` attribute: a :class:`PretrainedWeights` (its
    ``"DEFAULT"`` weights), ``None`` (it has none), or a function
    ``(name, weights) -> PretrainedWeights | None`` (namespaces, named
    weights). See :func:`pretrained_weights`.

    Examples
    --------
    >>> from torch import nn
    >>> from sktransfer import Backbone, GlobalPool, register_backbone
    >>> from sktransfer.backbones import BACKBONES
    >>> @register_backbone("doc_net")
    ... def doc_net(weights=None):
    ...     return Backbone("doc_net", [nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3)],
    ...                     GlobalPool(), num_features=8)
    >>> doc_net.pretrained_weights = None   # random init only
    >>> get_backbone("doc_net").n_blocks
    2
    >>> BACKBONES.unregister("doc_net")
    """
    return BACKBONES.register(name, builder)


def get_backbone(name: str, weights=None, **kwargs) -> Backbone:
    """Build backbone ``name`` with ``weights`` (see :func:`build_backbone`)."""
    return build_backbone(name, weights, **kwargs)


def list_backbones(filter: str | None = None) -> list[str]:  # noqa: A002
    """Registered backbone names, optionally filtered by an fnmatch pattern.

    >>> list_backbones("resnet1*")
    ['resnet101', 'resnet152', 'resnet18']
    """
    return BACKBONES.list(filter)


_UNSTATED = object()


def pretrained_weights(name: str, weights: str = "DEFAULT") -> PretrainedWeights | None:
    """What backbone ``name``'s pretrained weights are and where they are looked for.

    Nothing is built or loaded: the answer is what the backbone's provider
    states (its builder's ``pretrained_weights`` attribute).

    Parameters
    ----------
    name : str
        A registered backbone name.
    weights : str, default="DEFAULT"
        ``"DEFAULT"`` or a backbone-specific weights name.

    Returns
    -------
    PretrainedWeights or None
        None when the backbone has no pretrained weights.

    Raises
    ------
    LookupError
        When the provider does not state its weights.

    Examples
    --------
    >>> pretrained_weights("resnet18").filename
    'resnet18-f37072fd.pth'
    >>> pretrained_weights("tiny_cnn") is None
    True
    """
    entry, _ = BACKBONES._resolve(name)
    stated = getattr(entry.builder, "pretrained_weights", _UNSTATED)
    if stated is _UNSTATED:
        raise LookupError(f"the provider of backbone {name!r} ({entry.source}) does not state "
                          f"its pretrained weights (no 'pretrained_weights' on its builder)")
    if stated is None or isinstance(stated, PretrainedWeights):
        if weights not in ("DEFAULT", "default"):
            raise ValueError(f"unknown weights {weights!r} for backbone {name!r}; its "
                             f"provider states only 'DEFAULT'")
        return stated
    return stated(name, weights)


def download_weights(name: str, weights: str = "DEFAULT", *, to=None, progress: bool = True):
    """Fetch backbone ``name``'s pretrained weights now; return where they are.

    Into the cache its ecosystem uses (the torch hub cache, the Hugging Face
    cache), so later fits need no network; nothing is fetched when they are
    there already, or when a package ships them.

    Parameters
    ----------
    name : str
        A registered backbone name (``"resnet18"``, ``"timm/resnet18"``,
        ``"hf/sentence-transformers/all-MiniLM-L6-v2"``).
    weights : str, default="DEFAULT"
        ``"DEFAULT"`` or a backbone-specific weights name.
    to : str or Path, optional
        Prepare this folder for an offline machine instead: URL weights go to
        ``to/torch/hub/checkpoints``, Hub weights to ``to/huggingface/hub``.
        There, set ``TORCH_HOME=to/torch`` and ``HF_HUB_CACHE=to/huggingface/hub``.
    progress : bool, default=True
        Show a progress bar while downloading.

    Returns
    -------
    Path
        The weights file (for a Hub checkpoint folder: the folder).

    Raises
    ------
    ValueError
        The backbone has no pretrained weights.
    MissingWeightsError
        Not on this machine and downloads are off (``SKTRANSFER_OFFLINE=1``).
    WeightsDownloadError
        The download failed; nothing is left behind.
    """
    stated = pretrained_weights(name, weights)
    if stated is None:
        raise ValueError(f"backbone {name!r} has no pretrained weights to download; "
                         f"use weights=None")
    return stated.fetch(to=to, progress=progress)


def declared_input_kind(name) -> str | None:
    """The input kind the builder of ``name`` declares (``builder.input_kind``), or None.

    Read before the backbone is built, so that ``X`` can be interpreted (a list
    of strings is texts for a text backbone, file paths otherwise).
    """
    if not isinstance(name, str):
        return None
    return BACKBONES.builder_attribute(name, "input_kind")


def build_backbone(name: str, weights=None, **kwargs) -> Backbone:
    """Build a backbone and load its weights.

    ``weights`` is None, ``"DEFAULT"``, a backbone-specific weights name, or a
    path to a ``.pth``/``.pt``/``.safetensors`` file. A file is loaded here,
    the same way for every backbone: the builder makes the architecture with
    ``weights=None`` and the file's tensors are copied in (a full checkpoint with
    its original classification head is accepted; the head is ignored).
    Keyword arguments the builder does not take are dropped, except those the
    caller set on purpose, which must be accepted.
    """
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be None, 'DEFAULT', a weights name or a file path; got "
                        f"{type(weights).__name__}")
    accepted = {k: v for k, v in kwargs.items() if v is not None and BACKBONES.accepts(name, k)}
    if weights is not None and is_weights_path(weights):
        backbone = BACKBONES.get(name, weights=None, **accepted)
        _check(backbone, name)
        load_into_backbone(backbone, load_state_dict_file(weights), repr(os.fspath(weights)))
        backbone.weights = os.fspath(weights)
        return backbone
    backbone = BACKBONES.get(name, weights=weights, **accepted)
    _check(backbone, name)
    if weights is not None and backbone.weights is None:
        backbone.weights = str(weights)
    return backbone


def _check(backbone, name):
    if not isinstance(backbone, Backbone):
        raise TypeError(f"the builder of backbone {name!r} returned {type(backbone).__name__}, "
                        f"not a sktransfer.Backbone")
