"""Fuzzing the input adapters: anything a user might pass as ``X``.

Every outcome must be either a valid result - an input whose samples all load
as finite float tensors of a usable shape - or one of our clear errors
(``ValueError``, ``TypeError``, ``FileNotFoundError`` with a message), never
some other exception type, and never a failure that surfaces only later,
while training.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402
from PIL import Image  # noqa: E402

from sktransfer._data import ImageInput, Preprocessor, VectorInput, as_input  # noqa: E402
from sktransfer.backbones import get_backbone  # noqa: E402

CLEAR_ERRORS = (ValueError, TypeError, FileNotFoundError)
EXAMPLES = {"count": 0}

settings.register_profile(
    "sktransfer-fuzz", max_examples=120, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
fuzz = settings.get_profile("sktransfer-fuzz")

_TINY = get_backbone("tiny_cnn")
_PRE = Preprocessor(_TINY.preprocessing, _TINY.in_channels)


def _assert_ours(exc):
    """Raised by sktransfer's validation (or sklearn's, which it calls), with a message."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename.replace(os.sep, "/")
    assert "/sktransfer/" in where or "/sklearn/" in where, \
        f"{type(exc).__name__} escaped from {where}: {exc}"
    assert len(str(exc)) > 15, f"unhelpful message: {exc!r}"


def _check_outcome(make):
    """Run ``make()``; a result must be fully usable, an error must be one of ours."""
    EXAMPLES["count"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning
        try:
            source = make()
        except CLEAR_ERRORS as exc:
            _assert_ours(exc)
            return None
        assert isinstance(source, (ImageInput, VectorInput))
        assert len(source) >= 1
        for i in sorted({0, len(source) - 1}):
            try:
                x = source.load(i)
            except CLEAR_ERRORS as exc:  # files and PIL images decode lazily; still ours
                assert source.form in ("paths", "pil"), f"{source.form} failed late: {exc!r}"
                _assert_ours(exc)
                return None
            assert x.dtype == torch.float32
            assert torch.isfinite(x).all(), "a valid input loaded as NaN/inf"
            if isinstance(source, VectorInput):
                assert x.shape == (source.n_features,)
            else:
                assert x.dim() == 3 and x.shape[0] in (1, 3, 4) and min(x.shape) >= 1
                out = _PRE(x)  # what the backbone will be fed
                assert out.shape[0] == 3 and torch.isfinite(out).all()
        return source


_NON_FINITE = st.sampled_from([float("nan"), float("inf"), -float("inf")])


# -- numpy arrays -------------------------------------------------------------------
DTYPES = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16,
                          np.uint32, np.uint64, np.float16, np.float32, np.float64,
                          np.longdouble, np.bool_, np.complex64])


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(DTYPES))
    ndim = draw(st.sampled_from([0, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5]))
    shape = tuple(draw(st.integers(1, 4) | st.integers(0, 6)) for _ in range(ndim))
    if ndim == 4 and draw(st.booleans()):  # mostly plausible images
        shape = shape[:3] + (draw(st.sampled_from([1, 3, 4])),)
    if dtype.kind == "f":
        elements = st.floats(-2, 300, width=min(dtype.itemsize * 8, 64)) | _NON_FINITE
        if draw(st.integers(0, 3)):
            elements = st.floats(0, 1, width=min(dtype.itemsize * 8, 64))
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -5), min(int(info.max), 300)
        elements = st.integers(lo, hi) if draw(st.booleans()) else st.integers(0, min(hi, 255))
    else:
        elements = None
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    view = draw(st.sampled_from(["plain", "flipped", "fortran", "readonly"]))
    if view == "flipped" and array.ndim >= 2:
        array = array[..., ::-1]  # e.g. BGR -> RGB: negative strides
    elif view == "fortran":
        array = np.asfortranarray(array)
    elif view == "readonly":
        array.flags.writeable = False
    return array


@fuzz
@given(arrays())
def test_numpy_arrays(array):
    before = array.copy()
    _check_outcome(lambda: as_input(array))
    np.testing.assert_array_equal(array, before)  # X is never modified


TORCH_DTYPES = st.sampled_from([torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                torch.float16, torch.bfloat16, torch.float32, torch.float64,
                                torch.bool, torch.complex64])


@fuzz
@given(TORCH_DTYPES, st.lists(st.integers(1, 4) | st.integers(0, 3), min_size=0, max_size=5),
       st.sampled_from(["zeros", "ones", "rand", "nan", "big"]))
def test_torch_tensors(dtype, shape, fill):
    base = {"zeros": torch.zeros, "ones": torch.ones}.get(fill, torch.rand)(shape)
    if fill == "nan" and base.numel():
        base.view(-1)[0] = float("nan")
    if fill == "big":
        base = base * 1000 - 10
    tensor = base.to(dtype) if not dtype.is_complex else base.to(torch.complex64)
    _check_outcome(lambda: as_input(tensor))


# -- Python containers ------------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-300, 300),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                    st.binary(max_size=5), st.just(object()), st.just(Path("no/such.png")))
NESTED = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner), max_leaves=20)


@fuzz
@given(st.one_of(NESTED, st.lists(NESTED, max_size=6), st.dictionaries(st.text(max_size=2),
                                                                          SCALARS, max_size=3),
                 st.sets(st.integers(), max_size=3), st.just(iter([1, 2])), st.just(range(3))))
def test_arbitrary_python_objects(obj):
    _check_outcome(lambda: as_input(obj))


@fuzz
@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=4), min_size=1, max_size=5),
       st.sampled_from(["list", "dataframe", "series", "object-array"]))
def test_tables(rows, kind):
    import pandas as pd

    def make():
        if kind == "dataframe":
            return as_input(pd.DataFrame(rows))
        if kind == "series":
            return as_input(pd.Series([r[0] for r in rows]))
        if kind == "object-array":
            return as_input(np.array(rows, dtype=object) if len({len(r) for r in rows}) == 1
                            else np.array([np.array(r) for r in rows] + [None], dtype=object))
        return as_input(rows)

    _check_outcome(make)


# -- PIL images -------------------------------------------------------------------------
MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16", "LA",
         "PA", "RGBX", "RGBa", "La", "I;16B"]


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    image = Image.new(mode, size)
    if mode in ("F", "I") and draw(st.booleans()):
        values = draw(hnp.arrays(np.float32 if mode == "F" else np.int32, size[::-1],
                                 elements=st.floats(-10, 1e6, width=32) | _NON_FINITE
                                 if mode == "F" else st.integers(-1000, 70000)))
        image = Image.fromarray(values, mode=mode)
    return image


@fuzz
@given(st.lists(pil_images(), min_size=1, max_size=3), st.booleans())
def test_pil_images(images, with_junk):
    items = images + ([1.5] if with_junk else [])
    _check_outcome(lambda: as_input(items))


# -- files --------------------------------------------------------------------------------
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif",
            "WEBP": ".webp", "PPM": ".ppm"}


def _encoded(fmt, mode, size) -> bytes:
    image = Image.new(mode, size, color=None)
    if fmt in ("JPEG", "PPM", "BMP") and mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@st.composite
def files(draw):
    kind = draw(st.sampled_from(["image", "truncated", "corrupted", "random", "empty", "text",
                                 "huge-header", "missing", "directory"]))
    fmt = draw(st.sampled_from(sorted(_FORMATS)))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16", "F", "LA"]))
    if fmt in ("WEBP", "GIF", "PPM") and mode in ("I;16", "F", "LA"):
        mode = "RGB"
    if fmt in ("PNG", "JPEG", "BMP") and mode == "F":
        mode = "L"
    content = None
    if kind in ("image", "truncated", "corrupted"):
        content = _encoded(fmt, mode, (draw(st.integers(1, 9)), draw(st.integers(1, 9))))
        if kind == "truncated":
            content = content[:draw(st.integers(0, len(content) - 1))]
        elif kind == "corrupted":
            at = draw(st.integers(0, len(content) - 1))
            content = content[:at] + draw(st.binary(min_size=1, max_size=8)) + content[at + 1:]
    elif kind == "random":
        content = draw(st.binary(max_size=64))
    elif kind == "empty":
        content = b""
    elif kind == "text":
        content = draw(st.text(max_size=40)).encode()
    elif kind == "huge-header":  # a PNG announcing 100000 x 100000 pixels
        import struct
        import zlib

        def chunk(tag, body):
            return (struct.pack(">I", len(body)) + tag + body
                    + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

        content = (b"\x89PNG\r\n\x1a\n"
                   + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))
    suffix = draw(st.sampled_from([_FORMATS[fmt], ".png", ".txt", ""]))
    return kind, content, suffix


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@fuzz
@given(st.lists(files(), min_size=1, max_size=3), st.sampled_from(["str", "path", "series"]))
def test_files(workdir, specs, container):
    paths = []
    for kind, content, suffix in specs:
        path = Path(tempfile.mkdtemp(dir=workdir)) / f"sample{suffix}"
        if kind == "directory":
            path.mkdir()
        elif kind != "missing":
            path.write_bytes(content)
        paths.append(path)
    if container == "str":
        X = [str(p) for p in paths]
    elif container == "path":
        X = paths
    else:
        import pandas as pd

        X = pd.Series([os.fspath(p) for p in paths])
    source = _check_outcome(lambda: as_input(X))
    if source is not None:
        for i in range(len(source)):  # every file: decodes or fails with our error
            try:
                source.load(i)
            except CLEAR_ERRORS as exc:
                assert os.fspath(paths[i]) in str(exc)


def test_report_fuzz_examples(request):
    # after the fuzz tests above (same module, file order): how many outcomes were checked
    print(f"\n[test_fuzz] {EXAMPLES['count']} fuzz examples checked")
    if EXAMPLES["count"]:
        assert EXAMPLES["count"] >= 100
