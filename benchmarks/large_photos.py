"""Decoding large photos: reduce before the float conversion vs decode at full size.

For each of a few synthetic 12-megapixel JPEGs (and PNGs), times one sample of
``SampleDataset`` (decode + resize + crop + normalise, resnet18 preprocessing:
resize 256, crop 224) both ways, and reports the size of the float tensor the
decoder hands to the resize, and how far the final network inputs differ.

    .venv/bin/python benchmarks/large_photos.py [--n 3] [--width 4000 --height 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sktransfer._common import preprocessor_for
from sktransfer._data import as_input
from sktransfer.backbones import get_backbone


def photo(rng, width, height):
    """Smooth colour gradients plus noise: compresses like a photo, not like noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], -1) * 200
    base += rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pre = preprocessor_for(get_backbone("resnet18"))
    rng = np.random.RandomState(0)
    with tempfile.TemporaryDirectory() as tmp:
        for ext in ("jpg", "png"):
            paths = []
            for i in range(args.n):
                path = Path(tmp) / f"{i}.{ext}"
                photo(rng, args.width, args.height).save(path, quality=90)
                paths.append(str(path))
            source = as_input(paths)
            rows = {}
            for label, min_side in (("full-size decode", None), ("reduced first", pre.min_side)):
                times, pixels, outputs = [], [], []
                for i in range(len(paths)):
                    start = time.perf_counter()
                    x = source.load(i, min_side)
                    out = pre(pre.fix_channels(x))
                    times.append(time.perf_counter() - start)
                    pixels.append(x.numel() * x.element_size())
                    outputs.append(out)
                rows[label] = (np.median(times), max(pixels), outputs)
            full, reduced = rows["full-size decode"], rows["reduced first"]
            diff = max(float((a - b).abs().max()) for a, b in zip(full[2], reduced[2]))
            mean_diff = np.mean([float((a - b).abs().mean())
                                 for a, b in zip(full[2], reduced[2])])
            print(f"{ext.upper()} {args.width}x{args.height}, {args.n} files, 1 thread")
            for label, (t, nbytes, _) in rows.items():
                print(f"  {label:18s} {t * 1000:8.1f} ms/image   float tensor "
                      f"{nbytes / 2**20:7.1f} MiB")
            print(f"  speed-up {full[0] / reduced[0]:.1f}x; network input difference "
                  f"(normalised units): mean {mean_diff:.4f}, max {diff:.3f}")


if __name__ == "__main__":
    main()
