"""The trained module: backbone blocks, pooling and a new classification head."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from ._recipe import set_norm_mode

__all__ = ["TransferNet", "make_head", "resolve_freeze_depth"]


def make_head(num_features: int, n_outputs: int, hidden: int | None = None,
              dropout: float = 0.0) -> nn.Sequential:
    """``Dropout -> Linear`` or, with ``hidden``, ``Dropout -> Linear -> ReLU -> Dropout -> Linear``."""
    layers: list[nn.Module] = []
    if dropout:
        layers.append(nn.Dropout(dropout))
    if hidden:
        layers += [nn.Linear(num_features, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        num_features = hidden
    layers.append(nn.Linear(num_features, n_outputs))
    return nn.Sequential(*layers)


class TransferNet(nn.Module):
    """``blocks -> pool -> head``, with frozen blocks kept in eval mode.

    The backbone's stages are ``blocks[0], ..., blocks[n-1], pool``; ``start``
    says where the input enters (0 for images; ``k`` when the input already is
    the cached output of ``blocks[:k]``; ``n + 1`` for cached pooled features).

    Parameters
    ----------
    backbone : sktransfer.Backbone
    n_outputs : int
        Number of classes.
    head_hidden : int or None
        Width of an optional hidden layer in the head.
    head_dropout : float
        Dropout before each head layer.
    norm_mode : {"frozen", "train"}
        ``"frozen"`` keeps every BatchNorm layer of the backbone in inference
        mode while training (running statistics fixed, affine parameters still
        train); ``"train"`` lets trainable stages update them (see ``_recipe``).
    """

    def __init__(self, backbone, n_outputs: int, head_hidden: int | None = None,
                 head_dropout: float = 0.0, norm_mode: str = "train"):
        super().__init__()
        self.norm_mode = norm_mode
        self.blocks = backbone.blocks
        self.pool = backbone.pool
        self.head = make_head(backbone.num_features, n_outputs, head_hidden, head_dropout)
        self.eval_stages: set[int] = set()  # stage indices that stay in eval mode
        self.start = 0

    @property
    def stages(self) -> list[nn.Module]:
        return [*self.blocks, self.pool]

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def forward_prefix(self, x: torch.Tensor, stop: int, start: int = 0) -> torch.Tensor:
        """Run stages ``start..stop-1`` (no head)."""
        if start == 0 and x.dim() == 4:
            # channels-last convolutions measured ~20% faster on CPU too (benchmarks/)
            x = x.contiguous(memory_format=torch.channels_last)
        for stage in self.stages[start:stop]:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_prefix(x, len(self.blocks) + 1, self.start)
        return self.head(x)

    def train(self, mode: bool = True):
        super().train(mode)
        # frozen stages evaluate: BatchNorm keeps its running statistics, dropout is off
        stages = self.stages
        for index in self.eval_stages:
            stages[index].eval()
        set_norm_mode(stages, getattr(self, "norm_mode", "train"))
        return self


def resolve_freeze_depth(freeze_depth, backbone) -> int:
    """``freeze_depth`` -> number of frozen stages (``n_blocks + 1`` = whole backbone).

    Stages are the backbone's blocks followed by its pool, so ``"all"`` and
    ``n_blocks`` freeze the pool too (a linear probe).
    """
    n = backbone.n_blocks
    names = ", ".join(backbone.block_names)
    if isinstance(freeze_depth, str):
        if freeze_depth == "all":
            return n + 1
        raise ValueError(f"freeze_depth={freeze_depth!r} is not understood; use an int in "
                         f"-{n}..{n} or 'all' (backbone {backbone.name!r} has {n} blocks: {names})")
    if isinstance(freeze_depth, (bool, np.bool_)) or not isinstance(freeze_depth, numbers.Integral):
        raise TypeError(f"freeze_depth must be an int or 'all', got "
                        f"{type(freeze_depth).__name__} {freeze_depth!r}")
    depth = int(freeze_depth)
    if not -n <= depth <= n:
        raise ValueError(f"freeze_depth={depth} is out of range for backbone {backbone.name!r}, "
                         f"which has {n} blocks ({names}): use 0..{n}, -{n}..-1 (counting from "
                         f"the top) or 'all'")
    depth = n + depth if depth < 0 else depth
    return n + 1 if depth == n else depth
