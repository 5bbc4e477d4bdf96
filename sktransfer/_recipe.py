"""The fine-tuning recipe: what makes a fine-tuned candidate train well on small data.

One place for the choices a practitioner's hand-written loop makes and that a
naive ``optimizer(model.parameters())`` loop gets wrong. Each is an ordinary
``TransferClassifier`` parameter, so it can be grid-searched; the defaults were
chosen by measurement (``benchmarks/finetune_quality.py``):

* **Normalisation layers** (``norm_mode``): in ``"frozen"`` mode every BatchNorm
  layer of the backbone stays in inference mode - its running statistics are
  the pretrained ones and never move, while its affine parameters still train.
  Batch statistics of a few dozen images, and a running average that never
  catches up, wreck a pretrained network on small data (the Keras transfer-
  learning guide; timm's and fastai's practice). ``"train"`` is plain PyTorch
  behaviour.
* **Head warm-up** (``head_warmup``, ``head_warmup_C``): before the body moves,
  the new, randomly initialised head is fitted alone on the pooled features of
  the pretrained backbone, to convergence, the way ``LogisticRegression`` fits a
  linear probe (full-batch L-BFGS, the same L2 penalty): LP-FT (Kumar et al.
  2022). The features come from the frozen-prefix cache, so this costs a
  forward pass of the trainable stages, not passes over the pixels.
  ``head_warmup_C="auto"`` fits that probe at ``C=1`` when nothing but the head
  trains, and much softer (``C=0.01``, :data:`BODY_HEAD_WARMUP_C`) when the body
  trains too: a head fitted to convergence already fits a small training set,
  so fine-tuning starts from near-zero loss and over-confident logits, and the
  first full-rate steps throw the pretrained body around (the loss jumped from
  0.17 to 2.34 on one seed). The soft head keeps LP-FT's direction without its
  over-confidence (``benchmarks/small_data.py --ablate``; ``benchmarks/README.md``).
* **A floor on optimizer steps** (``min_steps``): ``max_epochs`` counts passes
  over the data, and on a tiny set a pass is one or two steps (30 images in
  batches of 32: ``max_epochs=10`` is 10 steps, each a big jump of a cosine
  schedule). A fit runs at least ``min_steps`` optimizer steps: more epochs on
  tiny sets, nothing changes once the set is large enough.
* **Learning rates per part** (``backbone_lr_scale``): the head trains at ``lr``,
  the backbone at ``lr * backbone_lr_scale``; a strategy's own per-group scales
  (``"discriminative"``) multiply on top. Groups carry ``lr_scale``, timm's
  convention, so ``set_params(lr=...)`` keeps every ratio.
* **Weight decay** only on weights: biases and normalisation parameters (every
  parameter with fewer than two dimensions) get none, timm's convention - decay
  would pull exactly what BitFit trains towards zero.
* **Schedule** (``lr_schedule``, ``lr_warmup``): linear warm-up over the first
  fraction of the steps, then cosine decay to zero, stepped every batch.
  For ``TransferRegressor`` the same warm-up is a ridge regression
  (``warm_up_regression_head``: ``Ridge(alpha=1/C)``, closed form).
* **Label smoothing** (``label_smoothing``, classifier only) in the cross-entropy loss: off by default,
  it cost accuracy on both benchmark tasks (it pulls the probe away from the
  logistic-regression optimum the warm-up found).
"""

from __future__ import annotations

import math

import torch
from skorch.callbacks import Callback
from torch import nn

__all__ = ["NORM_MODES", "LR_SCHEDULES", "HEAD_WARMUP", "BACKBONE_LR_SCALE", "LABEL_SMOOTHING",
           "HEAD_WARMUP_C", "BODY_HEAD_WARMUP_C", "MIN_STEPS", "resolve_head_warmup_C",
           "epochs_for", "set_norm_mode", "optimizer_groups", "LRSchedule", "scaled_lr_setter", "warm_up_head",
           "warm_up_regression_head"]

NORM_MODES = ("frozen", "train")
# defaults measured by benchmarks/finetune_quality.py (see benchmarks/README.md)
HEAD_WARMUP = 100
BACKBONE_LR_SCALE = 1.0
LABEL_SMOOTHING = 0.0
HEAD_WARMUP_C = "auto"
#: the head warm-up's C when the body trains too (``head_warmup_C="auto"``)
BODY_HEAD_WARMUP_C = 0.01
MIN_STEPS = 50
LR_SCHEDULES = ("cosine", "constant")
_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)


def set_norm_mode(stages, mode: str) -> None:
    """Put the BatchNorm layers of ``stages`` in inference mode when ``mode == "frozen"``.

    Called by :meth:`TransferNet.train` after every mode switch, so it holds for
    every strategy and every epoch; the layers' affine parameters keep training.
    """
    if mode != "frozen":
        return
    for stage in stages:
        for module in stage.modules():
            if isinstance(module, _BATCH_NORMS):
                module.eval()


def _decays(param: torch.Tensor) -> bool:
    # biases, norm scales and shifts, layer-scale gammas, class tokens: no decay (timm)
    return param.ndim > 1


def optimizer_groups(strategy_groups, head: nn.Module, base_lr: float,
                     backbone_lr_scale: float) -> list[dict]:
    """A strategy's parameter groups -> optimizer groups with ``lr_scale`` and decay split.

    A strategy group may carry ``lr_scale`` (relative to the estimator's ``lr``) or,
    as older strategies do, an absolute ``lr``, turned into a scale here. Backbone
    parameters are further scaled by ``backbone_lr_scale``; head parameters are not.
    Parameters with fewer than two dimensions get ``weight_decay=0``.
    """
    head_ids = {id(p) for p in head.parameters()}
    groups = []
    for group in strategy_groups:
        group = dict(group)
        params = list(group.pop("params"))
        if "lr_scale" not in group:
            group["lr_scale"] = group.pop("lr") / base_lr if "lr" in group else 1.0
        group.pop("lr", None)
        scale = group.pop("lr_scale")
        for is_head in (True, False):
            part = [p for p in params if (id(p) in head_ids) == is_head]
            part_scale = scale if is_head else scale * backbone_lr_scale
            for decay in (True, False):
                chosen = [p for p in part if _decays(p) == decay]
                if not chosen:
                    continue
                extra = {} if decay else {"weight_decay": 0.0}
                groups.append({**group, **extra, "params": chosen, "lr_scale": part_scale,
                               "lr": base_lr * part_scale})
    return groups


# torch's own fused kernels: one pass over every parameter instead of a Python loop over them
_FUSED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
_FUSED_DEVICES = ("cpu", "cuda")
_IMPLEMENTATION_KWARGS = ("fused", "foreach", "differentiable", "capturable")


def optimizer_kwargs(optimizer, groups: list[dict], kwargs: dict) -> dict:
    """``kwargs`` for ``optimizer``, with ``fused=True`` for torch's Adam and AdamW.

    The fused step updates all parameters in one kernel; on CPU an AdamW step over
    resnet18's layer3-4 takes ~7 ms instead of ~45 ms with torch's default
    per-parameter loop (``benchmarks/bench_fit.py``). Left alone when the user chose an
    implementation (``optimizer__fused``, ``optimizer__foreach``, ...), for other
    optimizers, and for parameters the kernel does not take (non-float, other devices).
    """
    if optimizer not in _FUSED_OPTIMIZERS or any(k in kwargs for k in _IMPLEMENTATION_KWARGS):
        return kwargs
    params = [p for group in groups for p in group["params"]]
    if not params or any(not p.is_floating_point() or p.device.type not in _FUSED_DEVICES
                         for p in params):
        return kwargs
    return {**kwargs, "fused": True}


def _batches(net, n_samples: int) -> int:
    """Optimizer steps in one epoch over ``n_samples`` training samples."""
    batch_size = net.get_params_for("iterator_train").get("batch_size", net.batch_size)
    batch_size = n_samples if batch_size == -1 else batch_size
    return max(1, math.ceil(n_samples / max(1, batch_size)))


def epochs_for(net, n_samples: int) -> int:
    """``max_epochs``, raised so that the fit runs at least ``min_steps`` optimizer steps."""
    min_steps = int(getattr(net, "min_steps", 0) or 0)
    return max(int(net.max_epochs), math.ceil(min_steps / _batches(net, n_samples)))


def resolve_head_warmup_C(value, body_trains: bool) -> float:
    """``head_warmup_C`` as a number: ``"auto"`` is 1.0 for a probe, soft when the body
    trains (see the module docstring)."""
    if value == "auto":
        return BODY_HEAD_WARMUP_C if body_trains else 1.0
    return float(value)


def scaled_lr_setter(net, param, value):
    """``set_params(lr=...)`` sets the base rate; every group keeps its ``lr_scale``."""
    net.lr = value
    for group in net.optimizer_.param_groups:
        group["lr"] = value * group.get("lr_scale", 1.0)


class LRSchedule(Callback):
    """Per-batch learning rates: ``net.lr * group["lr_scale"] * factor(step)``.

    The factor follows the net's ``lr_schedule``: ``"cosine"`` rises linearly
    over the first ``lr_warmup`` fraction of the fit's steps, then decays to
    zero along a cosine; ``"constant"`` is 1 throughout. At the end of the fit
    every group is left at its nominal rate, so ``optimizer_`` shows what
    ``lr`` and the scales say.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.step_ = 0
        self.total_steps_ = None

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if self.total_steps_ is None and dataset_train is not None:
            epochs = getattr(net, "n_epochs_", None) or net.max_epochs
            self.total_steps_ = max(1, _batches(net, len(dataset_train)) * epochs)

    def factor(self, net) -> float:
        if net.lr_schedule == "constant" or not self.total_steps_:
            return 1.0
        progress = min(self.step_ / self.total_steps_, 1.0)
        warmup = float(net.lr_warmup)
        if progress < warmup:
            return (self.step_ + 1) / (warmup * self.total_steps_ + 1)
        return 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / max(1e-12, 1.0 - warmup)))

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        factor = self.factor(net)
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr * group.get("lr_scale", 1.0) * factor

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            self.step_ += 1

    def on_train_end(self, net, X=None, y=None, **kwargs):
        scaled_lr_setter(net, "lr", net.lr)


def warm_up_head(head: nn.Module, features: torch.Tensor, target: torch.Tensor, *,
                 max_iter: int, C: float, sample_weight: torch.Tensor | None = None) -> float:
    """Fit ``head`` alone on pooled backbone features, as a logistic regression would.

    Full-batch L-BFGS on the cross-entropy plus scikit-learn's L2 penalty on the
    weights (``0.5 / C * ||W||^2``, biases unpenalised), so with a single Linear
    head the result is ``LogisticRegression(C=C)`` fitted on the same features:
    the linear probe a practitioner trains first. Dropout is off meanwhile.
    Returns the final objective.
    """
    return _fit_head_lbfgs(
        head, features,
        lambda out: nn.functional.cross_entropy(out, target, reduction="none"),
        0.5 / C, max_iter, sample_weight)


def warm_up_regression_head(head: nn.Module, features: torch.Tensor, target: torch.Tensor, *,
                            max_iter: int, C: float,
                            sample_weight: torch.Tensor | None = None) -> float:
    """Fit ``head`` alone on pooled backbone features, as a ridge regression would.

    The objective is scikit-learn's ``Ridge(alpha=1 / C)``: the (weighted) sum of
    squared errors over samples and targets plus ``1 / C * ||W||^2`` (biases
    unpenalised), divided by the total weight. A head that is a single Linear
    (after an optional Dropout) gets the closed-form solution, in float64;
    a head with a hidden layer gets ``max_iter`` full-batch L-BFGS iterations on
    the same objective. Dropout is off meanwhile. Returns the final objective.
    """
    target = target.reshape(len(target), -1).to(features.dtype)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if len(linears) == 1:
        return _ridge_closed_form(linears[0], head, features, target, C, sample_weight)
    return _fit_head_lbfgs(head, features, lambda out: ((out - target) ** 2).sum(1), 1.0 / C,
                           max_iter, sample_weight)


def _fit_head_lbfgs(head: nn.Module, features, per_sample, penalty: float, max_iter: int,
                    sample_weight) -> float:
    """Full-batch L-BFGS on ``(sum_i w_i * per_sample(head(X))_i + penalty * ||W||^2) / sum w``.

    ``W`` are the head's weights (biases unpenalised); dropout is off meanwhile.
    Returns the final objective.
    """
    weights = [p for p in head.parameters() if p.ndim > 1]
    total = float(len(features)) if sample_weight is None else float(sample_weight.sum())
    optimizer = torch.optim.LBFGS(list(head.parameters()), lr=1.0, max_iter=int(max_iter),
                                  history_size=20, tolerance_grad=1e-6,
                                  tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad(set_to_none=True)
        losses = per_sample(head(features))
        losses = losses if sample_weight is None else losses * sample_weight
        loss = (losses.sum() + penalty * sum((w ** 2).sum() for w in weights)) / total
        loss.backward()
        return loss

    was_training = head.training
    head.eval()
    try:
        with torch.enable_grad():
            optimizer.step(objective)
            return float(objective().detach())
    finally:
        head.train(was_training)


def _ridge_closed_form(linear: nn.Linear, head: nn.Module, features, target, C: float,
                       sample_weight) -> float:
    """``Ridge(alpha=1/C)`` solved exactly into ``linear`` (weighted, centred intercept)."""
    X = features.detach().to(torch.float64)
    Y = target.detach().to(torch.float64)
    w = torch.ones(len(X), dtype=torch.float64, device=X.device) if sample_weight is None \
        else sample_weight.detach().to(torch.float64)
    total = w.sum()
    x_mean = (w[:, None] * X).sum(0) / total
    y_mean = (w[:, None] * Y).sum(0) / total
    Xc, Yc = X - x_mean, Y - y_mean
    gram = Xc.T @ (w[:, None] * Xc)
    gram += torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) / C
    coef = torch.linalg.solve(gram, Xc.T @ (w[:, None] * Yc))  # (n_features, n_targets)
    intercept = y_mean - x_mean @ coef
    with torch.no_grad():
        linear.weight.copy_(coef.T.to(linear.weight.dtype))
        linear.bias.copy_(intercept.to(linear.bias.dtype))
        errors = ((X @ coef + intercept - Y) ** 2).sum(1)
        objective = ((w * errors).sum() + (coef ** 2).sum() / C) / total
    return float(objective)


def warm_up_new_head(net, X, y, cached, depth: int) -> None:
    """Train ``net``'s new head on pooled features of its frozen backbone.

    Runs at the start of a fit's training, and only while the head is untouched
    since this fit initialised it (not after a warm start, a skops load, or a
    callback such as LoadInitState loading one). ``cached`` are the fit's cached
    activations of stages ``0..depth-1``: the pooled features themselves when
    ``depth`` covers the whole backbone. Sets ``net.head_warmup_loss_``.
    """
    from ._cached_fit import Activations
    from ._data import PairCollate
    from ._stages import data_loader

    fit = net._fit
    initial, fit.initial_head = fit.initial_head, None
    net.head_warmup_loss_ = None
    untouched = all(torch.equal(p.detach(), q)
                    for p, q in zip(net.module_.head.parameters(), initial))
    if not net.head_warmup or not untouched:
        return
    n_stages = net.module_.n_blocks + 1
    if cached is not None and depth == n_stages:
        features = cached
    else:
        # via the cache: starts from the cached prefix, and head-only epochs reuse it
        features = Activations(net._prefix_activations(X, n_stages, store=net.cache is not False),
                               net.preprocessor_)
    train, _ = net.get_split_datasets(features, y)
    inputs, target = next(iter(data_loader(train, batch_size=len(train),
                                           collate_fn=PairCollate())))
    weights = None
    if isinstance(inputs, dict):  # sample_weight (see SampleDataset)
        inputs, weights = inputs["x"], inputs["sample_weight"].float().to(net.device)
    net.head_warmup_loss_ = net._fit_head(net.module_.head, inputs.to(net.device),
                                          target.to(net.device), weights)
