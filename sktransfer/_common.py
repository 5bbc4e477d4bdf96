"""What both estimators share: devices, seeding, backbone + input resolution."""

from __future__ import annotations

import numpy as np
import torch

from ._data import ImageInput, Preprocessor, VectorInput
from ._random import seeded
from .backbones import build_backbone

__all__ = ["resolve_device", "seeded", "make_backbone", "preprocessor_for", "check_source_kind",
           "progress_bar"]


def resolve_device(device) -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; check explicit choices."""
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device; use 'auto', 'cpu' or "
                         f"'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available on this "
                         f"machine; use device='auto' (CUDA when present, else CPU) or 'cpu'")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps")
                                  and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} was requested but MPS is not available")
    return str(device)


def make_backbone(name, weights, source, image_size=None):
    """Build ``name`` for the data in ``source`` and check the two fit together."""
    if not isinstance(name, str):
        raise TypeError(f"backbone must be a registered name (str), got {type(name).__name__}; "
                        f"see sktransfer.list_backbones()")
    kwargs = {"image_size": image_size}
    if isinstance(source, VectorInput):
        kwargs["in_features"] = source.n_features
    backbone = build_backbone(name, weights, **kwargs)
    if backbone.input_kind == "vector" and not isinstance(source, VectorInput):
        raise ValueError(f"backbone {name!r} takes 2-D vectors (n_samples, n_features); X holds "
                         f"images. Pick an image backbone (see list_backbones()).")
    if backbone.input_kind == "image" and isinstance(source, VectorInput):
        raise ValueError(f"backbone {name!r} takes images (N, H, W, C), (N, C, H, W), (N, H, W), "
                         f"file paths or PIL images; X is 2-D {source.items.shape}, which reads "
                         f"as vectors. Use backbone='mlp' for vectors, or reshape flat images "
                         f"to (N, H, W).")
    return backbone


def preprocessor_for(backbone, image_size=None) -> Preprocessor | None:
    if backbone.input_kind == "vector" or backbone.preprocessing is None:
        return None
    if image_size is not None and (not isinstance(image_size, (int, np.integer))
                                   or isinstance(image_size, bool) or image_size < 1):
        raise ValueError(f"image_size must be None or a positive int, got {image_size!r}")
    return Preprocessor(backbone.preprocessing.with_image_size(image_size), backbone.in_channels)


def check_source_kind(source, backbone) -> None:
    """At predict time: the data must be of the kind the model was fitted on."""
    if backbone.input_kind == "vector" and isinstance(source, ImageInput):
        raise ValueError(f"this model was fitted on 2-D vectors (backbone {backbone.name!r} "
                         f"takes vectors); X holds images")
    if backbone.input_kind == "image" and isinstance(source, VectorInput):
        raise ValueError(f"this model was fitted on images (backbone {backbone.name!r} takes "
                         f"images); X is 2-D {source.items.shape}, which reads as vectors")


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr when ``enabled``, else None."""
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, file=sys.stderr)
