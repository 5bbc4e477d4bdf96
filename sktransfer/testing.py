"""Helpers for testing sktransfer plugins without installing them.

:func:`fake_entry_points` makes entry points visible to sktransfer's registries
as if a package declaring them were installed - the way to test a plugin's
registration, its names and its failure modes in its own test suite.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import sys
import types
from pathlib import Path
from typing import Any, Iterator, Mapping

from ._registry import refresh_plugins

__all__ = ["fake_entry_points"]

_MODULE_NUMBERS = itertools.count()


class _FakeDistribution(importlib.metadata.Distribution):
    """A distribution that exists only by name (what sktransfer reports as a source)."""

    def __init__(self, name: str):
        self._name = name

    def read_text(self, filename):
        if filename == "METADATA":
            return f"Metadata-Version: 2.1\nName: {self._name}\nVersion: 0\n"
        return None

    def locate_file(self, path):
        return Path(path)


def _entry_point(name: str, target: Any, group: str, dist, modules: dict
                 ) -> importlib.metadata.EntryPoint:
    if isinstance(target, importlib.metadata.EntryPoint):
        return target
    if isinstance(target, str):
        value = target
    else:  # an object: reachable through a module that exists while the patch is active
        module_name = f"_sktransfer_fake_plugin_{next(_MODULE_NUMBERS)}"
        module = types.ModuleType(module_name)
        module.target = target
        modules[module_name] = module
        value = f"{module_name}:target"
    ep = importlib.metadata.EntryPoint(name=name, value=value, group=group)
    # EntryPoint has no public way to say which distribution declares it; importlib
    # itself attaches it with _for(), which sktransfer reads as ``ep.dist.name``.
    return ep._for(dist) if hasattr(ep, "_for") else ep


@contextlib.contextmanager
def fake_entry_points(entry_points: Mapping[str, Mapping[str, Any]],
                      distribution: str = "fake-plugin") -> Iterator[list]:
    """Make entry points visible to sktransfer, as if an installed package declared them.

    While the context is active, ``importlib.metadata.entry_points`` returns the
    real entry points plus these, as real ``importlib.metadata.EntryPoints``
    objects (``.select(...)``, ``.names`` work), so other libraries that look
    up their own plugins meanwhile are not disturbed; groups without fakes
    get exactly what they would get anyway. The registries are refreshed on
    entry and on exit. Works with ``SKTRANSFER_STRICT_PLUGINS=1``; under
    ``SKTRANSFER_DISABLE_PLUGINS=1`` the fakes are skipped like any
    third-party plugin.

    Parameters
    ----------
    entry_points : mapping
        ``{group: {name: target}}``; a target is a ``"module:attribute"``
        string (as in ``pyproject.toml``), an object (a builder function or a
        strategy class, made importable for the duration), or an
        ``importlib.metadata.EntryPoint``.
    distribution : str, default="fake-plugin"
        The package name sktransfer reports as the source of these names.

    Yields
    ------
    list of importlib.metadata.EntryPoint
        The entry points added.

    Examples
    --------
    >>> from sktransfer import get_backbone, list_backbones
    >>> from sktransfer.testing import fake_entry_points
    >>> with fake_entry_points({"sktransfer.backbones": {
    ...         "my_tiny": "sktransfer.backbones._tiny:tiny_cnn"}}):
    ...     get_backbone("my_tiny").n_blocks
    4
    >>> "my_tiny" in list_backbones()
    False
    """
    dist = _FakeDistribution(distribution)
    modules: dict[str, types.ModuleType] = {}
    extra = importlib.metadata.EntryPoints(
        _entry_point(name, target, group, dist, modules)
        for group, names in entry_points.items() for name, target in names.items())
    real = importlib.metadata.entry_points

    def patched(**params):
        found = real(**params)
        added = extra.select(**params) if params else extra
        if not added:
            return found  # other groups: untouched
        if isinstance(found, importlib.metadata.EntryPoints):
            return importlib.metadata.EntryPoints((*found, *added))
        # Python < 3.12 without arguments: a SelectableGroups mapping group -> EntryPoints
        everything = itertools.chain(itertools.chain.from_iterable(dict.values(found)), added)
        return type(found).load(everything)

    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    importlib.metadata.entry_points = patched
    refresh_plugins()
    try:
        yield list(extra)
    finally:
        importlib.metadata.entry_points = real
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        refresh_plugins()
