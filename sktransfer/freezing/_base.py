"""The freezing-strategy contract: :class:`FreezeContext` and :class:`FreezeStrategy`.

The life cycle of a strategy is described in the docstring of
:mod:`sktransfer.freezing` (``help(sktransfer.freezing)``).
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

    def frozen_depth(self) -> int:
        """How many leading stages are frozen right now: no parameter requires a
        gradient and the stage is in eval mode (as :meth:`freeze` leaves it)."""
        depth = 0
        for index, stage in enumerate(self.stages):
            if index not in self.module.eval_stages or any(
                    p.requires_grad for p in stage.parameters()):
                break
            depth += 1
        return depth

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

    Subclasses override the hooks they need. The classifier calls them in this
    order (the full life cycle is in ``help(sktransfer.freezing)``):
    ``__init__(**options)``, ``setup(ctx)``, ``param_groups(ctx)``,
    ``frozen_prefix(ctx)``, then ``on_epoch_begin(ctx, epoch)`` and
    ``frozen_prefix_at(ctx, epoch)`` each epoch (0-based within the current
    fit) and ``penalty(ctx)`` each training step.

    Rules the classifier checks (a broken rule is a ``ValueError`` naming the
    strategy):

    * ``param_groups`` holds every parameter that requires a gradient after
      ``setup`` - the head's included, or the head would never train.
    * The first ``frozen_prefix(ctx)`` stages are frozen (``ctx.freeze``: no
      gradients *and* eval mode) after ``setup`` and stay so for the whole fit;
      they are then cached and not run again while training, so never unfreeze
      them in ``on_epoch_begin``. The value is used as given, not capped by
      ``freeze_depth``.
    * ``frozen_prefix_at(ctx, epoch)`` is at least ``frozen_prefix(ctx)``, and
      the stages it counts are frozen when it is asked (right after
      ``on_epoch_begin``) and stay untouched all that epoch, which then trains
      on their cached output. The default, ``frozen_prefix(ctx)``, caches
      nothing more.

    Examples
    --------
    >>> from sktransfer import FreezeStrategy
    >>> class HeadOnly(FreezeStrategy):  # a linear probe, whatever freeze_depth says
    ...     def setup(self, ctx):
    ...         ctx.freeze()
    ...     def param_groups(self, ctx):
    ...         return [{"params": list(ctx.head.parameters())}]
    ...     def frozen_prefix(self, ctx):
    ...         return len(ctx.stages)
    """

    def setup(self, ctx: FreezeContext) -> None:
        """Freeze stages ``0..freeze_depth-1``, let the rest and the head train."""
        ctx.unfreeze(ctx.freeze_depth)
        ctx.freeze(0, ctx.freeze_depth)
        for p in ctx.head.parameters():
            p.requires_grad_(True)

    def trainable_stages(self, ctx: FreezeContext) -> range:
        """Stages that train at some point of the fit."""
        return range(ctx.freeze_depth, len(ctx.stages))

    def param_groups(self, ctx: FreezeContext) -> list[dict]:
        """Optimizer groups: every parameter that trains at some point, head included."""
        params = [p for i in self.trainable_stages(ctx) for p in ctx.stages[i].parameters()]
        return [{"params": params + list(ctx.head.parameters())}]

    def on_epoch_begin(self, ctx: FreezeContext, epoch: int) -> None:
        """Called before each epoch; ``epoch`` is 0-based within the current fit."""
        return None

    def penalty(self, ctx: FreezeContext) -> torch.Tensor | None:
        """A scalar tensor added to the loss at each training step, or None."""
        return None

    def frozen_prefix(self, ctx: FreezeContext) -> int:
        """How many leading stages stay frozen (and in eval mode) all fit long."""
        return ctx.freeze_depth

    def frozen_prefix_at(self, ctx: FreezeContext, epoch: int) -> int:
        """How many leading stages stay frozen and untouched throughout ``epoch``.

        Asked right after :meth:`on_epoch_begin` for the same epoch. A strategy
        that freezes more for some epochs than for the whole fit (a head-only
        phase) returns the deeper prefix for those epochs, and the estimator
        trains them on the cached output of those stages instead of running
        them every step. The default, :meth:`frozen_prefix`, is right for every
        strategy; return more only when no parameter of those stages changes
        during the epoch (no gradient, no update in a hook, eval mode). A
        strategy that freezes and unfreezes only in ``on_epoch_begin`` can
        return ``ctx.frozen_depth()``, what is frozen at that moment.
        """
        return self.frozen_prefix(ctx)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({opts})"
