"""Fine-tune on your own folder of images, save the model, plot its learning curve.

The folder has one sub-folder per class (``photos/cat/1.jpg``,
``photos/dog/7.png``, ...). Pass its path as the first argument; without one,
this script writes such a folder from scikit-image's sample photos first.

The same from the shell::

    sktransfer fit photos/ --backbone efficientnet_lite0 --freeze-depth -2 --out model.joblib
    sktransfer predict model.joblib photos/cat/1.jpg

Run: python examples/finetune_image_folder.py [IMAGE_DIR]   (SKTRANSFER_FAST=1: seconds)
"""

import os
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
from PIL import Image
from skimage import data

from sktransfer import TransferClassifier, load_image_folder
from sktransfer.plotting import plot_history

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")


def write_example_folder(root: Path, per_class: int) -> Path:
    """root/<picture>/<i>.png: random crops of three scikit-image photos."""
    rng = np.random.RandomState(0)
    for name in ["astronaut", "coffee", "chelsea"]:
        photo = getattr(data, name)()
        (root / name).mkdir(parents=True, exist_ok=True)
        h, w = photo.shape[:2]
        for i in range(per_class):
            side = rng.randint(h // 3, h // 2)
            top, left = rng.randint(0, h - side), rng.randint(0, w - side)
            Image.fromarray(photo[top:top + side, left:left + side]).save(root / name / f"{i}.png")
    return root


if len(sys.argv) > 1:
    folder = Path(sys.argv[1])
else:
    folder = write_example_folder(Path(tempfile.mkdtemp()) / "photos", 4 if FAST else 12)

paths, labels = load_image_folder(folder)  # file paths and their class names
print(f"{len(paths)} images of classes {sorted(set(labels))} in {folder}")

clf = TransferClassifier(
    "efficientnet_lite0", weights="DEFAULT",
    freeze_depth=-2,                      # fine-tune the top two blocks
    augment="flip",                       # random flips while training
    image_size=64 if FAST else 128,
    max_epochs=2 if FAST else 10,
    random_state=0,
    verbose=1,                            # skorch's epoch table
)
clf.fit(paths, labels)                    # file paths are decoded on the fly

joblib.dump(clf, "model.joblib")
model = joblib.load("model.joblib")
for path, label, proba in zip(paths[:3], model.predict(paths[:3]),
                              model.predict_proba(paths[:3]).max(axis=1)):
    print(f"{path}: {label} ({proba:.2f})")

plot_history(clf).savefig("learning_curve.png")
print("model written to model.joblib, learning curve to learning_curve.png")
