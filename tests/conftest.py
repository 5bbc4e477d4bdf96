import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# Tests never use the network: a download is tested against a 127.0.0.1 server
# (tests/test_download.py), which switches this off for itself.
os.environ["SKTRANSFER_OFFLINE"] = "1"
torch.set_num_threads(2)

# The floor of 50 optimizer steps (min_steps) would turn the suite's one- and
# two-epoch fits on a few dozen images into 20-epoch ones: tests train the epochs
# they ask for. The real defaults are asserted in test_recipe.py.
from sktransfer import (TransferClassifier, TransferClassifierCV,  # noqa: E402
                        TransferRegressor, TransferRegressorCV)

_ESTIMATORS = (TransferClassifier, TransferClassifierCV, TransferRegressor, TransferRegressorCV)
MIN_STEPS_DEFAULTS = {e.__name__: e.__init__.__kwdefaults__["min_steps"] for e in _ESTIMATORS}
for _estimator in _ESTIMATORS:
    _estimator.__init__.__kwdefaults__["min_steps"] = 0


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def two_class_images(n, labels=("cat", "dog")):
    """``n`` RGB 32x32 float images; the first label's images are redder."""
    rng = np.random.RandomState(0)
    X = rng.rand(n, 32, 32, 3).astype(np.float32) * 0.5
    y = np.array(list(labels) * (n // 2))
    X[y == labels[0], :, :, 0] += 0.5
    return X, y


@pytest.fixture(scope="session")
def make_images():
    """The image generator, for module-scoped fixtures of other test files."""
    return two_class_images


@pytest.fixture
def images():
    """40 images, cat / dog."""
    return two_class_images(40)


@pytest.fixture
def tiny_weights(tmp_path):
    """A 'pretrained' tiny_cnn weights file: (path, state dict), with non-trivial
    BatchNorm running statistics so "did not change" means something."""
    from sktransfer import get_backbone

    torch.manual_seed(3)
    backbone = get_backbone("tiny_cnn")
    state = {f"blocks.{i}.{k}": v for i, b in enumerate(backbone.blocks)
             for k, v in b.state_dict().items()}
    for k in state:
        if k.endswith("running_mean"):
            state[k] = (torch.rand_like(state[k]) - 0.5) * 0.2  # non-trivial, keeps ReLUs alive
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    return path, state
