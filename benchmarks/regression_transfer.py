"""Regression from offline photos: how far is each crop zoomed in? (TransferRegressor)

    .venv/bin/python benchmarks/regression_transfer.py [--n-train 150] [--epochs 6]

Crops of scikit-image's and scikit-learn's bundled photos, each cut at a random
zoom factor z in [1, 4] (side = short side of the photo / z) and resized to
``--image-size`` pixels; the target is log2(z). ``--split crops`` (default):
training and test crops are independent random crops of all eight photos (new
crops of known photos); ``--split photos``: training crops come from five
photos, test crops from three *other* photos (a domain shift: a cat, a flower
close-up, a deep-sky field). Compares, by held-out R^2:

* ``TransferRegressor`` (EfficientNet-Lite0, pretrained), ``freeze_depth``
  chosen by a 3-fold grid search;
* ``FeatureExtractor`` (same backbone, frozen) + ``RidgeCV``;
* raw pixels + ``RidgeCV``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from skimage import data as skdata
from skimage.transform import resize
from sklearn.datasets import load_sample_images
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import FeatureExtractor, TransferRegressor

TRAIN_PHOTOS = ["astronaut", "coffee", "rocket", "immunohistochemistry", "china.jpg"]
TEST_PHOTOS = ["chelsea", "flower.jpg", "hubble_deep_field"]
ALPHAS = np.logspace(-3, 4, 15)


def photo(name: str) -> np.ndarray:
    if name.endswith(".jpg"):
        images = load_sample_images()
        return images.images[[f.rsplit("/", 1)[-1] for f in images.filenames].index(name)]
    return getattr(skdata, name)()


def crops(names, n: int, size: int, seed: int):
    """``n`` crops (uint8, size x size x 3) spread over ``names``; targets log2(zoom)."""
    rng = np.random.RandomState(seed)
    photos = [photo(name) for name in names]
    X = np.empty((n, size, size, 3), np.uint8)
    y = np.empty(n, np.float32)
    for i in range(n):
        img = photos[i % len(photos)]
        zoom = 2 ** rng.uniform(0, 2)
        side = int(min(img.shape[:2]) / zoom)
        top = rng.randint(0, img.shape[0] - side + 1)
        left = rng.randint(0, img.shape[1] - side + 1)
        crop = img[top:top + side, left:left + side]
        X[i] = (resize(crop, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)
        y[i] = np.log2(zoom)
    return X, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--depths", default="5,7,all")
    parser.add_argument("--split", choices=["crops", "photos"], default="crops")
    args = parser.parse_args(argv)
    if args.split == "photos":
        train_photos, test_photos = TRAIN_PHOTOS, TEST_PHOTOS
    else:
        train_photos = test_photos = TRAIN_PHOTOS + TEST_PHOTOS
    X_train, y_train = crops(train_photos, args.n_train, args.image_size, seed=0)
    X_test, y_test = crops(test_photos, args.n_test, args.image_size, seed=1)
    print(f"{len(X_train)} training crops of {len(train_photos)} photos, {len(X_test)} test "
          f"crops of {len(test_photos)} {'other ' if args.split == 'photos' else ''}photos, "
          f"{args.image_size} px; target log2(zoom)")
    rows = []

    start = time.perf_counter()
    pixels = RidgeCV(alphas=ALPHAS).fit(X_train.reshape(len(X_train), -1) / 255.0, y_train)
    rows.append(("pixels + RidgeCV", pixels.score(X_test.reshape(len(X_test), -1) / 255.0,
                                                  y_test), time.perf_counter() - start))

    start = time.perf_counter()
    probe = make_pipeline(FeatureExtractor("efficientnet_lite0", image_size=args.image_size,
                                           device="cpu"), RidgeCV(alphas=ALPHAS))
    probe.fit(X_train, y_train)
    rows.append(("FeatureExtractor + RidgeCV", probe.score(X_test, y_test),
                 time.perf_counter() - start))

    start = time.perf_counter()
    depths = [d if d == "all" else int(d) for d in args.depths.split(",")]
    search = GridSearchCV(
        TransferRegressor("efficientnet_lite0", image_size=args.image_size,
                          max_epochs=args.epochs, lr=1e-3, random_state=0, device="cpu"),
        {"freeze_depth": depths}, cv=3).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    for params, mean, std in zip(search.cv_results_["params"],
                                 search.cv_results_["mean_test_score"],
                                 search.cv_results_["std_test_score"]):
        print(f"  TransferRegressor freeze_depth={params['freeze_depth']!s:<4} "
              f"cv R^2 {mean:.3f} +- {std:.3f}")
    rows.append((f"TransferRegressor, best {search.best_params_}", search.score(X_test, y_test),
                 seconds))

    print("\n| model | held-out R^2 | seconds |\n| --- | --- | --- |")
    for name, score, sec in rows:
        print(f"| {name} | {score:.3f} | {sec:.0f} |")


if __name__ == "__main__":
    main()
