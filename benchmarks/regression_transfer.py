"""Regression from offline photos: how far is each crop zoomed in? (TransferRegressor)

    .venv/bin/python benchmarks/regression_transfer.py [--n-train 150] [--epochs 6]
    .venv/bin/python benchmarks/regression_transfer.py --cv [--n-train 40] [--seeds 0 1 2 3 4]
    .venv/bin/python benchmarks/regression_transfer.py --cv --ablate steps=min_steps:50 [--n-train 40]

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

``--cv``: a small set instead (``--n-train``, e.g. 40), one draw of crops per seed:
``TransferRegressor`` at each default candidate of ``TransferRegressorCV`` (its
defaults otherwise) and ``TransferRegressorCV`` itself; mean ± std of held-out R^2
over the seeds, the regret against the best candidate per seed, and the
``TransferRegressorCV`` fit time over one ``freeze_depth=0`` fit. No target: the
selection rule was chosen on classification (``small_data.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata
from skimage.transform import resize
from sklearn.datasets import load_sample_images
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import FeatureExtractor, TransferRegressor, TransferRegressorCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_settings, parse_value  # noqa: E402

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


def _small_model(args) -> dict:
    return dict(backbone="efficientnet_lite0", image_size=args.image_size, device="cpu")


def _small_draw(args, seed: int):
    """``--cv``'s data: a fresh draw of ``--n-train`` crops per seed, the same test crops."""
    photos = TRAIN_PHOTOS + TEST_PHOTOS
    X_train, y_train = crops(photos, args.n_train, args.image_size, seed=100 + seed)
    X_test, y_test = crops(photos, args.n_test, args.image_size, seed=1)
    return X_train, y_train, X_test, y_test


def small_sets(args) -> None:
    """``--cv``: the candidates and TransferRegressorCV on small draws, over seeds."""
    from sktransfer._search_cv import DEFAULT_FREEZE_DEPTHS

    model = _small_model(args)
    rows = {}
    for seed in args.seeds:
        X_train, y_train, X_test, y_test = _small_draw(args, seed)
        fits = [(f"freeze_depth={d}", TransferRegressor(freeze_depth=d, random_state=seed,
                                                         **model))
                for d in DEFAULT_FREEZE_DEPTHS]
        fits.append(("TransferRegressorCV", TransferRegressorCV(random_state=seed, **model)))
        for name, est in fits:
            start = time.perf_counter()
            est.fit(X_train, y_train)
            seconds = time.perf_counter() - start
            extra = est.freeze_depth_ if isinstance(est, TransferRegressorCV) else None
            rows.setdefault(name, []).append((est.score(X_test, y_test), seconds, extra))
            print(f"  [seed {seed}] {name}: R^2 {rows[name][-1][0]:.3f} ({seconds:.1f} s)"
                  + (f" chose {extra}" if extra is not None else ""), flush=True)
    names = [f"freeze_depth={d}" for d in DEFAULT_FREEZE_DEPTHS]
    oracle = [max(rows[n][i][0] for n in names) for i in range(len(args.seeds))]
    print(f"\n{args.n_train} training crops, seeds {args.seeds}; held-out R^2 on "
          f"{args.n_test} crops")
    print("| method | held-out R^2 | fit s | choices |\n|---|---|---|---|")
    for name, values in rows.items():
        r2 = [v[0] for v in values]
        choices = ", ".join(str(v[2]) for v in values if v[2] is not None)
        print(f"| {name} | {np.mean(r2):.3f} ± {np.std(r2):.3f} | "
              f"{np.mean([v[1] for v in values]):.1f} | {choices} |")
    regret = [o - v[0] for o, v in zip(oracle, rows["TransferRegressorCV"])]
    print(f"| oracle (best candidate per seed) | {np.mean(oracle):.3f} | | |")
    print(f"| regret of TransferRegressorCV | {np.mean(regret):.3f} (max {max(regret):.3f}) | | |")
    ratio = np.mean([v[1] for v in rows["TransferRegressorCV"]]) / \
        np.mean([v[1] for v in rows["freeze_depth=0"]])
    print(f"TransferRegressorCV fit / one freeze_depth=0 fit: {ratio:.2f}")


def ablate(args) -> None:
    """``--cv --ablate``: the regressor's recipe settings on the small draws of ``--cv``,
    at each of ``--ablate-depths``, every seed; mean ± std of held-out R^2."""
    settings = {"defaults": {}, **parse_settings(args.ablate)}
    depths = [parse_value(d) for d in args.ablate_depths.split(",")]
    model = _small_model(args)
    r2 = {}
    for seed in args.seeds:
        X_train, y_train, X_test, y_test = _small_draw(args, seed)
        for label, params in settings.items():
            for depth in depths:
                start = time.perf_counter()
                score = TransferRegressor(freeze_depth=depth, random_state=seed, **model,
                                          **params).fit(X_train, y_train).score(X_test, y_test)
                r2.setdefault((label, depth), []).append(score)
                print(f"  [seed {seed}] {label} depth {depth}: R^2 {score:.3f} "
                      f"({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"\n{args.n_train} training crops, seeds {args.seeds}\n"
          "| setting | depth | held-out R^2, mean ± std |\n|---|---|---|")
    for (label, depth), scores in r2.items():
        print(f"| {label} | {depth} | {np.mean(scores):.3f} ± {np.std(scores):.3f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--depths", default="5,7,all")
    parser.add_argument("--split", choices=["crops", "photos"], default="crops")
    parser.add_argument("--cv", action="store_true",
                        help="small sets over --seeds: the candidates and TransferRegressorCV")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--ablate", nargs="*", metavar="NAME=PARAMS",
                        help="with --cv, instead: TransferRegressor at --ablate-depths with its "
                             "defaults and with each setting (e.g. 'steps=min_steps:50')")
    parser.add_argument("--ablate-depths", default="-1,0")
    args = parser.parse_args(argv)
    if args.cv:
        torch.set_num_threads(1)
        ablate(args) if args.ablate is not None else small_sets(args)
        return
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
