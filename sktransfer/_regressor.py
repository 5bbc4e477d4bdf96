"""TransferRegressor: a skorch regressor around a pretrained backbone."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_array
from skorch import NeuralNetRegressor

from ._network import TransferNet
from ._params import TRANSFER_CONSTRAINTS
from ._recipe import (BACKBONE_LR_SCALE, HEAD_WARMUP, MIN_STEPS, resolve_head_warmup_C,
                      warm_up_regression_head)
from ._transfer import TransferBase

__all__ = ["TransferRegressor"]


class TransferRegressor(TransferBase, NeuralNetRegressor):
    """Fine-tune a pretrained backbone to predict numbers (one target or several).

    The regression sibling of :class:`~sktransfer.TransferClassifier`: the same
    backbone, freezing, cache and recipe parameters (see there), a skorch
    :class:`~skorch.NeuralNetRegressor` underneath (callbacks, history,
    ``train_split``, ``warm_start``, ``partial_fit`` keep their skorch names),
    an :class:`~torch.nn.MSELoss`, and :meth:`transform` for the fine-tuned
    backbone's pooled features.

    Targets are standardised inside ``fit``: the network learns
    ``(y - target_mean_) / target_scale_`` (per target column, weighted by
    ``sample_weight``) and :meth:`predict` un-scales its outputs, so ``y`` in
    any unit trains with the same learning rate and the same ``head_warmup_C``.
    ``target_scaling=False`` trains on ``y`` as given (then ``target_mean_`` is
    0 and ``target_scale_`` 1). The training loss in ``history_`` is in
    standardised units.

    Parameters
    ----------
    backbone, weights, freeze_depth, freeze_strategy, image_size, augment, \
head_hidden, head_dropout, cache, cache_memory, random_state, amp, norm_mode, \
backbone_lr_scale, lr_schedule, lr_warmup, num_workers, lr, max_epochs, batch_size, \
optimizer, train_split, device, verbose
        As for :class:`~sktransfer.TransferClassifier`.
    target_scaling : bool, default=True
        Standardise each target column inside ``fit`` (see above).
    head_warmup : int, default=100
        Before the main epochs of a fresh fit, the new head is fitted alone as a
        ridge regression on the pooled features of the frozen pretrained backbone
        (features from the frozen-prefix cache): in closed form for a plain
        Linear head, with ``head_warmup`` L-BFGS iterations for a head with a
        hidden layer. 0 turns it off.
    head_warmup_C : "auto" or float, default=1.0
        Inverse L2 strength of that fit: ``Ridge(alpha=1 / head_warmup_C)`` on
        the standardised targets. ``"auto"`` as for the classifier (1.0 for a
        probe, 0.01 when the body trains); not the default here: with the step
        floor it cost full fine-tuning 0.03-0.05 R^2 on 40-100 photo crops
        (``benchmarks/regression_transfer.py --cv --ablate``).
    min_steps : int, default=50
        As for the classifier, a floor on optimizer steps: on a tiny set
        ``max_epochs`` is raised until the fit makes ``min_steps`` steps. On 40
        photo crops it lifted full fine-tuning from R^2 0.19 to 0.45, and on 100
        from 0.44 +- 0.17 to 0.61 +- 0.07 (benchmarks/README.md).

    Attributes
    ----------
    target_mean_, target_scale_ : ndarray of shape (n_targets,)
        The standardisation of ``y`` learnt in ``fit``.
    n_outputs_ : int
        Number of target columns.
    module_, backbone_, freeze_depth_, freezer_, cache_used_, cache_depth_, n_features_in_
        As for :class:`~sktransfer.TransferClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferRegressor
    >>> X = np.random.RandomState(0).rand(20, 32, 32, 3).astype("float32")
    >>> y = X.mean(axis=(1, 2, 3)) * 100
    >>> reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
    ...                         random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    prefixes_ = NeuralNetRegressor.prefixes_ + ["freeze_strategy"]
    _parameter_constraints = {**TRANSFER_CONSTRAINTS, "target_scaling": ["boolean"]}

    def __init__(self, backbone="resnet18", weights="DEFAULT", freeze_depth="all",
                 freeze_strategy="depth", image_size=None, augment=None, head_hidden=None,
                 head_dropout=0.0, cache="auto", cache_memory=2 << 30, random_state=None,
                 amp=False, *, target_scaling=True, norm_mode="frozen", head_warmup=HEAD_WARMUP,
                 head_warmup_C=1.0, backbone_lr_scale=BACKBONE_LR_SCALE,
                 lr_schedule="cosine", lr_warmup=0.1, min_steps=MIN_STEPS, num_workers="auto",
                 module=TransferNet,
                 criterion=torch.nn.MSELoss, optimizer=torch.optim.AdamW, lr=1e-3,
                 max_epochs=10, batch_size=32, train_split=None, device="auto", verbose=0,
                 **kwargs):
        super().__init__(
            backbone, weights, freeze_depth, freeze_strategy, image_size, augment, head_hidden,
            head_dropout, cache, cache_memory, random_state, amp, norm_mode=norm_mode,
            head_warmup=head_warmup, head_warmup_C=head_warmup_C,
            backbone_lr_scale=backbone_lr_scale, lr_schedule=lr_schedule, lr_warmup=lr_warmup,
            min_steps=min_steps,
            num_workers=num_workers, module=module, criterion=criterion, optimizer=optimizer,
            lr=lr, max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
            device=device, verbose=verbose, **kwargs)
        self.target_scaling = target_scaling

    # -- the target -------------------------------------------------------------------
    def _encode_target(self, y, n_samples, fitting: bool):
        if y is None:
            raise ValueError(f"requires y to be passed, but the target y is None: "
                             f"{type(self).__name__}.fit needs numeric targets")
        if hasattr(y, "to_numpy"):
            y = y.to_numpy()
        try:
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        except ValueError as exc:
            if "could not convert" in str(exc) or "Unable to convert" in str(exc):
                raise ValueError(f"y must hold numbers for a regressor ({exc}); for labels "
                                 f"use TransferClassifier") from exc
            raise
        if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
            raise ValueError(f"y must be 1-D (one target) or 2-D (n_samples, n_targets), got "
                             f"shape {y.shape}")
        if len(y) != n_samples:
            raise ValueError(f"X and y have different lengths: {n_samples} samples in X, "
                             f"{len(y)} targets in y")
        n_targets = 1 if y.ndim == 1 else y.shape[1]
        if fitting:
            self._y_ndim = y.ndim
        elif n_targets != self.n_outputs_:
            raise ValueError(f"y has {n_targets} target column(s), but {type(self).__name__} "
                             f"was fitted with {self.n_outputs_}")
        return y.reshape(len(y), n_targets)

    def _scaled_target(self, y, sample_weight, fitting: bool):
        if fitting:
            mean, scale = np.zeros(y.shape[1]), np.ones(y.shape[1])
            if self.target_scaling:
                mean = np.average(y, axis=0, weights=sample_weight)
                std = np.sqrt(np.average((y - mean) ** 2, axis=0, weights=sample_weight))
                scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
            self.target_mean_, self.target_scale_ = mean, scale
            self.n_outputs_ = y.shape[1]
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _target_fitted(self) -> bool:
        return hasattr(self, "target_mean_")

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def _fit_head(self, head, features, target, sample_weight) -> float:
        return warm_up_regression_head(head, features, target, sample_weight=sample_weight,
                                       max_iter=int(self.head_warmup),
                                       C=resolve_head_warmup_C(self.head_warmup_C,
                                                               self._body_trains()))

    # -- prediction -------------------------------------------------------------------
    @property
    def predict_proba(self):
        # skorch's NeuralNet has one; a regressor has no probabilities (sklearn's checks)
        raise AttributeError(f"{type(self).__name__} has no predict_proba; use predict")

    def predict(self, X):
        """Predicted targets, in the units of ``y``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets), float64
            1-D when ``y`` was 1-D in ``fit``.
        """
        source = self._predict_source(X)
        with self._on_device():
            out = self.forward(source).cpu().numpy().astype(np.float64)
        out = out * self.target_scale_ + self.target_mean_
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X, y, sample_weight=None):
        """R^2 of ``predict(X)`` against ``y`` (uniform average over targets), as sklearn."""
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X), sample_weight=sample_weight,
                        multioutput="uniform_average")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
