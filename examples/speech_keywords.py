"""Keyword spotting on voices never heard in training, offline.

The speech is synthesised with eSpeak NG (``sktransfer_audio.spoken_words``: ten
command words, each speaker an accent x voice variant with its own rate and pitch,
noise added); the test speakers are not among the training speakers. This compares

* MFCC-style log-mel statistics + LogisticRegression (no transfer),
* an ImageNet CNN on log-mel images (``audio/efficientnet_lite0``) as a feature
  extractor, and fine-tuned with a grid over how much of it stays frozen,

then saves the clips to a folder of WAV files and predicts from the files.

Needs the sktransfer-audio plugin (``make install`` installs it).

Run: python examples/speech_keywords.py   (SKTRANSFER_FAST=1: under a minute)
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import FeatureExtractor, TransferClassifier, load_audio_folder
from sktransfer_audio import MelFrames, spoken_words

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")
data = spoken_words(n_train_speakers=4 if FAST else 12, n_test_speakers=2 if FAST else 8)
print(f"{len(data.X_train)} training clips from {len(set(data.speakers_train))} voices, "
      f"{len(data.X_test)} test clips from {len(set(data.speakers_test))} other voices")

# 1. no transfer: statistics of the log-mel bands over time
frames = MelFrames(clip_seconds=1.0)
def logmel_stats(clips):
    logmel = [np.log(frames(w).numpy() + 1e-6) for w in map(np.asarray, clips)]
    return np.array([np.r_[m.mean(0), m.std(0)] for m in logmel])

baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
baseline.fit(logmel_stats(data.X_train), data.y_train)
print(f"log-mel statistics + LR: {baseline.score(logmel_stats(data.X_test), data.y_test):.3f}")

# 2. an ImageNet CNN on log-mel images, as a feature extractor
cnn_lr = make_pipeline(FeatureExtractor("audio/efficientnet_lite0"), StandardScaler(),
                       LogisticRegression(max_iter=3000))
cnn_lr.fit(data.X_train, data.y_train)
print(f"FeatureExtractor(audio/efficientnet_lite0) + LR: "
      f"{cnn_lr.score(data.X_test, data.y_test):.3f}")

# 3. fine-tuned; speakers grouped in the CV folds, as in the test
# (fast mode: one epoch, no floor of 50 optimizer steps, 32 x 32 spectrogram images)
fast = dict(max_epochs=1, min_steps=0, image_size=32) if FAST else dict(max_epochs=15)
clf = TransferClassifier("audio/efficientnet_lite0", batch_size=16, random_state=0, **fast)
search = GridSearchCV(clf, {"freeze_depth": ["all", 3] if FAST else ["all", 6, 3, 0]},
                      cv=GroupKFold(2))
search.fit(data.X_train, data.y_train, groups=data.speakers_train)
print(f"fine-tuned, best freeze_depth={search.best_params_['freeze_depth']}: "
      f"{search.score(data.X_test, data.y_test):.3f}")

# 4. the same from files: one sub-folder per word, any sample rate
with tempfile.TemporaryDirectory() as tmp:
    for i, (clip, word) in enumerate(zip(data.X_test, data.y_test)):
        (Path(tmp) / word).mkdir(exist_ok=True)
        soundfile.write(Path(tmp) / word / f"{i}.wav", clip, 16000)
    paths, labels = load_audio_folder(tmp)
    print(f"from {len(paths)} WAV files: {search.score(paths, labels):.3f}")
