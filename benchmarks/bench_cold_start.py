"""Cold start: what a fresh process pays before its first features.

Every CLI call, every joblib or dask worker starts from nothing, so the time to
import sktransfer and make the first ``FeatureExtractor("resnet18", weights=None)``
fit is paid again and again. This script compares it with the least a user can
pay for the same model in plain torchvision: import it, build
``torchvision.models.resnet18(weights=None)``, and run it (eval, no_grad) on the
same few 32x32 images.

Each side runs in its own fresh ``python`` process, the two alternating (the box
is shared and noisy); a side's time is the child's whole wall time, interpreter
start included. The script prints every run, the medians and their ratio, and
exits 1 when the ratio is above ``--max-ratio`` (default 1.3).

    python benchmarks/bench_cold_start.py
    python benchmarks/bench_cold_start.py --repeats 9 --max-ratio 1.3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

# the same images on both sides: 8 uint8 RGB images of 32x32, seeded
_DATA = "import numpy as np; X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)\n"

SIDES = {
    "torchvision": _DATA + (
        "import torch, torchvision\n"
        "model = torchvision.models.resnet18(weights=None).eval()\n"
        "with torch.no_grad():\n"
        "    out = model(torch.from_numpy(X).permute(0, 3, 1, 2).float() / 255)\n"
        "assert out.shape == (8, 1000)\n"),
    "sktransfer": _DATA + (
        "from sktransfer import FeatureExtractor\n"
        "fx = FeatureExtractor('resnet18', weights=None).fit(X)\n"
        "assert fx.n_features_out_ == 512\n"),
}


def run_once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per side; default: 5")
    parser.add_argument("--max-ratio", type=float, default=1.3,
                        help="fail when sktransfer / torchvision is above this; default: 1.3")
    args = parser.parse_args(argv)
    run_once(SIDES["torchvision"])  # warm the OS file cache for both sides alike
    run_once(SIDES["sktransfer"])
    times = {side: [] for side in SIDES}
    for i in range(args.repeats):
        for side, code in SIDES.items():
            times[side].append(run_once(code))
            print(f"run {i + 1}: {side:<12} {times[side][-1]:.2f} s", flush=True)
    medians = {side: statistics.median(t) for side, t in times.items()}
    ratio = medians["sktransfer"] / medians["torchvision"]
    print(f"median torchvision {medians['torchvision']:.2f} s, sktransfer "
          f"{medians['sktransfer']:.2f} s, ratio {ratio:.2f} (limit {args.max_ratio})")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
