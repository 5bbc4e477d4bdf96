"""Grid search over freeze_depth on scikit-learn's digits, pretrained EfficientNet-Lite0.

    .venv/bin/python benchmarks/digits_freeze_depth.py [--per-class 30]

Prints the cross-validated accuracy of every depth and the held-out accuracy of
the refitted best model, next to logistic regression on the raw pixels.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split

from sktransfer import TransferClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target.astype(str), train_size=10 * args.per_class, stratify=digits.target,
        random_state=0)
    X_test, y_test = X_test[:500], y_test[:500]
    raw = LogisticRegression(max_iter=2000).fit(X_train.reshape(len(X_train), -1), y_train)
    print(f"raw-pixel logistic regression: {raw.score(X_test.reshape(len(X_test), -1), y_test):.3f}")
    start = time.perf_counter()
    search = GridSearchCV(
        TransferClassifier("efficientnet_lite0", weights="DEFAULT", image_size=args.image_size,
                           max_epochs=args.epochs, lr=1e-3, random_state=0, device="cpu"),
        {"freeze_depth": [3, 5, 7, "all"]}, cv=3).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    for params, mean, std in zip(search.cv_results_["params"],
                                 search.cv_results_["mean_test_score"],
                                 search.cv_results_["std_test_score"]):
        print(f"freeze_depth={params['freeze_depth']!s:<4} cv accuracy {mean:.3f} +- {std:.3f}")
    print(f"best {search.best_params_}: held-out accuracy {search.score(X_test, y_test):.3f} "
          f"({len(X_train)} training images, grid search {seconds:.0f} s)")


if __name__ == "__main__":
    main()
