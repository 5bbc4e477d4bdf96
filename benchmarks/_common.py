"""Shared pieces of the benchmarks: data, the naive skorch baseline, child processes.

Every measured side (plain torch / naive skorch / sktransfer) runs in a fresh
child process, so its peak memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
is its own and no cache or allocator state leaks from one side to the other.
The parent only spawns children, collects one JSON line from each, and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULT_TAG = "@@RESULT@@ "

# the ResNet stages sktransfer calls blocks (stem, layer1..layer4) + pool, as
# parameter-name patterns for skorch's Freezer
RESNET_STAGE_PATTERNS = [["conv1.*", "bn1.*"], ["layer1.*"], ["layer2.*"], ["layer3.*"],
                         ["layer4.*"]]
N_CLASSES = 4


# -- settings on the command line (--ablate) ----------------------------------------
def parse_value(text: str):
    """A command-line value: an int, a float, None/True/False, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(text, text)


def parse_settings(items) -> dict[str, dict]:
    """``["C01=head_warmup_C:0.01,min_steps:0", ...]`` -> ``{"C01": {...}, ...}``."""
    settings = {}
    for item in items:
        name, _, spec = item.partition("=")
        settings[name] = {k: parse_value(v) for k, v in (p.split(":", 1)
                                                          for p in spec.split(",") if p)}
    return settings


# -- data ---------------------------------------------------------------------------
def make_images(n: int, size: int, seed: int = 0, n_classes: int = N_CLASSES,
                tint: float = 0.15):
    """``n`` uint8 NHWC images whose class shows as a colour tint and a stripe direction.

    The signal is learnable but not trivial: each class shifts the mean colour a
    little and draws stripes at its own angle, under per-pixel noise and a
    random brightness, so a linear probe on random-init features does well but
    not perfectly.
    """
    rng = np.random.RandomState(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    tints = np.array([[1, -1, 0], [-1, 1, 0], [0, -1, 1], [1, 0, -1]], dtype=np.float32)[
        :n_classes]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    X = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        c = y[i]
        angle = np.pi * c / n_classes + rng.normal(0, 0.15)
        freq = rng.uniform(3, 6)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
        img = 0.5 + rng.uniform(-0.15, 0.15) \
            + 0.10 * stripes[..., None] \
            + tint * tints[c][None, None, :] \
            + rng.normal(0, 0.12, (size, size, 3))
        X[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return X, y


def split(X, y, n_train: int):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def preprocess(X_uint8, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    """uint8 NHWC -> normalised float32 NCHW tensor, what the plain baselines are fed."""
    import torch

    t = torch.from_numpy(X_uint8).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((t - m) / s).contiguous()


# -- the same backbone weights for every side -----------------------------------------
def save_resnet18_weights(seed: int, folder: str, size: int = 112) -> str:
    """A seeded random-init torchvision resnet18 state dict (with its 1000-way fc) on disk.

    Both sides load this file (sktransfer through ``weights=<path>``), so they
    start from bit-identical backbone weights. Pretrained weights are not
    available offline, so the BatchNorm running statistics are calibrated on
    other images of the same kind (a different seed than the benchmark data)
    before saving: like a pretrained network's, they then match the data, and
    a frozen backbone in eval mode gives well-scaled features. Untouched
    random-init statistics (mean 0, var 1) would make eval-mode BatchNorm the
    identity and the features badly scaled, which says nothing about caching.
    """
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    X, _ = make_images(256, size, seed=seed + 1000)
    model.train()
    with torch.no_grad():
        for lo in range(0, len(X), 64):
            model(preprocess(X[lo:lo + 64]))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    path = os.path.join(folder, f"resnet18_seed{seed}_{size}px.pth")
    torch.save(model.state_dict(), path)
    return path


def warm_imports(sktransfer: bool) -> None:
    """Import (and discover plugins) before any timer: one-off process costs, not fit costs."""
    import skorch  # noqa: F401
    import torchvision.models  # noqa: F401

    if sktransfer:
        import sktransfer as skt

        skt.list_backbones()
        skt.list_strategies()


def plain_resnet18(weights_path: str, n_outputs: int | None, seed: int):
    """torchvision resnet18 with the saved weights; a new seeded ``fc`` (None: identity)."""
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.load_state_dict(torch.load(weights_path, map_location="cpu"))
    torch.manual_seed(seed)
    model.fc = torch.nn.Identity() if n_outputs is None else torch.nn.Linear(
        model.fc.in_features, n_outputs)
    return model


def freeze_patterns(depth) -> list[str]:
    """skorch ``Freezer`` patterns freezing the same parameters as sktransfer's depth."""
    if depth == "all":
        return [p for stage in RESNET_STAGE_PATTERNS for p in stage]
    return [p for stage in RESNET_STAGE_PATTERNS[:depth] for p in stage]


def unfreeze_patterns(depth) -> list[str]:
    """The patterns of the stages above ``depth`` (the ones a fine-tune trains)."""
    if depth == "all":
        return []
    return [p for stage in RESNET_STAGE_PATTERNS[depth:] for p in stage]


def naive_skorch(weights_path: str, depth, args, seed: int, strategy: str = "depth"):
    """The skorch transfer-learning tutorial's recipe: NeuralNetClassifier + Freezer.

    ``strategy="lp_ft"``: the whole backbone frozen until half of the epochs, then
    the stages from ``depth`` up unfrozen (skorch's ``Unfreezer``).
    """
    import torch
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Freezer, Unfreezer

    callbacks = [("freezer", Freezer(freeze_patterns(depth)))]
    if strategy == "lp_ft":
        switch = args.epochs // 2  # lp_ft's default switch_epoch, 0-based
        callbacks = [("freezer", Freezer(freeze_patterns("all"))),
                     ("unfreezer", Unfreezer(unfreeze_patterns(depth), at=switch + 1))]
    elif strategy != "depth":
        raise ValueError(f"no naive skorch recipe for strategy {strategy!r}; use depth or lp_ft")

    return NeuralNetClassifier(
        plain_resnet18(weights_path, N_CLASSES, seed),
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        lr=args.lr,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        callbacks=callbacks,
        device="cpu",
        verbose=0,
    )


def sktransfer_classifier(weights_path: str, depth, args, seed: int, **params):
    from sktransfer import TransferClassifier

    # the naive side's training (plain AdamW at one lr, BatchNorm in train mode, no
    # head warm-up, exactly max_epochs epochs: no step floor): these scripts time the
    # machinery, finetune_quality.py the recipe
    return TransferClassifier(
        backbone="resnet18", weights=weights_path, freeze_depth=depth,
        image_size=args.size, lr=args.lr, max_epochs=args.epochs,
        batch_size=args.batch_size, random_state=seed, device="cpu", verbose=0,
        norm_mode="train", head_warmup=0, lr_schedule="constant", min_steps=0, **params)


# -- measuring ------------------------------------------------------------------------
def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Timer:
    """Wall-clock ``seconds`` and this process's CPU time, ``cpu_seconds`` (all threads).

    On a shared, oversubscribed machine the wall clock also counts the time the
    process waited for a core; with one torch thread the CPU time does not.
    """

    def __enter__(self):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def emit(result: dict) -> None:
    """The child's last word: its measurements plus its peak memory."""
    result.setdefault("peak_rss_mib", peak_rss_bytes() / 2**20)
    print(RESULT_TAG + json.dumps(result), flush=True)


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def run_child(script: str, side: str, args, extra: list[str] | None = None) -> dict:
    """Run ``script --child <side>`` with the same options; return its JSON result."""
    cmd = [sys.executable, script, "--child", side] + forward_args(args) + (extra or [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"child {side!r} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_TAG):])


def base_parser(description: str, **defaults) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--weights-path", help=argparse.SUPPRESS)
    p.add_argument("--n-train", type=int, default=defaults.get("n_train", 256))
    p.add_argument("--n-test", type=int, default=defaults.get("n_test", 256))
    p.add_argument("--size", type=int, default=defaults.get("size", 112),
                   help="image side in pixels (images are square, uint8, HWC)")
    p.add_argument("--tint", type=float, default=defaults.get("tint", 0.15),
                   help="strength of the class colour signal (higher = easier)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=defaults.get("epochs", 8))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch/OpenMP threads of every side (default 1: on a shared, "
                        "oversubscribed 2-core box OpenMP with 2 threads ran ~10x slower)")
    p.add_argument("--repeat", type=int, default=defaults.get("repeat", 1),
                   help="run each side this many times, alternating; report the fastest")
    return p


def forward_args(args) -> list[str]:
    out = []
    for name in ("weights_path", "tint", "n_train", "n_test", "size", "batch_size", "epochs", "lr",
                 "seed", "threads"):
        out += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return out


def with_weights(args):
    """Parent side: write the shared backbone weights to a temp folder once."""
    folder = tempfile.mkdtemp(prefix="sktransfer-bench-")
    args.weights_path = save_resnet18_weights(args.seed, folder, args.size)
    return folder


def machine() -> str:
    import torch

    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    gpu = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} cores ({cpu}), {gpu}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def alternate(script, sides: list[str], args, extra=None) -> dict[str, list[dict]]:
    """Run every side ``args.repeat`` times, alternating the order, in fresh processes."""
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.repeat):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            res = run_child(script, side, args, extra)
            results[side].append(res)
            print(f"  [{side}] run {r + 1}: " + ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in res.items()), flush=True)
    return results


def best(runs: list[dict], key: str) -> float:
    return min(r[key] for r in runs)


def table(rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def print_header(args, extra: str = "") -> None:
    """The machine and data lines every training benchmark starts with."""
    print(f"machine: {machine()}; torch threads per side: {args.threads}")
    print(f"data: {args.n_train} train + {args.n_test} test uint8 images "
          f"{args.size}x{args.size}x3, {N_CLASSES} classes; resnet18 (seeded random init, "
          f"BatchNorm statistics calibrated), AdamW lr={args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs{extra}")
