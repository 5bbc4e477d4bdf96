"""Audio as an input kind: validation, the backbone's front end, fixed-size samples.

For a backbone whose ``input_kind`` is ``"audio"``, ``X`` is a batch of clips:

* 1-D float waveforms (a list, a 1-D object array or a pandas Series of
  arrays, or a 2-D float array ``(n_clips, n_samples)`` of equal-length
  clips), mono, with values in ``[-1, 1]``, at the backbone's sample rate
  (``backbone.preprocessing.sample_rate``, 16 kHz for the ``sktransfer-audio``
  backbones). A clip of shape ``(n, 2)`` or ``(2, n)`` is stereo and is mixed
  down (the mean of the channels);
* or paths to audio files at any sample rate, decoded and resampled by the
  backbone's reader (``preprocessing.read``).

The backbone's :class:`AudioPreprocessing` turns one mono waveform into one
network input of a fixed shape (its front end pads or crops every clip to a
fixed duration), so batches stack like images and everything downstream -
blocks, freezing, the prefix cache, heads - is the same as for images.
The caller's ``X`` is never modified: waveforms are copied as float32.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from ._text import one_column

__all__ = ["AudioInput", "AudioPreprocessing", "AudioPreprocessor", "as_audio_input"]

_FIX = ("pass a list of 1-D float waveforms in [-1, 1] (one per clip), or a list of "
        "audio file paths")


class AudioInput:
    """A validated batch of clips; ``load(i)`` gives a float32 waveform or a path."""

    kind = "audio"

    def __init__(self, items: list, form: str):
        self.items = items
        self.form = form  # "waveform" or "paths"

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int):
        return self.items[index]

    def head(self) -> "AudioInput":
        return AudioInput(self.items[:1], self.form)


def _is_number(v) -> bool:
    return isinstance(v, (numbers.Number, np.number)) and not isinstance(v, (bool, np.bool_))


def _waveform(value, name: str) -> np.ndarray:
    """One clip as a validated mono float32 copy (see the module docstring)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                         for v in value):
            raise TypeError(f"{name} is a list of integers; waveforms are floats in [-1, 1]. "
                            f"Convert 16-bit samples with np.asarray({name}) / 32768")
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        raise TypeError(f"{name} is {type(value).__name__}"
                        f"{'' if not isinstance(value, np.ndarray) else ' of dtype ' + str(value.dtype)}"
                        f", not a waveform; {_FIX}")
    if value.dtype.kind in "iu":
        raise TypeError(f"{name} has integer dtype {value.dtype}; waveforms are floats in "
                        f"[-1, 1]. Convert 16-bit samples with {name} / 32768")
    if value.ndim == 2 and 1 <= min(value.shape) <= 2 and max(value.shape) > 2:
        value = value.mean(axis=int(np.argmin(value.shape)))  # stereo (n, 2) or (2, n)
    if value.ndim != 1:
        raise ValueError(f"{name} has shape {value.shape}; a clip is a 1-D waveform (or "
                         f"(n, 2) stereo, mixed down)")
    if value.size == 0:
        raise ValueError(f"{name} is an empty clip (0 samples); drop it or pass audio")
    wave = np.array(value, dtype=np.float32)
    if not np.isfinite(wave).all():
        bad = int(np.flatnonzero(~np.isfinite(wave))[0])
        raise ValueError(f"{name} holds {wave[bad]} at sample {bad}; waveforms must be finite. "
                         f"Replace NaN/inf, e.g. np.nan_to_num({name})")
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        raise ValueError(f"{name} has values up to {peak:.4g}, outside [-1, 1]; waveforms are "
                         f"floats in [-1, 1]. Scale it, e.g. {name} / np.abs({name}).max() "
                         f"(or / 32768 for 16-bit samples)")
    return wave


def as_audio_input(X, name: str = "X") -> AudioInput:
    """Validate ``X`` as a batch of clips (see the module docstring)."""
    if isinstance(X, AudioInput):
        return X
    if X is None:
        raise ValueError(f"{name} is None; {_FIX}")
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} is a single path ({X!r}); pass a list of paths: [{X!r}], or "
                        f"load_audio_folder() for a folder")
    X = one_column(X, name, "audio", "clips or audio file paths")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 1:
            raise ValueError(f"{name} is a single waveform of {X.shape[0]} samples; this "
                             f"backbone takes a batch of clips: pass [{name}]")
        if X.ndim != 2:
            raise ValueError(f"{name} has shape {X.shape}; pass a 2-D array (n_clips, "
                             f"n_samples) of mono clips or a list of 1-D waveforms")
        items = list(X)
    elif isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"{name} is an object array of shape {X.shape}; {_FIX}")
        items = list(X)
    elif isinstance(X, (list, tuple)):
        items = list(X)
    else:
        raise TypeError(f"{name} is of unsupported type {type(X).__name__}; {_FIX}")
    if len(items) == 0:
        raise ValueError(f"{name} is empty (0 clips); pass at least one clip")
    if all(_is_number(v) for v in items):
        what = "integers" if all(isinstance(v, (int, np.integer)) for v in items) else "numbers"
        raise ValueError(f"{name} is a flat list of {len(items)} {what}: a single waveform? "
                         f"This backbone takes a batch of clips: pass [{name}] (floats in "
                         f"[-1, 1])")
    if all(isinstance(v, (str, os.PathLike)) for v in items):
        paths = [os.fspath(v) for v in items]
        for i, p in enumerate(paths):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"{name}[{i}]: audio file not found: {p!r}")
        return AudioInput(paths, "paths")
    if any(isinstance(v, (str, os.PathLike)) for v in items):
        raise TypeError(f"{name} mixes file paths and waveforms; pass only one kind")
    return AudioInput([_waveform(v, f"{name}[{i}]") for i, v in enumerate(items)], "waveform")


@dataclass(frozen=True, eq=False)
class AudioPreprocessing:
    """What an audio backbone's weights expect.

    Parameters
    ----------
    sample_rate : int
        The rate waveforms must have (files are resampled to it).
    frontend : callable
        ``frontend(waveform)`` maps a float32 ``(T,)`` tensor at ``sample_rate``
        to the network input of one clip (a fixed shape), e.g. a log-mel image.
        Its ``repr`` must name every setting (it keys the prefix cache); with a
        ``with_image_size(size)`` method, the estimators' ``image_size`` sets
        the size of the image it makes. Picklable.
    read : callable
        ``read(path, sample_rate)`` -> mono float32 waveform at ``sample_rate``;
        raises ``ValueError`` naming the file when it cannot be decoded.
    name : str
        Names the front end in messages.
    """

    sample_rate: int
    frontend: Callable
    read: Callable
    name: str = "audio"

    def with_image_size(self, image_size) -> "AudioPreprocessing":
        if image_size is None or not hasattr(self.frontend, "with_image_size"):
            return self
        return replace(self, frontend=self.frontend.with_image_size(image_size))

    def __repr__(self) -> str:
        return (f"AudioPreprocessing(sample_rate={self.sample_rate}, frontend={self.frontend!r}, "
                f"read={self.read!r})")


class AudioPreprocessor:
    """An audio backbone's :class:`AudioPreprocessing` at work: waveform or path ->
    network input (one clip)."""

    def __init__(self, preprocessing: AudioPreprocessing):
        self.p = preprocessing

    def __call__(self, item) -> torch.Tensor:
        if isinstance(item, str):
            wave = self.p.read(item, int(self.p.sample_rate))
        else:
            wave = item
        with torch.no_grad():
            return self.p.frontend(torch.as_tensor(wave, dtype=torch.float32))
