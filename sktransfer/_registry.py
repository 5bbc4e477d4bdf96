"""One small registry mechanism, shared by backbones and freezing strategies.

A registry maps names to *builders* (callables that make a fresh object on each
call); it never stores built modules or loaded weights. Names come from three
places, all equal once registered:

* ``register_*`` calls (a decorator third parties may use directly);
* entry points in the registry's groups (``sktransfer.backbones`` /
  ``sktransfer.strategies``, whose old name ``sktransfer.freezers`` is still
  read), discovered lazily, once, on first use;
* namespaces: a name ending in ``*`` (e.g. ``timm/*``, ``resnet*``) claims every
  name under that prefix; its builder receives the full name as its first
  argument. An exact name wins over a namespace, a longer prefix over a shorter.

sktransfer's own names always win: a plugin entry point that would take over a
built-in name - the same exact name, an exact name a built-in namespace lists,
or a namespace that would capture names a built-in provides - is skipped with
a warning naming the plugin package, never a silent swap of the model.

Entry points are how the package registers its own built-ins too, so the door a
third party uses is exercised by every run.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import inspect
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from ._env import env_flag

__all__ = ["Registry", "PluginError", "refresh_plugins", "close_names"]

_OWN_DISTRIBUTION = "sktransfer"
_ALL_REGISTRIES: list["Registry"] = []
_DEPENDS_ON_NAMES = object()  # a claim that needs the built-in namespace's names


class PluginError(ImportError):
    """A plugin's entry point could not be loaded."""


@dataclass
class _Entry:
    name: str
    builder: Callable[..., Any]
    source: str  # "sktransfer", a distribution name, or "register()"
    namespace: bool = False
    metadata: dict = field(default_factory=dict)


class Registry:
    """Names -> builders, with entry-point discovery.

    Parameters
    ----------
    kind : str
        What the registry holds, for messages ("backbone", "freezing strategy").
    group : str or tuple of str
        The entry-point group searched for plugins; further groups (old names
        kept as aliases) are searched too.
    list_function : str
        The public function that lists names, quoted in error messages.
    """

    def __init__(self, kind: str, group: str | tuple[str, ...], list_function: str):
        self.kind = kind
        self.groups = (group,) if isinstance(group, str) else tuple(group)
        self.group = self.groups[0]
        self.list_function = list_function
        self._entries: dict[str, _Entry] = {}
        self._failed: dict[str, tuple[str, BaseException]] = {}
        # plugin names inside a built-in namespace, not yet checked against its names
        self._contested: dict[str, tuple[Any, str]] = {}
        self._discovered = False
        # threads share the registry (joblib's threading backend, dask threads): discovery
        # runs once, under this lock, and no thread sees a half-filled registry; re-entrant
        # because a plugin being loaded may call register()
        self._lock = threading.RLock()
        self._discovering = False
        _ALL_REGISTRIES.append(self)

    # -- registration -------------------------------------------------------
    def register(self, name: str | None = None, builder: Callable | None = None, *,
                 source: str = "register()", **metadata):
        """Register ``builder`` under ``name``; usable as a decorator.

        A name ending in ``*`` registers a namespace. Registering a name that
        is already taken raises ``ValueError``.
        """
        if builder is None and callable(name):  # bare @register
            builder, name = name, None

        def decorate(func):
            entry_name = name or getattr(func, "__name__", None)
            if not isinstance(entry_name, str) or not entry_name:
                raise TypeError(f"a {self.kind} needs a non-empty string name, got {entry_name!r}")
            if not callable(func):
                raise TypeError(f"the {self.kind} builder for {entry_name!r} must be callable, "
                                f"got {type(func).__name__}")
            self._ensure_discovered()
            self._settle([entry_name])
            self._add(_Entry(entry_name, func, source, entry_name.endswith("*"), metadata))
            return func

        return decorate if builder is None else decorate(builder)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (mostly useful in tests)."""
        self._ensure_discovered()
        if name not in self._entries:
            raise ValueError(f"no {self.kind} named {name!r} is registered")
        del self._entries[name]

    def _add(self, entry: _Entry) -> None:
        if entry.name in self._entries:
            old = self._entries[entry.name]
            raise ValueError(
                f"{self.kind} {entry.name!r} is already registered (by {old.source}); "
                f"pick another name or unregister the old one first")
        self._entries[entry.name] = entry

    # -- discovery ------------------------------------------------------------
    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        with self._lock:
            if self._discovered or self._discovering:
                return
            self._discovering = True
            try:
                self._discover()
                self._discovered = True
            finally:
                self._discovering = False

    def _discover(self) -> None:
        strict = env_flag("SKTRANSFER_STRICT_PLUGINS")
        third_party_off = env_flag("SKTRANSFER_DISABLE_PLUGINS")
        found = []
        for ep in self._entry_points():
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an unknown package"
            own = dist.replace("_", "-").lower() == _OWN_DISTRIBUTION
            if not (third_party_off and not own):
                found.append((not own, ep, dist))
        # built-ins first, whatever order the installed packages are listed in
        for third_party, ep, dist in sorted(found, key=lambda t: t[0]):
            if ep.name in self._entries:
                # The same distribution can be visible twice (e.g. editable + site).
                if self._entries[ep.name].source == dist:
                    continue
            if third_party:
                taken = self._builtin_claim(ep.name)
                if taken is _DEPENDS_ON_NAMES:
                    # Settled when the name is first looked up or listed: asking a
                    # namespace for its names can cost seconds (torchvision's import).
                    self._contested[ep.name] = (ep, dist)
                    continue
                if taken is not None:
                    self._warn_taken(ep.name, dist, taken)
                    continue
            self._load(ep, dist, strict)

    def _load(self, ep, dist: str, strict: bool) -> None:
        try:
            builder = ep.load()
            self._add(_Entry(ep.name, builder, dist, ep.name.endswith("*")))
        # a broken plugin must not break others, not even by calling sys.exit()
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            if strict:
                raise PluginError(
                    f"{self.kind} plugin {ep.name!r} from {dist} failed to load: "
                    f"{type(exc).__name__}: {exc}") from exc
            self._failed[ep.name] = (dist, exc)
            warnings.warn(
                f"sktransfer: {self.kind} plugin {ep.name!r} from {dist} could not be "
                f"loaded and is skipped ({type(exc).__name__}: {exc}). Set "
                f"SKTRANSFER_STRICT_PLUGINS=1 to make this an error.",
                RuntimeWarning, stacklevel=4)

    def _warn_taken(self, name: str, dist: str, taken: str) -> None:
        warnings.warn(
            f"sktransfer: {self.kind} plugin {name!r} from {dist} is ignored: "
            f"{taken}, and built-in names always win. Ask the {dist} authors to "
            f"pick another name.", RuntimeWarning, stacklevel=4)

    def _settle(self, names=None) -> None:
        """Decide plugin names that lie inside a built-in namespace (all, or ``names``):
        kept when the namespace does not provide them, skipped with a warning otherwise."""
        if not self._contested:
            return
        with self._lock:  # another thread must not see a name popped but not yet loaded
            for name in list(self._contested if names is None else names):
                if name not in self._contested:
                    continue
                ep, dist = self._contested.pop(name)
                taken = self._builtin_claim(name, settle=True)
                if taken is not None:
                    self._warn_taken(name, dist, taken)
                else:
                    self._load(ep, dist, env_flag("SKTRANSFER_STRICT_PLUGINS"))

    def _entry_points(self):
        for group in self.groups:
            yield from importlib.metadata.entry_points(group=group)

    def _builtin_claim(self, name: str, settle: bool = False):
        """Why entry point ``name`` would take over a built-in name, or None.

        An exact name inside a built-in namespace is only decided when ``settle``
        is true; until then the answer is ``_DEPENDS_ON_NAMES``.

        Resolution picks an exact name first, then the longest namespace, so
        a plugin steals a built-in name with the same exact name, with an
        exact name a built-in namespace provides, or with a namespace longer
        than a built-in one that captures names it provides. A built-in
        namespace that cannot list its names is taken to provide every name
        under its prefix.
        """
        builtins = [e for e in self._entries.values() if e.source == _OWN_DISTRIBUTION]
        if any(e.name == name for e in builtins):
            return f"{name!r} is a built-in {self.kind} name of sktransfer"
        prefix = name[:-1] if name.endswith("*") else None
        for entry in (e for e in builtins if e.namespace):
            space = entry.name[:-1]
            if prefix is None and name.startswith(space):
                if not settle:
                    return _DEPENDS_ON_NAMES
                if _provides(entry, name):
                    return (f"{name!r} is provided by sktransfer's built-in namespace "
                            f"{entry.name!r}")
            elif prefix is not None and len(prefix) > len(space) and prefix.startswith(space):
                listed = _listed(entry)
                captured = [n for n in listed if n.startswith(prefix)
                            and n not in self._entries] or ([] if listed else [name])
                if captured:
                    return (f"namespace {name!r} would take over sktransfer's built-in "
                            f"{self.kind}(s) {', '.join(map(repr, captured[:3]))}")
        return None

    def refresh(self) -> None:
        """Forget discovered entry points so the next call looks again."""
        with self._lock:
            self._entries = {k: e for k, e in self._entries.items()
                             if e.source == "register()"}
            self._failed = {}
            self._contested = {}
            self._discovered = False

    # -- look-up -----------------------------------------------------------------
    def _resolve(self, name: str) -> tuple[_Entry, bool]:
        self._ensure_discovered()
        if not isinstance(name, str):
            raise TypeError(f"a {self.kind} name must be a string, got {type(name).__name__} "
                            f"({name!r}); see {self.list_function}()")
        self._settle([name])
        entry = self._entries.get(name)
        if entry is not None and not entry.namespace:
            return entry, False
        # The longest matching namespace wins ("timm/*" beats "*").
        spaces = sorted((e for e in self._entries.values() if e.namespace),
                        key=lambda e: -len(e.name))
        for space in spaces:
            prefix = space.name[:-1]
            if name.startswith(prefix) and len(name) > len(prefix):
                return space, True
        failed = self._failed.get(name) or next(
            (v for k, v in self._failed.items() if k.endswith("*") and name.startswith(k[:-1])),
            None)
        if failed is not None:
            dist, exc = failed
            raise PluginError(
                f"{self.kind} {name!r} comes from the plugin package {dist}, which failed to "
                f"load: {type(exc).__name__}: {exc}") from exc
        raise ValueError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        """'unknown <kind> <name>; did you mean ...? See <list_function>() ...'."""
        names = self.list()
        close = close_names(name, names)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        return (f"unknown {self.kind} {name!r}{hint} See {self.list_function}() for the "
                f"{len(names)} available names.")

    def get(self, name: str, **kwargs) -> Any:
        """Build a fresh object for ``name``, passing ``kwargs`` to its builder."""
        entry, via_namespace = self._resolve(name)
        if via_namespace:
            return entry.builder(name, **kwargs)
        return entry.builder(**kwargs)

    def builder(self, name: str) -> Callable:
        """The builder registered for ``name`` (namespaces: bound to the name)."""
        entry, via_namespace = self._resolve(name)
        if via_namespace:
            return lambda **kw: entry.builder(name, **kw)
        return entry.builder

    def builder_attribute(self, name: str, attribute: str, default=None):
        """An attribute the builder registered for ``name`` declares (e.g. ``input_kind``)."""
        entry, _ = self._resolve(name)
        return getattr(entry.builder, attribute, default)

    def accepts(self, name: str, parameter: str) -> bool:
        """Whether the builder for ``name`` takes a keyword ``parameter``."""
        entry, _ = self._resolve(name)
        try:
            sig = inspect.signature(entry.builder)
        except (TypeError, ValueError):
            return False
        return parameter in sig.parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())

    def list(self, filter: str | None = None) -> list[str]:  # noqa: A002 - public verb
        """Sorted names, optionally restricted by an fnmatch pattern.

        A namespace contributes the names its builder lists (a ``list_names``
        attribute) and otherwise its ``prefix/*`` pattern.
        """
        self._ensure_discovered()
        self._settle()
        names: set[str] = set()
        for entry in self._entries.values():
            if entry.namespace:
                lister = getattr(entry.builder, "list_names", None)
                if lister is None:
                    names.add(entry.name)
                    continue
                try:
                    names.update(lister())
                except Exception as exc:  # noqa: BLE001
                    warnings.warn(f"sktransfer: could not list {self.kind}s of namespace "
                                  f"{entry.name!r}: {exc}", RuntimeWarning, stacklevel=2)
                    names.add(entry.name)
            else:
                names.add(entry.name)
        if filter is not None:
            names = {n for n in names if fnmatch.fnmatchcase(n, filter)}
        return sorted(names)

    def check_name(self, name: str) -> None:
        """Raise the unknown-name error (with suggestions) unless ``name`` can be built,
        resolving it as :meth:`get` does: inside a namespace, its builder's
        ``check_name(name)`` (which raises its own error) or ``provides(name)`` decides
        when it has one, else the builder is trusted with every name under its prefix."""
        entry, via_namespace = self._resolve(name)
        if not via_namespace:
            return
        # a namespace may explain itself (timm: "model 'resnet18' has no pretrained tag")
        own_check = getattr(entry.builder, "check_name", None)
        if own_check is not None:
            own_check(name)
        elif not _provides(entry, name):
            raise ValueError(self.unknown_message(name))

    def source(self, name: str) -> str:
        """The distribution (or ``register()``) that provided ``name``."""
        return self._resolve(name)[0].source

    def failed(self) -> dict[str, str]:
        """Entry points that failed to load: name -> 'package: error'."""
        self._ensure_discovered()
        self._settle()
        return {k: f"{d}: {type(e).__name__}: {e}" for k, (d, e) in self._failed.items()}


def close_names(name: str, names, n: int = 3) -> list[str]:
    """Up to ``n`` of ``names`` that ``name`` was probably meant to be.

    Names that start with it come first (``efficientnet_lite`` ->
    ``efficientnet_lite0``), then names that contain it, then difflib's close
    matches (``resnet81`` -> ``resnet18``); shorter names first within a kind.
    """
    names = list(names)
    lowered = name.lower()
    prefixed = sorted((c for c in names if c.lower().startswith(lowered)), key=len)
    contained = sorted((c for c in names if lowered in c.lower()), key=len) if lowered else []
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    return list(dict.fromkeys(prefixed + contained + close))[:n]


def _provides(entry: _Entry, name: str) -> bool:
    """Whether namespace ``entry`` provides ``name``: its builder's ``provides(name)``
    when it has one (cheap), else every name under its prefix, as ``get`` resolves it
    (the builder itself then says what it cannot build). A listing is never the test:
    it shows the names a namespace offers, not every name it builds (``timm/resnet18``
    is listed, ``timm/resnet18.a1_in1k``, a pretrained tag of it, is built too)."""
    provides = getattr(entry.builder, "provides", None)
    if provides is None:
        return True
    try:
        return bool(provides(name))
    except Exception:  # noqa: BLE001 - unknown means "may provide it": the built-in wins
        return True


def _listed(entry: _Entry) -> list[str]:
    """The names a namespace entry lists (empty when it cannot list them)."""
    lister = getattr(entry.builder, "list_names", None)
    if lister is None:
        return []
    try:
        return list(lister())
    except Exception:  # noqa: BLE001 - list() reports this; here it means "unknown"
        return []


def refresh_plugins() -> None:
    """Forget discovered entry points of every registry (after a pip install)."""
    importlib.invalidate_caches()
    for registry in _ALL_REGISTRIES:
        registry.refresh()
