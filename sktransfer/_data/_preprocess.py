"""Decoded samples -> network input: channels, resize / crop, normalisation, batching."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .._audio import AudioPreprocessor
from .._text import TextPreprocessor
from ._decode import pixels_to_float
from ._inputs import ImageInput
from ._resize import ResizeCrop

__all__ = ["Preprocessor", "SampleDataset", "collate_samples", "split_batch", "PairCollate",
           "PreparedBatch", "network_input"]


class Preprocessor:
    """Float (C, H, W) sample in [0, 1] -> what the backbone expects.

    Fixes the channel count (gray -> RGB, RGBA -> RGB, RGB -> gray), resizes
    the shorter side to ``resize_size``, centre-crops ``crop_size`` and
    normalises. Works on single samples and on (N, C, H, W) batches.
    """

    def __init__(self, preprocessing, in_channels: int, min_size: int | None = None):
        self.p = preprocessing
        self.in_channels = in_channels
        self.min_size = min_size  # the backbone's min_input_size, for images kept at their size
        self.mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)

    def fix_channels(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-3]
        if c == self.in_channels:
            return x
        if c == 4:
            x, c = x[..., :3, :, :], 3
        if c == self.in_channels:
            return x
        if c == 1 and self.in_channels == 3:
            return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
        if c == 3 and self.in_channels == 1:
            x = pixels_to_float(x) if x.dtype == torch.uint8 else x
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
            return (x * w).sum(-3, keepdim=True)
        raise ValueError(f"an image has {x.shape[-3]} channels; this backbone takes "
                         f"{self.in_channels}")

    @property
    def geometry(self) -> ResizeCrop | None:
        """The resize and centre crop of this preprocessing (None: images keep their size)."""
        p = self.p
        if p.crop_size is None:
            return None
        return ResizeCrop(p.resize_size or p.crop_size, p.crop_size, p.interpolation)

    def resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        geometry = self.geometry
        if geometry is None:
            if self.min_size is not None and min(x.shape[-2:]) < self.min_size:
                raise ValueError(f"an image is {x.shape[-2]}x{x.shape[-1]} pixels; this backbone "
                                 f"takes at least {self.min_size}x{self.min_size}. Pass "
                                 f"image_size >= {self.min_size} to resize the images")
            return x
        return geometry.tensor(x)

    @property
    def min_side(self) -> int | None:
        """The short side images are resized to (None: no resizing)."""
        return None if self.p.crop_size is None else (self.p.resize_size or self.p.crop_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """A sample or batch of uint8 pixels (see :class:`SampleDataset`) -> normalised
        float, the same operations in the same order as for a float sample."""
        return self.normalize(pixels_to_float(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.resize_crop(self.fix_channels(x)))


class SampleDataset(Dataset):
    """Images (or vectors) + optional encoded labels, decoded and preprocessed per item.

    ``augment`` (a callable on the float (C, H, W) tensor in [0, 1], after
    resizing and before normalisation) runs only when given, i.e. while fitting.
    With ``sample_weight``, an item's X is ``{"x": x, "sample_weight": w}``, so
    each batch carries the weights of its own samples.

    ``pixels=True`` (the library's own loaders): a file or PIL image that
    decodes to 8-bit pixels, without ``augment``, is returned as its uint8
    crop, not normalised. A batch of them is a quarter of the float batch's
    bytes through the loader workers' shared memory and to the GPU;
    :func:`network_input` converts it where the network runs.
    """

    def __init__(self, source, y=None, preprocessor: Preprocessor | None = None,
                 augment: Callable | None = None, sample_weight: np.ndarray | None = None,
                 pixels: bool = False):
        self.source = source
        self.y = y
        self.preprocessor = preprocessor
        self.augment = augment
        self.sample_weight = sample_weight
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index):
        pre = self.preprocessor
        if isinstance(self.source, ImageInput) and isinstance(pre, Preprocessor):
            # files and PIL images are resized and cropped while decoding, in uint8;
            # arrays fix their channels first and are resized as float tensors
            geometry = pre.geometry if self.source.form != "array" else None
            raw = self.pixels and geometry is not None and self.augment is None
            x = pre.fix_channels(self.source.load(int(index), pre.min_side, geometry, raw))
            if geometry is None:
                x = pre.resize_crop(x)
        else:
            x = self.source.load(int(index))
        if isinstance(pre, TextPreprocessor):
            x = pre(x)
        elif isinstance(pre, AudioPreprocessor):
            x = pre(x)  # the front end's (normalised) output; augment masks it
            if self.augment is not None:
                x = _augmented(self.augment, x)
        elif pre is not None and x.dtype != torch.uint8:  # uint8: see network_input
            if self.augment is not None:
                x = _augmented(self.augment, x)
            x = pre.normalize(x)
        y = torch.tensor(-1 if self.y is None else self.y[index])
        # uint8 crops stay channels-last views of their own pixels (collate_samples)
        x = x if x.dtype == torch.uint8 else x.contiguous()
        if self.sample_weight is not None:
            return {"x": x, "sample_weight": torch.tensor(self.sample_weight[index])}, y
        return x, y


def _augmented(augment, x: torch.Tensor) -> torch.Tensor:
    out = augment(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"augment must return a torch tensor, got {type(out).__name__}")
    return out


def collate_samples(samples: list, preprocessor=None) -> torch.Tensor:
    """Per-sample tensors -> one batch: stacked, or padded when the kind needs it (text).

    uint8 pixel crops (see :class:`SampleDataset`) stack into a channels-last uint8
    batch; beside float samples (an image that took the float path), they are
    normalised first, so a batch always has one dtype.
    """
    if isinstance(preprocessor, TextPreprocessor):
        return preprocessor.collate(samples)
    if any(x.dtype == torch.uint8 for x in samples) and isinstance(preprocessor, Preprocessor):
        if all(x.dtype == torch.uint8 for x in samples):
            return torch.stack([x.permute(1, 2, 0) for x in samples]).permute(0, 3, 1, 2)
        samples = [preprocessor.finish(x) if x.dtype == torch.uint8 else x for x in samples]
    return torch.stack(samples)


def network_input(x: torch.Tensor, preprocessor, device) -> torch.Tensor:
    """A collated batch on ``device``, as the network takes it: a batch of uint8 pixels
    (:class:`SampleDataset` with ``pixels=True``) is converted and normalised there,
    after the (4x smaller) copy; every other batch is moved as it is."""
    x = x.to(device, non_blocking=True)
    if x.dtype == torch.uint8 and isinstance(preprocessor, Preprocessor):
        x = preprocessor.finish(x)
    return x


def split_batch(batch: torch.Tensor, preprocessor=None) -> list:
    """The inverse of :func:`collate_samples`: one tensor per sample (unpadded)."""
    if isinstance(preprocessor, TextPreprocessor):
        return preprocessor.split(batch)
    return list(batch)


class PreparedBatch(tuple):
    """An ``(x, y)`` batch built whole by a dataset's ``__getitems__`` (what a data
    loader calls with a batch of indices); :class:`PairCollate` passes it through."""

    def __new__(cls, x, y):
        return super().__new__(cls, (x, y))


class PairCollate:
    """A data loader's ``collate_fn`` for ``(x, y)`` items (picklable, for workers)."""

    def __init__(self, preprocessor=None):
        self.preprocessor = preprocessor

    def __call__(self, items):
        if isinstance(items, PreparedBatch):
            return tuple(items)
        xs, ys = zip(*items)
        if isinstance(xs[0], dict):  # {"x": x, "sample_weight": w} (see SampleDataset)
            return ({"x": collate_samples([x["x"] for x in xs], self.preprocessor),
                     "sample_weight": torch.stack([x["sample_weight"] for x in xs])},
                    torch.stack(list(ys)))
        return collate_samples(list(xs), self.preprocessor), torch.stack(list(ys))
