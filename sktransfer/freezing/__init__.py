"""Freezing strategies and their registry."""

from __future__ import annotations

import copy
import inspect

from .._registry import Registry
from ._base import FreezeContext, FreezeStrategy
from ._builtin import BitFit, DepthFreezer, DiscriminativeLR, GradualUnfreezer, LinearProbeThenFineTune

__all__ = ["FreezeContext", "FreezeStrategy", "DepthFreezer", "GradualUnfreezer",
           "DiscriminativeLR", "BitFit", "LinearProbeThenFineTune", "register_freezer",
           "get_freezer", "list_freezers", "make_freezer", "FREEZERS"]

FREEZERS = Registry("freezing strategy", "sktransfer.freezers", "list_freezers")


def register_freezer(name=None, builder=None):
    """Register a freezing strategy (a class or factory); usable as a decorator.

    ``get_freezer(name, **options)`` calls ``builder(**options)``, which must
    return an object meeting the :class:`FreezeStrategy` contract (subclassing
    it is the easy way).
    """
    return FREEZERS.register(name, builder)


def get_freezer(name: str, **options) -> FreezeStrategy:
    """A fresh strategy ``name`` with ``options``."""
    return FREEZERS.get(name, **options)


def list_freezers(filter: str | None = None) -> list[str]:  # noqa: A002
    """Registered strategy names, optionally filtered by an fnmatch pattern."""
    return FREEZERS.list(filter)


_HOOKS = ("setup", "param_groups", "on_epoch_begin", "penalty", "frozen_prefix")


def make_freezer(strategy, options: dict) -> FreezeStrategy:
    """Turn the estimator's ``freeze_strategy`` (+ ``freeze_strategy__*`` options) into
    a fresh strategy object, never touching the user's object."""
    if isinstance(strategy, str):
        try:
            return get_freezer(strategy, **options)
        except TypeError as exc:
            raise ValueError(f"freeze_strategy {strategy!r} does not take the options "
                             f"{sorted(options)}: {exc}") from exc
    missing = [h for h in _HOOKS if not callable(getattr(strategy, h, None))]
    if missing:
        raise TypeError(f"freeze_strategy must be a registered name (see list_freezers()) or "
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
