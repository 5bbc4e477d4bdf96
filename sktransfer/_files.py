"""File-system safety: refuse what is not a regular file, write outputs atomically."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["check_regular_file", "atomic_output"]

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular_file(path, what: str = "file") -> os.stat_result:
    """``os.stat(path)`` of a regular file (links followed), or a clear error.

    Opening a FIFO blocks until a writer appears and a device can stream
    forever, so anything that is not a regular file is refused before it is
    opened: ``FileNotFoundError`` when missing, ``IsADirectoryError`` for a
    folder, ``ValueError`` for the rest.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {os.fspath(path)!r}") from None
    if stat.S_ISREG(st.st_mode):
        return st
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{what} {os.fspath(path)!r} is a directory, not a file")
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise ValueError(f"{what} {os.fspath(path)!r} is {kind}, not a regular file; "
                     f"reading it could block or never end")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary file lives in the same folder (so ``os.replace`` is atomic)
    and keeps ``path``'s suffix (so writers that pick a format by extension,
    like ``savefig``, still work). On any exception - ``KeyboardInterrupt``
    included - it is removed and ``path`` is left exactly as it was.
    """
    target = Path(os.fspath(path)).expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}",
                               dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
