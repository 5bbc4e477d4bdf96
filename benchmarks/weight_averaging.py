"""Weight averaging (the second half of the steps) and WiSE-FT against the plain recipe.

Issue #24 measured whether either steadies fine-tuned candidates on tiny sets
(benchmarks/README.md, "Weight averaging and WiSE-FT"); neither is in the recipe.
Both are skorch callbacks here, passed through ``callbacks=``.

    .venv/bin/python benchmarks/weight_averaging.py typeset 0 - 0 1 2 3 4

Arguments: TASK (small_data.py's), DEPTH, DATA_SEED (``-``: each seed draws its
own data), SEEDS...
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skorch.callbacks import Callback  # noqa: E402
from small_data import MODELS, TASKS  # noqa: E402
from sktransfer import TransferClassifier  # noqa: E402


class WeightAveraging(Callback):
    """At the end of a fit, replace the trainable weights by

    * ``"avg"``: their mean over the last ``frac`` of the optimizer steps (SWA-like);
    * ``"wise"``: ``alpha * fine-tuned + (1 - alpha) * start`` (WiSE-FT), where the
      start is the weights at the first training step, after the head warm-up.
    """

    def __init__(self, mode, alpha=0.5, frac=0.5):
        self.mode, self.alpha, self.frac = mode, alpha, frac

    def on_train_begin(self, net, **kwargs):
        self.start_, self.avg_, self.n_, self.step_ = None, None, 0, 0

    @staticmethod
    def _trainable(net):
        return {k: p for k, p in net.module_.named_parameters() if p.requires_grad}

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and self.start_ is None:
            self.start_ = {k: p.detach().clone() for k, p in self._trainable(net).items()}

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        self.step_ += 1
        total = getattr(dict(net.callbacks_).get("lr_schedule"), "total_steps_", None) or 1
        if self.mode != "avg" or self.step_ <= (1 - self.frac) * total:
            return
        self.n_ += 1
        params = self._trainable(net)
        if self.avg_ is None:
            self.avg_ = {k: p.detach().clone() for k, p in params.items()}
            return
        for k, p in params.items():  # the running mean of the steps so far
            self.avg_[k] += (p.detach() - self.avg_[k]) / self.n_

    def on_train_end(self, net, **kwargs):
        with torch.no_grad():
            for k, p in self._trainable(net).items():
                if self.mode == "avg" and self.avg_ is not None:
                    p.copy_(self.avg_[k])
                elif self.mode == "wise" and self.start_ is not None:
                    p.copy_(self.alpha * p + (1 - self.alpha) * self.start_[k])


def main(argv):
    torch.set_num_threads(1)
    task, depth, data_seed, *seeds = argv
    depth = depth if depth == "all" else int(depth)
    data_seed = None if data_seed == "-" else int(data_seed)
    variants = {"plain": [], "avg": [("averaging", WeightAveraging("avg"))],
                "wise": [("averaging", WeightAveraging("wise"))]}
    results = {name: [] for name in variants}
    for seed in map(int, seeds):
        X_train, y_train, X_test, y_test = TASKS[task](seed if data_seed is None else data_seed)
        for name, callbacks in variants.items():
            start = time.time()
            clf = TransferClassifier(random_state=seed, device="cpu", freeze_depth=depth,
                                     callbacks=callbacks, **MODELS[task]).fit(X_train, y_train)
            results[name].append(clf.score(X_test, y_test))
            print(f"{task} depth {depth} data {data_seed} seed {seed} {name}: "
                  f"{results[name][-1]:.3f} ({time.time() - start:.0f} s)", flush=True)
    for name, accs in results.items():
        print(f"SUMMARY {task} depth {depth} data {data_seed} {name}: "
              f"{np.mean(accs):.3f} ± {np.std(accs):.3f}  {np.round(accs, 3).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1:])
