"""Built-in freezing strategies, registered through sktransfer's own entry points."""

from __future__ import annotations

from numbers import Integral, Real

from torch import nn

from .._constraints import Interval, check_value
from ._base import FreezeContext, FreezeStrategy

__all__ = ["DepthFreezer", "GradualUnfreezer", "DiscriminativeLR", "BitFit", "LinearProbeThenFineTune"]

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


class DepthFreezer(FreezeStrategy):
    """``"depth"``: stages ``0..freeze_depth-1`` frozen (eval mode), the rest trains."""


class GradualUnfreezer(FreezeStrategy):
    """``"gradual"``: gradual unfreezing, as in ULMFiT and fastai's ``fine_tune``.

    Training starts with only the head; every ``every`` epochs one more stage
    is unfrozen, from the top down, never below ``freeze_depth``. Stages below
    ``freeze_depth`` stay frozen all along, so their outputs can be cached.

    Parameters
    ----------
    every : int, default=1
        Epochs between two unfreezing steps.
    """

    _parameter_constraints = {"every": [Interval(Integral, 1, None, desc="a positive int")]}

    def __init__(self, every: int = 1):
        check_value("gradual", "every", every, self._parameter_constraints["every"])
        self.every = every

    def setup(self, ctx: FreezeContext) -> None:
        super().setup(ctx)
        ctx.freeze(ctx.freeze_depth)  # only the head at first

    def on_epoch_begin(self, ctx: FreezeContext, epoch: int) -> None:
        n_open = epoch // self.every  # stages opened so far, from the top
        if n_open == 0:
            return
        # a stage without parameters (a ResNet's pool) opens with the one below it
        with_params = [i for i in reversed(range(ctx.freeze_depth, len(ctx.stages)))
                       if next(ctx.stages[i].parameters(), None) is not None]
        first_open = with_params[n_open - 1] if n_open <= len(with_params) else ctx.freeze_depth
        ctx.unfreeze(max(first_open, ctx.freeze_depth))

    def frozen_prefix_at(self, ctx: FreezeContext, epoch: int) -> int:
        # stages change only in on_epoch_begin: what is frozen now stays so all epoch
        # (the head-only first epochs train on cached pooled features)
        return ctx.frozen_depth()


class DiscriminativeLR(FreezeStrategy):
    """``"discriminative"``: layer-wise learning-rate decay.

    The head trains at ``lr``; each stage below it at the rate of the stage
    above times ``decay`` (fastai's ``slice(lo, hi)``, timm's ``layer_decay``).
    The rates are ``lr_scale`` factors, so ``set_params(lr=...)`` keeps them, and
    ``backbone_lr_scale`` multiplies the backbone's on top.

    Parameters
    ----------
    decay : float, default=0.5
        Factor between neighbouring stages, in (0, 1].
    """

    _parameter_constraints = {"decay": [Interval(Real, 0, 1, closed="right", desc="in (0, 1]")]}

    def __init__(self, decay: float = 0.5):
        check_value("discriminative", "decay", decay, self._parameter_constraints["decay"])
        self.decay = decay

    def param_groups(self, ctx: FreezeContext) -> list[dict]:
        groups = [{"params": list(ctx.head.parameters()), "lr_scale": 1.0}]
        top = len(ctx.stages)
        for index in reversed(self.trainable_stages(ctx)):
            params = list(ctx.stages[index].parameters())
            if params:
                groups.append({"params": params, "lr_scale": self.decay ** (top - index)})
        return groups


class BitFit(FreezeStrategy):
    """``"bitfit"``: in trainable stages only biases and normalisation parameters train.

    Ben Zaken et al. 2021. Weights of convolutions and linear layers stay at
    their pretrained values; the head trains fully.
    """

    @staticmethod
    def _is_bitfit(module: nn.Module, name: str) -> bool:
        return name == "bias" or isinstance(module, _NORM_TYPES)

    def _split(self, ctx: FreezeContext):
        keep, drop = [], []
        for index in self.trainable_stages(ctx):
            for module in ctx.stages[index].modules():
                for name, p in module.named_parameters(recurse=False):
                    (keep if self._is_bitfit(module, name) else drop).append(p)
        return keep, drop

    def setup(self, ctx: FreezeContext) -> None:
        super().setup(ctx)
        keep, drop = self._split(ctx)
        for p in drop:
            p.requires_grad_(False)

    def param_groups(self, ctx: FreezeContext) -> list[dict]:
        keep, _ = self._split(ctx)
        return [{"params": keep + list(ctx.head.parameters())}]


class LinearProbeThenFineTune(FreezeStrategy):
    """``"lp_ft"``: linear probe first, then fine-tune (Kumar et al. 2022).

    Until ``switch_epoch`` only the head trains (the whole backbone frozen, in
    eval mode); from then on the stages above ``freeze_depth`` train too.

    Parameters
    ----------
    switch_epoch : int or None, default=None
        First fine-tuning epoch (0-based); None = half of ``max_epochs``.
    """

    _parameter_constraints = {"switch_epoch": [None, Interval(Integral, 0, None)]}

    def __init__(self, switch_epoch: int | None = None):
        check_value("lp_ft", "switch_epoch", switch_epoch,
                    self._parameter_constraints["switch_epoch"])
        self.switch_epoch = switch_epoch

    def _switch(self, ctx: FreezeContext) -> int:
        return ctx.max_epochs // 2 if self.switch_epoch is None else self.switch_epoch

    def setup(self, ctx: FreezeContext) -> None:
        super().setup(ctx)
        ctx.freeze(ctx.freeze_depth)

    def on_epoch_begin(self, ctx: FreezeContext, epoch: int) -> None:
        if epoch >= self._switch(ctx):
            ctx.unfreeze(ctx.freeze_depth)

    def frozen_prefix_at(self, ctx: FreezeContext, epoch: int) -> int:
        # the probe epochs train the head alone, on cached pooled features; asking the
        # network (not the epoch) keeps a continued fit, already unfrozen, right
        return ctx.frozen_depth()
