"""Text classification with a pretrained language model, offline.

The texts are real: docstring summaries of numpy, torch, scikit-learn, PIL and
the Python standard library, labelled by package (the package names blanked
out). With 16 labelled texts per class this compares

* sentence embeddings (``FeatureExtractor("minilm_l6")``) + LogisticRegression,
* fine-tuning the encoder with a grid search over how much of it stays frozen.

Needs the sktransfer-transformers plugin (``make install`` installs it).

Run: python examples/text_classification.py   (SKTRANSFER_FAST=1: a minute)
"""

import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import FeatureExtractor, TransferClassifier
from sktransfer_transformers import load_docstrings

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")
PER_CLASS, N_TEST = (4, 10) if FAST else (16, 60)

texts, labels = load_docstrings(max_chars=200)
rng = np.random.RandomState(0)
train, test = [], []
for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    train += idx[:PER_CLASS].tolist()
    test += idx[PER_CLASS:PER_CLASS + N_TEST].tolist()
X_train, y_train = [texts[i] for i in train], labels[train]
X_test, y_test = [texts[i] for i in test], labels[test]
print(f"{len(X_train)} training texts, {len(X_test)} test texts, e.g. "
      f"{y_train[0]}: {X_train[0]!r}")

embeddings = make_pipeline(FeatureExtractor("minilm_l6"), LogisticRegression(C=10, max_iter=2000))
embeddings.fit(X_train, y_train)
print(f"sentence embeddings + logistic regression: accuracy {embeddings.score(X_test, y_test):.3f}")

# the head at lr, each trainable encoder layer 10x slower than the one above it
clf = TransferClassifier("minilm_l6", lr=3e-3, freeze_strategy="discriminative",
                         freeze_strategy__decay=0.1, batch_size=16,
                         max_epochs=1 if FAST else 15, random_state=0)
search = GridSearchCV(clf, {"freeze_depth": ["all", 5] if FAST else ["all", 5, 3]}, cv=2)
search.fit(X_train, y_train)
print(f"fine-tuned, best freeze_depth={search.best_params_['freeze_depth']}: accuracy "
      f"{search.score(X_test, y_test):.3f}")
print("predictions:", list(zip(X_test[:3], search.predict(X_test[:3]))))
