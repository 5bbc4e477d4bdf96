"""Image files and PIL images -> float (C, H, W) tensors in [0, 1].

With a :class:`~sktransfer._data._resize.ResizeCrop` (the preprocessing resizes),
an 8-bit image is decoded at a reduced size (JPEG DCT scaling, then PIL's box
``reduce``, to no less than twice the target side), resized and centre-cropped
in uint8 by PIL, and only the crop becomes a float tensor: memory per image is
bounded by the crop, whatever the photo's size. Wide modes (16-bit, float) take
the float path: converted first, then resized with ``F.interpolate``.

The rules are the same for files and PIL images: the EXIF orientation tag is
honoured (as ``PIL.ImageOps.exif_transpose`` does); 16- and 32-bit integer modes
(``I;16*``, ``I``) are read as 16-bit data, pixel / 65535, and a value outside
0..65535 is an error; float mode ``F`` must lie in [0, 1] like float arrays. A
fixed range per mode means equal pixel values give equal inputs in every image.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from .._files import check_regular_file
from ._arrays import _FLOAT_SLACK
from ._resize import ResizeCrop

__all__ = ["decode_path", "pil_to_tensor", "reduced", "check_paths", "orientation"]

_EXIF_ORIENTATION = 0x0112
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def orientation(img) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a corrupt EXIF block means "no orientation"
        return 1


def _wide_to_tensor(img, where: str) -> torch.Tensor:
    """Modes I;16*, I and F -> one float channel, by the fixed range of the mode."""
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{where} holds NaN or infinite pixel values")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < -_FLOAT_SLACK or hi > 1 + _FLOAT_SLACK:
            raise ValueError(f"{where} is a float (mode F) image with values in "
                             f"[{lo:.4g}, {hi:.4g}]; float pixels must lie in [0, 1]. Rescale "
                             f"it (e.g. to 8- or 16-bit integers) before use.")
        return torch.from_numpy(np.clip(arr, 0, 1))[None]
    arr = np.asarray(img, dtype=np.int64 if img.mode == "I" else np.float32)
    if img.mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ValueError(f"{where} is a 32-bit integer (mode I) image with values in "
                         f"[{arr.min()}, {arr.max()}]; integer images are read as 16-bit data "
                         f"(0..65535). Rescale it to 8 or 16 bits first.")
    return torch.from_numpy(arr.astype(np.float32) / 65535.0)[None]


def pil_to_tensor(img, where: str, geometry: ResizeCrop | None = None,
                  pixels: bool = False) -> torch.Tensor:
    """A PIL image of any mode -> float (C, H, W) in [0, 1] (1 or 3 channels).

    Honours the EXIF orientation; wide modes are scaled by their fixed range
    (see the module docstring), never by the image's own maximum. With
    ``geometry``, the result is resized and centre-cropped: 8-bit images in
    PIL before the float conversion, wide modes after it.

    ``pixels=True``: an 8-bit image whose crop PIL made comes back as uint8
    (C, H, W) instead, unconverted (see :func:`pixels_to_float`); other images
    are float as above.
    """
    if orientation(img) != 1:
        from PIL import ImageOps

        img = ImageOps.exif_transpose(img)
    if img.mode in _WIDE_MODES:
        x = _wide_to_tensor(img, where)
        return x if geometry is None else geometry.tensor(x)
    if img.mode not in ("RGB", "L"):
        if img.mode in ("LA", "La"):
            img = img.getchannel(0)  # drop alpha; PIL cannot convert "La" to "L"
        else:
            img = img.convert("RGB")
    if geometry is not None:
        cropped = geometry.pil(img)
        if cropped is None:  # no full crop in PIL: the float path's own behaviour
            return geometry.tensor(pixels_to_float(_uint8_tensor(img)))
        if pixels:
            return _uint8_tensor(cropped)
        img = cropped
    return pixels_to_float(_uint8_tensor(img))


def _uint8_tensor(img) -> torch.Tensor:
    """An 8-bit PIL image -> uint8 (C, H, W), a channels-last view of a copy of its pixels."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8))
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def pixels_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (a sample or a batch) -> float32 in [0, 1]: the one conversion every
    decoded 8-bit image goes through, in a loader worker or, for batches of uint8
    pixels, on the device that runs the network."""
    return x.to(torch.float32) / 255.0


_REDUCING_GAP = 2  # keep at least this many times the target side for the final resize


def _reduction(img, min_side: int | None) -> int:
    if not min_side:
        return 1
    return max(1, min(img.size) // (_REDUCING_GAP * int(min_side)))


def reduced(img, min_side: int | None):
    """``img`` shrunk by an integer factor while its short side stays >= 2 x ``min_side``."""
    factor = _reduction(img, min_side)
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # a mode PIL cannot reduce: decode it at full size
        return img


def decode_path(path: str, min_side: int | None = None,
                geometry: ResizeCrop | None = None, pixels: bool = False) -> torch.Tensor:
    """The image file at ``path`` as float (C, H, W) in [0, 1].

    ``min_side``: the short side the caller will resize to (the decode is
    reduced to no less than twice it); ``geometry``: resize and crop it here;
    ``pixels``: 8-bit crops stay uint8 (see :func:`pil_to_tensor`).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            factor = _reduction(img, min_side)
            if factor >= 2 and img.format == "JPEG":
                img.draft(img.mode, (img.width // factor, img.height // factor))
            img.load()
            return pil_to_tensor(reduced(img, min_side), path, geometry, pixels)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path!r}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            SyntaxError) as exc:
        raise ValueError(f"cannot decode image file {path!r}: {exc}") from exc


def check_paths(paths: Sequence[str]) -> None:
    from PIL import Image, UnidentifiedImageError

    for i, p in enumerate(paths):
        if not os.path.exists(p):
            hint = "" if any(c in p for c in "/\\.") else \
                " (X holds strings, which are read as image file paths)"
            raise FileNotFoundError(f"image file not found: {p!r} (X[{i}]){hint}")
        if os.path.isdir(p):
            raise ValueError(f"X[{i}] is a directory, not an image file: {p!r}; use "
                             f"load_image_folder() for a folder of images")
        check_regular_file(p, f"X[{i}], image file")  # a FIFO would block forever
        try:  # reads the header only: cheap, and catches non-images before training
            with Image.open(p):
                pass
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
                SyntaxError) as exc:
            raise ValueError(f"X[{i}] is not a decodable image file: {p!r} ({exc})") from exc
