"""Environment variables, read one way everywhere."""

from __future__ import annotations

import os

__all__ = ["env_flag"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def env_flag(name: str) -> bool:
    """The boolean environment variable ``name``; unset or empty is False.

    ``1/true/yes/on`` are True and ``0/false/no/off`` are False (any case,
    surrounding spaces ignored); anything else is a ``ValueError`` naming the
    variable, so a typo never silently flips a setting.
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r} is not a boolean; use 1/true/yes/on "
                     f"or 0/false/no/off (or leave it unset)")
