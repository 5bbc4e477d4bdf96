"""Fit time: naive skorch (NeuralNetClassifier + Freezer) vs sktransfer.TransferClassifier.

Both sides train resnet18 from the same saved (seeded, random-init) weights,
with AdamW, the same lr, batch size, epochs and seed, on the same images, and
are scored on the same held-out split. The naive side follows skorch's
transfer-learning tutorial: a torchvision model with a new ``fc``, a
``Freezer`` callback freezing the same parameters as ``freeze_depth``, fed the
images already normalised as a float tensor (that conversion is done once,
outside its timer, which favours the baseline). sktransfer gets the uint8
array and does its own preprocessing inside ``fit``.

    python benchmarks/bench_fit.py                      # freeze_depth "all" and 3
    python benchmarks/bench_fit.py --depths 3 --repeat 2
    python benchmarks/bench_fit.py --depths 3 --strategy lp_ft --uncached

``--strategy lp_ft``: linear probe for half of the epochs, then fine-tune the
stages above the depth (naive: skorch's ``Freezer`` + ``Unfreezer``).
``--uncached`` adds a third side, sktransfer with ``cache=False``, to show what
the cache alone saves (for lp_ft: its probe epochs on cached pooled features).
The ratios are of wall-clock fit times (the fastest run of each side) and, as a
check on a shared machine, of the CPU time of the same runs.

Each side runs in a fresh process; peak memory is that process's
``ru_maxrss`` (whole process: Python + torch + data + model), and "fit +MiB" is
the rise of peak RSS over the RSS just before ``fit``.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np

import _common as c

TARGETS = {"all": 4.0, "3": 1.3}  # with --strategy depth


def child(args) -> None:
    c.set_threads(args.threads)
    import torch

    c.warm_imports(sktransfer=args.child != "naive")
    depth = args.depth if args.depth == "all" else int(args.depth)
    X, y = c.make_images(args.n_train + args.n_test, args.size, seed=args.seed,
                         tint=args.tint)
    X_tr, y_tr, X_te, y_te = c.split(X, y, args.n_train)
    result = {}
    if args.child == "naive":
        Xf_tr, Xf_te = c.preprocess(X_tr), c.preprocess(X_te)
        yt = torch.from_numpy(y_tr.astype(np.int64))
        before = c.rss_bytes()
        with c.Timer() as t:  # from the weights file, as sktransfer's fit
            net = c.naive_skorch(args.weights_path, depth, args, args.seed, args.strategy)
            torch.manual_seed(args.seed)
            net.fit(Xf_tr, yt)
        with c.Timer() as tp:
            pred = net.predict(Xf_te)
        n_trainable = sum(p.numel() for p in net.module_.parameters() if p.requires_grad)
    else:
        net = c.sktransfer_classifier(args.weights_path, depth, args, args.seed,
                                      freeze_strategy=args.strategy,
                                      cache=False if args.child == "uncached" else "auto")
        before = c.rss_bytes()
        with c.Timer() as t:
            net.fit(X_tr, y_tr)
        with c.Timer() as tp:
            pred = net.predict(X_te)
        n_trainable = sum(p.numel() for p in net.module_.parameters() if p.requires_grad)
        result["cache_used"] = bool(net.cache_used_)
    result.update(fit_s=t.seconds, fit_cpu_s=t.cpu_seconds, predict_s=tp.seconds,
                  accuracy=float(np.mean(np.asarray(pred) == y_te)),
                  trainable=n_trainable, fit_peak_rise_mib=0.0)
    result["fit_peak_rise_mib"] = max(0.0, (c.peak_rss_bytes() - before) / 2**20)
    c.emit(result)


def main(argv=None) -> int:
    p = c.base_parser(__doc__.splitlines()[0], n_train=256, n_test=256, size=112)
    p.add_argument("--depths", default="all,3", help="comma-separated freeze depths")
    p.add_argument("--depth", help=argparse_suppress())
    p.add_argument("--strategy", default="depth", choices=["depth", "lp_ft"],
                   help="freezing strategy of both sides (default: depth)")
    p.add_argument("--uncached", action="store_true",
                   help="also time sktransfer with cache=False")
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    folder = c.with_weights(args)
    c.print_header(args, f"; strategy {args.strategy}")
    sides = ["naive", "sktransfer"] + (["uncached"] if args.uncached else [])
    rows = [("freeze_depth", "naive fit s", "sktransfer fit s", "naive/sktransfer", "target",
             "(CPU s)", "acc naive", "acc sktransfer", "peak MiB naive",
             "peak MiB sktransfer", "fit +MiB naive", "fit +MiB sktransfer")
            + (("uncached fit s", "uncached/sktransfer", "(CPU s)") if args.uncached else ())]
    ok = True
    try:
        for depth in args.depths.split(","):
            print(f"freeze_depth={depth}:", flush=True)
            runs = c.alternate(__file__, sides, args,
                               ["--depth", depth, "--strategy", args.strategy])
            naive, skt = c.best(runs["naive"], "fit_s"), c.best(runs["sktransfer"], "fit_s")
            cpu = {side: c.best(runs[side], "fit_cpu_s") for side in sides}
            ratio = naive / skt
            target = TARGETS.get(depth) if args.strategy == "depth" else None
            ok &= target is None or ratio >= target
            row = (depth, f"{naive:.1f}", f"{skt:.1f}", f"{ratio:.2f}",
                   f">= {target}" if target else "-",
                   f"{cpu['naive']:.1f} / {cpu['sktransfer']:.1f} = "
                   f"{cpu['naive'] / cpu['sktransfer']:.2f}",
                   f"{runs['naive'][0]['accuracy']:.3f}",
                   f"{runs['sktransfer'][0]['accuracy']:.3f}",
                   f"{runs['naive'][0]['peak_rss_mib']:.0f}",
                   f"{runs['sktransfer'][0]['peak_rss_mib']:.0f}",
                   f"{runs['naive'][0]['fit_peak_rise_mib']:.0f}",
                   f"{runs['sktransfer'][0]['fit_peak_rise_mib']:.0f}")
            if args.uncached:
                plain = c.best(runs["uncached"], "fit_s")
                row += (f"{plain:.1f}", f"{plain / skt:.2f}",
                        f"{cpu['uncached']:.1f} / {cpu['sktransfer']:.1f} = "
                        f"{cpu['uncached'] / cpu['sktransfer']:.2f}")
            rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(c.table(rows))
    return 0 if ok else 1


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
