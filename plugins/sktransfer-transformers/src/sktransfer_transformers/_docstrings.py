"""A real, offline text-classification set: docstrings labelled by their package.

The first paragraph of the docstring of each public function, class and method
of numpy, torch, scikit-learn, PIL and the Python standard library, labelled
``numpy``, ``torch``, ``sklearn``, ``PIL`` or ``stdlib``. The package names
themselves (``numpy``, ``np.``, ``torch``, ...) are blanked out, so the task is
to recognise the *topic and style* of the text, not to spot a name.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

import numpy as np

__all__ = ["load_docstrings", "DOCSTRING_MODULES"]

DOCSTRING_MODULES = {
    "numpy": ["numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma",
              "numpy.polynomial.polynomial", "numpy.lib.stride_tricks", "numpy.testing",
              "numpy.char", "numpy.emath"],
    "torch": ["torch", "torch.nn.functional", "torch.linalg", "torch.fft", "torch.special",
              "torch.nn", "torch.optim", "torch.utils.data", "torch.distributions",
              "torch.autograd", "torch.nn.init", "torch.sparse"],
    "sklearn": ["sklearn.linear_model", "sklearn.preprocessing", "sklearn.metrics",
                "sklearn.model_selection", "sklearn.ensemble", "sklearn.cluster",
                "sklearn.decomposition", "sklearn.feature_extraction.text", "sklearn.svm",
                "sklearn.tree", "sklearn.neighbors", "sklearn.utils", "sklearn.datasets",
                "sklearn.pipeline", "sklearn.impute", "sklearn.manifold", "sklearn.base",
                "sklearn.covariance", "sklearn.feature_selection", "sklearn.mixture",
                "sklearn.naive_bayes", "sklearn.neural_network", "sklearn.inspection",
                "sklearn.calibration", "sklearn.compose", "sklearn.gaussian_process"],
    "PIL": ["PIL.Image", "PIL.ImageOps", "PIL.ImageFilter", "PIL.ImageDraw", "PIL.ImageEnhance",
            "PIL.ImageChops", "PIL.ImageFont", "PIL.ImageColor", "PIL.ImageStat",
            "PIL.ImageSequence", "PIL.ImageFile", "PIL.ImageMath", "PIL.ImagePalette",
            "PIL.ImageMorph", "PIL.ImageCms", "PIL.ImageTransform", "PIL.ExifTags",
            "PIL.TiffImagePlugin", "PIL.PngImagePlugin", "PIL.JpegImagePlugin", "PIL.GifImagePlugin",
            "PIL.ImageShow", "PIL.ImageGrab", "PIL.features", "PIL.ImageWin", "PIL.PSDraw"],
    "stdlib": ["os", "os.path", "shutil", "json", "re", "itertools", "functools", "collections",
               "string", "textwrap", "math", "statistics", "random", "datetime", "pathlib",
               "subprocess", "logging", "argparse", "csv", "urllib.parse", "urllib.request",
               "http.client", "socket", "threading", "asyncio", "inspect", "typing", "zipfile",
               "tarfile", "sqlite3", "heapq", "bisect", "decimal", "fractions", "difflib",
               "pickle", "email.message", "unittest", "tempfile", "glob", "io", "codecs",
               "contextlib", "dataclasses", "enum", "hashlib", "base64", "struct", "time",
               "calendar", "locale", "gettext", "configparser", "queue", "sched", "select",
               "signal", "ssl", "uuid", "xml.etree.ElementTree", "html.parser", "smtplib",
               "ftplib", "imaplib", "mailbox", "gzip", "bz2", "lzma", "copy", "pprint",
               "weakref", "types", "abc", "operator", "secrets", "hmac", "zlib",
               "multiprocessing", "concurrent.futures", "platform", "sys", "traceback", "warnings",
               "ast", "dis", "tokenize", "pdb", "timeit", "doctest", "ipaddress", "wave",
               "colorsys", "shlex", "fnmatch", "filecmp", "netrc", "plistlib", "getpass"],
}

# not inside a longer word, but also in identifiers such as ``numpy_array``
_NAMES = re.compile(r"(?<![a-z])(numpy|np|torch|sklearn|scikit-learn|scikit_learn|PIL|"
                    r"pillow)(?![a-z])\.?", re.IGNORECASE)


def _summary(doc: str, max_chars: int) -> str | None:
    """The first paragraph of a docstring, one line, names blanked; None if too short."""
    doc = inspect.cleandoc(doc)
    paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    text = _NAMES.sub("", text).strip()
    if len(text) < 20 or text.lower().startswith(("see ", "alias", "deprecated")):
        return None
    return text[:max_chars]


def _public_objects(module):
    for name in sorted(getattr(module, "__all__", None) or dir(module)):
        if name.startswith("_"):
            continue
        try:
            obj = getattr(module, name)
        except Exception:  # noqa: BLE001 - lazy attributes that fail are skipped
            continue
        if inspect.ismodule(obj):
            continue
        yield f"{module.__name__}.{name}", obj
        if inspect.isclass(obj):
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and callable(member):
                    yield f"{module.__name__}.{name}.{attr}", member


def _collect(label: str, modules: list[str], max_chars: int) -> dict[str, str]:
    texts: dict[str, str] = {}
    for module_name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except ImportError:
            continue
        for _, obj in _public_objects(module):
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str):
                continue
            text = _summary(doc, max_chars)
            if text is not None:
                texts.setdefault(text, label)
    return texts


def load_docstrings(max_chars: int = 300, min_per_class: int = 200):
    """Docstring summaries labelled by package, from the installed packages (offline).

    Parameters
    ----------
    max_chars : int, default=300
        Each text is the first paragraph of a docstring, cut to this length.
    min_per_class : int, default=200
        Raise if a package yields fewer distinct texts than this.

    Returns
    -------
    texts : list of str
        Sorted by (label, text), so the result is deterministic for given
        package versions; a text found in two packages keeps its first label
        and duplicates are dropped.
    labels : ndarray of str
        ``"numpy"``, ``"torch"``, ``"sklearn"``, ``"PIL"`` or ``"stdlib"``.
    """
    seen: dict[str, str] = {}
    for label, modules in DOCSTRING_MODULES.items():
        for text, lab in _collect(label, modules, max_chars).items():
            seen.setdefault(text, lab)
    pairs = sorted((lab, text) for text, lab in seen.items())
    labels = np.asarray([lab for lab, _ in pairs])
    counts = {lab: int((labels == lab).sum()) for lab in DOCSTRING_MODULES}
    short = {lab: n for lab, n in counts.items() if n < min_per_class}
    if short:
        raise ValueError(f"too few docstrings for {short} (need {min_per_class} per class); "
                         f"are numpy, torch, scikit-learn and Pillow installed?")
    return [text for _, text in pairs], labels
