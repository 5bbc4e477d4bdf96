"""The console policy (``_console``): colour and progress bars only for a watcher."""

from __future__ import annotations

import io
import sys

import numpy as np

from sktransfer import TransferClassifier
from sktransfer._console import progress_bar, shows_progress, use_colour


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_for_a_terminal_without_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(_Terminal()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(_Terminal())


def test_no_progress_bar_into_a_file(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not shows_progress() and progress_bar(10, "x", enabled=True) is None
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = progress_bar(10, "features", enabled=True)
    bar.update(10)
    bar.close()
    assert "features" in terminal.getvalue()
    assert progress_bar(10, "x", enabled=False) is None


def test_epoch_table_has_no_colour_codes_in_a_log(capsys, monkeypatch):
    """``make demo > log.txt``: skorch's epoch table arrives without ANSI codes."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    X = np.random.RandomState(0).rand(12, 8, 8, 3).astype(np.float32)
    y = np.arange(12) % 2
    TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, max_epochs=2, min_steps=0,
                       head_warmup=0, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "\x1b[" not in out
    monkeypatch.setattr(sys, "stdout", _Terminal())
    TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, max_epochs=2, min_steps=0,
                       head_warmup=0, verbose=1, random_state=0).fit(X, y)
    assert "\x1b[" in sys.stdout.getvalue()  # a terminal keeps skorch's colours
