"""Fixed front ends: one mono waveform -> the first block's input.

Length policy (both front ends): every clip is brought to ``clip_seconds``
before the spectrogram is taken - a longer clip keeps its centre
``clip_seconds``, a shorter one is zero-padded equally on both sides - so
every clip gives an input of the same shape and batches stack like images.

The mel filterbank is librosa's (Slaney mel scale, Slaney area
normalisation), so :class:`MelFrames` gives exactly what Resemblyzer's
``wav_to_mel_spectrogram`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["LogMel", "MelFrames", "fix_length", "mel_filterbank"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` triangular filters, as ``librosa.filters.mel``."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.astype(np.float32)


def fix_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """``wave`` cropped to its centre ``length`` samples, or zero-padded on both sides."""
    n = wave.shape[-1]
    if n >= length:
        start = (n - length) // 2
        return wave[..., start:start + length]
    left = (length - n) // 2
    return F.pad(wave, (left, length - n - left))


@dataclass(frozen=True)
class _MelSpectrogram:
    """Power mel spectrogram ``(n_mels, frames)`` of a waveform brought to ``clip_seconds``."""

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    n_mels: int = 64
    n_fft: int = 400          # 25 ms at 16 kHz
    hop_length: int = 160     # 10 ms at 16 kHz
    fmin: float = 0.0
    fmax: float | None = None
    _filters: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("sample_rate", "n_mels", "n_fft", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got "
                                 f"{value!r}")
        if not self.clip_seconds > 0:
            raise ValueError(f"{type(self).__name__}: clip_seconds must be > 0, got "
                             f"{self.clip_seconds!r}")
        top = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            raise ValueError(f"{type(self).__name__}: need 0 <= fmin < fmax <= sample_rate / 2 "
                             f"({self.sample_rate / 2:g}); got fmin={self.fmin}, fmax={self.fmax}")
        filters = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
        object.__setattr__(self, "_filters", torch.from_numpy(filters))

    @property
    def n_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return 1 + self.n_samples // self.hop_length

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        wave = fix_length(torch.as_tensor(wave, dtype=torch.float32), self.n_samples)
        spec = torch.stft(wave, self.n_fft, self.hop_length, window=torch.hann_window(self.n_fft),
                          center=True, pad_mode="constant", return_complex=True)
        return self._filters @ spec.abs().pow(2)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_filters"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()


@dataclass(frozen=True)
class LogMel(_MelSpectrogram):
    """A clip as an ImageNet-normalised log-mel image ``(channels, n_mels, frames)``.

    Power mel spectrogram (``n_fft``-point Hann STFT every ``hop_length``
    samples, ``n_mels`` bands from ``fmin`` to ``fmax``), in dB relative to the
    clip's loudest bin (so loudness does not matter), floored at ``-top_db``,
    scaled to ``[0, 1]`` (low frequencies in the last row, as a spectrogram is
    drawn), repeated to ``channels`` and normalised with ``mean`` / ``std``
    (ImageNet's). ``image_size=None`` keeps ``n_mels x frames`` pixels (64 x 101
    for the 1 s default); an int resizes the image to ``image_size x
    image_size`` (bilinear). The estimators' ``image_size`` sets it.
    """

    top_db: float = 80.0
    image_size: int | None = None
    channels: int = 3
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def with_image_size(self, image_size: int | None) -> "LogMel":
        return replace(self, image_size=image_size)

    def image(self, wave: torch.Tensor) -> torch.Tensor:
        """The spectrogram as a ``(1, H, W)`` image in ``[0, 1]``, before normalisation."""
        db = 10.0 * torch.log10(self.power_mel(wave).clamp(min=1e-10))
        db = (db - db.max()).clamp(min=-float(self.top_db))
        image = ((db + float(self.top_db)) / float(self.top_db)).flip(0)[None]
        if self.image_size is not None:
            image = F.interpolate(image[None], size=(self.image_size, self.image_size),
                                  mode="bilinear", align_corners=False, antialias=True)[0]
        return image

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        image = self.image(wave).expand(self.channels, -1, -1)
        mean = torch.tensor(self.mean[:self.channels], dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std[:self.channels], dtype=torch.float32).view(-1, 1, 1)
        return ((image - mean) / std).contiguous()


@dataclass(frozen=True)
class MelFrames(_MelSpectrogram):
    """A clip as Resemblyzer's encoder input: ``(frames, 40)`` power mel frames.

    Before the spectrogram, the clip's volume is raised (never lowered) to
    ``target_dbfs`` as Resemblyzer's ``preprocess_wav`` does; its voice
    activity trimming is not applied (it needs ``webrtcvad``): pass clips
    without long silences.
    """

    clip_seconds: float = 1.6   # Resemblyzer's partial utterance: 160 frames
    n_mels: int = 40
    target_dbfs: float = -30.0

    def __call__(self, wave) -> torch.Tensor:
        wave = torch.as_tensor(wave, dtype=torch.float32)
        rms = wave.pow(2).mean().sqrt()
        if rms > 0:
            gain_db = self.target_dbfs - 20.0 * torch.log10(rms)
            if gain_db > 0:
                wave = wave * 10.0 ** (gain_db / 20.0)
        return self.power_mel(wave).T.contiguous()
