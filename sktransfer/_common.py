"""What both estimators share: devices, seeding, backbone + input resolution."""

from __future__ import annotations

import os

import numpy as np
import torch

from ._audio import AudioInput, AudioPreprocessor
from ._console import progress_bar  # noqa: F401 - the one console policy, re-exported
from ._data import (AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, ImageInput, Preprocessor, TextInput,
                    TextPreprocessor, VectorInput, as_input)
from ._random import seeded
from .backbones import Backbone, build_backbone, declared_input_kind

__all__ = ["resolve_device", "seeded", "make_backbone", "preprocessor_for", "check_source_kind",
           "progress_bar", "read_input", "LEAF_PARAMS", "nested_params",
           "clone_with_leaves"]

#: parameters whose value is never a nested estimator, though it may have a
#: ``get_params``: torchvision's random transforms have a static one
#: (``RandomResizedCrop.get_params(img, scale, ratio)`` draws a crop box), which
#: scikit-learn's deep ``get_params`` would call without arguments
LEAF_PARAMS = frozenset({"augment"})


def nested_params(shallow: dict) -> dict:
    """scikit-learn's ``get_params(deep=True)`` from the shallow parameters: a value
    with a ``get_params`` adds its own as ``name__param``; :data:`LEAF_PARAMS` stay whole."""
    out = {}
    for key, value in shallow.items():
        if (key not in LEAF_PARAMS and hasattr(value, "get_params")
                and not isinstance(value, type)):
            out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
        out[key] = value
    return out


def clone_with_leaves(estimator):
    """``sklearn.base.clone(estimator)``, with :data:`LEAF_PARAMS` deep-copied as values.

    scikit-learn's clone takes any parameter value with a ``get_params`` for an
    estimator and calls ``get_params(deep=False)`` on it, which a torchvision
    ``RandomResizedCrop`` (a static ``get_params(img, scale, ratio)``) does not take.
    """
    import copy

    from sklearn.base import BaseEstimator, clone

    params = estimator.get_params(deep=False)
    if not any(hasattr(params.get(k), "get_params") for k in LEAF_PARAMS):
        return BaseEstimator.__sklearn_clone__(estimator)
    new = type(estimator)(**{k: copy.deepcopy(v) if k in LEAF_PARAMS else clone(v, safe=False)
                             for k, v in params.items()})
    for private in ("_metadata_request", "_sklearn_output_config"):
        if private in vars(estimator):
            setattr(new, private, copy.deepcopy(vars(estimator)[private]))
    return new


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


def read_input(X, backbone):
    """``as_input(X)`` in the light of ``backbone`` (a name before fit, a Backbone after):
    a text backbone reads a list of strings as texts, any other as file paths."""
    kind = backbone.input_kind if isinstance(backbone, Backbone) else declared_input_kind(backbone)
    if kind == "text" and isinstance(backbone, Backbone) and _is_numeric_array(X):
        raise ValueError(f"this model was fitted on texts (backbone {backbone.name!r}); X is a "
                         f"numeric array of shape {tuple(X.shape)}. Pass a list of texts.")
    return as_input(X, kind=kind)


def _is_numeric_array(X) -> bool:
    if isinstance(X, torch.Tensor):
        return True
    return isinstance(X, np.ndarray) and X.dtype.kind in "biufc"


def media_file_kind(texts) -> str | None:
    """``"image"`` or ``"audio"`` when every text looks like a file of that kind: a name
    ending in its suffix that is an existing file or holds no spaces (a sentence that
    happens to end in ".jpg" has spaces). ``None`` otherwise. Reads only as far as the
    first ordinary text, so a real batch of texts costs one look at its first item."""
    kind = None
    for text in texts:
        suffix = os.path.splitext(text.strip())[1].lower()
        if suffix in IMAGE_EXTENSIONS:
            this = "image"
        elif suffix in AUDIO_EXTENSIONS:
            this = "audio"
        else:
            return None
        if kind not in (None, this) or "\n" in text \
                or (any(c.isspace() for c in text.strip()) and not os.path.isfile(text)):
            return None
        kind = this
    return kind


def _paths_as_texts_error(source: TextInput, kind: str, what: str) -> ValueError:
    first = ", ".join(repr(t) for t in source.items[:2]) + (", ..." if len(source) > 2 else "")
    files = {"image": "images", "audio": "audio files"}[kind]
    return ValueError(f"X holds what look like {kind} file paths ({first}); {what} and would "
                      f"read the file names as texts. Pass texts, or use a model fitted on "
                      f"{files}.")


def make_backbone(name, weights, source, image_size=None):
    """Build ``name`` for the data in ``source`` and check the two fit together."""
    kwargs = {"image_size": image_size}
    if isinstance(source, VectorInput):
        kwargs["in_features"] = source.n_features
    backbone = build_backbone(name, weights, **kwargs)
    # Weights are loaded; the original model (and its discarded 1000-class head) would
    # otherwise stay alive and be pickled with every fitted estimator.
    backbone.source_module = None
    if backbone.input_kind == "vector" and not isinstance(source, VectorInput):
        raise ValueError(f"backbone {name!r} takes 2-D vectors (n_samples, n_features); X holds "
                         f"images. Pick an image backbone (see list_backbones()).")
    if backbone.input_kind == "text" and not isinstance(source, TextInput):
        raise ValueError(f"backbone {name!r} takes texts, but X was read as "
                         f"{type(source).__name__}: its builder must declare "
                         f"builder.input_kind = 'text' so that strings are read as texts")
    if backbone.input_kind != "text" and isinstance(source, TextInput):
        raise ValueError(f"backbone {name!r} takes {backbone.input_kind}s, not texts")
    if isinstance(source, TextInput) and (media := media_file_kind(source.items)):
        raise _paths_as_texts_error(source, media, f"backbone {name!r} takes texts")
    if (backbone.input_kind == "audio") != isinstance(source, AudioInput):
        raise ValueError(f"backbone {name!r} takes {backbone.input_kind}s, but X was read as "
                         f"{source.kind}s" + (": its builder must declare builder.input_kind = "
                                              "'audio' so that X is read as audio clips"
                                              if backbone.input_kind == "audio" else ""))
    if backbone.input_kind == "image" and isinstance(source, VectorInput):
        raise ValueError(f"backbone {name!r} takes images (N, H, W, C), (N, C, H, W), (N, H, W), "
                         f"file paths or PIL images; X is 2-D {source.items.shape}, which reads "
                         f"as vectors. Use backbone='mlp' for vectors, or reshape flat images "
                         f"to (N, H, W).")
    return backbone


def preprocessor_for(backbone, image_size=None) -> Preprocessor | None:
    if backbone.input_kind == "vector" or backbone.preprocessing is None:
        return None
    if backbone.input_kind == "text":
        return TextPreprocessor(backbone.preprocessing)
    if backbone.input_kind == "audio":
        return AudioPreprocessor(backbone.preprocessing.with_image_size(image_size))
    preprocessing = backbone.preprocessing.with_image_size(image_size)
    minimum = backbone.min_input_size
    side = preprocessing.crop_size
    if minimum is not None and side is not None and side < minimum:
        given = f"image_size={image_size}" if image_size is not None else \
            f"its preprocessing (crop_size={side})"
        raise ValueError(f"backbone {backbone.name!r} takes images of at least {minimum}x"
                         f"{minimum} pixels, but {given} makes them {side}x{side}; use "
                         f"image_size >= {minimum}")
    return Preprocessor(preprocessing, backbone.in_channels, min_size=minimum)


def check_source_kind(source, backbone) -> None:
    """At predict time: the data must be of the kind the model was fitted on."""
    if (backbone.input_kind == "text") != isinstance(source, TextInput) or \
            (backbone.input_kind == "audio") != isinstance(source, AudioInput):
        raise ValueError(f"this model was fitted on {backbone.input_kind}s (backbone "
                         f"{backbone.name!r}); X was read as {source.kind}s")
    if isinstance(source, TextInput) and (media := media_file_kind(source.items)):
        raise _paths_as_texts_error(source, media, f"this model was fitted on texts (backbone "
                                                   f"{backbone.name!r})")
    if backbone.input_kind == "vector" and isinstance(source, ImageInput):
        raise ValueError(f"this model was fitted on 2-D vectors (backbone {backbone.name!r} "
                         f"takes vectors); X holds images")
    if backbone.input_kind == "image" and isinstance(source, VectorInput):
        raise ValueError(f"this model was fitted on images (backbone {backbone.name!r} takes "
                         f"images); X is 2-D {source.items.shape}, which reads as vectors")


