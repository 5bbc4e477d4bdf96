"""Short side -> ``resize``, then the centre ``crop``: one geometry, two implementations.

:meth:`ResizeCrop.tensor` resizes float tensors (``F.interpolate`` with
``antialias=True``); :meth:`ResizeCrop.pil` resizes 8-bit PIL images before any
float conversion, so a decoded photo of any size becomes a crop-sized tensor.
Both use the same output size (the same rounding), the same crop offsets and the
same sampling positions: PIL's resampling filters are antialiased the way torch's
``antialias=True`` is, and ``Image.resize(box=...)`` computes only the pixels of
the crop, from the same source positions a full resize would use. The two paths
therefore differ by the rounding to uint8 and little else.

An image more elongated than ``MAX_ASPECT_RATIO`` (50:1) - a 1x2000 sliver, a
3000x20 banner - is first cut to the centred square of its short side, the
region the centre crop would show anyway, and that square is resized: resizing
the whole image would blow its long side up with the short one (a 1x20000 PNG of
140 bytes would need gigabytes as floats). The two implementations cut the same
square, PIL through the resize's ``box``, the tensor by slicing a view; memory
stays bounded by the crop. Up to 50:1 the whole image is resized as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ResizeCrop", "MAX_ASPECT_RATIO"]

#: longest side / shortest side beyond which an image is cut to its centred square
#: before resizing (see the module docstring)
MAX_ASPECT_RATIO = 50


class ResizeCrop:
    """Resize the shorter side to ``resize`` (at least ``crop``), centre-crop ``crop``.

    Parameters
    ----------
    resize : int
        The short side after resizing.
    crop : int
        Side of the square centre crop.
    interpolation : str
        ``"bicubic"``, else bilinear.
    """

    def __init__(self, resize: int, crop: int, interpolation: str = "bilinear"):
        self.resize = int(resize)
        self.crop = int(crop)
        self.mode = "bicubic" if interpolation == "bicubic" else "bilinear"

    def resized_size(self, height: int, width: int) -> tuple[int, int] | None:
        """``(height, width)`` after the resize; None when the short side is already right."""
        if min(height, width) == self.resize:
            return None
        scale = self.resize / min(height, width)
        return max(self.crop, round(height * scale)), max(self.crop, round(width * scale))

    @staticmethod
    def square_window(height: int, width: int) -> tuple[int, int, int] | None:
        """``(top, left, side)`` of the centred square an image more elongated than
        ``MAX_ASPECT_RATIO`` is cut to before resizing; None for other images."""
        short, long = sorted((int(height), int(width)))
        if long <= MAX_ASPECT_RATIO * short:
            return None
        return (height - short) // 2, (width - short) // 2, short

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """A float (C, H, W) or (N, C, H, W) tensor in [0, 1], resized and cropped."""
        h, w = x.shape[-2:]
        window = self.square_window(h, w)
        if window is not None:  # a view: nothing outside the square is resized
            top, left, h = window
            x, w = x[..., top:top + h, left:left + h], h
        size = self.resized_size(h, w)
        if size is not None:
            batch = x if x.dim() == 4 else x[None]
            batch = F.interpolate(batch, size=size, mode=self.mode, align_corners=False,
                                  antialias=True)
            if self.mode == "bicubic":
                batch = batch.clamp(0, 1)
            x = batch if x.dim() == 4 else batch[0]
            h, w = size
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        return x[..., top:top + self.crop, left:left + self.crop]

    def pil(self, img):
        """An 8-bit PIL image (``RGB`` or ``L``) resized and cropped, or None.

        None when the result would not be a full ``crop`` x ``crop`` square (a
        backbone whose ``resize_size`` is smaller than its ``crop_size``): the
        float path then keeps its own behaviour for that image.
        """
        from PIL import Image

        width, height = img.size
        window = self.square_window(height, width)
        top0, left0 = (0, 0) if window is None else window[:2]
        if window is not None:  # resize only the centred square (module docstring)
            width = height = window[2]
        size = self.resized_size(height, width)
        new_h, new_w = size if size is not None else (height, width)
        if min(new_h, new_w) < self.crop:
            return None
        top, left = (new_h - self.crop) // 2, (new_w - self.crop) // 2
        if size is None:
            return img.crop((left0 + left, top0 + top, left0 + left + self.crop,
                             top0 + top + self.crop))
        # the crop's window in source coordinates: PIL samples output pixel j of the
        # box at box[0] + (j + 0.5) * scale, exactly where a full resize samples
        # pixel left + j, and its filter support reaches outside the box
        sx, sy = width / new_w, height / new_h
        box = (left0 + left * sx, top0 + top * sy, left0 + (left + self.crop) * sx,
               top0 + (top + self.crop) * sy)
        resample = Image.Resampling.BICUBIC if self.mode == "bicubic" \
            else Image.Resampling.BILINEAR
        return img.resize((self.crop, self.crop), resample, box=box)

    def __repr__(self) -> str:
        return f"ResizeCrop(resize={self.resize}, crop={self.crop}, mode={self.mode!r})"
