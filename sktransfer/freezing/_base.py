"""The freezing-strategy contract.

A strategy decides, from the outside, how a pretrained network is adapted:
which parameters train in each epoch, their learning-rate groups, which
modules stay in eval mode, and optionally an extra loss term. It only ever
sees a :class:`FreezeContext` - blocks, pool, head and parameters - so a
strategy works with any backbone, including ones it has never heard of.

Life cycle, driven by :class:`sktransfer.TransferClassifier`:

1. ``setup(ctx)`` once, after the network is built and its weights loaded:
   freeze and unfreeze with ``ctx.freeze`` / ``ctx.unfreeze``.
2. ``param_groups(ctx)`` once, to build the optimizer: every parameter that
   will train at *any* point of the fit, grouped. A group may carry ``lr_scale``
   (relative to the estimator's ``lr``, timm's convention; kept by
   ``set_params(lr=...)``) or an absolute ``lr``. The estimator then splits each
   group into decayed weights and undecayed biases / norm parameters and scales
   backbone parameters by ``backbone_lr_scale``.
   Parameters that are frozen for the moment simply get no gradient.
3. ``on_epoch_begin(ctx, epoch)`` before each epoch (0-based).
4. ``penalty(ctx)`` each training step: a scalar tensor added to the loss, or None.

``frozen_prefix(ctx)`` tells the classifier how many leading stages stay frozen
(and in eval mode) for the *whole* fit; their output may then be computed once
and cached. Return 0 when that is not true (e.g. a strategy that perturbs the
frozen weights).

Options are constructor keyword arguments; the classifier passes its
``freeze_strategy__<option>`` params there, so they can be grid-searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

__all__ = ["FreezeContext", "FreezeStrategy"]


@dataclass
class FreezeContext:
    """What a strategy sees of the network being trained.

    Attributes
    ----------
    module : nn.Module
        The whole network (``blocks``, ``pool``, ``head``).
    blocks : nn.ModuleList
        The backbone's blocks, stem first.
    pool : nn.Module
        Turns the last block's output into a vector (part of the backbone).
    head : nn.Module
        The new classification head (always trains).
    freeze_depth : int
        The resolved depth: stages ``0..freeze_depth-1`` are to stay frozen.
        Stage ``i < n_blocks`` is ``blocks[i]``; stage ``n_blocks`` is ``pool``,
        so ``freeze_depth="all"`` resolves to ``n_blocks + 1``.
    max_epochs : int
    lr : float
        The estimator's base learning rate.
    norm_mode : str
        ``"frozen"``: BatchNorm layers stay in inference mode even in trainable
        stages (applied by the network on every mode switch, so strategies need
        not handle it); ``"train"``: they follow the stage.
    """

    module: nn.Module
    blocks: nn.ModuleList
    pool: nn.Module
    head: nn.Module
    freeze_depth: int
    max_epochs: int
    lr: float
    norm_mode: str = "train"

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def stages(self) -> list[nn.Module]:
        return [*self.blocks, self.pool]

    def stage_parameters(self, start: int = 0, stop: int | None = None) -> Iterator[nn.Parameter]:
        for stage in self.stages[start:stop]:
            yield from stage.parameters()

    def freeze(self, start: int = 0, stop: int | None = None) -> None:
        """Freeze stages ``start..stop-1``: no gradients, eval mode."""
        stop = len(self.stages) if stop is None else stop
        for index in range(start, stop):
            for p in self.stages[index].parameters():
                p.requires_grad_(False)
            self.module.eval_stages.add(index)
        self.module.train(self.module.training)

    def unfreeze(self, start: int = 0, stop: int | None = None) -> None:
        """Let stages ``start..stop-1`` train (gradients, train mode while fitting)."""
        stop = len(self.stages) if stop is None else stop
        for index in range(start, stop):
            for p in self.stages[index].parameters():
                p.requires_grad_(True)
            self.module.eval_stages.discard(index)
        # the network re-applies eval stages and the norm mode on every switch
        self.module.train(self.module.training)


class FreezeStrategy:
    """Base class: the first ``freeze_depth`` stages frozen, everything above trains.

    Subclasses override the hooks they need; see the module docstring for the
    contract.
    """

    def setup(self, ctx: FreezeContext) -> None:
        ctx.unfreeze(ctx.freeze_depth)
        ctx.freeze(0, ctx.freeze_depth)
        for p in ctx.head.parameters():
            p.requires_grad_(True)

    def trainable_stages(self, ctx: FreezeContext) -> range:
        """Stages that train at some point of the fit."""
        return range(ctx.freeze_depth, len(ctx.stages))

    def param_groups(self, ctx: FreezeContext) -> list[dict]:
        params = [p for i in self.trainable_stages(ctx) for p in ctx.stages[i].parameters()]
        return [{"params": params + list(ctx.head.parameters())}]

    def on_epoch_begin(self, ctx: FreezeContext, epoch: int) -> None:
        return None

    def penalty(self, ctx: FreezeContext) -> torch.Tensor | None:
        return None

    def frozen_prefix(self, ctx: FreezeContext) -> int:
        return ctx.freeze_depth

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({opts})"
