"""Folders of images or audio files: one sub-folder per class, links followed safely."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["load_image_folder", "load_audio_folder", "list_files", "IMAGE_EXTENSIONS",
           "AUDIO_EXTENSIONS"]

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


def list_files(folder, extensions: Sequence[str], *, what: str = "image",
               caller: str | None = None) -> list[str]:
    """Files under ``folder`` (at any depth) whose extension is in ``extensions``, sorted.

    The one folder walker: :func:`load_image_folder`, :func:`load_audio_folder` and the
    ``sktransfer`` command (``predict DIR``) list files with it, so they see the same
    files. Hidden files and folders are skipped. Links to files are followed; a broken
    one (a cycle, a link to nothing) is skipped with a warning. Links to folders are
    followed only when they lead inside ``folder`` to a folder that is listed nowhere
    else; one that leads out of ``folder``, back to a folder that contains it (a
    cycle) or to a folder already listed is skipped with a warning naming it.
    ``caller`` names the caller in the warnings (default ``load_<what>_folder``).
    """
    root = Path(os.fspath(folder)).expanduser()
    return sorted(_walk(root, _extensions(extensions), what, caller))


def _extensions(extensions) -> tuple:
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def _walk(root: Path, exts: tuple, what: str, caller: str | None) -> list[str]:
    walk = _Walk(os.path.realpath(root), _real_tree(root), exts, what,
                 caller or f"load_{what}_folder")
    return walk.files_under(root)


def _load_folder(path, extensions: Sequence[str], what: str):
    root = Path(os.fspath(path)).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} folder not found: {str(root)!r}")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder; expected one sub-folder per "
                                 f"class")
    exts = _extensions(extensions)
    labelled = []
    for file in _walk(root, exts, what, None):
        parts = Path(file).relative_to(root).parts
        if len(parts) > 1:  # files beside the class folders belong to no class
            labelled.append((parts[0], file))
    labelled.sort()
    if not labelled:
        raise ValueError(f"no {what} files ({', '.join(exts)}) found in class sub-folders of "
                         f"{str(root)!r}; expected root/<class>/<{what} file>")
    return [file for _, file in labelled], np.asarray([label for label, _ in labelled])


def _real_tree(root: Path) -> set:
    """Real paths of ``root`` and every non-hidden folder under it, links not followed."""
    tree = set()
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        tree.add(os.path.realpath(dirpath))
    return tree


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


class _Walk:
    """One walk of a folder tree: what is listed so far, and the warnings' words."""

    def __init__(self, root_real: str, listed: set, exts: tuple, what: str, caller: str):
        self.root_real, self.listed, self.exts = root_real, listed, exts
        self.what, self.caller = what, caller

    def follow_link(self, link: Path) -> bool:
        """Whether to walk the folder link ``link``; warns when it will not.

        Followed only to a folder inside the root that is listed nowhere else (for
        example a hidden store folder); the target is then recorded as listed.
        """
        real = os.path.realpath(link)
        if os.path.commonpath([real, os.path.realpath(link.parent)]) == real:
            problem = "leads back to a folder that contains it (a link cycle)"
        elif os.path.commonpath([real, self.root_real]) != self.root_real:
            problem = f"leads out of the {self.what} folder, to {real!r}"
        elif real in self.listed:
            problem = f"leads to {real!r}, which is already listed"
        else:
            self.listed.add(real)
            return True
        warnings.warn(f"{self.caller}: skipped folder link {str(link)!r}: it {problem}. Copy "
                      f"or move the files into the folder instead.", UserWarning, stacklevel=5)
        return False

    def files_under(self, folder: Path) -> list[str]:
        files = []
        # sorted: which of two links to one folder is followed must not depend on the disk
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            child = folder / entry.name
            problem = _broken_link(entry)
            if problem is not None:
                warnings.warn(f"{self.caller}: skipped link {str(child)!r}: it {problem}. "
                              f"Remove the link or point it at a file.", UserWarning,
                              stacklevel=5)
                continue
            if entry.is_dir():
                if not entry.is_symlink() or self.follow_link(child):
                    files += self.files_under(child)
            elif entry.is_file() and child.suffix.lower() in self.exts:
                files.append(str(child))
        return files
