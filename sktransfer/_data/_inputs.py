"""``as_input``: whatever the user holds -> a validated ImageInput / VectorInput / TextInput.

Everything is validated before any training starts; a problem raises a
``ValueError``/``TypeError`` (``FileNotFoundError`` for a missing file) whose
message names the problem and the offending item.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .._audio import as_audio_input
from .._text import as_text_input
from . import _decode
from ._arrays import _ArrayView, _array_to_tensor, _check_not_one_image, _check_numeric, _layout
from ._resize import ResizeCrop

__all__ = ["ImageInput", "VectorInput", "as_input"]


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

    def load(self, index: int, min_side: int | None = None,
             geometry: ResizeCrop | None = None, pixels: bool = False) -> torch.Tensor:
        """Sample ``index`` as float (C, H, W) in [0, 1].

        ``min_side``: the short side the caller will resize to. A file or PIL
        image much larger than that is first reduced (JPEG DCT scaling, then
        PIL's box ``reduce``) to no less than twice it, before the float
        conversion, so a 12-megapixel photo costs megabytes, not a gigabyte.

        ``geometry``: resize and centre-crop the sample here. Files and PIL
        images in 8-bit modes are resized in uint8 by PIL and only the crop is
        converted to float; arrays and 16-bit / float images are resized as
        float tensors.

        ``pixels``: 8-bit file and PIL crops stay uint8 (C, H, W) (see
        :func:`~sktransfer._data._decode.pil_to_tensor`).
        """
        if self.form == "array":
            x = _array_to_tensor(self.items[index])
            return x if geometry is None else geometry.tensor(x)
        if self.form == "paths":
            return _decode.decode_path(self.items[index], min_side, geometry, pixels)
        return _decode.pil_to_tensor(_decode.reduced(self.items[index], min_side), f"X[{index}]",
                                     geometry, pixels)


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


def _image_array(array, name="X") -> ImageInput:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    _check_not_one_image(array.shape, name)
    _check_numeric(array, name)
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:  # torch has no float128
        array = array.astype(np.float64)
    layout = _layout(array.shape, name)
    if min(array.shape[1:]) < 1:
        raise ValueError(f"{name} has shape {array.shape}: images must have at least 1x1 pixel")
    return ImageInput(_ArrayView(array, layout), "array")


def as_input(X, vector_ok: bool = True, image_ok: bool = True, name: str = "X",
             kind: str | None = None):
    """Validate ``X`` and wrap it as :class:`ImageInput` or :class:`VectorInput`
    (:class:`TextInput` when ``kind="text"``: the backbone takes texts;
    :class:`~sktransfer._audio.AudioInput` when ``kind="audio"``)."""
    from PIL import Image

    if kind == "text":
        return as_text_input(X, name)
    if kind == "audio":
        return as_audio_input(X, name)
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
                _decode.check_paths(paths)
                return ImageInput(paths, "paths")
            if all(isinstance(v, Image.Image) for v in items):
                if not image_ok:
                    raise ValueError(f"this backbone takes 2-D numeric vectors; {name} holds "
                                     f"PIL images")
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
