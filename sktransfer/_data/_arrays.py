"""Image arrays: layout, dtype and value-range checks, per-sample access.

Arrays are ``(N, H, W, C)``, ``(N, C, H, W)`` or ``(N, H, W)``, uint8 in 0..255,
other integers within 0..255, or floats in [0, 1]. Floats outside [0, 1] (0..255
values, or images already mean/std-normalised) are refused: they would silently
look ~255x too bright. Images of any aspect ratio are accepted: the resize cuts
very elongated ones to their centred square first (see ``_resize``). The caller's
array is read, never converted in place: uint8 -> float happens per sample.

A 3-D array is a batch of grayscale images ``(N, H, W)`` - sklearn's digits are
``(n, 8, 8)`` - except when it can only be one channels-last image: its last axis
is 1, 3 or 4 and the two before it are both at least ``ONE_IMAGE_MIN_SIDE`` (8)
pixels. Read as grayscale, such an array would be a batch of strips at most 4
pixels wide, which nobody collects; read as one image it is an ordinary
``(H, W, C)`` photo. It is refused with the fix (``X[None]``), rather than
predicting one label, so that ``predict`` always returns one label per sample of
a batch. A batch of such narrow grayscale images is still accepted as
``(N, H, W, 1)`` (``X[..., None]``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["torch_ready", "ONE_IMAGE_MIN_SIDE"]

_CHANNELS = (1, 3, 4)
#: a 3-D array whose last axis is 1, 3 or 4 and whose other axes are at least this is
#: one (H, W, C) image, not a batch (see module docstring)
ONE_IMAGE_MIN_SIDE = 8
_FLOAT_SLACK = 1e-3  # rounding noise around [0, 1] that is not a scaling mistake


def torch_ready(array: np.ndarray) -> np.ndarray:
    """``array``, copied if torch cannot share its memory (negative strides, as in
    ``X[..., ::-1]``; numpy calls a 1-element view contiguous even then)."""
    array = np.asarray(array)
    if any(stride < 0 for stride in array.strides) or not array.flags.writeable:
        return array.copy()
    return array


def _array_to_tensor(sample: np.ndarray) -> torch.Tensor:
    """(H, W, C) / (C, H, W) / (H, W) sample, already layout-checked -> float CHW in [0,1]."""
    t = torch.as_tensor(torch_ready(sample))
    if t.is_floating_point():
        return t.to(torch.float32)
    return t.to(torch.float32) / 255.0


def _check_not_one_image(shape: tuple, name: str = "X") -> None:
    """Refuse a 3-D shape that can only be one channels-last image (module docstring)."""
    if len(shape) == 3 and shape[-1] in _CHANNELS \
            and min(shape[0], shape[1]) >= ONE_IMAGE_MIN_SIDE:
        raise ValueError(f"{name} looks like one image of shape {tuple(shape)} (height, width, "
                         f"channels); pass a batch: {name}[None]. (If it really is a batch of "
                         f"{shape[0]} grayscale images {shape[1]}x{shape[2]} pixels, pass "
                         f"{name}[..., None].)")


def _layout(shape: tuple, name: str = "X") -> str:
    """'nhwc', 'nchw' or 'nhw' for an image batch shape, or raise."""
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise ValueError(f"{name} has {len(shape)} dimensions {shape}; images must be "
                         f"(N, H, W, C), (N, C, H, W) or (N, H, W), and vectors (N, F)")
    if shape[1] in _CHANNELS and shape[-1] not in _CHANNELS:
        return "nchw"
    if shape[-1] in _CHANNELS:
        return "nhwc"
    raise ValueError(f"{name} has shape {shape}: an unsupported channel count "
                     f"(neither axis 1 nor the last axis is 1, 3 or 4). Pass (N, H, W, C) or "
                     f"(N, C, H, W) images with 1 (gray), 3 (RGB) or 4 (RGBA) channels.")


class _ArrayView:
    """Per-sample access to an image array in CHW order, without copying the array."""

    def __init__(self, array, layout: str):
        self.array = array
        self.layout = layout
        self.shape = array.shape
        self.dtype = array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        sample = np.asarray(self.array[index])
        if self.layout == "nhwc":
            return sample.transpose(2, 0, 1)
        if self.layout == "nhw":
            return sample[None]
        return sample


def _check_numeric(array: np.ndarray, name: str = "X") -> None:
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"{name} has dtype {array.dtype}; images must be uint8 (0..255) or "
                        f"float (0..1) arrays")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} holds complex numbers; pass real-valued images")
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            what = "NaN" if np.isnan(array[tuple(bad)]) else "infinite values"
            raise ValueError(f"{name} contains {what} (first at sample {bad[0]}); remove or "
                             f"impute them before fitting")
        if array.size:
            _check_unit_range(array, name)
    elif array.dtype != np.uint8 and array.size:
        lo, hi = array.min(), array.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name} is an integer array with values in [{lo}, {hi}]; integer "
                             f"images must lie in 0..255 (or pass floats in [0, 1])")


def _check_unit_range(array: np.ndarray, name: str) -> None:
    """Float images must lie in [0, 1]; say what the values look like otherwise."""
    lo, hi = float(array.min()), float(array.max())
    if lo >= -_FLOAT_SLACK and hi <= 1 + _FLOAT_SLACK:
        return
    flat = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    first = int(np.argmax((flat < -_FLOAT_SLACK).any(1) | (flat > 1 + _FLOAT_SLACK).any(1)))
    if lo < -_FLOAT_SLACK:
        why = ("negative values look mean/std-normalised: pass the images before "
               "normalisation (sktransfer normalises for the backbone itself), as floats in "
               "[0, 1] or uint8")
    else:
        why = "this looks like 0..255 pixel values: divide by 255 (X / 255) or pass uint8"
    raise ValueError(f"{name} is a float image array with values in [{lo:.4g}, {hi:.4g}] "
                     f"(first out of range at sample {first}); float images must lie in "
                     f"[0, 1]: {why}")
