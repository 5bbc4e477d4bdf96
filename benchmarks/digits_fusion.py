"""Features fused across blocks vs the last block alone, linear probe on sklearn digits.

    .venv/bin/python benchmarks/digits_fusion.py [--per-class 30] [--image-size 64]

Pretrained EfficientNet-Lite0 features of ``--per-class`` training images per
digit (8x8 digits resized to ``--image-size`` pixels), a ``LogisticRegression``
on standardised features (C chosen by 3-fold CV), held-out accuracy on 500
other digits. Rows: the last block alone, fusions of the last two and last three
blocks (``FeatureExtractor(layer=[...])``, one forward pass each).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import FeatureExtractor


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    # LogisticRegressionCV's announcements of future defaults; the numbers are unaffected
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, train_size=10 * args.per_class, stratify=digits.target,
        random_state=0)
    X_test, y_test = X_test[:500], y_test[:500]
    print(f"{len(X_train)} training digits, {len(X_test)} test digits, "
          f"efficientnet_lite0 at {args.image_size} px")
    print("\n| layers | features | held-out accuracy | seconds |\n| --- | --- | --- | --- |")
    for label, layer in [("last block", -1), ("last 2 blocks", [-2, -1]),
                         ("last 3 blocks", [-3, -2, -1])]:
        start = time.perf_counter()
        pipe = make_pipeline(
            FeatureExtractor("efficientnet_lite0", layer=layer, image_size=args.image_size,
                             device="cpu"),
            StandardScaler(), LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=2000))
        pipe.fit(X_train, y_train)
        accuracy = pipe.score(X_test, y_test)
        fe = pipe[0]
        blocks = ([fe.backbone_.block_names[-1]] if layer == -1 else
                  [fe.backbone_.block_names[i] for i in layer])
        print(f"| {label} ({', '.join(blocks)}) | {fe.n_features_out_} | {accuracy:.3f} | "
              f"{time.perf_counter() - start:.0f} |")


if __name__ == "__main__":
    main()
