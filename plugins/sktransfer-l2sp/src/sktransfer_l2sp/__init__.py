"""L2-SP: fine-tuning regularised towards the pretrained weights (Li et al. 2018).

Registered through the entry point group ``sktransfer.strategies``::

    [project.entry-points."sktransfer.strategies"]
    l2sp = "sktransfer_l2sp:L2SP"
"""

from __future__ import annotations

import numbers

import torch

from sktransfer import FreezeContext, FreezeStrategy

__all__ = ["L2SP"]
__version__ = "0.1.0"


class L2SP(FreezeStrategy):
    """``"l2sp"``: freeze the first ``freeze_depth`` stages, pull the rest to their start.

    Li, Grandvalet & Davoine, *Explicit Inductive Bias for Transfer Learning
    with Convolutional Networks*, ICML 2018. The loss gets

    ``alpha / 2 * sum ||w - w0||^2`` over the parameters of the trainable
    backbone stages (``w0``: their values when training starts, i.e. the
    pretrained weights) ``+ beta / 2 * ||v||^2`` over the head's weights ``v``
    (its bias excluded, as in the paper).

    Frozen stages stay exactly as in :class:`sktransfer.FreezeStrategy`, so their
    outputs can still be cached.

    Parameters
    ----------
    alpha : float, default=0.01
        Strength of the pull towards the pretrained weights.
    beta : float, default=0.01
        Strength of plain weight decay on the new head.

    Examples
    --------
    >>> from sktransfer import get_strategy
    >>> get_strategy("l2sp", alpha=0.1)
    L2SP(alpha=0.1, beta=0.01)
    """

    def __init__(self, alpha: float = 0.01, beta: float = 0.01):
        for name, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"l2sp: {name} must be a float >= 0, got {value!r}")
        self.alpha = alpha
        self.beta = beta
        self._anchors: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

    def setup(self, ctx: FreezeContext) -> None:
        super().setup(ctx)
        # Snapshot the starting point (the pretrained weights) of what will train.
        self._anchors = [(p, p.detach().clone())
                         for i in self.trainable_stages(ctx)
                         for p in ctx.stages[i].parameters()]

    def penalty(self, ctx: FreezeContext) -> torch.Tensor | None:
        terms = []
        if self.alpha and self._anchors:
            drift = sum(((p - p0.to(p.device)) ** 2).sum() for p, p0 in self._anchors)
            terms.append(0.5 * self.alpha * drift)
        if self.beta:
            head = [p for name, p in ctx.head.named_parameters() if not name.endswith("bias")]
            if head:
                terms.append(0.5 * self.beta * sum((p ** 2).sum() for p in head))
        if not terms:
            return None
        return sum(terms)

    def drift(self) -> float:
        """``sum ||w - w0||^2`` now: how far the trainable stages have moved."""
        with torch.no_grad():
            return float(sum(((p - p0.to(p.device)) ** 2).sum() for p, p0 in self._anchors)
                         ) if self._anchors else 0.0
