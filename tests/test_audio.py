"""Audio as an input kind (the sktransfer-audio plugin's backbones).

scikit-learn's estimator checks feed numeric 2-D arrays of arbitrary values,
which an audio backbone reads as clips and refuses outside [-1, 1], so the
data-driven checks do not apply (they run on the vector backbone in
test_sklearn_checks.py); the parameter checks run below, and clone,
GridSearchCV, pickling and the CLI are checked on clips.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("sktransfer_audio")
soundfile = pytest.importorskip("soundfile")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import (check_get_params_invariance,  # noqa: E402
                                            check_parameters_default_constructible)

from sktransfer import (FeatureExtractor, TransferClassifier, TransferClassifierCV,  # noqa: E402
                        get_backbone, load_audio_folder)
from sktransfer._cache import ACTIVATIONS, clear_caches  # noqa: E402
from sktransfer_audio import LogMel, MelFrames, register_audio_backbone, spoken_words  # noqa: E402

SR = 16000


def tones(n, seconds=0.3, seed=0):
    """``n`` noisy clips of random length: 'low' (300 Hz) and 'high' (2 kHz) tones."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        label = ("low", "high")[i % 2]
        t = np.arange(int(SR * seconds * rng.uniform(0.6, 1.4))) / SR
        f = 300.0 if label == "low" else 2000.0
        X.append((0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t)))
                 .astype(np.float32).clip(-1, 1))
        y.append(label)
    return X, np.array(y)


def small(backbone="audio/tiny_cnn", **kw):
    params = dict(weights=None, max_epochs=2, batch_size=8, lr=0.01, random_state=0)
    return TransferClassifier(backbone, **{**params, **kw})


@pytest.fixture(scope="module")
def clips():
    return tones(16)


# --- input validation -------------------------------------------------------------------

@pytest.mark.parametrize("X, error, match", [
    (np.zeros(800, np.float32), ValueError, r"single waveform of 800 samples.*pass \[X\]"),
    ([0.1, 0.2, 0.3], ValueError, r"flat list of 3 numbers: a single waveform"),
    ([[1, 2, 3], [4, 5, 6]], TypeError, r"X\[0\] is a list of integers.*/ 32768"),
    ([np.array([1, 2, 3], np.int16)], TypeError, r"X\[0\] has integer dtype int16"),
    ([np.zeros(10, np.float32), np.array([0.1, np.nan], np.float32)], ValueError,
     r"X\[1\] holds nan at sample 1.*nan_to_num"),
    ([np.array([0.0, np.inf])], ValueError, r"X\[0\] holds inf at sample 1"),
    ([np.zeros(10, np.float32), np.zeros(0, np.float32)], ValueError,
     r"X\[1\] is an empty clip"),
    ([np.array([0.5, 1.5], np.float32)], ValueError, r"X\[0\] has values up to 1.5, outside "
                                                     r"\[-1, 1\]"),
    ([], ValueError, r"X is empty \(0 clips\)"),
    ("clip.wav", TypeError, r"single path.*\['clip.wav'\]"),
    (["/nonexistent/a.wav"], FileNotFoundError, r"X\[0\]: audio file not found"),
    ([np.zeros(10), "a.wav"], TypeError, r"mixes file paths and waveforms"),
    ([{"a": 1}], TypeError, r"X\[0\] is dict, not a waveform"),
])
def test_bad_audio_input_is_named(X, error, match):
    with pytest.raises(error, match=match):
        small().fit(X, ["a"] * max(1, len(X)) if isinstance(X, list) else ["a"])


def test_undecodable_file_is_named(tmp_path, clips):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    X = [str(bad)] * 2
    with pytest.raises(ValueError, match=r"audio file '.*broken.wav' could not be decoded.*"
                                         r"ffmpeg"):
        FeatureExtractor("audio/tiny_cnn", weights=None).fit(X).transform(X)


def test_input_is_not_modified_and_stereo_is_mixed_down(clips):
    X, _ = clips
    left, right = X[0], X[2][:len(X[0])] if len(X[2]) >= len(X[0]) else X[0]
    stereo = np.stack([left, right], axis=1)  # (n, 2)
    before = stereo.copy()
    fe = FeatureExtractor("audio/tiny_cnn", weights=None).fit([left])
    mixed = fe.transform([stereo])
    np.testing.assert_allclose(mixed, fe.transform([(left + right) / 2]), atol=1e-6)
    np.testing.assert_array_equal(stereo, before)


def test_files_at_any_rate_are_resampled(tmp_path):
    import soxr

    t = np.arange(8000 * 0.5) / 8000
    wave = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", np.stack([wave, wave], 1), 8000)  # stereo, 8 kHz
    soundfile.write(tmp_path / "b.flac", wave, 8000)
    soundfile.write(tmp_path / "c.ogg", wave, 8000)
    fe = FeatureExtractor("audio/tiny_cnn", weights=None).fit([wave])
    ref = soxr.resample(wave, 8000, SR)
    from_files = fe.transform([str(tmp_path / f) for f in ("a.wav", "b.flac", "c.ogg")])
    expected = fe.transform([ref])[0]
    np.testing.assert_allclose(from_files[0], expected, atol=1e-4)
    np.testing.assert_allclose(from_files[1], expected, atol=1e-3)
    assert np.corrcoef(from_files[2], expected)[0, 1] > 0.95  # lossy Ogg Vorbis


# --- front ends ------------------------------------------------------------------------

def test_mel_spectrogram_equals_librosa():
    librosa = pytest.importorskip("librosa")  # installed with Resemblyzer
    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(np.arange(25600) * 0.05) + 0.05 * rng.standard_normal(25600))
    wave = wave.astype(np.float32)  # 1.6 s, louder than -30 dBFS: used as it is
    ours = MelFrames()(torch.as_tensor(wave)).numpy()
    ref = librosa.feature.melspectrogram(y=wave, sr=SR, n_fft=400, hop_length=160, n_mels=40).T
    assert ours.shape == ref.shape == (161, 40)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5 * ref.max())


def test_length_policy_and_log_mel_image():
    frontend = LogMel(clip_seconds=0.5)
    short, long = np.full(100, 0.1, np.float32), np.full(40000, 0.1, np.float32)
    assert frontend(torch.as_tensor(short)).shape == (3, 64, 51)
    assert frontend(torch.as_tensor(long)).shape == (3, 64, 51)
    assert frontend.with_image_size(32)(torch.as_tensor(short)).shape == (3, 32, 32)
    assert pickle.loads(pickle.dumps(frontend)) == frontend
    with pytest.raises(ValueError, match="fmin < fmax"):
        LogMel(fmin=9000)


def test_resemblyzer_equals_voice_encoder():
    """VoiceEncoder.forward written out (importing resemblyzer fails where setuptools no
    longer ships pkg_resources, which its webrtcvad imports): one 3-layer LSTM, the last
    layer's final hidden state, Linear, ReLU, L2 norm."""
    from sktransfer_audio import RESEMBLYZER_WEIGHTS

    state = torch.load(RESEMBLYZER_WEIGHTS.locate(), map_location="cpu",
                       weights_only=True)["model_state"]
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
    backbone = get_backbone("resemblyzer", weights="DEFAULT")
    mels = torch.rand(3, 160, 40)
    with torch.inference_mode():
        ours = backbone.pool(backbone.forward_features(mels))
        raw = torch.relu(linear(lstm(mels)[1][0][-1]))
        ref = raw / raw.norm(dim=1, keepdim=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_resemblyzer_embeds_speakers():
    data = spoken_words(words=("yes", "no", "up"), n_train_speakers=2, n_test_speakers=0)
    emb = FeatureExtractor("resemblyzer").fit(data.X_train).transform(data.X_train)
    assert emb.shape == (6, 256)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    same = data.speakers_train[:, None] == data.speakers_train[None, :]
    assert sim[same & ~np.eye(6, dtype=bool)].mean() > sim[~same].mean()


# --- estimators ------------------------------------------------------------------------

def test_classifier_learns_tones_and_refuses_other_kinds(clips):
    X, y = clips
    # a randomly initialised tiny_cnn needs more than the suite's usual two epochs
    clf = small(freeze_depth=0, lr=0.05, max_epochs=10, min_steps=50).fit(X, y)
    assert clf.backbone_.input_kind == "audio"
    assert clf.score(X, y) >= 0.9
    assert set(clf.predict(X[:3])) <= {"low", "high"}
    with pytest.raises(ValueError, match="single waveform"):
        clf.predict(X[0])
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_freeze_depth_grid_shares_the_prefix_cache(clips):
    X, y = clips
    clear_caches()
    search = GridSearchCV(small(), {"freeze_depth": [1, "all"]}, cv=2).fit(X, y)
    assert search.best_params_["freeze_depth"] in (1, "all")
    assert len(ACTIVATIONS) > 0  # the frozen blocks' outputs were cached...
    first = small(freeze_depth=1).fit(X, y)
    assert first.cache_used_
    misses, hits = ACTIVATIONS.misses, ACTIVATIONS.hits
    clone(first).fit(X, y)  # the same prefix: read back, not recomputed
    assert ACTIVATIONS.misses == misses and ACTIVATIONS.hits >= hits + len(X)
    cv = TransferClassifierCV("audio/tiny_cnn", weights=None, freeze_depths=[2, "all"], cv=2,
                              max_epochs=1, batch_size=8).fit(X, y)
    assert cv.freeze_depth_ in (2, "all")


def test_specaugment(clips):
    X, y = clips
    clf = small(augment="specaugment", image_size=32).fit(X, y)
    assert type(clf.augment_).__name__ == "SpecAugment"
    masked = clf.augment_(torch.ones(3, 32, 32))
    assert masked.shape == (3, 32, 32) and (masked == 0).any()
    with pytest.raises(ValueError, match="not an audio augmentation"):
        small(augment="flip").fit(X, y)


def test_resemblyzer_fine_tunes_with_frozen_lstms(clips):
    X, y = clips
    clf = TransferClassifier("resemblyzer", freeze_depth=2, max_epochs=1, batch_size=8).fit(X, y)
    frozen = [p.requires_grad for p in clf.module_.blocks[0].parameters()]
    assert not any(frozen) and clf.predict(X).shape == (16,)


def test_audio_backbone_refuses_non_image_backbones():
    with pytest.raises(ValueError, match="takes vectors.*needs an image backbone"):
        get_backbone("audio/mlp")
    with pytest.raises(ValueError, match="is an audio backbone"):
        get_backbone("audio/resemblyzer")


def test_register_audio_backbone_sets_the_front_end(clips):
    from sktransfer.backbones import BACKBONES

    register_audio_backbone("test_kws", "tiny_cnn", LogMel(n_mels=32, clip_seconds=0.5))
    try:
        fe = FeatureExtractor("test_kws", weights=None).fit(clips[0][:2])
        assert fe.backbone_.preprocessing.frontend.n_mels == 32
        assert fe.transform(clips[0][:2]).shape == (2, 64)
    finally:
        BACKBONES.unregister("test_kws")


# check_no_attributes_set_in_init does not apply: skorch sets history_ in __init__ (see
# test_sklearn_checks.py)
@pytest.mark.parametrize("check", [check_get_params_invariance,
                                   check_parameters_default_constructible])
def test_parameter_checks(check):
    est = small()
    check(type(est).__name__, est)
    assert clone(est).get_params()["backbone"] == "audio/tiny_cnn"


# --- folders and the command line ------------------------------------------------------

@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    X, y = tones(12, seed=1)
    for i, (wave, label) in enumerate(zip(X, y)):
        (root / label).mkdir(exist_ok=True)
        soundfile.write(root / label / f"{i}.wav", wave, 22050 if i % 3 else SR)
    (root / "low" / "notes.txt").write_text("not audio")
    return root


def test_load_audio_folder(audio_folder):
    paths, labels = load_audio_folder(audio_folder)
    assert len(paths) == 12 and sorted(set(labels)) == ["high", "low"]
    assert all(p.endswith(".wav") for p in paths)
    with pytest.raises(ValueError, match="no audio files"):
        load_audio_folder(audio_folder / "low")


def test_cli_fit_predict_evaluate_search(audio_folder, tmp_path, capsys, monkeypatch):
    from sktransfer.cli import main

    monkeypatch.chdir(tmp_path)  # search writes its plot here
    model = tmp_path / "m.skops"  # skops: the network is rebuilt from the backbone name
    common = ["--backbone", "audio/tiny_cnn", "--weights", "none", "--epochs", "1"]
    assert main(["fit", str(audio_folder), "-o", str(model), *common]) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(audio_folder / "low")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 6 and all(".wav" in line for line in lines[-6:])
    assert main(["evaluate", str(model), str(audio_folder)]) == 0
    assert "accuracy" in capsys.readouterr().out.lower()
    assert main(["search", str(audio_folder), "--freeze-depth", "1", "all", "--cv", "2",
                 *common]) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(tmp_path / "missing.wav")]) != 0
    assert "audio file not found" in capsys.readouterr().err


# --- synthetic speech ------------------------------------------------------------------

def test_spoken_words_speakers_are_disjoint():
    data = spoken_words(words=("yes", "no"), n_train_speakers=3, n_test_speakers=2,
                        random_state=3)
    assert len(data.X_train) == 6 and len(data.X_test) == 4
    assert not set(data.speakers_train) & set(data.speakers_test)
    assert sorted(set(data.y_train)) == ["no", "yes"]
    assert all(w.dtype == np.float32 and w.ndim == 1 and np.abs(w).max() <= 1
               and 0.1 * SR < len(w) < 1.5 * SR for w in data.X_train)
    again = spoken_words(words=("yes", "no"), n_train_speakers=3, n_test_speakers=2,
                         random_state=3)
    assert list(again.speakers_test) == list(data.speakers_test)
    with pytest.raises(ValueError, match="105 speakers asked for; there are 104"):
        spoken_words(n_train_speakers=100, n_test_speakers=5)
