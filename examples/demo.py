"""What transfer learning buys on a few-shot task, offline, in a couple of minutes.

The task: tell which of ten pictures a small patch was cut from. The pictures
ship with scikit-image (brick, grass, gravel, coffee, a cat, an astronaut, a
rocket, a tissue stain) and scikit-learn (a temple in China, a flower). The
training patches come from the left half of each picture, six per class; the
test patches from the right half, so a model has to recognise *what* is in
a patch, not remember pixels. Cross-validation works the same way: each
training patch lies in one of three horizontal bands, and the folds are the
bands.

The ways to solve it, side by side:

1. logistic regression on raw pixels;
2. pretrained features (``FeatureExtractor``) + logistic regression;
3. ``TransferClassifier`` as a linear probe (``freeze_depth="all"``);
4. ``TransferClassifier`` fine-tuned, at the depth cross-validation liked best;
5. ``GridSearchCV`` over ``freeze_depth``, which picks between 3 and 4 (and the
   depths in between) by cross-validation alone;
6. ``TransferClassifierCV``: the same candidates and folds, chosen with a
   variance-aware rule (the most frozen candidate within half a standard error
   of the best by accuracy and by the Brier score), the way to choose on a set
   this small.

Every TransferClassifier runs with the default training recipe (BatchNorm kept in
inference mode, head warm-up, cosine schedule; see ``sktransfer/_recipe.py``).

Run ``make demo`` (or ``python examples/demo.py``). ``SKTRANSFER_FAST=1`` shrinks
everything to a few seconds (for the tests). Plots go to ./demo_output/.
"""

import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skimage import data
from skimage.transform import resize
from sklearn.base import clone
from sklearn.datasets import load_sample_images
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.dataset import ValidSplit
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sktransfer import FeatureExtractor, TransferClassifier, TransferClassifierCV
from sktransfer.plotting import plot_freeze_depth, plot_history

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")
OUT = Path(os.environ.get("SKTRANSFER_DEMO_OUTPUT", "demo_output"))
BACKBONE = "efficientnet_lite0"  # ImageNet weights ship with pip: works offline
SEED = 0

if FAST:
    N_CLASSES, SHOTS, N_TEST, PATCH, IMAGE_SIZE, EPOCHS, CV = 4, 3, 3, 32, 64, 2, 3
    GRID = [{"freeze_depth": [-1, "all"], "freeze_strategy": ["depth"]}]
else:
    N_CLASSES, SHOTS, N_TEST, PATCH, IMAGE_SIZE, EPOCHS, CV = 10, 6, 20, 64, 128, 12, 3
    # freeze_depth counts blocks: stem, stage1..stage7, head_conv; -3 trains stage6 and
    # up, -1 only head_conv, "all" is a linear probe on the frozen backbone. The frozen
    # prefix is computed once and shared by every candidate and fold. (freeze_depth=0,
    # everything trained, costs minutes per fit at 128 px on a laptop CPU.)
    GRID = [{"freeze_depth": [-3, -1, "all"], "freeze_strategy": ["depth"]}]

torch.set_num_threads(min(2, os.cpu_count() or 1))
warnings.filterwarnings("ignore", category=UserWarning)


def pictures() -> dict:
    china, flower = load_sample_images().images
    return {"brick": data.brick(), "grass": data.grass(), "gravel": data.gravel(),
            "coffee": data.coffee(), "cat": data.chelsea(), "astronaut": data.astronaut(),
            "rocket": data.rocket(), "tissue": data.immunohistochemistry(),
            "temple": china, "flower": flower}


def patches(image, n, rng, half, bands=None):
    """``n`` random square crops from the left or right half of ``image``.

    With ``bands``, crop ``i`` stays inside horizontal band ``bands[i]`` (of 3),
    so cross-validation by band tests on regions no training patch overlaps.
    """
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    h, w = image.shape[:2]
    lo, hi = (0, w // 2) if half == "left" else (w // 2, w)
    out = []
    for i in range(n):
        side = int(rng.uniform(0.6, 1.0) * h / 3)
        top_lo, top_hi = (0, h) if bands is None else (bands[i] * h // 3, (bands[i] + 1) * h // 3)
        top = rng.randint(top_lo, max(top_lo, top_hi - side) + 1)
        left = rng.randint(lo, hi - side + 1)
        crop = image[top:top + side, left:left + side]
        if rng.rand() < 0.5:
            crop = crop[:, ::-1]
        out.append((resize(crop, (PATCH, PATCH), anti_aliasing=True) * 255).astype(np.uint8))
    return out


def make_task():
    """Training patches from the left halves (each in one of 3 bands), test from the right."""
    rng = np.random.RandomState(SEED)
    X_train, y_train, band_train, X_test, y_test = [], [], [], [], []
    for name, image in list(pictures().items())[:N_CLASSES]:
        bands = [i % 3 for i in range(SHOTS)]
        X_train += patches(image, SHOTS, rng, "left", bands)
        y_train += [name] * SHOTS
        band_train += bands
        X_test += patches(image, N_TEST, rng, "right")
        y_test += [name] * N_TEST
    return (np.stack(X_train), np.array(y_train), np.array(band_train), np.stack(X_test),
            np.array(y_test))


def timed(fit):
    start = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - start


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    X_train, y_train, bands, X_test, y_test = make_task()
    classes = np.unique(y_train)
    print(f"{len(classes)} classes ({', '.join(classes)}); {SHOTS} training patches per class "
          f"from the left halves, {N_TEST} test patches per class from the right halves; "
          f"{PATCH}x{PATCH} pixels\n")
    results = []

    # 1. raw pixels
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with threadpool_limits(1):  # a tiny problem: BLAS threads only add overhead
        _, seconds = timed(lambda: raw.fit(X_train.reshape(len(X_train), -1), y_train))
    results.append(("LogisticRegression on raw pixels",
                    raw.score(X_test.reshape(len(X_test), -1), y_test), seconds))

    # 2. pretrained features + logistic regression
    extractor = FeatureExtractor(BACKBONE, weights="DEFAULT", image_size=IMAGE_SIZE)

    def features(X, desc):
        # chunks only to show progress; FeatureExtractor batches on its own
        chunks = np.array_split(X, max(1, len(X) // 32))
        # disable=None: tqdm draws no bar when stderr is not a terminal (a log file)
        return np.concatenate([extractor.transform(c) for c in tqdm(chunks, desc=desc,
                                                                     leave=False, disable=None)])

    def fit_probe():
        extractor.fit(X_train[:1])
        train_features = features(X_train, "features (train)")
        with threadpool_limits(1):
            return LogisticRegression(max_iter=2000).fit(train_features, y_train)

    probe, seconds = timed(fit_probe)
    results.append((f"FeatureExtractor({BACKBONE}) + LogisticRegression",
                    probe.score(features(X_test, "features (test)"), y_test), seconds))

    # 3. fine-tuning, with freeze depth and strategy chosen by cross-validation
    n_fits = sum(np.prod([len(v) for v in g.values()]) for g in GRID) * CV
    bar = tqdm(total=n_fits, desc="grid search (fits)", leave=False, disable=None)
    accuracy = get_scorer("accuracy")

    def scorer(estimator, X, y):  # one call per finished fit: drives the progress bar
        bar.update(1)
        return accuracy(estimator, X, y)

    clf = TransferClassifier(BACKBONE, weights="DEFAULT", image_size=IMAGE_SIZE,
                             max_epochs=EPOCHS, batch_size=16, random_state=SEED)
    # folds by band: validation patches never overlap the training patches of a fold
    search = GridSearchCV(clf, GRID, scoring=scorer, cv=GroupKFold(CV))
    _, grid_seconds = timed(lambda: search.fit(X_train, y_train, groups=bands))
    bar.close()

    # the probe and the best fine-tuned depth, each refitted on all training patches
    res = search.cv_results_
    tuned = [i for i in np.argsort(res["rank_test_score"], kind="stable")
             if res["param_freeze_depth"][i] != "all"][0]
    for label, params in (("linear probe, freeze_depth=all", {"freeze_depth": "all"}),
                          (f"fine-tuned, freeze_depth={res['param_freeze_depth'][tuned]} "
                           f"(best fine-tuned depth by CV)", res["params"][tuned])):
        if params == {k: search.best_params_[k] for k in params}:
            model, seconds = search.best_estimator_, search.refit_time_
        else:
            model, seconds = timed(lambda: clone(clf).set_params(**params).fit(X_train, y_train))
        results.append((f"TransferClassifier({BACKBONE}), {label}", model.score(X_test, y_test),
                        seconds))
    best = search.best_params_
    results.append((f"GridSearchCV over freeze_depth: picks freeze_depth={best['freeze_depth']}",
                    search.score(X_test, y_test), grid_seconds))

    # 4. the same choice, made by TransferClassifierCV on the same folds
    selector = TransferClassifierCV(BACKBONE, weights="DEFAULT", image_size=IMAGE_SIZE,
                                    freeze_depths=GRID[0]["freeze_depth"], max_epochs=EPOCHS,
                                    batch_size=16, random_state=SEED,
                                    cv=list(GroupKFold(CV).split(X_train, y_train, bands)))
    _, seconds = timed(lambda: selector.fit(X_train, y_train))
    results.append((f"TransferClassifierCV: picks freeze_depth={selector.freeze_depth_}",
                    selector.score(X_test, y_test), seconds))

    print("Cross-validated accuracy of each setting (on the training patches):")
    for i in np.argsort(res["rank_test_score"], kind="stable"):
        print(f"  freeze_depth={str(res['param_freeze_depth'][i]):>4}  "
              f"strategy={res['param_freeze_strategy'][i]:<14} "
              f"accuracy {res['mean_test_score'][i]:.3f} +- {res['std_test_score'][i]:.3f}  "
              f"({res['mean_fit_time'][i]:.1f} s per fit)")

    # the learning curve of the best setting, with a validation split to watch
    print("\nRefitting the best setting, validating on band 3 of the training pictures, "
          "for its learning curve:")
    curve = clone(search.best_estimator_).set_params(
        train_split=ValidSplit(PredefinedSplit(np.where(bands == 2, 0, -1))), verbose=1)
    curve.fit(X_train, y_train)

    width = max(len(r[0]) for r in results)
    print(f"\n{'method'.ljust(width)}  test accuracy  fit time (s)")
    print(f"{'-' * width}  -------------  ------------")
    for name, score, seconds in results:
        print(f"{name.ljust(width)}  {score:13.3f}  {seconds:12.1f}")
    print(f"(chance: {1 / len(classes):.3f}; {len(y_test)} test patches)")

    # the search scored with a function of its own (it drives the progress bar): say that
    # it returns an accuracy, so the +-1 std band stays within [0, 1]
    plot_freeze_depth(search, title=f"{BACKBONE}, {SHOTS}-shot, {len(classes)} classes: "
                                    f"accuracy against freeze depth", score_range=(0, 1)
                      ).savefig(OUT / "freeze_depth.png", dpi=110)
    plot_history(curve).savefig(OUT / "learning_curve.png", dpi=110)
    print(f"\nPlots written to {OUT.resolve()}/ (freeze_depth.png, learning_curve.png)")


if __name__ == "__main__":
    main()
