"""What the ``sktransfer`` command shows: tables, plots, colour, progress, interrupts."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from .._console import Uncoloured, shows_progress, use_colour
from .._files import atomic_output

__all__ = ["use_colour", "stdout_to_stderr", "table", "save_plot", "progress", "interrupts",
           "raw_file_names"]

@contextlib.contextmanager
def stdout_to_stderr():
    """Send prints (skorch's epoch table) to stderr, keeping stdout for results;
    without colour codes unless stderr is a terminal."""
    old = sys.stdout
    sys.stdout = sys.stderr if use_colour(sys.stderr) else Uncoloured(sys.stderr)
    try:
        yield
    finally:
        sys.stdout = old


def progress(iterable, desc, total=None, disable=False):
    """A tqdm bar on stderr, drawn only where someone watches it (see ``_console``)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False,
                disable=disable or not shows_progress(sys.stderr), dynamic_ncols=True)


def table(rows, header) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


def save_plot(make_figure, path: str) -> None:
    """Draw and write a plot, or say why it was skipped when matplotlib is missing."""
    try:
        fig = make_figure()
    except ImportError as exc:
        if "matplotlib" not in str(exc):
            raise
        print(f"plot skipped ({path} not written): matplotlib is not installed; "
              f"pip install 'sktransfer[plot]' to get it", file=sys.stderr)
        return
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix[1:].lower() or None)
    print(f"plot written to {path}", file=sys.stderr)


@contextlib.contextmanager
def raw_file_names(stream):
    """Write file names that are not valid in the stream's encoding back as their
    original bytes (Python holds them as surrogates), as ``ls`` does."""
    errors = getattr(stream, "errors", None)
    if errors is None or not hasattr(stream, "reconfigure"):
        yield
        return
    stream.reconfigure(errors="surrogateescape")
    try:
        yield
    finally:
        stream.reconfigure(errors=errors)


class _InterruptFlag:
    def __init__(self):
        self.seen = False

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts():
    """Remember a Ctrl-C that library code swallows (skorch ends ``fit`` quietly on
    KeyboardInterrupt and keeps the half-trained model); ``check()`` re-raises it."""
    flag = _InterruptFlag()

    def handler(signum, frame):
        flag.seen = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals cannot be caught here
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
