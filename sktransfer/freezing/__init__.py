"""Freezing strategies: how a pretrained backbone is adapted, and their registry.

A **freezing strategy** decides, from the outside, how a pretrained network is
fine-tuned: which parameters train in each epoch, their learning-rate groups,
which stages stay frozen (no gradients, eval mode) and optionally an extra loss
term. It only ever sees a :class:`FreezeContext` - the backbone's stages
(``ctx.stages``: its blocks, then its pool), the new ``ctx.head`` and their
parameters - so a strategy works with every backbone, including ones it has
never heard of. Estimators take it as ``freeze_strategy="name"`` (or an
object) and pass ``freeze_strategy__<option>`` params to its constructor, so
options can be grid-searched.

Life cycle
----------
:class:`sktransfer.TransferClassifier` drives a strategy like this:

1. ``Strategy(**options)`` once per fit, when the network is built: store the
   options, raise a clear ``ValueError`` for a bad one.
2. ``setup(ctx)`` once, after the network is built and its weights loaded:
   freeze and unfreeze stages with ``ctx.freeze(start, stop)`` /
   ``ctx.unfreeze(start, stop)`` (these also switch eval / train mode).
3. ``param_groups(ctx)`` once, to build the optimizer: a list of
   ``{"params": [...], "lr_scale": ...}`` dicts holding every parameter that
   trains at *any* point of the fit; one that is frozen for the moment simply
   gets no gradient. ``lr_scale`` (optional, relative to the estimator's ``lr``:
   timm's convention, kept by ``set_params(lr=...)``) may instead be an
   absolute ``lr``. The estimator then applies its training recipe: each group
   is split into decayed weights and undecayed biases / norm parameters,
   backbone parameters are scaled by ``backbone_lr_scale``, and BatchNorm
   layers stay in inference mode under ``norm_mode="frozen"`` whatever the
   strategy froze. It must hold every parameter that requires
   a gradient after ``setup`` - the head's in particular: a strategy that
   leaves one out is an error, not a head that silently never trains.
4. ``frozen_prefix(ctx)`` once: how many leading stages stay frozen, unchanged
   and in eval mode for the *whole* fit. Their output is then computed once and
   cached (``cache="auto"``), and those stages are not run again while
   training - so a strategy must never unfreeze them later. The number is the
   strategy's own, not capped by ``freeze_depth``: a strategy that freezes the
   whole backbone at ``freeze_depth=0`` returns ``len(ctx.stages)``. Return 0
   when no stage stays untouched (e.g. a strategy that perturbs frozen weights).
5. ``on_epoch_begin(ctx, epoch)`` before each epoch. ``epoch`` counts from 0
   within the current call to ``fit`` / ``partial_fit``, like
   ``ctx.max_epochs``: a ``warm_start`` fit or a ``partial_fit`` starts again
   at 0 (``setup`` is not called again: the network is kept).
6. ``frozen_prefix_at(ctx, epoch)`` right after each ``on_epoch_begin``: how
   many leading stages stay frozen and untouched throughout that epoch
   (default: ``frozen_prefix(ctx)``). A deeper answer - the head-only epochs
   of ``lp_ft`` and ``gradual`` freeze the whole backbone - makes that epoch
   train on the cached output of those stages (computed once, shared like
   the whole-fit prefix) instead of running them every step; the next
   shallower answer switches back. Return more than ``frozen_prefix`` only
   for stages frozen with ``ctx.freeze`` whose weights nothing changes during
   the epoch; ``ctx.frozen_depth()`` counts the stages frozen at that moment.
7. ``penalty(ctx)`` at each training step: a scalar tensor added to the loss,
   or ``None``.

Subclass :class:`FreezeStrategy` (the plain "freeze the first
``freeze_depth`` stages" behaviour) and override what you need.

Registry
--------
:func:`register_strategy`, :func:`get_strategy` and :func:`list_strategies`,
and the entry-point group ``sktransfer.strategies`` for plugin packages. The
older names ``register_freezer``, ``get_freezer``, ``list_freezers`` and the
group ``sktransfer.freezers`` keep working as aliases.
"""

from __future__ import annotations

import copy
import inspect

from .._registry import Registry
from ._base import FreezeContext, FreezeStrategy
from ._builtin import BitFit, DepthFreezer, DiscriminativeLR, GradualUnfreezer, LinearProbeThenFineTune
from ._checks import (checked_frozen_prefix, checked_frozen_prefix_at, checked_param_groups,
                      declares_epoch_prefixes)

__all__ = ["FreezeContext", "FreezeStrategy", "DepthFreezer", "GradualUnfreezer",
           "DiscriminativeLR", "BitFit", "LinearProbeThenFineTune", "register_strategy",
           "get_strategy", "list_strategies", "make_strategy", "STRATEGIES",
           "checked_param_groups", "checked_frozen_prefix", "checked_frozen_prefix_at",
           "declares_epoch_prefixes",
           # older names, kept as aliases
           "register_freezer", "get_freezer", "list_freezers", "make_freezer", "FREEZERS"]

STRATEGIES = Registry("freezing strategy", ("sktransfer.strategies", "sktransfer.freezers"),
                      "list_strategies")


def register_strategy(name=None, builder=None):
    """Register a freezing strategy (a class or factory); usable as a decorator.

    ``get_strategy(name, **options)`` calls ``builder(**options)``, which must
    return an object meeting the :class:`FreezeStrategy` contract (subclassing
    it is the easy way). A package registers strategies for others through the
    entry-point group ``sktransfer.strategies`` instead.

    Examples
    --------
    >>> from sktransfer import FreezeStrategy, get_strategy, register_strategy
    >>> @register_strategy("doc_head_only")
    ... class HeadOnly(FreezeStrategy):
    ...     def frozen_prefix(self, ctx):
    ...         return len(ctx.stages)
    >>> get_strategy("doc_head_only")
    HeadOnly()
    >>> STRATEGIES.unregister("doc_head_only")
    """
    return STRATEGIES.register(name, builder)


def get_strategy(name: str, **options) -> FreezeStrategy:
    """A fresh strategy ``name`` built with ``options``."""
    return STRATEGIES.get(name, **options)


def list_strategies(filter: str | None = None) -> list[str]:  # noqa: A002
    """Registered strategy names, optionally filtered by an fnmatch pattern.

    >>> list_strategies("*fit")
    ['bitfit']
    """
    return STRATEGIES.list(filter)


#: the methods a strategy object has (a FreezeStrategy subclass inherits them all)
STRATEGY_HOOKS = _HOOKS = ("setup", "param_groups", "on_epoch_begin", "penalty",
                           "frozen_prefix")


def make_strategy(strategy, options: dict) -> FreezeStrategy:
    """Turn the estimator's ``freeze_strategy`` (+ ``freeze_strategy__*`` options) into
    a fresh strategy object, never touching the user's object."""
    if isinstance(strategy, str):
        try:
            return get_strategy(strategy, **options)
        except TypeError as exc:
            raise ValueError(f"freeze_strategy {strategy!r} does not take the options "
                             f"{sorted(options)}: {exc}") from exc
    missing = [h for h in _HOOKS if not callable(getattr(strategy, h, None))]
    if missing:
        raise TypeError(f"freeze_strategy must be a registered name (see list_strategies()) or "
                        f"an object with {', '.join(_HOOKS)}; {type(strategy).__name__} lacks "
                        f"{', '.join(missing)}")
    if not options:
        return copy.deepcopy(strategy)
    # rebuild through the constructor, so its validation sees the options too
    params = _constructor_params(type(strategy))
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"freeze_strategy__{unknown[0]}: {type(strategy).__name__} has no "
                         f"option {unknown[0]!r}; its options are {params}")
    kwargs = {name: copy.deepcopy(getattr(strategy, name)) for name in params
              if hasattr(strategy, name)}
    kwargs.update(options)
    try:
        return type(strategy)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"freeze_strategy={type(strategy).__name__}(...) with options "
                         f"{options}: {exc}") from exc


def _constructor_params(cls) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in inspect.signature(cls).parameters.values() if p.kind in kinds]


# The first names of the concept; public contract, so they stay.
register_freezer = register_strategy
get_freezer = get_strategy
list_freezers = list_strategies
make_freezer = make_strategy
FREEZERS = STRATEGIES
