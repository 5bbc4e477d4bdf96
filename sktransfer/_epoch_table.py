"""The estimators' epoch table (``verbose=1``): skorch's ``PrintLog`` under the console
policy of ``_console`` - its colour codes only when stdout is a terminal."""

from __future__ import annotations

import sys

from skorch.callbacks import PrintLog

from ._console import uncoloured, use_colour

__all__ = ["EpochTable"]


class EpochTable(PrintLog):
    """skorch's ``PrintLog``, whose best-so-far highlights are ANSI colours only while
    stdout is a terminal (``make demo > log.txt`` gets a plain table)."""

    def format_row(self, row, key, color):
        text = super().format_row(row, key, color)
        return text if not isinstance(text, str) or use_colour(sys.stdout) else uncoloured(text)
