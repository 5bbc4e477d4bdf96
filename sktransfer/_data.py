"""Input adapters: whatever the user holds -> validated, lazily decoded samples.

Accepted ``X``:

* numpy arrays ``(N, H, W, C)``, ``(N, C, H, W)`` or ``(N, H, W)`` (uint8 in
  0..255, other integers within 0..255, or floats in [0, 1]), and the same as
  torch tensors. Floats outside [0, 1] (0..255 values, or images already
  mean/std-normalised) are refused: they would silently look ~255x too bright;
* 2-D arrays ``(N, F)`` for backbones that take vectors;
* lists, tuples, object arrays or pandas Series of file paths (``str`` or
  ``Path``), decoded lazily, one sample at a time, in the data loader;
* lists of PIL images of any size and mode;
* a one-column DataFrame or ``(N, 1)`` object array of paths or PIL images (what
  ``df[["image"]]`` and ``ColumnTransformer`` hand over) is that column.

Decoding rules, the same for files and PIL images: the EXIF orientation tag is
honoured (as ``PIL.ImageOps.exif_transpose`` does); 16- and 32-bit integer modes
(``I;16*``, ``I``) are read as 16-bit data, pixel / 65535, and a value outside
0..65535 is an error; float mode ``F`` must lie in [0, 1] like float arrays. A
fixed range per mode means equal pixel values give equal inputs in every image.
Images more elongated than ``MAX_ASPECT_RATIO`` (50:1) are refused: resizing the
short side to the network's input would make the long side, and the memory,
explode (a 1x20000 PNG of 140 bytes would need gigabytes).

Everything is validated before any training starts; a problem raises a
``ValueError``/``TypeError`` (``FileNotFoundError`` for a missing file) whose
message names the problem and the offending item. The caller's ``X`` is never
modified: arrays are read, not converted in place, and uint8 -> float happens
per sample.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ._files import check_regular_file

from ._text import TextInput, TextPreprocessor, as_text_input

__all__ = ["ImageInput", "VectorInput", "TextInput", "as_input", "SampleDataset", "Preprocessor",
           "TextPreprocessor", "collate_samples", "split_batch", "PairCollate",
           "load_image_folder", "make_augment", "IMAGE_EXTENSIONS", "MAX_ASPECT_RATIO"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pbm", ".jfif")
_CHANNELS = (1, 3, 4)
#: longest side / shortest side beyond which an image is refused (see module docstring)
MAX_ASPECT_RATIO = 50
_FLOAT_SLACK = 1e-3  # rounding noise around [0, 1] that is not a scaling mistake


def _describe(obj) -> str:
    return type(obj).__module__.split(".")[0] + "." + type(obj).__qualname__ \
        if type(obj).__module__ != "builtins" else type(obj).__name__


class ImageInput:
    """A validated collection of images; ``load(i)`` gives a float (C, H, W) tensor in [0, 1]."""

    kind = "image"

    def __init__(self, items, form: str):
        self.items = items
        self.form = form  # "array", "paths", "pil"

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, min_side: int | None = None) -> torch.Tensor:
        """Sample ``index`` as float (C, H, W) in [0, 1].

        ``min_side``: the short side the caller will resize to. A file or PIL
        image much larger than that is first reduced (JPEG DCT scaling, then
        PIL's box ``reduce``) to no less than twice it, before the float
        conversion, so a 12-megapixel photo costs megabytes, not a gigabyte.
        """
        if self.form == "array":
            return _array_to_tensor(self.items[index])
        if self.form == "paths":
            return _decode_path(self.items[index], min_side)
        return _pil_to_tensor(_reduced(self.items[index], min_side), f"X[{index}]")


class VectorInput:
    """A validated float32 ``(N, F)`` array for vector backbones."""

    kind = "vector"
    form = "vector"

    def __init__(self, array: np.ndarray):
        self.items = array

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_features(self) -> int:
        return self.items.shape[1]

    def load(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.items[index], dtype=np.float32))


# -- arrays ------------------------------------------------------------------------
def torch_ready(array: np.ndarray) -> np.ndarray:
    """``array``, copied if torch cannot share its memory (negative strides, as in
    ``X[..., ::-1]``; numpy calls a 1-element view contiguous even then)."""
    array = np.asarray(array)
    if any(stride < 0 for stride in array.strides) or not array.flags.writeable:
        return array.copy()
    return array


def _array_to_tensor(sample: np.ndarray) -> torch.Tensor:
    """(H, W, C) / (C, H, W) / (H, W) sample, already layout-checked -> float CHW in [0,1]."""
    t = torch.as_tensor(torch_ready(sample))
    if t.is_floating_point():
        return t.to(torch.float32)
    return t.to(torch.float32) / 255.0


def _layout(shape: tuple, name: str = "X") -> str:
    """'nhwc', 'nchw' or 'nhw' for an image batch shape, or raise."""
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise ValueError(f"{name} has {len(shape)} dimensions {shape}; images must be "
                         f"(N, H, W, C), (N, C, H, W) or (N, H, W), and vectors (N, F)")
    if shape[1] in _CHANNELS and shape[-1] not in _CHANNELS:
        return "nchw"
    if shape[-1] in _CHANNELS:
        return "nhwc"
    raise ValueError(f"{name} has shape {shape}: an unsupported channel count "
                     f"(neither axis 1 nor the last axis is 1, 3 or 4). Pass (N, H, W, C) or "
                     f"(N, C, H, W) images with 1 (gray), 3 (RGB) or 4 (RGBA) channels.")


class _ArrayView:
    """Per-sample access to an image array in CHW order, without copying the array."""

    def __init__(self, array, layout: str):
        self.array = array
        self.layout = layout
        self.shape = array.shape
        self.dtype = array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        sample = np.asarray(self.array[index])
        if self.layout == "nhwc":
            return sample.transpose(2, 0, 1)
        if self.layout == "nhw":
            return sample[None]
        return sample


def _check_numeric(array: np.ndarray, name: str = "X") -> None:
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"{name} has dtype {array.dtype}; images must be uint8 (0..255) or "
                        f"float (0..1) arrays")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} holds complex numbers; pass real-valued images")
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            what = "NaN" if np.isnan(array[tuple(bad)]) else "infinite values"
            raise ValueError(f"{name} contains {what} (first at sample {bad[0]}); remove or "
                             f"impute them before fitting")
        if array.size:
            _check_unit_range(array, name)
    elif array.dtype != np.uint8 and array.size:
        lo, hi = array.min(), array.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name} is an integer array with values in [{lo}, {hi}]; integer "
                             f"images must lie in 0..255 (or pass floats in [0, 1])")


def _check_unit_range(array: np.ndarray, name: str) -> None:
    """Float images must lie in [0, 1]; say what the values look like otherwise."""
    lo, hi = float(array.min()), float(array.max())
    if lo >= -_FLOAT_SLACK and hi <= 1 + _FLOAT_SLACK:
        return
    flat = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    first = int(np.argmax((flat < -_FLOAT_SLACK).any(1) | (flat > 1 + _FLOAT_SLACK).any(1)))
    if lo < -_FLOAT_SLACK:
        why = ("negative values look mean/std-normalised: pass the images before "
               "normalisation (sktransfer normalises for the backbone itself), as floats in "
               "[0, 1] or uint8")
    else:
        why = "this looks like 0..255 pixel values: divide by 255 (X / 255) or pass uint8"
    raise ValueError(f"{name} is a float image array with values in [{lo:.4g}, {hi:.4g}] "
                     f"(first out of range at sample {first}); float images must lie in "
                     f"[0, 1]: {why}")


def _check_aspect(height: int, width: int, where: str) -> None:
    short, long = sorted((int(height), int(width)))
    if short >= 1 and long > MAX_ASPECT_RATIO * short:
        raise ValueError(f"{where} is {width}x{height} pixels, an aspect ratio over "
                         f"{MAX_ASPECT_RATIO}:1; resizing its short side to the network input "
                         f"would blow its long side up to gigabytes. Crop or tile it first.")


def _image_array(array, name="X") -> ImageInput:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    _check_numeric(array, name)
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:  # torch has no float128
        array = array.astype(np.float64)
    layout = _layout(array.shape, name)
    if min(array.shape[1:]) < 1:
        raise ValueError(f"{name} has shape {array.shape}: images must have at least 1x1 pixel")
    h, w = array.shape[1:3] if layout in ("nhwc", "nhw") else array.shape[2:4]
    _check_aspect(h, w, f"every image of {name} {array.shape}")
    return ImageInput(_ArrayView(array, layout), "array")


# -- files and PIL ----------------------------------------------------------------
_EXIF_ORIENTATION = 0x0112


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a corrupt EXIF block means "no orientation"
        return 1


def _wide_to_tensor(img, where: str) -> torch.Tensor:
    """Modes I;16*, I and F -> one float channel, by the fixed range of the mode."""
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{where} holds NaN or infinite pixel values")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < -_FLOAT_SLACK or hi > 1 + _FLOAT_SLACK:
            raise ValueError(f"{where} is a float (mode F) image with values in "
                             f"[{lo:.4g}, {hi:.4g}]; float pixels must lie in [0, 1]. Rescale "
                             f"it (e.g. to 8- or 16-bit integers) before use.")
        return torch.from_numpy(np.clip(arr, 0, 1))[None]
    arr = np.asarray(img, dtype=np.int64 if img.mode == "I" else np.float32)
    if img.mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ValueError(f"{where} is a 32-bit integer (mode I) image with values in "
                         f"[{arr.min()}, {arr.max()}]; integer images are read as 16-bit data "
                         f"(0..65535). Rescale it to 8 or 16 bits first.")
    return torch.from_numpy(arr.astype(np.float32) / 65535.0)[None]


def _pil_to_tensor(img, where: str) -> torch.Tensor:
    """A PIL image of any mode -> float (C, H, W) in [0, 1] (1 or 3 channels).

    Honours the EXIF orientation; wide modes are scaled by their fixed range
    (see the module docstring), never by the image's own maximum.
    """
    if _orientation(img) != 1:
        from PIL import ImageOps

        img = ImageOps.exif_transpose(img)
    if img.mode not in ("RGB", "L"):
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return _wide_to_tensor(img, where)
        if img.mode in ("LA", "La"):
            img = img.getchannel(0)  # drop alpha; PIL cannot convert "La" to "L"
        else:
            img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).to(torch.float32) / 255.0
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


_REDUCING_GAP = 2  # keep at least this many times the target side for the final resize


def _reduction(img, min_side: int | None) -> int:
    if not min_side:
        return 1
    return max(1, min(img.size) // (_REDUCING_GAP * int(min_side)))


def _reduced(img, min_side: int | None):
    """``img`` shrunk by an integer factor while its short side stays >= 2 x ``min_side``."""
    factor = _reduction(img, min_side)
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # a mode PIL cannot reduce: decode it at full size
        return img


def _decode_path(path: str, min_side: int | None = None) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            factor = _reduction(img, min_side)
            if factor >= 2 and img.format == "JPEG":
                img.draft(img.mode, (img.width // factor, img.height // factor))
            img.load()
            return _pil_to_tensor(_reduced(img, min_side), path)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path!r}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            SyntaxError) as exc:
        raise ValueError(f"cannot decode image file {path!r}: {exc}") from exc


def _check_paths(paths: Sequence[str]) -> None:
    from PIL import Image, UnidentifiedImageError

    for i, p in enumerate(paths):
        if not os.path.exists(p):
            hint = "" if any(c in p for c in "/\\.") else \
                " (X holds strings, which are read as image file paths)"
            raise FileNotFoundError(f"image file not found: {p!r} (X[{i}]){hint}")
        if os.path.isdir(p):
            raise ValueError(f"X[{i}] is a directory, not an image file: {p!r}; use "
                             f"load_image_folder() for a folder of images")
        check_regular_file(p, f"X[{i}], image file")  # a FIFO would block forever
        try:  # reads the header only: cheap, and catches non-images before training
            with Image.open(p) as img:
                width, height = img.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
                SyntaxError) as exc:
            raise ValueError(f"X[{i}] is not a decodable image file: {p!r} ({exc})") from exc
        _check_aspect(height, width, f"X[{i}] ({p!r})")


def as_input(X, vector_ok: bool = True, image_ok: bool = True, name: str = "X",
             kind: str | None = None):
    """Validate ``X`` and wrap it as :class:`ImageInput` or :class:`VectorInput`
    (:class:`TextInput` when ``kind="text"``: the backbone takes texts)."""
    from PIL import Image

    if kind == "text":
        return as_text_input(X, name)
    if isinstance(X, (ImageInput, VectorInput)):
        return X
    if X is None:
        raise ValueError(f"{name} is None; pass images (array, file paths or PIL images)")
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} is a single {type(X).__name__} ({X!r}); pass a list of file "
                        f"paths, e.g. [{X!r}], or use load_image_folder() for a folder")
    if isinstance(X, Image.Image):
        raise TypeError(f"{name} is a single PIL image; pass a list of images: [img]")
    if hasattr(X, "iloc") and hasattr(X, "dtype") and not hasattr(X, "columns"):  # Series
        X = X.to_numpy(dtype=object) if X.dtype == object else X.to_numpy()
    elif hasattr(X, "columns") and hasattr(X, "to_numpy"):  # DataFrame
        X = X.to_numpy()
    X = _image_column(X)
    if isinstance(X, torch.Tensor):
        if X.dtype == torch.bfloat16:  # numpy has no bfloat16
            X = X.float()
        if X.dim() <= 2:  # vectors, or a shape the numpy path explains
            X = X.detach().cpu().numpy()
        else:
            if len(X) == 0:
                raise ValueError(f"{name} is empty (0 samples); pass at least one image")
            if not image_ok:
                raise ValueError(f"this backbone takes 2-D vectors (N, F); got a tensor of "
                                 f"shape {tuple(X.shape)}")
            if X.is_complex() or X.dtype == torch.bool:
                raise TypeError(f"{name} has dtype {X.dtype}; pass uint8 or float images")
            return _image_array(X, name)
    if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
        # a 1-D object array or a list may hold paths or PIL images; N-D object arrays
        # can only be numbers
        items = None if isinstance(X, np.ndarray) and X.ndim != 1 else list(X)
        if items is not None:
            if len(items) == 0:
                raise ValueError(f"{name} is empty (0 samples); pass at least one image")
            if all(isinstance(v, (str, os.PathLike)) for v in items):
                if not image_ok:
                    raise ValueError(f"this backbone takes 2-D numeric vectors; {name} holds "
                                     f"file paths")
                paths = [os.fspath(v) for v in items]
                _check_paths(paths)
                return ImageInput(paths, "paths")
            if all(isinstance(v, Image.Image) for v in items):
                if not image_ok:
                    raise ValueError(f"this backbone takes 2-D numeric vectors; {name} holds "
                                     f"PIL images")
                for i, img in enumerate(items):
                    _check_aspect(img.height, img.width, f"{name}[{i}]")
                return ImageInput(items, "pil")
            for i, v in enumerate(items):
                if not isinstance(v, (str, os.PathLike, Image.Image, np.ndarray, list, tuple,
                                      int, float, np.number)) or isinstance(v, bool):
                    raise TypeError(f"{name}[{i}] is of unsupported type {_describe(v)}; X "
                                    f"must hold file paths (str/Path), PIL images, or be a "
                                    f"numeric array")
            kinds = sorted({type(v).__name__ for v in items})
            if any(isinstance(v, (str, os.PathLike, Image.Image)) for v in items):
                raise TypeError(f"{name} mixes item types ({', '.join(kinds)}); pass only file "
                                f"paths, only PIL images, or a numeric array")
        try:
            X = np.asarray(X, dtype=float) if not isinstance(X, np.ndarray) \
                else X.astype(float)
        except TypeError as exc:
            raise TypeError(f"{name} could not be read as a numeric array: {exc}; pass a "
                            f"numeric array, file paths or PIL images") from exc
        except ValueError as exc:
            raise ValueError(f"{name} could not be read as a numeric array ({exc}); pass a "
                             f"numeric array, file paths or PIL images") from exc
    if not isinstance(X, np.ndarray):
        if hasattr(X, "__array__") or hasattr(X, "toarray"):
            if hasattr(X, "toarray"):
                raise TypeError(f"{name} is a sparse matrix; sktransfer needs dense input "
                                f"(X.toarray())")
            X = np.asarray(X)
        else:
            raise TypeError(f"{name} is of unsupported type {_describe(X)}; pass a numpy array, "
                            f"a torch tensor, a list of file paths or a list of PIL images")
    if X.ndim == 2:
        if not vector_ok:
            raise ValueError(f"{name} is 2-D {X.shape}, which is a batch of vectors, but this "
                             f"backbone takes images (N, H, W, C), (N, C, H, W) or (N, H, W). "
                             f"For vectors use backbone='mlp'; for a single image, add the "
                             f"batch axis: X[None]")
        return VectorInput(_vector_array(X, name))
    if X.ndim in (0, 1):
        raise ValueError(f"{name} has {X.ndim} dimension(s) {X.shape}; expected a batch of "
                         f"images (N, H, W, C) or vectors (N, F). Reshape your data, e.g. "
                         f"X.reshape(-1, 1) for a single feature.")
    if len(X) == 0:
        raise ValueError(f"{name} is empty (0 samples); pass at least one image")
    if not image_ok:
        raise ValueError(f"this backbone takes 2-D vectors (N, F); got an array of shape "
                         f"{X.shape}")
    return _image_array(X, name)


def _image_column(X):
    """An ``(n, 1)`` object array of paths or PIL images -> its one column, else ``X``.

    ``ColumnTransformer`` and ``df[["image"]]`` hand an image column over in this shape;
    an ``(n, 1)`` array of numbers stays a batch of one-feature vectors.
    """
    from PIL import Image

    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 2 and X.shape[1] == 1 \
            and len(X) and all(isinstance(v, (str, os.PathLike, Image.Image)) for v in X[:, 0]):
        return X[:, 0]
    return X


def _vector_array(X: np.ndarray, name: str) -> np.ndarray:
    from sklearn.utils import check_array

    return check_array(X, dtype=np.float32, input_name=name, ensure_min_samples=1)


# -- preprocessing -----------------------------------------------------------------
class Preprocessor:
    """Float (C, H, W) sample in [0, 1] -> what the backbone expects.

    Fixes the channel count (gray -> RGB, RGBA -> RGB, RGB -> gray), resizes
    the shorter side to ``resize_size``, centre-crops ``crop_size`` and
    normalises. Works on single samples and on (N, C, H, W) batches.
    """

    def __init__(self, preprocessing, in_channels: int, min_size: int | None = None):
        self.p = preprocessing
        self.in_channels = in_channels
        self.min_size = min_size  # the backbone's min_input_size, for images kept at their size
        self.mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)

    def fix_channels(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-3]
        if c == self.in_channels:
            return x
        if c == 4:
            x, c = x[..., :3, :, :], 3
        if c == self.in_channels:
            return x
        if c == 1 and self.in_channels == 3:
            return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
        if c == 3 and self.in_channels == 1:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
            return (x * w).sum(-3, keepdim=True)
        raise ValueError(f"an image has {x.shape[-3]} channels; this backbone takes "
                         f"{self.in_channels}")

    def resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        if p.crop_size is None:
            if self.min_size is not None and min(x.shape[-2:]) < self.min_size:
                raise ValueError(f"an image is {x.shape[-2]}x{x.shape[-1]} pixels; this backbone "
                                 f"takes at least {self.min_size}x{self.min_size}. Pass "
                                 f"image_size >= {self.min_size} to resize the images")
            return x
        h, w = x.shape[-2:]
        resize = p.resize_size or p.crop_size
        if min(h, w) != resize:
            scale = resize / min(h, w)
            size = (max(p.crop_size, round(h * scale)), max(p.crop_size, round(w * scale)))
            batch = x if x.dim() == 4 else x[None]
            mode = "bicubic" if p.interpolation == "bicubic" else "bilinear"
            batch = F.interpolate(batch, size=size, mode=mode, align_corners=False,
                                  antialias=True)
            if mode == "bicubic":
                batch = batch.clamp(0, 1)
            x = batch if x.dim() == 4 else batch[0]
            h, w = size
        top, left = (h - p.crop_size) // 2, (w - p.crop_size) // 2
        return x[..., top:top + p.crop_size, left:left + p.crop_size]

    @property
    def min_side(self) -> int | None:
        """The short side images are resized to (None: no resizing)."""
        return None if self.p.crop_size is None else (self.p.resize_size or self.p.crop_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.resize_crop(self.fix_channels(x)))


class SampleDataset(Dataset):
    """Images (or vectors) + optional encoded labels, decoded and preprocessed per item.

    ``augment`` (a callable on the float (C, H, W) tensor in [0, 1], after
    resizing and before normalisation) runs only when given, i.e. while fitting.
    With ``sample_weight``, an item's X is ``{"x": x, "sample_weight": w}``, so
    each batch carries the weights of its own samples.
    """

    def __init__(self, source, y=None, preprocessor: Preprocessor | None = None,
                 augment: Callable | None = None, sample_weight: np.ndarray | None = None):
        self.source = source
        self.y = y
        self.preprocessor = preprocessor
        self.augment = augment
        self.sample_weight = sample_weight

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index):
        if isinstance(self.source, ImageInput) and self.preprocessor is not None:
            x = self.source.load(int(index), self.preprocessor.min_side)
        else:
            x = self.source.load(int(index))
        if isinstance(self.preprocessor, TextPreprocessor):
            x = self.preprocessor(x)
        elif self.preprocessor is not None:
            pre = self.preprocessor
            x = pre.resize_crop(pre.fix_channels(x))
            if self.augment is not None:
                x = self.augment(x)
                if not isinstance(x, torch.Tensor):
                    raise TypeError(f"augment must return a torch tensor, got "
                                    f"{type(x).__name__}")
            x = pre.normalize(x)
        y = torch.tensor(-1 if self.y is None else self.y[index])
        if self.sample_weight is not None:
            return {"x": x.contiguous(), "sample_weight": torch.tensor(
                self.sample_weight[index])}, y
        return x.contiguous(), y


def collate_samples(samples: list, preprocessor=None) -> torch.Tensor:
    """Per-sample tensors -> one batch: stacked, or padded when the kind needs it (text)."""
    if isinstance(preprocessor, TextPreprocessor):
        return preprocessor.collate(samples)
    return torch.stack(samples)


def split_batch(batch: torch.Tensor, preprocessor=None) -> list:
    """The inverse of :func:`collate_samples`: one tensor per sample (unpadded)."""
    if isinstance(preprocessor, TextPreprocessor):
        return preprocessor.split(batch)
    return list(batch)


class PairCollate:
    """A data loader's ``collate_fn`` for ``(x, y)`` items (picklable, for workers)."""

    def __init__(self, preprocessor=None):
        self.preprocessor = preprocessor

    def __call__(self, items):
        xs, ys = zip(*items)
        if isinstance(xs[0], dict):  # {"x": x, "sample_weight": w} (see SampleDataset)
            return ({"x": collate_samples([x["x"] for x in xs], self.preprocessor),
                     "sample_weight": torch.stack([x["sample_weight"] for x in xs])},
                    torch.stack(list(ys)))
        return collate_samples(list(xs), self.preprocessor), torch.stack(list(ys))


# -- augmentation -------------------------------------------------------------------
def make_augment(augment, crop_size: int | None):
    """``None``, ``"light"`` (flip + random resized crop), ``"flip"``, or any callable."""
    if augment is None:
        return None
    if callable(augment):
        return augment
    if augment in ("light", "flip"):
        from torchvision.transforms import v2

        ops = [v2.RandomHorizontalFlip()]
        if augment == "light" and crop_size:
            ops.append(v2.RandomResizedCrop(crop_size, scale=(0.7, 1.0), antialias=True))
        return v2.Compose(ops)
    raise ValueError(f"augment must be None, 'light', 'flip' or a callable; got {augment!r}")


# -- folders ------------------------------------------------------------------------
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
    Links to single files are followed.

    Returns
    -------
    paths : list of str
    labels : numpy array of str
    """
    root = Path(os.fspath(path)).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {str(root)!r}")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder; expected one sub-folder per "
                                 f"class")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower()
                 for e in (extensions or IMAGE_EXTENSIONS))
    root_real = os.path.realpath(root)
    listed = _real_tree(root)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for class_dir in class_dirs:
        if class_dir.is_symlink() and not _follow_link(class_dir, root_real, listed):
            continue
        files = sorted(_image_files_under(class_dir, root_real, listed, exts))
        paths += files
        labels += [class_dir.name] * len(files)
    if not paths:
        raise ValueError(f"no image files ({', '.join(exts)}) found in class sub-folders of "
                         f"{str(root)!r}; expected root/<class>/<image>")
    return paths, np.asarray(labels)


def _real_tree(root: Path) -> set:
    """Real paths of ``root`` and every non-hidden folder under it, links not followed."""
    tree = set()
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        tree.add(os.path.realpath(dirpath))
    return tree


def _follow_link(link: Path, root_real: str, listed: set) -> bool:
    """Whether to walk the folder link ``link``; warns when it will not.

    Followed only to a folder inside the root that is listed nowhere else (for
    example a hidden store folder); the target is then recorded as listed.
    """
    real = os.path.realpath(link)
    if os.path.commonpath([real, os.path.realpath(link.parent)]) == real:
        problem = "leads back to a folder that contains it (a link cycle)"
    elif os.path.commonpath([real, root_real]) != root_real:
        problem = f"leads out of the image folder, to {real!r}"
    elif real in listed:
        problem = f"leads to {real!r}, which is already listed"
    else:
        listed.add(real)
        return True
    warnings.warn(f"load_image_folder: skipped folder link {str(link)!r}: it {problem}. Copy "
                  f"or move the images into the folder instead.", UserWarning, stacklevel=3)
    return False


def _image_files_under(folder: Path, root_real: str, listed: set, exts) -> list[str]:
    files = []
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        child = folder / entry.name
        if entry.is_dir():
            if not entry.is_symlink() or _follow_link(child, root_real, listed):
                files += _image_files_under(child, root_real, listed, exts)
        elif entry.is_file() and child.suffix.lower() in exts:
            files.append(str(child))
    return files
