"""Random augmentation of training samples: images (after resizing, before normalisation)
and audio (SpecAugment masks on the front end's output)."""

from __future__ import annotations

import torch

__all__ = ["make_augment", "SpecAugment"]

_AUDIO_NAMES = ("specaugment", "light")


class SpecAugment:
    """SpecAugment-style masking (Park et al. 2019) of one ``(C, F, T)`` or ``(T, F)`` input.

    ``freq_masks`` bands of up to ``freq_width`` of the frequency axis and
    ``time_masks`` spans of up to ``time_width`` of the time axis (fractions of
    the axis) are set to 0, the mean of the normalised front end's output. No
    time warping.
    """

    def __init__(self, freq_masks: int = 2, freq_width: float = 0.15, time_masks: int = 2,
                 time_width: float = 0.15):
        self.freq_masks, self.freq_width = int(freq_masks), float(freq_width)
        self.time_masks, self.time_width = int(time_masks), float(time_width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        # (C, F, T): frequency is the rows, time the columns; (T, F): a frame sequence
        freq_axis, time_axis = (-2, -1) if x.dim() == 3 else (-1, -2)
        for axis, n, width in ((freq_axis, self.freq_masks, self.freq_width),
                               (time_axis, self.time_masks, self.time_width)):
            size = x.shape[axis]
            for _ in range(n):
                span = int(torch.randint(0, max(1, int(size * width)) + 1, ()).item())
                if span == 0 or span >= size:
                    continue
                start = int(torch.randint(0, size - span + 1, ()).item())
                x.narrow(axis, start, span).zero_()
        return x

    def __repr__(self) -> str:
        return (f"SpecAugment(freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, time_width={self.time_width})")


def make_augment(augment, crop_size: int | None, kind: str = "image"):
    """``None``, a callable, or a name: for images ``"light"`` (flip + random resized
    crop) or ``"flip"``; for audio ``"specaugment"`` (``"light"`` means the same)."""
    if augment is None:
        return None
    if kind not in ("image", "audio"):
        raise ValueError(f"augment applies to images and audio; this backbone takes {kind}s "
                         f"(use augment=None)")
    if callable(augment):
        return augment
    if kind == "audio":
        if augment in _AUDIO_NAMES:
            return SpecAugment()
        raise ValueError(f"augment={augment!r} is not an audio augmentation; an audio backbone "
                         f"takes None, 'specaugment' (or 'light', the same) or a callable on "
                         f"the front end's output")
    if augment in ("light", "flip"):
        from torchvision.transforms import v2

        ops = [v2.RandomHorizontalFlip()]
        if augment == "light" and crop_size:
            ops.append(v2.RandomResizedCrop(crop_size, scale=(0.7, 1.0), antialias=True))
        return v2.Compose(ops)
    raise ValueError(f"augment must be None, 'light', 'flip' or a callable; got {augment!r}"
                     + (" ('specaugment' is for audio backbones)" if augment == "specaugment"
                        else ""))
