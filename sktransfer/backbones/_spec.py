"""The one description every backbone shares: an ordered list of blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["Backbone", "Preprocessing", "TextPreprocessing", "GlobalPool", "TokenPool"]

INPUT_KINDS = ("image", "vector", "text", "audio")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What the backbone's weights expect of an image.

    Images reach the network as float tensors in ``[0, 1]``; they are resized so
    the shorter side is ``resize_size``, centre-cropped to ``crop_size`` and
    normalised with ``(x - mean) / std``. ``crop_size=None`` keeps the image size
    (vector backbones and tiny test networks).
    """

    crop_size: int | None = 224
    resize_size: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def with_image_size(self, image_size: int | None) -> "Preprocessing":
        """The same preprocessing at another size (resize and crop both to it)."""
        if image_size is None:
            return self
        return Preprocessing(image_size, image_size, self.mean, self.std, self.interpolation)


@dataclass(frozen=True, eq=False)
class TextPreprocessing:
    """What a text backbone's weights expect: its tokenizer and a maximum length.

    Parameters
    ----------
    tokenize : callable
        ``tokenize(texts, max_length)`` -> one list of token ids per text, with
        the model's special tokens, truncated to ``max_length`` tokens. It must
        be picklable (fitted estimators are saved with it).
    max_length : int
        Longest sequence the model is fed, special tokens included.
    name : str
        Identifies the tokenizer in cache keys and messages (e.g. a model path).
    """

    tokenize: Callable[[list, int], list]
    max_length: int = 512
    name: str = "tokenizer"

    def with_image_size(self, image_size) -> "TextPreprocessing":
        """Texts have no image size: the same preprocessing."""
        return self

    def __repr__(self) -> str:
        return f"TextPreprocessing(name={self.name!r}, max_length={self.max_length})"


class GlobalPool(nn.Module):
    """Turns an ``(N, C, H, W)`` feature map (or an ``(N, C)`` vector) into ``(N, C)``.

    ``mode``: ``"avg"``, ``"max"``, ``"avgmax"`` (mean of both) or ``"catavgmax"``
    (both, concatenated: twice the features).
    """

    MODES = ("avg", "max", "avgmax", "catavgmax")

    def __init__(self, mode: str = "avg", channels_last: bool = False):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown pooling {mode!r}; use one of {self.MODES}")
        self.mode = mode
        self.channels_last = channels_last  # (N, H, W, C) maps, as Swin and ConvNeXt-V2 give

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x if self.mode != "catavgmax" else torch.cat([x, x], dim=1)
        if self.channels_last:
            x = x.movedim(-1, 1)
        x = x.flatten(2)
        if self.mode == "avg":
            return x.mean(-1)
        if self.mode == "max":
            return x.amax(-1)
        avg, mx = x.mean(-1), x.amax(-1)
        return 0.5 * (avg + mx) if self.mode == "avgmax" else torch.cat([avg, mx], dim=1)

    def out_features(self, channels: int) -> int:
        return 2 * channels if self.mode == "catavgmax" else channels


class TokenPool(nn.Module):
    """Sequence ``(N, L, C)`` -> ``(N, C)``: the CLS token, or the mean of the tokens."""

    def __init__(self, mode: str = "cls", norm: nn.Module | None = None):
        super().__init__()
        self.mode = mode
        self.norm = norm if norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return x[:, 0] if self.mode == "cls" else x.mean(1)


@dataclass
class Backbone:
    """A pretrained network described as an ordered list of blocks.

    Two words, used the same way everywhere: a *block* is one of ``blocks`` (what
    a backbone provider cuts the network into, what ``FeatureExtractor(layer=...)``
    names); the *stages* are the blocks followed by ``pool``, what the network runs
    and freezes (``stages``). ``freeze_depth`` counts blocks, and ``n_blocks`` (or
    ``"all"``) freezes every stage, the pool included.

    Parameters
    ----------
    name : str
        The registry name.
    blocks : sequence of nn.Module
        Stem first; applied in order they map an input batch to the last
        feature map (or vector). ``freeze_depth=d`` freezes stages ``0..d-1``.
    pool : nn.Module
        Turns the last block's output into ``(N, num_features)``.
    num_features : int
        Length of the pooled vector.
    block_names : sequence of str, optional
        Human names for the blocks ("stem", "layer1", ...).
    preprocessing : Preprocessing, TextPreprocessing, AudioPreprocessing or None
        What the weights expect; ``None`` for vector input.
    input_kind : {"image", "vector", "text", "audio"}
        Images (``N, C, H, W``), 2-D vectors, texts, or audio clips (the
        :class:`~sktransfer.AudioPreprocessing` front end turns each clip into
        the fixed-shape input of the first block; see ``sktransfer._audio``). A text backbone's first
        block takes a padded batch ``(N, L, 2)`` of token ids and attention mask
        (the last channel); every block passes the mask on as the last channel
        of its ``(N, L, C + 1)`` output. A builder of text backbones declares
        ``builder.input_kind = "text"`` so that a list of strings is read as
        texts, not file paths, before the backbone is built (and
        ``"audio"`` so that arrays are read as waveforms).
    in_channels : int
        Channels an image must have (grayscale is repeated to match).
    weights : str or None
        A description of the loaded weights (file, name or None).
    pool_for_block : callable, optional
        ``pool_for_block(i, mode)`` returns the module that pools the output of
        block ``i`` into a vector (defaults to a :class:`GlobalPool`).
    source_module : nn.Module, optional
        The original full model the blocks were cut from; weight files written
        for it (with its classification head) load through it. The estimators
        drop it after building, so a fitted model does not carry the unused head.
    min_input_size : int, optional
        The smallest image side (in pixels, after preprocessing) the blocks
        can take; smaller inputs are refused with a clear error before any
        block runs. ``None``: no limit stated.
    """

    name: str
    blocks: Sequence[nn.Module]
    pool: nn.Module
    num_features: int
    block_names: Sequence[str] | None = None
    preprocessing: Preprocessing | None = field(default_factory=Preprocessing)
    input_kind: str = "image"
    in_channels: int = 3
    weights: str | None = None
    pool_for_block: Callable[[int, str], nn.Module] | None = None
    source_module: nn.Module | None = None
    min_input_size: int | None = None

    def __post_init__(self):
        self.blocks = nn.ModuleList(self.blocks)
        if len(self.blocks) == 0:
            raise ValueError(f"backbone {self.name!r} has no blocks")
        if self.block_names is None:
            self.block_names = [f"block{i}" for i in range(len(self.blocks))]
        self.block_names = list(self.block_names)
        if len(self.block_names) != len(self.blocks):
            raise ValueError(f"backbone {self.name!r}: {len(self.block_names)} block names "
                             f"for {len(self.blocks)} blocks")
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        if self.min_input_size is not None and (
                isinstance(self.min_input_size, bool) or not isinstance(self.min_input_size, int)
                or self.min_input_size < 1):
            raise ValueError(f"backbone {self.name!r}: min_input_size must be None or a "
                             f"positive int, got {self.min_input_size!r}")

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def stages(self) -> list[nn.Module]:
        """The blocks, then the pool: what the network runs in order and freezes."""
        return [*self.blocks, self.pool]

    def block_pool(self, index: int, mode: str = "avg") -> nn.Module:
        """A module pooling the output of block ``index`` into ``(N, features)``."""
        if self.pool_for_block is not None:
            return self.pool_for_block(index, mode)
        return GlobalPool(mode)

    def forward_features(self, x: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """Run ``blocks[:stop]`` (all by default)."""
        for block in self.blocks[:stop]:
            x = block(x)
        return x
