"""Write a plugin: a new backbone and a new freezing strategy.

A backbone is an ordered list of blocks plus a pool; a freezing strategy only
sees blocks and parameters. Register them in-process with
``register_backbone`` / ``register_strategy``, or - for a package others install -
through entry points in the plugin's pyproject.toml (docs/plugins.md walks through
a whole package, tests and install included)::

    [project.entry-points."sktransfer.backbones"]
    small_convnet = "my_plugin:small_convnet"

    [project.entry-points."sktransfer.strategies"]
    norms_only = "my_plugin:NormsOnly"

After ``pip install my-plugin`` the names show up in ``sktransfer backbones``
and ``sktransfer strategies``, and ``TransferClassifier(backbone="small_convnet",
freeze_strategy="norms_only")`` works, grid search over ``freeze_depth`` included.

Run: python examples/write_a_plugin.py   (SKTRANSFER_FAST=1: seconds)
"""

import os

import numpy as np
from sklearn.model_selection import GridSearchCV
from torch import nn

from sktransfer import (Backbone, FreezeStrategy, GlobalPool, Preprocessing,
                        TransferClassifier, list_backbones, list_strategies, register_backbone,
                        register_strategy)

FAST = os.environ.get("SKTRANSFER_FAST", "") not in ("", "0")


def _conv(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                         nn.BatchNorm2d(c_out), nn.ReLU())


@register_backbone("small_convnet")
def small_convnet(weights=None, image_size=None):
    """Three conv blocks. A real plugin would state its pretrained weights as a
    ``sktransfer.PretrainedWeights`` and load them when ``weights="DEFAULT"``
    (``PretrainedWeights.load_into``, which raises ``MissingWeightsError`` saying
    where it looked when they are missing); see docs/plugins.md."""
    if weights not in (None, "DEFAULT"):
        raise ValueError(f"unknown weights {weights!r} for 'small_convnet'")
    return Backbone(
        name="small_convnet",
        blocks=[_conv(3, 16), _conv(16, 32), _conv(32, 64)],
        block_names=["stem", "middle", "top"],
        pool=GlobalPool("avg"),
        num_features=64,
        preprocessing=Preprocessing(crop_size=32, resize_size=32, mean=(0.5,) * 3,
                                    std=(0.25,) * 3),
        min_input_size=8,  # three stride-2 blocks; sktransfer checks it for us
    )


small_convnet.pretrained_weights = None  # stated: no pretrained weights (`sktransfer backbones`)


@register_strategy("norms_only")
class NormsOnly(FreezeStrategy):
    """Above freeze_depth only normalisation layers train (plus the head)."""

    def setup(self, ctx):
        super().setup(ctx)
        for index in self.trainable_stages(ctx):
            for module in ctx.stages[index].modules():
                if not isinstance(module, nn.BatchNorm2d):
                    for p in module.parameters(recurse=False):
                        p.requires_grad_(False)

    def param_groups(self, ctx):
        params = [p for i in self.trainable_stages(ctx) for p in ctx.stages[i].parameters()
                  if p.requires_grad]
        return [{"params": params + list(ctx.head.parameters())}]


print("registered:", list_backbones("small*"), list_strategies("norms*"))

rng = np.random.RandomState(0)
X = rng.rand(24 if FAST else 120, 32, 32, 3).astype("float32") * 0.5
y = np.array(["red", "blue"] * (len(X) // 2))
X[y == "red", :, :, 0] += 0.5  # something to learn

clf = TransferClassifier("small_convnet", weights=None, max_epochs=2 if FAST else 10,
                         lr=1e-2, random_state=0)
search = GridSearchCV(clf, {"freeze_depth": [0, 2], "freeze_strategy": ["depth", "norms_only"]},
                      cv=2).fit(X, y)
print("best:", search.best_params_, f"accuracy {search.best_score_:.3f}")
