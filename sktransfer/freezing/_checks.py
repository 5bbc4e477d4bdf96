"""Guard rails: what the classifier checks of a strategy's answers before using them.

A strategy is third-party code; a mistake in it must be an error that names the
strategy and the fix, never a head that silently does not train or a cache that
silently holds stale activations.
"""

from __future__ import annotations

import numbers

from ._base import FreezeContext, FreezeStrategy

__all__ = ["checked_param_groups", "checked_frozen_prefix", "declares_epoch_prefixes",
           "checked_frozen_prefix_at"]


def _name(strategy) -> str:
    return type(strategy).__name__


def _first(names: list[str], n: int = 4) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def checked_param_groups(strategy, ctx: FreezeContext) -> list[dict]:
    """``strategy.param_groups(ctx)``, checked; empty groups are dropped.

    Raises ``ValueError`` naming the strategy when the answer is not a list of
    ``{"params": [...]}`` dicts, when a parameter appears twice, or when a
    parameter that requires a gradient after ``setup`` is in no group (it would
    get gradients and never change - for the head: the classifier would not learn).
    """
    groups = strategy.param_groups(ctx)
    if not isinstance(groups, (list, tuple)) or not all(
            isinstance(g, dict) and "params" in g for g in groups):
        raise ValueError(f"freezing strategy {_name(strategy)}: param_groups(ctx) must return "
                         f"a list of dicts with a 'params' entry (optionally 'lr'), got "
                         f"{type(groups).__name__}")
    groups = [dict(g, params=list(g["params"])) for g in groups]
    names = {id(p): n for n, p in ctx.module.named_parameters()}
    seen: set[int] = set()
    for group in groups:
        for p in group["params"]:
            if id(p) in seen:
                raise ValueError(f"freezing strategy {_name(strategy)}: parameter "
                                 f"{names.get(id(p), '(not in the network)')!r} is in more "
                                 f"than one of the groups param_groups(ctx) returned")
            seen.add(id(p))
    left_out = [n for n, p in ctx.module.named_parameters()
                if p.requires_grad and id(p) not in seen]
    head = [n for n in left_out if n.startswith("head.")]
    if head:
        raise ValueError(
            f"freezing strategy {_name(strategy)}: param_groups(ctx) leaves out the new "
            f"head's parameters ({_first(head)}), so the head would never train. Add "
            f"list(ctx.head.parameters()) to a group (or freeze those parameters in setup).")
    if left_out:
        raise ValueError(
            f"freezing strategy {_name(strategy)}: {len(left_out)} parameters require a "
            f"gradient after setup but are in no group of param_groups(ctx) "
            f"({_first(left_out)}), so they would never change. Add them to a group, or "
            f"freeze them in setup (ctx.freeze / requires_grad_(False)).")
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(f"freezing strategy {_name(strategy)} left no parameter to train")
    return groups


def _check_frozen(strategy, ctx: FreezeContext, depth: int, call: str, fix: str) -> None:
    for index in range(depth):
        trains = any(p.requires_grad for p in ctx.stages[index].parameters())
        if trains or index not in ctx.module.eval_stages:
            what = "has parameters that require a gradient" if trains else "is not in eval mode"
            raise ValueError(
                f"freezing strategy {_name(strategy)}: {call} is {depth}, but stage {index} "
                f"{what}. {fix}")


def checked_frozen_prefix(strategy, ctx: FreezeContext) -> int:
    """``strategy.frozen_prefix(ctx)``, checked against the network's state.

    The stages it names are cached for the whole fit, so they must be frozen now:
    no parameter requiring a gradient, and in eval mode (``ctx.freeze`` does both).
    """
    depth = strategy.frozen_prefix(ctx)
    n = len(ctx.stages)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or not 0 <= depth <= n:
        raise ValueError(f"freezing strategy {_name(strategy)}: frozen_prefix(ctx) must be an "
                         f"int in 0..{n} (the backbone has {n} stages: its blocks and its "
                         f"pool), got {depth!r}")
    depth = int(depth)
    _check_frozen(strategy, ctx, depth, "frozen_prefix(ctx)",
                  f"Stages counted in frozen_prefix are cached for the whole fit, so freeze "
                  f"them in setup with ctx.freeze(0, {depth}) (no gradients, eval mode), or return "
                  f"a smaller frozen_prefix.")
    return depth


def declares_epoch_prefixes(strategy) -> bool:
    """Whether ``strategy`` says per epoch what is frozen (overrides ``frozen_prefix_at``).

    Strategies that do not (the default hook, or an object that is no
    :class:`FreezeStrategy` and lacks the hook) cache the whole-fit prefix only.
    """
    hook = getattr(type(strategy), "frozen_prefix_at", None)
    return callable(hook) and hook is not FreezeStrategy.frozen_prefix_at


def checked_frozen_prefix_at(strategy, ctx: FreezeContext, epoch: int, whole_fit: int) -> int:
    """``strategy.frozen_prefix_at(ctx, epoch)``, checked against the network's state.

    Asked after ``on_epoch_begin(ctx, epoch)``: the stages it names train the
    epoch on cached activations, so they must be frozen now, and they include
    the ``whole_fit`` stages of ``frozen_prefix``. A strategy without the hook
    answers ``whole_fit``.
    """
    if not declares_epoch_prefixes(strategy):
        return whole_fit
    depth = strategy.frozen_prefix_at(ctx, epoch)
    n = len(ctx.stages)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) \
            or not whole_fit <= depth <= n:
        raise ValueError(f"freezing strategy {_name(strategy)}: frozen_prefix_at(ctx, {epoch}) "
                         f"must be an int in {whole_fit}..{n}: at least frozen_prefix(ctx) = "
                         f"{whole_fit} (stages frozen for the whole fit are frozen in every "
                         f"epoch), at most the {n} stages of the backbone; got {depth!r}")
    depth = int(depth)
    _check_frozen(strategy, ctx, depth, f"frozen_prefix_at(ctx, {epoch})",
                  f"Stages counted in frozen_prefix_at train that epoch on cached activations, "
                  f"so freeze them in on_epoch_begin with ctx.freeze(0, {depth}) (no gradients, "
                  f"eval mode), or return a smaller number.")
    return depth
