"""What the library writes to a console: one policy for colour and progress bars.

Colour codes and redrawn progress bars are for a person watching a terminal. Output
that goes to a file or a pipe (``make demo > log.txt``, a CI log) gets neither:
skorch's epoch table loses its ANSI colours and progress bars are not drawn (tqdm
would write a carriage-return frame per update). ``NO_COLOR`` (no-color.org) turns
colour off everywhere. Jupyter's notebook widgets count as a terminal for bars.
The CLI and the estimators both follow this module.
"""

from __future__ import annotations

import os
import re
import sys

__all__ = ["use_colour", "uncoloured", "Uncoloured", "shows_progress", "progress_bar"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def use_colour(stream) -> bool:
    """Colour only for a terminal, and never when ``NO_COLOR`` is set."""
    return not os.environ.get("NO_COLOR") and _is_terminal(stream)


def uncoloured(text: str) -> str:
    """``text`` without ANSI colour codes."""
    return _ANSI.sub("", text)


class Uncoloured:
    """A text stream that drops ANSI colour codes on the way to ``stream``."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(uncoloured(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def shows_progress(stream=None) -> bool:
    """Whether a progress bar on ``stream`` (stderr) is drawn: a terminal or a notebook."""
    return _is_terminal(sys.stderr if stream is None else stream) or _in_notebook()


def progress_bar(total: int | None, desc: str, enabled: bool, **kwargs):
    """A tqdm bar on stderr when ``enabled`` and someone can watch it, else None."""
    if not enabled or not shows_progress(sys.stderr):
        return None
    from tqdm.auto import tqdm

    kwargs.setdefault("unit", "img")
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, **kwargs)
