"""What TransferClassifierCV costs: against GridSearchCV over the same candidates and
splits, and against one TransferClassifier(freeze_depth=0) fit.

    .venv/bin/python benchmarks/bench_classifier_cv.py [--per-class 10] [--threads 1]

scikit-learn's digits (``--per-class`` training images per class, upsampled to
``--image-size``), pretrained EfficientNet-Lite0 (its weights ship in a package:
offline), the recipe's defaults. Each side runs in a fresh process (no shared
cache between sides); every side is scored on the same 500 held-out digits.
The grid side is ``GridSearchCV(TransferClassifier(...), {"freeze_depth":
DEFAULT_FREEZE_DEPTHS}, cv=<TransferClassifierCV's default splits>,
refit=True)``. The issue's target: the CV fit within 4x the single fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

TAG = "@@RESULT@@ "


def data(per_class: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target.astype(str), train_size=10 * per_class, stratify=digits.target,
        random_state=0)
    return X_train, y_train, X_test[:500], y_test[:500]


def per_candidate(model) -> dict:
    """Seconds (summed over splits) and scores of each candidate, from ``cv_results_``."""
    res = model.cv_results_
    return {str(p["freeze_depth"]): {"fit_s": float(f * model.n_splits_),
                                     "score_s": float(s * model.n_splits_),
                                     "mean": float(m), "std": float(sd)}
            for p, f, s, m, sd in zip(res["params"], res["mean_fit_time"],
                                      res["mean_score_time"], res["mean_test_score"],
                                      res["std_test_score"])}


def child(side: str, args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold

    from sktransfer import TransferClassifier, TransferClassifierCV
    from sktransfer._classifier_cv import DEFAULT_CV, DEFAULT_FREEZE_DEPTHS

    X, y, X_test, y_test = data(args.per_class)
    params = dict(backbone="efficientnet_lite0", weights="DEFAULT", image_size=args.image_size,
                  random_state=args.seed, device="cpu")
    result = {"side": side}
    start = time.perf_counter()
    if side == "single":
        model = TransferClassifier(freeze_depth=0, **params).fit(X, y)
    elif side == "cv":
        model = TransferClassifierCV(**params).fit(X, y)
        result["chosen"] = model.freeze_depth_
        result["refit_s"] = model.refit_time_
        result["per_candidate"] = per_candidate(model)
    else:
        folds, repeats = DEFAULT_CV
        cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=args.seed)
        model = GridSearchCV(TransferClassifier(**params),
                             {"freeze_depth": list(DEFAULT_FREEZE_DEPTHS)}, cv=cv).fit(X, y)
        result["chosen"] = model.best_params_["freeze_depth"]
        result["refit_s"] = model.refit_time_
        result["per_candidate"] = per_candidate(model)
    result["fit_s"] = time.perf_counter() - start
    result["held_out_accuracy"] = float(model.score(X_test, y_test))
    print(TAG + json.dumps(result))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sides", default="single,cv,grid")
    parser.add_argument("--child", default=None)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args)
    forwarded = [f"--per-class={args.per_class}", f"--image-size={args.image_size}",
                 f"--threads={args.threads}", f"--seed={args.seed}"]
    runs = []  # sides may repeat (--sides single,cv,grid,cv,grid): machine load drifts
    for side in args.sides.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", side, *forwarded],
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
        if proc.returncode or not lines:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"side {side!r} failed")
        runs.append(json.loads(lines[-1][len(TAG):]))
        print(json.dumps(runs[-1]), flush=True)
    singles = [r["fit_s"] for r in runs if r["side"] == "single"]
    single = min(singles) if singles else None
    for r in runs:
        ratio = f"{r['fit_s'] / single:.2f}x best single" if single else ""
        print(f"{r['side']:<7} fit {r['fit_s']:7.1f} s  {ratio:<19} chosen "
              f"{r.get('chosen', 0)!s:<4} held-out accuracy {r['held_out_accuracy']:.3f}")


if __name__ == "__main__":
    main()
