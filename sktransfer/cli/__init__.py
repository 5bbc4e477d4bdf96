"""The ``sktransfer`` command: list backbones and freezing strategies, download weights,
fit, predict, search, evaluate.

Every subcommand has ``--help``. Exit codes follow shell habits: 0 success,
1 an error while working (bad image folder, missing weights, unreadable model),
2 a usage error (unknown option, bad value), 130 interrupted. Errors are one
line on stderr; ``--traceback`` (or ``SKTRANSFER_TRACEBACK=1``) shows the full
Python traceback instead.

Every file a command writes (models, plots) is written to a temporary file in
the same folder and renamed over the target only when complete, so a failed or
interrupted command (Ctrl-C exits 130) leaves an existing file untouched.

Modules: ``_parser`` (arguments), ``_commands``, ``_evaluate`` and ``_download``
(what each subcommand does), ``_reading`` (DATA for a command, in its flags; the folder
walker and the CSV reader themselves are ``sktransfer._data``'s),
``_models`` (skops / joblib files), ``_output`` (tables, plots, colour, progress), ``_errors``
(library errors said with the command's own words).
"""

from __future__ import annotations

import os
import sys

from .._env import env_flag
from ._errors import PROG, CLIError, cli_message

__all__ = ["main", "build_parser"]


def build_parser():
    """The command's ``argparse.ArgumentParser``."""
    from ._parser import build_parser as build

    return build()


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run the ``sktransfer`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code instead of exiting, so it can be called from Python.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        show_traceback = args.traceback or env_flag("SKTRANSFER_TRACEBACK")
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    from sklearn.exceptions import NotFittedError

    from .. import PluginError

    expected = (CLIError, ValueError, TypeError, OSError, PluginError, NotFittedError,
                ImportError)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sktransfer predict ... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        except OSError:
            pass
        return 0
    except expected as exc:
        if show_traceback:
            raise
        print(f"{PROG} {args.command}: error: {cli_message(_one_line(exc))}", file=sys.stderr)
        return getattr(exc, "code", 1) if isinstance(exc, CLIError) else 1
