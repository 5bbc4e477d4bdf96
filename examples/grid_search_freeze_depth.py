"""How much of the backbone to freeze is a hyper-parameter: grid-search it.

Three textures from scikit-image (brick, grass, gravel), a few patches each.
``GridSearchCV`` tries several ``freeze_depth`` values - ``"all"`` is a linear
probe, ``-1`` also fine-tunes the top block, ``-2`` the top two - and two
freezing strategies. Frozen blocks are computed once and shared between
candidates and folds, so the grid is cheap. The plot is written to
freeze_depth.png.

Run: python examples/grid_search_freeze_depth.py   (SKTRANSFER_FAST=1: seconds)
"""

import os

import numpy as np
from skimage import data
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier
from sktransfer.plotting import plot_freeze_depth

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")
PER_CLASS, SIZE = (4, 32) if FAST else (12, 64)

rng = np.random.RandomState(0)
X, y = [], []
for name in ["brick", "grass", "gravel"]:
    texture = getattr(data, name)()  # 512x512 grayscale
    for _ in range(PER_CLASS):
        top, left = rng.randint(0, 512 - SIZE, size=2)
        X.append(texture[top:top + SIZE, left:left + SIZE])
        y.append(name)
X, y = np.stack(X), np.array(y)  # (n, SIZE, SIZE) uint8: grayscale images

clf = TransferClassifier("efficientnet_lite0", weights="DEFAULT", image_size=SIZE * 2,
                         max_epochs=2 if FAST else 10, random_state=0)
grid = {"freeze_depth": [-1, "all"] if FAST else [-3, -2, -1, "all"],
        "freeze_strategy": ["depth"] if FAST else ["depth", "discriminative"]}
search = GridSearchCV(clf, grid, cv=2 if FAST else 3).fit(X, y)

for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(f"{params}  accuracy {score:.3f}")
print("best:", search.best_params_)
plot_freeze_depth(search).savefig("freeze_depth.png")
print("plot written to freeze_depth.png")
