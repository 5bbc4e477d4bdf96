"""Random augmentation of training images (after resizing, before normalisation)."""

from __future__ import annotations

__all__ = ["make_augment"]


def make_augment(augment, crop_size: int | None):
    """``None``, ``"light"`` (flip + random resized crop), ``"flip"``, or any callable."""
    if augment is None:
        return None
    if callable(augment):
        return augment
    if augment in ("light", "flip"):
        from torchvision.transforms import v2

        ops = [v2.RandomHorizontalFlip()]
        if augment == "light" and crop_size:
            ops.append(v2.RandomResizedCrop(crop_size, scale=(0.7, 1.0), antialias=True))
        return v2.Compose(ops)
    raise ValueError(f"augment must be None, 'light', 'flip' or a callable; got {augment!r}")
