"""Errors of the ``sktransfer`` command, and library errors said in its words.

The library speaks Python (``list_backbones()``, ``weights='/path/to/file.pth'``);
on the command line the same advice names commands and flags (``sktransfer
backbones``, ``--weights /path/to/file.pth``). The library's messages stay as
they are for Python users; :func:`cli_message` rephrases them here.
"""

from __future__ import annotations

import re

__all__ = ["PROG", "CLIError", "cli_message"]

PROG = "sktransfer"


class CLIError(Exception):
    """A problem to report as one line, with an exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# (pattern, replacement), applied in order
_PHRASES = [
    (re.compile(r"\bSee (?:sktransfer\.)?list_backbones\(\) for the (\d+) available names\."),
     rf"Run `{PROG} backbones` for the \1 available names."),
    (re.compile(r"\b(?:sktransfer\.)?list_backbones\('([^']*)'\)"), rf"`{PROG} backbones '\1'`"),
    (re.compile(r"\b(?:sktransfer\.)?list_backbones\(\)"), f"`{PROG} backbones`"),
    (re.compile(r"\b(?:sktransfer\.)?list_(?:strategies|freezers)\(\)"), f"`{PROG} strategies`"),
    (re.compile(r"\bweights='/path/to/file\.pth'"), "--weights /path/to/file.pth"),
    (re.compile(r"\bweights=None\b"), "--weights none"),
    (re.compile(r"\bpass its path as weights\b"), "pass its path with --weights"),
    (re.compile(r"\bfreeze_depth='?([\w-]+)'?"), r"--freeze-depth \1"),
    (re.compile(r"\bfreeze_depth\b"), "--freeze-depth"),
    (re.compile(r"\bimage_size\b"), "--image-size"),
]


def cli_message(text: str) -> str:
    """``text`` (a library error message) with Python advice turned into CLI advice."""
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text
