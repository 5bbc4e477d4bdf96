"""FeatureExtractor throughput vs a plain ``torch.inference_mode`` loop, and its cache.

Both sides run the same torchvision resnet18 (the same saved, seeded weights),
the same batch size, on the same uint8 images, and must give the same
features. The plain loop is what a user writes by hand: per batch, uint8 NHWC
-> float NCHW in [0, 1] -> normalise -> ``model(x)`` (``fc`` replaced by
``Identity``). It is also timed on batches normalised in advance ("model only"),
which turns out *slower* on this CPU: the per-batch ``permute`` of NHWC data
leaves the tensor channels-last in memory, and oneDNN's channels-last
convolutions are ~20% faster here. sktransfer: ``FeatureExtractor(..., cache=False)
.transform(X)``.

Then the feature cache: with ``cache=True`` the second ``transform`` of the
same data, over the first; and with ``memory=<folder>`` the first transform in a
*new process* after another process filled the disk cache, over that
process's own first transform.

Throughput is timed in one process that alternates the three loops pass by
pass (the box is shared and noisy); peak memory and features come from one
fresh process per side.

Accuracy: a LogisticRegression on each side's features (train split), scored
on the held-out split.

    python benchmarks/bench_extractor.py
    python benchmarks/bench_extractor.py --n-train 512 --n-test 512 --passes 5
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

import _common as c


def _plain(args, X):
    import torch

    model = c.plain_resnet18(args.weights_path, None, args.seed).eval()
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    bs = args.batch_size

    def run(data):
        outs = []
        with torch.inference_mode():
            for lo in range(0, len(data), bs):
                x = torch.from_numpy(data[lo:lo + bs]).permute(0, 3, 1, 2).float().div_(255)
                outs.append(model((x - mean) / std))
        return torch.cat(outs).numpy()

    run(X[:bs])  # warm-up: oneDNN primitives, allocator
    times, feats = [], None
    for _ in range(args.passes):
        with c.Timer() as t:
            feats = run(X)
        times.append(t.seconds)
    result = {"transform_s": min(times), "peak_rss_mib": c.peak_rss_bytes() / 2**20}
    batches = [c.preprocess(X[lo:lo + bs]) for lo in range(0, len(X), bs)]
    model_times = []
    for _ in range(args.passes):
        with c.Timer() as t, torch.inference_mode():
            for x in batches:
                model(x)
        model_times.append(t.seconds)
    result["model_only_s"] = min(model_times)
    return result, feats


def _sktransfer(args, X):
    from sktransfer import FeatureExtractor
    from sktransfer._cache import clear_caches

    fe = FeatureExtractor("resnet18", weights=args.weights_path, image_size=args.size,
                          batch_size=args.batch_size, device="cpu", cache=False,
                          random_state=args.seed).fit(X)
    fe.transform(X[:args.batch_size])  # the same warm-up as the plain loop
    times, feats = [], None
    for _ in range(args.passes):
        with c.Timer() as t:
            feats = fe.transform(X)
        times.append(t.seconds)
    result = {"transform_s": min(times), "peak_rss_mib": c.peak_rss_bytes() / 2**20}
    clear_caches()
    cached = FeatureExtractor("resnet18", weights=args.weights_path, image_size=args.size,
                              batch_size=args.batch_size, device="cpu", cache=True,
                              random_state=args.seed).fit(X)
    with c.Timer() as first:
        a = cached.transform(X)
    with c.Timer() as second:
        b = cached.transform(X)
    assert np.array_equal(a, b)
    result.update(first_s=first.seconds, second_s=second.seconds)
    return result, feats


def _interleaved(args, X):
    """All three loops in one process, alternating pass by pass, fastest pass of each.

    The box is shared and its load changes by the second; alternating within one
    process exposes every side to the same load, which separate processes don't.
    """
    import torch
    from sktransfer import FeatureExtractor

    model = c.plain_resnet18(args.weights_path, None, args.seed).eval()
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    bs = args.batch_size
    batches = [c.preprocess(X[lo:lo + bs]) for lo in range(0, len(X), bs)]
    fe = FeatureExtractor("resnet18", weights=args.weights_path, image_size=args.size,
                          batch_size=bs, device="cpu", cache=False,
                          random_state=args.seed).fit(X)

    def plain():
        with torch.inference_mode():
            for lo in range(0, len(X), bs):
                x = torch.from_numpy(X[lo:lo + bs]).permute(0, 3, 1, 2).float().div_(255)
                model((x - mean) / std)

    def model_only():
        with torch.inference_mode():
            for x in batches:
                model(x)

    loops = {"plain_s": plain, "model_only_s": model_only,
             "sktransfer_s": lambda: fe.transform(X)}
    fe.transform(X[:bs])
    plain()
    times = {k: [] for k in loops}
    for r in range(args.passes):
        for k in (list(loops) if r % 2 == 0 else list(loops)[::-1]):
            with c.Timer() as t:
                loops[k]()
            times[k].append(t.seconds)
    return {k: min(v) for k, v in times.items()}, None


def _sktransfer_disk(args, X):
    """First transform in this process with a disk cache (``memory=``)."""
    from sktransfer import FeatureExtractor

    fe = FeatureExtractor("resnet18", weights=args.weights_path, image_size=args.size,
                          batch_size=args.batch_size, device="cpu", cache=False,
                          memory=args.memory, random_state=args.seed).fit(X)
    with c.Timer() as t:
        fe.transform(X)
    return {"transform_s": t.seconds}, None


def child(args) -> None:
    c.set_threads(args.threads)
    c.warm_imports(sktransfer=args.child != "plain")
    X, _ = c.make_images(args.n_train + args.n_test, args.size, seed=args.seed,
                         tint=args.tint)
    run = {"plain": _plain, "sktransfer": _sktransfer, "disk": _sktransfer_disk,
           "interleaved": _interleaved}[args.child]
    result, feats = run(args, X)
    if feats is not None:
        np.save(args.out + f".{args.child}.npy", feats)
    c.emit(result)


def _probe_accuracy(feats, y, n_train) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(feats[:n_train], y[:n_train])
    return float(clf.score(feats[n_train:], y[n_train:]))


def main(argv=None) -> int:
    p = c.base_parser(__doc__.splitlines()[0], n_train=256, n_test=256, size=112, repeat=1)
    p.add_argument("--passes", type=int, default=5,
                   help="timed passes of each loop, alternating in one process (fastest kept)")
    p.add_argument("--out", help=argparse_suppress())
    p.add_argument("--memory", help=argparse_suppress())
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    folder = c.with_weights(args)
    args.out = os.path.join(folder, "features")
    args.memory = os.path.join(folder, "joblib")
    extra = ["--passes", str(args.passes), "--out", args.out, "--memory", args.memory]
    n = args.n_train + args.n_test
    print(f"machine: {c.machine()}; torch threads per side: {args.threads}")
    print(f"data: {n} uint8 images {args.size}x{args.size}x3; resnet18 (seeded random init, "
          f"BatchNorm statistics calibrated), batch {args.batch_size}")
    try:
        runs = c.alternate(__file__, ["plain", "sktransfer"], args,
                           extra[:0] + ["--passes", "1"] + extra[2:])
        inter = c.run_child(__file__, "interleaved", args, extra)
        print(f"  [interleaved] {inter}", flush=True)
        disk = [c.run_child(__file__, "disk", args, extra) for _ in range(2)]
        _, y = c.make_images(n, 8, seed=args.seed)  # labels only (same RNG stream)
        feats = {s: np.load(f"{args.out}.{s}.npy") for s in ("plain", "sktransfer")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    plain = n / inter["plain_s"]
    model_only = n / inter["model_only_s"]
    skt = n / inter["sktransfer_s"]
    acc = {s: _probe_accuracy(f, y, args.n_train) for s, f in feats.items()}
    diff = float(np.abs(feats["plain"] - feats["sktransfer"]).max())
    first = min(r["first_s"] for r in runs["sktransfer"])
    second = min(r["second_s"] for r in runs["sktransfer"])
    rows = [("figure", "plain", "sktransfer", "ratio", "target"),
            ("throughput, img/s (plain loop converting uint8 per batch)", f"{plain:.1f}",
             f"{skt:.1f}", f"{skt / plain:.3f}", ">= 0.95"),
            ("throughput, img/s (plain loop on pre-normalised NCHW-contiguous floats)", f"{model_only:.1f}",
             f"{skt:.1f}", f"{skt / model_only:.3f}", "-"),
            ("probe accuracy (LogisticRegression on the features)", f"{acc['plain']:.3f}",
             f"{acc['sktransfer']:.3f}", f"max |diff| {diff:.1e}", "within 0.01"),
            ("second transform / first (cache=True), s", "-",
             f"{second:.4f} / {first:.2f}", f"{second / first:.4f}", "<= 0.05"),
            ("new process, disk cache filled / cold (memory=), s", "-",
             f"{disk[1]['transform_s']:.3f} / {disk[0]['transform_s']:.2f}",
             f"{disk[1]['transform_s'] / disk[0]['transform_s']:.4f}", "-"),
            ("peak RSS of the process, MiB", f"{runs['plain'][0]['peak_rss_mib']:.0f}",
             f"{runs['sktransfer'][0]['peak_rss_mib']:.0f}", "", "")]
    print()
    print(c.table(rows))
    ok = skt / plain >= 0.95 and second / first <= 0.05 and \
        abs(acc["plain"] - acc["sktransfer"]) <= 0.01
    return 0 if ok else 1


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
