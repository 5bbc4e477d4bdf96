"""Pretrained features into any scikit-learn model, inside a Pipeline.

``FeatureExtractor`` turns images into vectors with a frozen pretrained
backbone; anything from scikit-learn can follow it. Compared here with the same
logistic regression on raw pixels, by cross-validation, on scikit-learn's
digits with 20 images per class.

Run: python examples/pipeline_feature_extractor.py   (SKTRANSFER_FAST=1: seconds)
"""

import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import FeatureExtractor

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")
PER_CLASS = 4 if FAST else 20

digits = load_digits()
keep = np.concatenate([np.flatnonzero(digits.target == c)[:PER_CLASS] for c in range(10)])
X, y = digits.images[keep] / 16.0, digits.target[keep]

pretrained = make_pipeline(
    FeatureExtractor("efficientnet_lite0", weights="DEFAULT", image_size=64 if FAST else 96),
    StandardScaler(),
    LogisticRegression(max_iter=2000),
)
raw_pixels = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

cv = 2 if FAST else 5
for name, model, data in [("raw pixels", raw_pixels, X.reshape(len(X), -1)),
                          ("pretrained features", pretrained, X)]:
    scores = cross_val_score(model, data, y, cv=cv)
    print(f"{name:>20}: accuracy {scores.mean():.3f} +- {scores.std():.3f} ({cv}-fold CV)")

# Features from an intermediate block instead of the last one:
mid = FeatureExtractor("efficientnet_lite0", layer="stage5", image_size=64).fit(X[:2])
print("features after block 'stage5':", mid.transform(X[:2]).shape)
