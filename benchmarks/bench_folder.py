"""A folder of camera photos: sktransfer vs torchvision's ImageFolder + DataLoader.

Builds a folder of real-size JPEGs (``--n-images``, default 500) in a temporary
directory, one class sub-folder per bundled colour photo (scikit-image:
astronaut, coffee, chelsea, rocket, immunohistochemistry, hubble_deep_field;
scikit-learn: china, flower): random crops of each, resized to camera sizes
from 1600x1200 to 4000x3000 (landscape and portrait), with a little luminance
grain so they compress like photos, saved at JPEG quality 90; every 25th one
carries an EXIF orientation tag. The folder is removed at the end, also on
error (``--keep-folder`` keeps it, ``--folder`` reuses one).

1. Feature extraction: ``FeatureExtractor("resnet18", cache=False)`` with its
   default 224 px preprocessing and default ``num_workers`` vs what a user
   writes by hand: ``ImageFolder`` + ``ResNet18_Weights.DEFAULT.transforms()``
   + ``DataLoader(num_workers=<the same number>)`` + ``resnet18`` with
   ``fc=Identity`` under ``torch.inference_mode``. Both sides load one saved
   state dict (seeded random init, BatchNorm statistics calibrated: no
   ImageNet weights offline; throughput does not depend on the values), so
   their features must agree: cosine similarity per photo, photos with an
   EXIF tag left out (``ImageFolder`` ignores the tag, so those differ by a
   rotation).
2. Linear probe: ``TransferClassifier(freeze_depth="all")`` fit on 4/5 of the
   folder vs the hand-written loop (``ImageFolder`` + ``DataLoader(shuffle=True)``,
   frozen resnet18 in eval mode, a new ``Linear`` head, AdamW), the same
   epochs, batch size and learning rate; accuracy on the other fifth.

Every side runs in its own process; the parent samples /proc every 50 ms for
the resident memory of that process and its loader workers (RSS summed over
the tree, and PSS, which counts the pages forked workers share once).

Targets: throughput ratio >= 2, sktransfer's peak tree RSS no higher than the
plain side's, median feature cosine >= 0.99. Exit 1 when one is missed.

    .venv/bin/python benchmarks/bench_folder.py
    .venv/bin/python benchmarks/bench_folder.py --n-images 200 --epochs 2 --keep-folder
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import _common as c

#: camera sizes (landscape; every third photo is stored as a portrait)
SIZES = [(1600, 1200), (2048, 1536), (2592, 1944), (3264, 2448), (4000, 3000)]
EXIF_EVERY = 25
ORIENTATION_TAG = 0x0112


# -- the folder -----------------------------------------------------------------------
def source_photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in (
        "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
        "hubble_deep_field")}
    for name, image in zip(("china", "flower"), load_sample_images().images):
        photos[name] = image
    return {name: np.ascontiguousarray(p[..., :3]) for name, p in photos.items()}


def _write_photo(job) -> int:
    """One camera-size JPEG: a random crop of a source photo, resized, with grain."""
    from PIL import Image

    source, path, size, seed, orientation = job
    rng = np.random.RandomState(seed)
    width, height = size
    h, w = source.shape[:2]
    aspect = width / height
    crop_h = min(h, w / aspect) * rng.uniform(0.55, 1.0)
    crop_w = crop_h * aspect
    top, left = rng.uniform(0, h - crop_h), rng.uniform(0, w - crop_w)
    img = Image.fromarray(source).resize((width, height), Image.Resampling.BICUBIC,
                                         box=(left, top, left + crop_w, top + crop_h))
    grain = rng.normal(0, 5, (256, 256)).astype(np.int16)
    dy, dx = rng.randint(0, 256, 2)
    tiled = np.tile(np.roll(grain, (dy, dx), (0, 1)), (height // 256 + 1, width // 256 + 1))
    pixels = np.asarray(img, dtype=np.int16) + tiled[:height, :width, None]
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = photo.getexif()
    if orientation:
        exif[ORIENTATION_TAG] = orientation
    photo.save(path, quality=90, exif=exif)
    return os.path.getsize(path)


def build_folder(root: Path, n_images: int, seed: int, processes: int) -> dict:
    """``n_images`` JPEGs under ``root/<source photo>/``; returns a summary."""
    import multiprocessing

    photos = source_photos()
    names = sorted(photos)
    rng = np.random.RandomState(seed)
    jobs = []
    for i in range(n_images):
        name = names[i % len(names)]
        (root / name).mkdir(parents=True, exist_ok=True)
        width, height = SIZES[rng.randint(len(SIZES))]
        if i % 3 == 2:
            width, height = height, width
        orientation = (6, 8, 3)[(i // EXIF_EVERY) % 3] if i % EXIF_EVERY == 0 else 0
        jobs.append((photos[name], str(root / name / f"{i:05d}.jpg"), (width, height),
                     seed * 100003 + i, orientation))
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        sizes = pool.map(_write_photo, jobs, chunksize=4)
    pixels = [w * h for _, _, (w, h), _, _ in jobs]
    return {"n": n_images, "classes": len(names), "seconds": time.perf_counter() - start,
            "mb": sum(sizes) / 1e6, "mean_mp": float(np.mean(pixels)) / 1e6,
            "tagged": sum(1 for j in jobs if j[4])}


def relative(path, root) -> str:
    return os.path.relpath(path, root)


def split(root) -> tuple[list[str], list[str]]:
    """Every 5th photo of the sorted listing is held out (the same on both sides; listed
    without sktransfer, which the plain side does not import)."""
    rel = sorted(os.path.join(label, name) for label in os.listdir(root)
                 for name in os.listdir(os.path.join(root, label)) if name.endswith(".jpg"))
    return [r for i, r in enumerate(rel) if i % 5], [r for i, r in enumerate(rel) if not i % 5]


# -- the sides (each in a child process) ------------------------------------------------
def _plain_model(args, n_outputs=None):
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.load_state_dict(torch.load(args.weights_path, map_location="cpu"))
    torch.manual_seed(args.seed)
    model.fc = torch.nn.Identity() if n_outputs is None else torch.nn.Linear(
        model.fc.in_features, n_outputs)
    return model


def _warm_up(forward) -> None:
    """One batch through the network first: oneDNN primitives, the allocator."""
    import torch

    with torch.inference_mode():
        forward(torch.rand(8, 3, 224, 224))


def _extract_plain(args):
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.models import ResNet18_Weights

    model = _plain_model(args).eval()
    _warm_up(model)
    with c.Timer() as t:
        dataset = ImageFolder(args.folder, transform=ResNet18_Weights.DEFAULT.transforms())
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
        outs = []
        with torch.inference_mode():
            for x, _ in loader:
                outs.append(model(x))
        feats = torch.cat(outs).numpy()
    order = [relative(p, args.folder) for p, _ in dataset.samples]
    return {"seconds": t.seconds, "n": len(order)}, feats, order


def _extract_sktransfer(args):
    from sktransfer import FeatureExtractor, load_image_folder

    paths, _ = load_image_folder(args.folder)
    fe = FeatureExtractor("resnet18", weights=args.weights_path, batch_size=args.batch_size,
                          device="cpu", cache=False, num_workers=_workers_param(args))
    fe.fit(paths[:1])
    _warm_up(fe.extractor_)
    with c.Timer() as t:
        feats = fe.transform(paths)
    return {"seconds": t.seconds, "n": len(paths)}, feats, [relative(p, args.folder)
                                                           for p in paths]


def _decode_plain(args):
    """The plain side's input pipeline alone (no network): what the change is about."""
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.models import ResNet18_Weights

    with c.Timer() as t:
        dataset = ImageFolder(args.folder, transform=ResNet18_Weights.DEFAULT.transforms())
        for _ in DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers):
            pass
    return {"seconds": t.seconds, "n": len(dataset)}, None, None


def _decode_sktransfer(args):
    """sktransfer's input pipeline alone: the extractor's own loader, no network."""
    from torch.utils.data import DataLoader

    from sktransfer import load_image_folder
    from sktransfer._common import preprocessor_for
    from sktransfer._data import (PairCollate, SampleDataset, as_input, network_input,
                                  resolve_num_workers)
    from sktransfer.backbones import get_backbone

    pre = preprocessor_for(get_backbone("resnet18"))
    with c.Timer() as t:
        paths, _ = load_image_folder(args.folder)
        source = as_input(paths)
        workers = resolve_num_workers(_workers_param(args), source, args.batch_size)
        # as FeatureExtractor.transform: uint8 crops from the workers, normalised here
        for x, _ in DataLoader(SampleDataset(source, None, pre, pixels=True),
                               batch_size=args.batch_size, num_workers=workers,
                               collate_fn=PairCollate(pre)):
            network_input(x, pre, "cpu")
    return {"seconds": t.seconds, "n": len(paths)}, None, None


def _probe_plain(args):
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import ImageFolder
    from torchvision.models import ResNet18_Weights

    train_rel, test_rel = split(args.folder)
    with c.Timer() as t:
        dataset = ImageFolder(args.folder, transform=ResNet18_Weights.DEFAULT.transforms())
        index = {relative(p, args.folder): i for i, (p, _) in enumerate(dataset.samples)}
        model = _plain_model(args, len(dataset.classes))
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("fc."))
        model.eval()  # a frozen backbone: BatchNorm keeps its running statistics
        optimizer = torch.optim.AdamW(model.fc.parameters(), lr=args.lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        loader = DataLoader(Subset(dataset, [index[r] for r in train_rel]),
                            batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, generator=torch.Generator().manual_seed(
                                args.seed))
        for _ in range(args.epochs):
            for x, y in loader:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    test = DataLoader(Subset(dataset, [index[r] for r in test_rel]), batch_size=args.batch_size,
                      num_workers=args.workers)
    correct = 0
    with torch.inference_mode():
        for x, y in test:
            correct += int((model(x).argmax(1) == y).sum())
    return {"seconds": t.seconds, "accuracy": correct / len(test_rel)}, None, None


def _probe_sktransfer(args):
    from sktransfer import TransferClassifier

    train_rel, test_rel = split(args.folder)

    def xy(rel):
        return [os.path.join(args.folder, r) for r in rel], [Path(r).parent.name for r in rel]

    with c.Timer() as t:
        X, y = xy(train_rel)
        clf = TransferClassifier("resnet18", weights=args.weights_path, freeze_depth="all",
                                 max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 random_state=args.seed, device="cpu",
                                 num_workers=_workers_param(args)).fit(X, y)
    X_test, y_test = xy(test_rel)
    return {"seconds": t.seconds, "accuracy": float(clf.score(X_test, y_test))}, None, None


def _workers_param(args):
    return "auto" if args.workers_given is None else args.workers_given


SIDES = {"extract-plain": _extract_plain, "extract-sktransfer": _extract_sktransfer,
         "decode-plain": _decode_plain, "decode-sktransfer": _decode_sktransfer,
         "probe-plain": _probe_plain, "probe-sktransfer": _probe_sktransfer}


def child(args) -> None:
    # no warm_imports(): each side imports what its user would (the extractor side no
    # skorch), so the memory of its process tree is that user's
    c.set_threads(args.threads)
    result, feats, order = SIDES[args.child](args)
    if feats is not None:
        np.save(f"{args.out}.{args.child}.npy", feats)
        Path(f"{args.out}.{args.child}.json").write_text(json.dumps(order))
    c.emit(result)


# -- memory of a process tree, from /proc -------------------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (loader workers), from /proc/<pid>/stat."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += parents.get(p, [])
    return tree


def _memory(pids: list[int]) -> tuple[int, int, int]:
    """(RSS, PSS) in bytes, summed over ``pids``, and the largest single RSS."""
    rss = pss = largest = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                one = int(f.read().split()[1]) * _PAGE
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):  # ended meanwhile
            continue
        rss, largest = rss + one, max(largest, one)
    return rss, pss, largest


def run_measured(side: str, args) -> dict:
    """Run one side in a child process; add the peak RSS / PSS of its process tree."""
    cmd = [sys.executable, __file__, "--child", side] + forward(args)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    peak = {"rss": 0, "pss": 0, "largest": 0}
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            for key, value in zip(("rss", "pss", "largest"), _memory(_tree(proc.pid))):
                peak[key] = max(peak[key], value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate()
    finally:
        done.set()
        sampler.join()
    lines = [ln for ln in out.splitlines() if ln.startswith(c.RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(out + err)
        raise SystemExit(f"child {side!r} failed (exit {proc.returncode})")
    result = json.loads(lines[-1][len(c.RESULT_TAG):])
    # ru_maxrss of a child started from this (larger) process keeps this process's peak
    # across exec on Linux: the /proc samples below are the child's own
    result.pop("peak_rss_mib", None)
    result.update(tree_rss_mib=peak["rss"] / 2**20, tree_pss_mib=peak["pss"] / 2**20,
                  process_rss_mib=peak["largest"] / 2**20)
    print(f"  [{side}] " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in result.items()), flush=True)
    return result


def forward(args) -> list[str]:
    out = ["--folder", args.folder, "--weights-path", args.weights_path, "--out", args.out,
           "--workers", str(args.workers), "--threads", str(args.threads),
           "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
           "--lr", str(args.lr), "--seed", str(args.seed)]
    if args.workers_given is not None:
        out += ["--workers-given", str(args.workers_given)]
    return out


# -- the parent -----------------------------------------------------------------------
def feature_agreement(args) -> tuple[float, float]:
    """Median and minimum cosine similarity per photo (untagged photos), matched by path."""
    from PIL import Image

    feats = {}
    for side in ("extract-plain", "extract-sktransfer"):
        rows = np.load(f"{args.out}.{side}.npy")
        order = json.loads(Path(f"{args.out}.{side}.json").read_text())
        feats[side] = dict(zip(order, rows))
    cosines = []
    for rel, a in feats["extract-plain"].items():
        with Image.open(os.path.join(args.folder, rel)) as img:
            if img.getexif().get(ORIENTATION_TAG, 1) != 1:
                continue  # ImageFolder ignores the tag: that photo is seen rotated
        b = feats["extract-sktransfer"][rel]
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    return float(np.median(cosines)), float(np.min(cosines))


def default_workers(folder, batch_size) -> int:
    """What ``num_workers="auto"`` gives for this folder (the plain side uses the same)."""
    from sktransfer import load_image_folder
    from sktransfer._data import as_input, resolve_num_workers

    paths, _ = load_image_folder(folder)
    return resolve_num_workers("auto", as_input(paths), batch_size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--weights-path", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--workers-given", type=int, help=argparse.SUPPRESS)
    p.add_argument("--n-images", type=int, default=500,
                   help="photos in the folder (at least 500 for the recorded table)")
    p.add_argument("--workers", type=int, default=None,
                   help="loader workers of both sides (default: what sktransfer's "
                        "num_workers='auto' picks, min(cores, 8))")
    p.add_argument("--threads", type=int, default=1,
                   help="torch/OpenMP threads of each side's main process (default 1: the "
                        "loader workers use the other cores)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3, help="linear-probe epochs of both sides")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folder", help="use this folder of photos instead of building one (kept)")
    p.add_argument("--keep-folder", action="store_true",
                   help="keep the built folder (its path is printed)")
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    work = tempfile.mkdtemp(prefix="sktransfer-bench-folder-")
    keep = args.keep_folder and not args.folder  # a folder passed in is never removed
    try:
        return _measure(args, work)
    finally:
        if keep:
            shutil.rmtree(os.path.join(work, "weights"), ignore_errors=True)
            print(f"folder kept: {os.path.join(work, 'photos')}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _measure(args, work: str) -> int:
    print(f"machine: {c.machine()}; torch threads per side: {args.threads}")
    if args.folder:
        args.folder = os.path.abspath(args.folder)
        print(f"data: the photos in {args.folder}")
    else:
        args.folder = os.path.join(work, "photos")
        summary = build_folder(Path(args.folder), args.n_images, args.seed,
                               args.workers or os.cpu_count() or 1)
        print(f"data: {summary['n']} JPEGs (quality 90) in {summary['classes']} classes, "
              f"1600x1200 to 4000x3000, mean {summary['mean_mp']:.1f} MP, "
              f"{summary['mb'] / summary['n']:.1f} MB each, {summary['tagged']} with an EXIF "
              f"orientation tag; built in {summary['seconds']:.0f} s")
    os.makedirs(os.path.join(work, "weights"), exist_ok=True)
    args.weights_path = c.save_resnet18_weights(args.seed, os.path.join(work, "weights"))
    args.out = os.path.join(work, "weights", "features")
    args.workers_given = args.workers
    if args.workers is None:
        args.workers = default_workers(args.folder, args.batch_size)
    print(f"loader workers of each side: {args.workers}"
          f"{' (sktransfer: num_workers=auto)' if args.workers_given is None else ''}; "
          f"batch {args.batch_size}; resnet18 224 px, fc -> Identity / a new Linear head")
    runs = {side: run_measured(side, args) for side in SIDES}
    n = runs["extract-plain"]["n"]
    plain_ips = n / runs["extract-plain"]["seconds"]
    skt_ips = runs["extract-sktransfer"]["n"] / runs["extract-sktransfer"]["seconds"]
    median_cos, min_cos = feature_agreement(args)
    decode_ratio = (runs["decode-plain"]["seconds"] / runs["decode-plain"]["n"]) / (
        runs["decode-sktransfer"]["seconds"] / runs["decode-sktransfer"]["n"])
    rss = {s: runs[s]["tree_rss_mib"] for s in SIDES}
    pss = {s: runs[s]["tree_pss_mib"] for s in SIDES}
    one = {s: runs[s]["process_rss_mib"] for s in SIDES}
    print()
    print(c.table([
        ("feature extraction", "plain (ImageFolder)", "sktransfer", "ratio", "target"),
        ("throughput, img/s", f"{plain_ips:.1f}", f"{skt_ips:.1f}", f"{skt_ips / plain_ips:.2f}",
         ">= 2"),
        ("input pipeline alone (decode + resize + crop), img/s",
         f"{runs['decode-plain']['n'] / runs['decode-plain']['seconds']:.1f}",
         f"{runs['decode-sktransfer']['n'] / runs['decode-sktransfer']['seconds']:.1f}",
         f"{decode_ratio:.2f}", "-"),
        ("peak RSS of the process tree (main + workers), MiB", f"{rss['extract-plain']:.0f}",
         f"{rss['extract-sktransfer']:.0f}",
         f"{rss['extract-sktransfer'] / rss['extract-plain']:.2f}", "<= 1"),
        ("peak RSS of the largest process (what `time -v` reports), MiB",
         f"{one['extract-plain']:.0f}", f"{one['extract-sktransfer']:.0f}",
         f"{one['extract-sktransfer'] / one['extract-plain']:.2f}", "-"),
        ("peak PSS of the process tree, MiB", f"{pss['extract-plain']:.0f}",
         f"{pss['extract-sktransfer']:.0f}",
         f"{pss['extract-sktransfer'] / pss['extract-plain']:.2f}", "-"),
        ("feature cosine per photo (untagged), median / min", "-",
         f"{median_cos:.4f} / {min_cos:.4f}", "", ">= 0.99 (median)"),
    ]))
    plain_s, skt_s = runs["probe-plain"]["seconds"], runs["probe-sktransfer"]["seconds"]
    print()
    print(c.table([
        (f"linear probe, {args.epochs} epochs", "plain loop", "sktransfer", "ratio"),
        ("fit seconds", f"{plain_s:.1f}", f"{skt_s:.1f}", f"{plain_s / skt_s:.2f}"),
        ("held-out accuracy", f"{runs['probe-plain']['accuracy']:.3f}",
         f"{runs['probe-sktransfer']['accuracy']:.3f}", ""),
        ("peak RSS of the process tree, MiB", f"{rss['probe-plain']:.0f}",
         f"{rss['probe-sktransfer']:.0f}",
         f"{rss['probe-sktransfer'] / rss['probe-plain']:.2f}"),
    ]))
    missed = []
    if skt_ips / plain_ips < 2:
        missed.append(f"throughput ratio {skt_ips / plain_ips:.2f} < 2")
    if rss["extract-sktransfer"] > rss["extract-plain"]:
        missed.append("sktransfer's peak tree RSS is above the plain side's")
    if median_cos < 0.99:
        missed.append(f"median feature cosine {median_cos:.4f} < 0.99")
    for line in missed:
        print(f"target missed: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
