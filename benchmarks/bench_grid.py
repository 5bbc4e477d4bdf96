"""GridSearchCV over every freeze depth, cv=3: naive skorch vs sktransfer.

Naive: the skorch tutorial's ``NeuralNetClassifier`` + ``Freezer`` (a named
callback), searched over ``callbacks__freezer__patterns`` - one pattern list
per depth, freezing exactly the parameters sktransfer's ``freeze_depth``
freezes - on images normalised in advance (outside the timer). sktransfer:
``TransferClassifier`` searched over ``freeze_depth`` on the uint8 images; the
process-wide activation cache is shared by candidates and folds. Same seeded
weights, AdamW, lr, batch size, epochs and folds (StratifiedKFold(3)); both
refit the best candidate on all the training data, which is timed too, and are
scored on the same held-out split.

    python benchmarks/bench_grid.py
    python benchmarks/bench_grid.py --n-train 240   # bigger (much slower)

Defaults are scaled down - 60 training images of 112x112, so 40 per fold - so
that the whole script, both sides, stays within ~5 minutes on 2 shared CPU
cores; the class signal is made stronger (``--tint 0.3``) so that on such
small folds the choice between near-tied candidates is not a coin toss that
swamps the accuracy comparison. At 64x64 the frozen prefix is too cheap for
caching to pay much (the trainable top and the optimizer step dominate);
112x112 is where resnet18's blocks cost about the same.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np

import _common as c

DEPTHS = [0, 1, 2, 3, 4, "all"]
TARGET = 1.25


def child(args) -> None:
    c.set_threads(args.threads)
    import torch
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    c.warm_imports(sktransfer=args.child == "sktransfer")
    X, y = c.make_images(args.n_train + args.n_test, args.size, seed=args.seed,
                         tint=args.tint)
    X_tr, y_tr, X_te, y_te = c.split(X, y, args.n_train)
    cv = StratifiedKFold(3)
    if args.child == "naive":
        Xf_tr = c.preprocess(X_tr).numpy()
        Xf_te = c.preprocess(X_te).numpy()
        y_fit = y_tr.astype(np.int64)
        before = c.rss_bytes()
        with c.Timer() as t:
            net = c.naive_skorch(args.weights_path, 0, args, args.seed)
            grid = {"callbacks__freezer__patterns": [c.freeze_patterns(d) for d in DEPTHS]}
            torch.manual_seed(args.seed)
            search = GridSearchCV(net, grid, cv=cv).fit(Xf_tr, y_fit)
        pred = search.predict(Xf_te)
        best = DEPTHS[search.best_index_]
    else:
        from sktransfer._cache import ACTIVATIONS

        before = c.rss_bytes()
        with c.Timer() as t:
            net = c.sktransfer_classifier(args.weights_path, 0, args, args.seed)
            search = GridSearchCV(net, {"freeze_depth": DEPTHS}, cv=cv).fit(X_tr, y_tr)
        pred = search.predict(X_te)
        best = search.best_params_["freeze_depth"]
    scores = [float(s) for s in search.cv_results_["mean_test_score"]]
    fit_times = [float(s) for s in search.cv_results_["mean_fit_time"]]
    # scoring the folds: predict-time prefix reuse makes this the top of the network only
    score_s = float(np.sum(search.cv_results_["mean_score_time"]) * cv.get_n_splits())
    result = {"grid_s": t.seconds, "best_depth": str(best), "cv_scores": scores,
              "mean_fit_s": fit_times, "score_s": score_s,
              "accuracy": float(np.mean(np.asarray(pred) == y_te)),
              "fit_peak_rise_mib": max(0.0, (c.peak_rss_bytes() - before) / 2**20)}
    if args.child == "sktransfer":
        result.update(cache_hits=ACTIVATIONS.hits, cache_misses=ACTIVATIONS.misses,
                      cache_mib=ACTIVATIONS.nbytes / 2**20)
    c.emit(result)


def main(argv=None) -> int:
    p = c.base_parser(__doc__.splitlines()[0], n_train=60, n_test=120, size=112, tint=0.3)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    folder = c.with_weights(args)
    c.print_header(args, f"; freeze depths {DEPTHS}, cv=3, refit")
    try:
        runs = c.alternate(__file__, ["naive", "sktransfer"], args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    naive, skt = runs["naive"][0], runs["sktransfer"][0]
    ratio = c.best(runs["naive"], "grid_s") / c.best(runs["sktransfer"], "grid_s")
    rows = [("", "naive skorch", "sktransfer"),
            ("GridSearchCV time, s", f"{c.best(runs['naive'], 'grid_s'):.1f}",
             f"{c.best(runs['sktransfer'], 'grid_s'):.1f}"),
            ("naive / sktransfer (target >= 1.25)", f"{ratio:.2f}", ""),
            ("mean fit s per depth " + "/".join(map(str, DEPTHS)),
             " / ".join(f"{s:.1f}" for s in naive["mean_fit_s"]),
             " / ".join(f"{s:.1f}" for s in skt["mean_fit_s"])),
            ("scoring the 18 folds x candidates, s", f"{naive['score_s']:.1f}",
             f"{skt['score_s']:.1f}"),
            ("cv accuracy per depth",
             " / ".join(f"{s:.2f}" for s in naive["cv_scores"]),
             " / ".join(f"{s:.2f}" for s in skt["cv_scores"])),
            ("best depth", naive["best_depth"], skt["best_depth"]),
            ("held-out accuracy of the refit best", f"{naive['accuracy']:.3f}",
             f"{skt['accuracy']:.3f}"),
            ("peak RSS of the process, MiB", f"{naive['peak_rss_mib']:.0f}",
             f"{skt['peak_rss_mib']:.0f}"),
            ("peak rise during the search, MiB", f"{naive['fit_peak_rise_mib']:.0f}",
             f"{skt['fit_peak_rise_mib']:.0f}")]
    print()
    print(c.table(rows))
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
