"""Offline labelled speech, synthesised with eSpeak NG.

The ``espeakng-loader`` wheel ships ``libespeak-ng`` and its voice data, so no
system package is needed; the library is driven through ``ctypes``. A
*speaker* is an accent (an English eSpeak voice) with a voice variant
(``+m1`` ... ``+f5``: formant and pitch settings) and its own speaking rate
and pitch; every utterance varies them a little more and adds white noise at
a random signal-to-noise ratio.

This is synthetic speech: it has none of the variety of recorded voices
(microphones, rooms, breathing, real accents), and no real recorded speech
is available offline here. Results on it say how methods compare, not how
they do on real recordings.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

__all__ = ["synthesize", "spoken_words", "SpeechData", "WORDS", "ACCENTS", "VARIANTS"]

#: the ten command words of Speech Commands' keyword-spotting task
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5")

_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_SYNCHRONOUS = 2      # AUDIO_OUTPUT_SYNCHRONOUS
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)
_LOCK = threading.Lock()
_ENGINE: dict = {}


def _engine():
    """The process's one eSpeak NG instance: (library, its output rate, sample buffer)."""
    if not _ENGINE:
        from pathlib import Path

        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = str(Path(espeakng_loader.get_data_path()).parent)
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, data.encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise (data in {data!r})")
        chunks: list = []

        def collect(wav, n, events):
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        callback = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(callback)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p,
                                     ctypes.c_void_p]
        _ENGINE.update(lib=lib, rate=rate, chunks=chunks, callback=callback)
    return _ENGINE


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
               sample_rate: int = 16000) -> np.ndarray:
    """``text`` spoken by eSpeak NG voice ``voice`` (e.g. ``"en-us+f2"``) at ``rate`` words
    per minute and ``pitch`` (0-100): a mono float32 waveform in [-1, 1] at
    ``sample_rate``, leading and trailing silence removed.

    eSpeak NG has randomness of its own (aspiration noise, a pitch flutter that runs
    on between utterances), so a repeated call gives a slightly different waveform."""
    import soxr

    engine = _engine()
    lib = engine["lib"]
    with _LOCK:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}; use an accent such as "
                             f"{ACCENTS[:3]} with an optional variant, e.g. 'en-us+f2'")
        lib.espeak_SetParameter(_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        engine["chunks"].clear()
        data = text.encode("utf-8") + b"\0"
        if lib.espeak_Synth(data, len(data), 0, 1, 0, 0, None, None) != 0:
            raise RuntimeError(f"eSpeak NG could not synthesise {text!r} with voice {voice!r}")
        lib.espeak_Synchronize()
        wave = np.concatenate(engine["chunks"] or [np.zeros(0, np.int16)]).astype(np.float32)
    wave /= 32768.0
    loud = np.flatnonzero(np.abs(wave) > 1e-3)
    if loud.size == 0:
        raise RuntimeError(f"eSpeak NG produced silence for {text!r} with voice {voice!r}")
    wave = wave[loud[0]:loud[-1] + 1]
    if engine["rate"] != sample_rate:
        wave = soxr.resample(wave, engine["rate"], sample_rate)
    return np.clip(wave, -1, 1).astype(np.float32)


class SpeechData(dict):
    """``X_train``, ``y_train``, ``speakers_train``, ``X_test``, ``y_test``,
    ``speakers_test`` (lists of waveforms, arrays of str), ``sample_rate``; keys are
    attributes too, as in scikit-learn's ``Bunch``."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _speakers(rng, n: int) -> list[tuple[str, int, int]]:
    combos = [f"{a}+{v}" for a in ACCENTS for v in VARIANTS]
    chosen = rng.choice(len(combos), size=n, replace=False)
    return [(combos[i], int(rng.integers(130, 211)), int(rng.integers(25, 76))) for i in chosen]


def _utterances(rng, speakers, words, repeats, sample_rate, snr_db):
    X, y, who = [], [], []
    for voice, rate, pitch in speakers:
        for word in words:
            for _ in range(repeats):
                # every draw comes before synthesis: eSpeak's lengths vary a little from run
                # to run, which must not shift the random stream of the clips after this one
                jitter_rate, jitter_pitch = int(rng.integers(-15, 16)), int(rng.integers(-5, 6))
                snr, noise_seed = rng.uniform(*snr_db), int(rng.integers(2 ** 32))
                wave = synthesize(word, voice, rate + jitter_rate, pitch + jitter_pitch,
                                  sample_rate)
                noise = np.random.default_rng(noise_seed).standard_normal(len(wave))
                noise = noise.astype(np.float32)
                noise *= np.sqrt(np.mean(wave ** 2) / 10 ** (snr / 10))
                wave = wave + noise
                X.append((wave / max(1.0, float(np.abs(wave).max()))).astype(np.float32))
                y.append(word)
                who.append(voice)
    return X, np.asarray(y), np.asarray(who)


def spoken_words(words=WORDS, n_train_speakers: int = 12, n_test_speakers: int = 8,
                 repeats: int = 1, sample_rate: int = 16000, snr_db=(10.0, 30.0),
                 random_state: int = 0) -> SpeechData:
    """Keyword-spotting data: ``words`` spoken by synthetic speakers, disjoint between
    train and test (the test voices are never heard in training).

    Each speaker (an accent x voice variant, with its own rate and pitch) says
    every word ``repeats`` times, each time with rate and pitch jittered and
    white noise at an SNR drawn from ``snr_db``. Deterministic for a given
    ``random_state`` up to eSpeak NG's own randomness (aspiration noise, pitch
    flutter that runs on between utterances): the same speakers, words, rates,
    pitches and noise, but waveforms that differ slightly from run to run.

    Examples
    --------
    >>> from sktransfer_audio import spoken_words
    >>> data = spoken_words(words=("yes", "no"), n_train_speakers=2, n_test_speakers=1)
    >>> len(data.X_train), sorted(set(data.y_test))
    (4, ['no', 'yes'])
    """
    words = [words] if isinstance(words, str) else list(words)
    if not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError(f"words must be a list of non-empty str, got {words!r}")
    for name, value in (("n_train_speakers", n_train_speakers), ("repeats", repeats)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(n_test_speakers, (int, np.integer)) or n_test_speakers < 0:
        raise ValueError(f"n_test_speakers must be an int >= 0, got {n_test_speakers!r}")
    available = len(ACCENTS) * len(VARIANTS)
    if n_train_speakers + n_test_speakers > available:
        raise ValueError(f"{n_train_speakers + n_test_speakers} speakers asked for; there are "
                         f"{available} (accents x voice variants)")
    rng = np.random.default_rng(random_state)
    speakers = _speakers(rng, n_train_speakers + n_test_speakers)
    X_train, y_train, s_train = _utterances(rng, speakers[:n_train_speakers], words, repeats,
                                            sample_rate, snr_db)
    X_test, y_test, s_test = _utterances(rng, speakers[n_train_speakers:], words, repeats,
                                         sample_rate, snr_db)
    return SpeechData(X_train=X_train, y_train=y_train, speakers_train=s_train, X_test=X_test,
                      y_test=y_test, speakers_test=s_test, sample_rate=sample_rate)
