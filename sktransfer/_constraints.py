"""Declared parameter constraints, checked at the start of ``fit``.

Each public estimator lists the values each of its parameters may take in a
``_parameter_constraints`` dict next to its class, the way scikit-learn's
estimators do (``sklearn.utils._param_validation``, a private module we do not
import): a list of alternatives per parameter, any one of which may hold. An
alternative is ``None`` (the value ``None``), a type, ``callable``,
``"boolean"``, ``"random_state"``, ``"verbose"``, or one of the small classes
here (:class:`Interval`, :class:`StrOptions`, :class:`Options`,
:class:`HasMethods`, :class:`Collection`).

:func:`check_params` checks every declared parameter, whichever way it arrived
(the constructor, ``set_params``, ``clone``), so a value of the wrong kind is an
error naming the parameter and what it may be, before any work starts. Checks
that need more than the value itself (a ``freeze_depth`` against the backbone's
blocks, a device against the machine) stay where that knowledge is.
"""

from __future__ import annotations

import difflib
import math
import numbers
import reprlib

import numpy as np

__all__ = ["InvalidParameterError", "Interval", "StrOptions", "Options", "HasMethods",
           "Collection", "check_params", "check_value"]


class InvalidParameterError(ValueError, TypeError):
    """A parameter holds a value it may not take (both a ``ValueError`` and a
    ``TypeError``, as scikit-learn's, so either ``except`` catches it)."""


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _short(value) -> str:
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    return short.repr(value)


class _Constraint:
    desc = ""

    def __init__(self, desc: str | None = None):
        if desc is not None:
            self.desc = desc

    def __str__(self):
        return self.desc

    def kind_ok(self, value) -> bool:
        """Whether ``value`` is of the kind this constraint takes (if not of its range)."""
        return self.is_satisfied_by(value)


class Interval(_Constraint):
    """Numbers of ``type`` (``numbers.Integral`` or ``numbers.Real``) between
    ``left`` and ``right`` (``None``: unbounded); ``closed`` is ``"left"``,
    ``"right"``, ``"both"`` or ``"neither"``. Booleans and non-finite numbers are
    never in an interval."""

    def __init__(self, type_, left, right, closed="both", desc=None):
        self.type, self.left, self.right, self.closed = type_, left, right, closed
        super().__init__(desc)

    def kind_ok(self, value) -> bool:
        return isinstance(value, self.type) and not _is_bool(value)

    def is_satisfied_by(self, value) -> bool:
        if not self.kind_ok(value):
            return False
        if not math.isfinite(value):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        if self.desc:
            return self.desc
        kind = "an int" if self.type is numbers.Integral else "a number"
        if self.right is None:
            if self.left is None:
                return kind
            op = ">=" if self.closed in ("left", "both") else ">"
            return f"{kind} {op} {self.left}"
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        low = "-inf" if self.left is None else self.left
        return f"{kind} in {left}{low}, {self.right}{right}"


class Options(_Constraint):
    """One of the given values (compared with ``==``, same type)."""

    def __init__(self, type_, options, desc=None):
        self.type, self.options = type_, tuple(options)
        super().__init__(desc)

    def kind_ok(self, value) -> bool:
        return isinstance(value, self.type) and not (_is_bool(value) and self.type is not bool)

    def is_satisfied_by(self, value) -> bool:
        return self.kind_ok(value) and any(value == option for option in self.options)

    def __str__(self):
        if self.desc:
            return self.desc
        if len(self.options) == 1:
            return repr(self.options[0])
        return f"one of {list(self.options)!r}"


class StrOptions(Options):
    """One of the given strings."""

    def __init__(self, options, desc=None):
        super().__init__(str, sorted(options) if isinstance(options, set) else options, desc)


class HasMethods(_Constraint):
    """An object with every method in ``methods``."""

    def __init__(self, methods, desc=None):
        self.methods = [methods] if isinstance(methods, str) else list(methods)
        super().__init__(desc)

    def missing(self, value) -> list[str]:
        return [m for m in self.methods if not callable(getattr(value, m, None))]

    def is_satisfied_by(self, value) -> bool:
        return not self.missing(value)

    def __str__(self):
        return self.desc or f"an object with {', '.join(self.methods)}"


class Collection(_Constraint):
    """An iterable that is no string, bytes or mapping (a list, a tuple, an array...)."""

    def is_satisfied_by(self, value) -> bool:
        return (hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))
                and not (isinstance(value, np.ndarray) and value.ndim == 0))

    desc = "a list"


class _Type(_Constraint):
    def __init__(self, type_):
        self.type = type_
        super().__init__()

    def is_satisfied_by(self, value) -> bool:
        if self.type in (int, numbers.Integral) and _is_bool(value):
            return False
        return isinstance(value, self.type)

    def __str__(self):
        names = {str: "a str", int: "an int", float: "a float", bool: "a bool", list: "a list",
                 tuple: "a tuple", set: "a set", dict: "a dict", numbers.Integral: "an int",
                 numbers.Real: "a number"}
        return names.get(self.type, f"a {getattr(self.type, '__name__', self.type)}")


class _Predicate(_Constraint):
    def __init__(self, test, desc):
        self.test = test
        super().__init__(desc)

    def is_satisfied_by(self, value) -> bool:
        return self.test(value)


def _is_random_state(value) -> bool:
    return value is None or isinstance(value, np.random.RandomState) or (
        isinstance(value, numbers.Integral) and not _is_bool(value))


_NAMED = {
    "boolean": _Predicate(_is_bool, "True or False"),
    "random_state": _Predicate(_is_random_state, "None, an int or a numpy RandomState"),
    "verbose": _Predicate(lambda v: _is_bool(v) or (isinstance(v, numbers.Integral)
                                                    and v >= 0), "an int >= 0"),
}


def _make(constraint) -> _Constraint:
    if isinstance(constraint, _Constraint):
        return constraint
    if constraint is None:
        return _Predicate(lambda v: v is None, "None")
    if constraint is callable:
        return _Predicate(callable, "a callable")
    if isinstance(constraint, str):
        return _NAMED[constraint]
    if isinstance(constraint, type):
        return _Type(constraint)
    raise TypeError(f"unknown constraint {constraint!r}")


def _alternatives(constraints) -> str:
    texts = [str(c) for c in constraints]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]


def check_value(owner: str, key: str, value, constraints) -> None:
    """Raise :class:`InvalidParameterError` unless ``value`` satisfies one of
    ``constraints``; the message names ``owner(key=value)`` and the alternatives."""
    made = [_make(c) for c in constraints]
    if any(c.is_satisfied_by(value) for c in made):
        return
    shown = _short(value)
    got = shown if any(c.kind_ok(value) for c in made) else f"{type(value).__name__} {shown}"
    hint = ""
    for c in made:
        if isinstance(c, HasMethods) and not isinstance(value, (str, type(None))):
            hint = f" ({type(value).__name__} lacks {', '.join(c.missing(value))})"
            break
    if isinstance(value, str):
        options = [o for c in made if isinstance(c, StrOptions) for o in c.options]
        close = [o for o in options if o.lower() == value.strip().lower()] \
            or difflib.get_close_matches(value, options, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InvalidParameterError(f"{owner}({key}={shown}): {key} must be {_alternatives(made)}, "
                                f"got {got}{hint}")


def check_params(estimator) -> None:
    """Check every parameter ``estimator._parameter_constraints`` declares, and the
    ``freeze_strategy__*`` options of a strategy that declares its own."""
    owner = type(estimator).__name__
    for name, constraints in type(estimator)._parameter_constraints.items():
        if hasattr(estimator, name):  # a state saved before the parameter existed
            check_value(owner, name, getattr(estimator, name), constraints)
    strategy = getattr(estimator, "freeze_strategy", None)
    if strategy is not None:
        options = {k[len("freeze_strategy__"):]: v for k, v in vars(estimator).items()
                   if k.startswith("freeze_strategy__")}
        check_strategy_options(owner, strategy, options)


def check_strategy_options(owner: str, strategy, options: dict) -> None:
    """``freeze_strategy__<option>`` values against the strategy's declared constraints
    (a registered name's class, or the object's class); unknown options are left to
    the strategy's constructor, which names its own."""
    if isinstance(strategy, str):
        from .freezing import STRATEGIES

        try:
            cls = STRATEGIES.builder(strategy)
        except Exception:  # an unknown name: make_strategy explains it with suggestions
            return
    else:
        cls = type(strategy)
    declared = getattr(cls, "_parameter_constraints", None) or {}
    for name, value in options.items():
        if name in declared:
            check_value(owner, f"freeze_strategy__{name}", value, declared[name])
