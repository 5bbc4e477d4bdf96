"""Decoding large photos: full size vs reduced first vs resized and cropped in uint8.

For each of a few synthetic 12-megapixel JPEGs (and PNGs), times one sample
(decode + resize + crop + normalise, resnet18 preprocessing: resize 256, crop
224) three ways: decoded at full size then resized as a float tensor; reduced
while decoding (JPEG DCT scaling, PIL ``reduce``) then resized as a float
tensor; reduced, then resized and cropped in uint8 by PIL (what the data loader
does). Reports the size of the float tensor the decoder hands over, and how far
the network inputs differ from the full-size path's.

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
            for label, min_side, geometry in (
                    ("full-size decode", None, None), ("reduced first", pre.min_side, None),
                    ("cropped in uint8", pre.min_side, pre.geometry)):
                times, pixels, outputs = [], [], []
                for i in range(len(paths)):
                    start = time.perf_counter()
                    x = source.load(i, min_side, geometry)
                    out = pre.normalize(pre.fix_channels(x)) if geometry is not None \
                        else pre(pre.fix_channels(x))
                    times.append(time.perf_counter() - start)
                    pixels.append(x.numel() * x.element_size())
                    outputs.append(out)
                rows[label] = (np.median(times), max(pixels), outputs)
            full = rows["full-size decode"]
            print(f"{ext.upper()} {args.width}x{args.height}, {args.n} files, 1 thread")
            for label, (t, nbytes, outputs) in rows.items():
                diff = max(float((a - b).abs().max()) for a, b in zip(full[2], outputs))
                mean_diff = np.mean([float((a - b).abs().mean())
                                     for a, b in zip(full[2], outputs)])
                print(f"  {label:18s} {t * 1000:8.1f} ms/image   float tensor "
                      f"{nbytes / 2**20:7.1f} MiB   speed-up {full[0] / t:4.1f}x   network "
                      f"input vs full-size: mean {mean_diff:.4f}, max {diff:.3f}")


if __name__ == "__main__":
    main()
