"""Folders of images or audio files: one sub-folder per class, links followed safely."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["load_image_folder", "load_audio_folder", "IMAGE_EXTENSIONS", "AUDIO_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pbm", ".jfif")
#: what the ``sktransfer-audio`` reader (libsndfile) decodes: WAV, FLAC, Ogg Vorbis / Opus,
#: AIFF, MP3 (libsndfile >= 1.1)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


def load_audio_folder(path, extensions: Sequence[str] | None = None):
    """Paths and labels of audio files (``AUDIO_EXTENSIONS``) in class sub-folders.

    The same loader as :func:`load_image_folder` (links, hidden files, order),
    for ``root/<class>/<clip>.wav``; pass the paths as ``X`` to an audio
    backbone (``audio/<image backbone>``, ``resemblyzer``).

    Returns
    -------
    paths : list of str
    labels : numpy array of str
    """
    return _load_folder(path, extensions or AUDIO_EXTENSIONS, "audio")


def load_image_folder(path, extensions: Sequence[str] | None = None):
    """Paths and labels from a one-sub-folder-per-class layout.

    ``root/cat/1.jpg, root/dog/2.png`` -> ``(["root/cat/1.jpg", ...], ["cat", ...])``,
    like torchvision's ``ImageFolder``. Files whose extension is not an image
    extension (or not in ``extensions``) are skipped; hidden files and folders
    too. Paths are sorted, so the result is deterministic.

    Folder links are followed only inside ``root``: a link that leads out of
    ``root``, back to ``root`` or to one of its own parents (a cycle, e.g.
    ``root/zz -> root``), or to a folder already listed is skipped with a
    warning that names it, so no image is listed twice or under a bogus label.
    Links to single files are followed; a broken one - a cycle (``x1.jpg ->
    x2.jpg -> x1.jpg``) or a link to nothing - is skipped with a warning that
    names it.

    Returns
    -------
    paths : list of str
    labels : numpy array of str
    """
    return _load_folder(path, extensions or IMAGE_EXTENSIONS, "image")


def _load_folder(path, extensions: Sequence[str], what: str):
    root = Path(os.fspath(path)).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} folder not found: {str(root)!r}")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder; expected one sub-folder per "
                                 f"class")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower()
                 for e in extensions)
    root_real = os.path.realpath(root)
    listed = _real_tree(root)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for class_dir in class_dirs:
        if class_dir.is_symlink() and not _follow_link(class_dir, root_real, listed, what):
            continue
        files = sorted(_files_under(class_dir, root_real, listed, exts, what))
        paths += files
        labels += [class_dir.name] * len(files)
    if not paths:
        raise ValueError(f"no {what} files ({', '.join(exts)}) found in class sub-folders of "
                         f"{str(root)!r}; expected root/<class>/<{what} file>")
    return paths, np.asarray(labels)


def _real_tree(root: Path) -> set:
    """Real paths of ``root`` and every non-hidden folder under it, links not followed."""
    tree = set()
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        tree.add(os.path.realpath(dirpath))
    return tree


def _follow_link(link: Path, root_real: str, listed: set, what: str) -> bool:
    """Whether to walk the folder link ``link``; warns when it will not.

    Followed only to a folder inside the root that is listed nowhere else (for
    example a hidden store folder); the target is then recorded as listed.
    """
    real = os.path.realpath(link)
    if os.path.commonpath([real, os.path.realpath(link.parent)]) == real:
        problem = "leads back to a folder that contains it (a link cycle)"
    elif os.path.commonpath([real, root_real]) != root_real:
        problem = f"leads out of the {what} folder, to {real!r}"
    elif real in listed:
        problem = f"leads to {real!r}, which is already listed"
    else:
        listed.add(real)
        return True
    warnings.warn(f"load_{what}_folder: skipped folder link {str(link)!r}: it {problem}. Copy "
                  f"or move the files into the folder instead.", UserWarning, stacklevel=4)
    return False


def _broken_link(entry: os.DirEntry) -> str | None:
    """Why the link ``entry`` leads to no file or folder, or None when it does (or is
    no link)."""
    if not entry.is_symlink():
        return None
    try:
        os.stat(entry.path)
    except FileNotFoundError:
        return f"points to {os.readlink(entry.path)!r}, which does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # x1.jpg -> x2.jpg -> x1.jpg
            return "is part of a link cycle (too many levels of symbolic links)"
        return f"cannot be followed ({exc.strerror})"
    return None


def _files_under(folder: Path, root_real: str, listed: set, exts, what: str) -> list[str]:
    files = []
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        child = folder / entry.name
        problem = _broken_link(entry)
        if problem is not None:
            warnings.warn(f"load_{what}_folder: skipped link {str(child)!r}: it {problem}. "
                          f"Remove the link or point it at a file.", UserWarning,
                          stacklevel=4)
            continue
        if entry.is_dir():
            if not entry.is_symlink() or _follow_link(child, root_real, listed, what):
                files += _files_under(child, root_real, listed, exts, what)
        elif entry.is_file() and child.suffix.lower() in exts:
            files.append(str(child))
    return files
