"""Audio files -> mono float32 waveforms at the backbone's rate (soundfile + soxr)."""

from __future__ import annotations

import numpy as np

__all__ = ["AudioFileReader"]

_FIX = ("sktransfer-audio reads WAV, FLAC, Ogg Vorbis/Opus, MP3 and AIFF (libsndfile); "
        "convert other files first, e.g. ffmpeg -i clip.m4a clip.wav")


class AudioFileReader:
    """``reader(path, sample_rate)``: decode with ``soundfile``, mix stereo down (the mean
    of the channels), resample with ``soxr`` (``quality``, default ``"HQ"``).

    Samples of integer files are scaled to ``[-1, 1]``; a float file must hold
    finite values in ``[-1, 1]``. Resampling can overshoot a full-scale clip
    slightly, so its output is clipped to ``[-1, 1]``.
    """

    def __init__(self, quality: str = "HQ"):
        self.quality = quality

    def __call__(self, path: str, sample_rate: int) -> np.ndarray:
        import soundfile
        import soxr

        try:
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
            raise ValueError(f"audio file {path!r} could not be decoded ({exc}); {_FIX}") \
                from exc
        if data.shape[0] == 0:
            raise ValueError(f"audio file {path!r} holds no samples (an empty clip); remove it")
        wave = data.mean(axis=1)
        if not np.isfinite(wave).all():
            raise ValueError(f"audio file {path!r} holds NaN or infinite samples; fix or "
                             f"remove it")
        peak = float(np.abs(wave).max())
        if peak > 1.0:
            raise ValueError(f"audio file {path!r} is a float file with samples up to "
                             f"{peak:.4g}, outside [-1, 1]; normalise it before use")
        if rate != sample_rate:
            wave = np.clip(soxr.resample(wave, rate, sample_rate, quality=self.quality), -1, 1)
        return np.ascontiguousarray(wave, dtype=np.float32)

    def __repr__(self) -> str:
        return f"AudioFileReader(quality={self.quality!r})"
