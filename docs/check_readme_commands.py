"""Run every shell command of README.md's `sktransfer` block, as written, in a fresh folder.

Builds what the README refers to from scikit-image's sample pictures - ``photos/``
(one sub-folder per class: crops of ``chelsea`` as ``cat``, of ``coffee`` as
``dog``) and ``sizes.csv`` (relative image paths and the crop size) - then runs
each line of the block with the ``sktransfer`` program next to this Python, and
fails on the first command that does not exit 0.

    python docs/check_readme_commands.py [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import csv
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def build_examples(folder: Path) -> None:
    from skimage import data

    rng = np.random.default_rng(0)
    sizes = []
    for label, picture in [("cat", data.chelsea()), ("dog", data.coffee())]:
        (folder / "photos" / label).mkdir(parents=True)
        h, w = picture.shape[:2]
        for i in range(8):
            side = int(rng.integers(96, min(h, w)))
            top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            path = folder / "photos" / label / f"{label}{i}.jpg"
            Image.fromarray(picture[top:top + side, left:left + side]).save(path)
            sizes.append((str(path.relative_to(folder)), side))
    with open(folder / "sizes.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "size"), *sizes])


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("### The `sktransfer` command"):]
    body = re.search(r"```sh\n(.*?)```", block, re.S).group(1)
    return [line for line in body.splitlines() if line.startswith("sktransfer ")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="FOLDER", help="work here and keep the files")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="sktransfer-readme-"))
    folder.mkdir(parents=True, exist_ok=True)
    build_examples(folder)
    program = Path(sys.executable).with_name("sktransfer")
    for line in readme_commands():
        argv = shlex.split(line, comments=True)
        start = time.perf_counter()
        done = subprocess.run([str(program), *argv[1:]], cwd=folder, capture_output=True,
                              text=True)
        print(f"[exit {done.returncode}, {time.perf_counter() - start:5.1f} s] {line}")
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
            return 1
        print("    " + "\n    ".join(done.stdout.strip().splitlines()[:4]))
    print(f"all {len(readme_commands())} README commands exit 0 (files in {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
