"""Quickstart: fine-tune a pretrained backbone on a handful of images.

scikit-learn's handwritten digits, 10 images per class, classified by an
ImageNet-pretrained EfficientNet-Lite0 whose weights ship with pip (no
download). ``TransferClassifier`` is a scikit-learn estimator: fit, predict,
predict_proba, score.

Run: python examples/quickstart.py   (SKTRANSFER_FAST=1: a few seconds)
"""

import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sktransfer import TransferClassifier

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")

digits = load_digits()
X = digits.images / 16.0  # (n, 8, 8) floats in [0, 1]: grayscale images
y = digits.target
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=30 if FAST else 100, test_size=30 if FAST else 500, stratify=y,
    random_state=0)

clf = TransferClassifier(
    backbone="efficientnet_lite0",  # see `sktransfer backbones`
    weights="DEFAULT",              # the pretrained ImageNet weights
    freeze_depth=-2,                # train the top two blocks and the new head
    image_size=64 if FAST else 96,  # digits are 8x8: upsample, but not to 224
    max_epochs=2 if FAST else 15,
    lr=1e-3,
    random_state=0,
    verbose=0 if FAST else 1,       # 1 prints skorch's epoch table
)
clf.fit(X_train, y_train)

print("predicted:", clf.predict(X_test[:8]), "true:", y_test[:8])
print("probability of the predicted class:", np.round(clf.predict_proba(X_test[:8]).max(1), 2))
print(f"test accuracy with {len(X_train)} training images: {clf.score(X_test, y_test):.3f}")
