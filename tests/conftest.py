import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def images():
    """40 RGB 32x32 float images, two classes that differ in their red channel."""
    rng = np.random.RandomState(0)
    X = rng.rand(40, 32, 32, 3).astype(np.float32) * 0.5
    y = np.array(["cat", "dog"] * 20)
    X[y == "cat", :, :, 0] += 0.5
    return X, y


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
            state[k] = torch.rand_like(state[k])
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    return path, state
