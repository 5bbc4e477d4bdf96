"""The backbone registry and the Backbone description."""

from __future__ import annotations

import os

from .._registry import Registry
from ._spec import Backbone, GlobalPool, Preprocessing, TextPreprocessing, TokenPool
from ._weights import (MissingWeightsError, UnsafeWeightsError, is_weights_path,
                       load_into_backbone, load_state_dict_file, missing_weights_error)

__all__ = ["Backbone", "Preprocessing", "TextPreprocessing", "GlobalPool", "TokenPool",
           "register_backbone", "declared_input_kind",
           "get_backbone", "list_backbones", "build_backbone", "MissingWeightsError",
           "UnsafeWeightsError", "load_state_dict_file", "load_into_backbone",
           "missing_weights_error", "BACKBONES"]

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

    Examples
    --------
    >>> from torch import nn
    >>> from sktransfer import Backbone, GlobalPool, register_backbone
    >>> @register_backbone("doc_net")
    ... def doc_net(weights=None):
    ...     return Backbone("doc_net", [nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3)],
    ...                     GlobalPool(), num_features=8)
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
