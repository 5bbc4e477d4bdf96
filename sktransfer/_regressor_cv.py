"""TransferRegressorCV: a TransferRegressor that picks its own freeze_depth by CV."""

from __future__ import annotations

import torch
from sklearn.base import RegressorMixin
from sklearn.metrics import check_scoring
from sklearn.model_selection import KFold, RepeatedKFold

from ._network import TransferNet
from ._params import REGRESSOR_CV_CONSTRAINTS
from ._recipe import BACKBONE_LR_SCALE, HEAD_WARMUP, MIN_STEPS
from ._regressor import TransferRegressor
from ._search_cv import DEFAULT_CV, DEFAULT_FREEZE_DEPTHS, TransferSearchCV
from ._selection import MIN_DIFF, N_SE

__all__ = ["TransferRegressorCV"]


class TransferRegressorCV(RegressorMixin, TransferSearchCV):
    """A TransferRegressor that chooses how much to fine-tune by cross-validation.

    The regression sibling of :class:`~sktransfer.TransferClassifierCV`, as
    :class:`~sklearn.linear_model.RidgeCV` is for ``alpha``: every candidate in
    ``freeze_depths`` is fitted and scored on the same splits, sharing the
    frozen-prefix cache, one is chosen with
    :func:`~sktransfer.select_most_frozen`'s rule (the most frozen candidate
    whose mean score is within noise of the best:
    ``mean(b) - mean(c) <= max(n_se * SE, min_diff)``, SE the standard error of
    the paired per-split differences), and a
    :class:`~sktransfer.TransferRegressor` at that depth is refit on all the
    data (``best_estimator_``); ``predict``, ``score`` and ``transform`` are
    its.

    Parameters
    ----------
    freeze_depths : sequence of int or "all", default=DEFAULT_FREEZE_DEPTHS
        The candidates (``("all", -1, 0)``: a linear probe, only the last block
        trains, everything trains), as for ``TransferClassifierCV``.
    cv : None, int, splitter or iterable, default=None
        ``None``: shuffled 3-fold splits (``KFold``; fewer folds below 3
        samples, at least 2 needed) seeded by ``random_state``. An int ``k``:
        ``KFold(k)``. Any scikit-learn splitter or iterable of
        ``(train, test)`` index arrays.
    scoring : None, str, callable, list or dict, default=None
        ``None``: the candidates' own ``score``, R^2 (``cv_results_`` keys
        ``*_test_score``). Otherwise as for ``TransferClassifierCV``: one
        scorer, or several judged together (a deeper candidate clearly better
        by any of them wins).
    n_se : float, default=N_SE (0.5)
        How many standard errors of the paired score differences count as noise.
    min_diff : float, default=MIN_DIFF (0.005)
        A shortfall in mean score that is a tie whatever its SE (0.005 of R^2
        by default); 0: off.
    backbone, weights, freeze_strategy, image_size, augment, head_hidden, \
head_dropout, cache, cache_memory, random_state, amp, target_scaling, norm_mode, \
head_warmup, head_warmup_C, backbone_lr_scale, lr_schedule, lr_warmup, min_steps, \
num_workers, module, criterion, optimizer, lr, max_epochs, batch_size, train_split, \
device, verbose
        As for :class:`~sktransfer.TransferRegressor`, with the same defaults,
        given to every candidate.
    **kwargs
        Any other :class:`TransferRegressor` parameter, skorch's prefixed ones
        included (``optimizer__weight_decay``, ``freeze_strategy__<option>``).

    Attributes
    ----------
    freeze_depth_, best_index_, best_score_, cv_results_, n_splits_, refit_time_, scorer_
        As for :class:`~sktransfer.TransferClassifierCV` (``best_score_``: the
        chosen candidate's mean fold R^2 by default).
    best_estimator_ : TransferRegressor
        A regressor at ``freeze_depth_``, refit on all of ``X``.
    n_outputs_ : int
        Number of target columns.
    n_features_in_ : int
        Columns of X (vector backbones only).

    Notes
    -----
    The default rule was chosen on classification (``benchmarks/small_data.py``);
    on regression it has been measured on one task only
    (``benchmarks/regression_transfer.py --cv``; benchmarks/README.md).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferRegressorCV
    >>> X = np.random.RandomState(0).rand(24, 32, 32, 3).astype("float32")
    >>> y = X.mean(axis=(1, 2, 3)) * 100
    >>> reg = TransferRegressorCV("tiny_cnn", weights=None, freeze_depths=["all", 0],
    ...                           max_epochs=1, random_state=0, device="cpu").fit(X, y)
    >>> reg.freeze_depth_ in ("all", 0), reg.cv_results_["mean_test_score"].shape
    (True, (2,))
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints = REGRESSOR_CV_CONSTRAINTS  # see _params
    _estimator = TransferRegressor
    score = TransferSearchCV.score  # before RegressorMixin's: honours scoring=

    def __init__(self, backbone="resnet18", weights="DEFAULT",
                 freeze_depths=DEFAULT_FREEZE_DEPTHS, freeze_strategy="depth", image_size=None,
                 augment=None, head_hidden=None, head_dropout=0.0, cache="auto",
                 cache_memory=2 << 30, random_state=None, amp=False, *, cv=None, scoring=None,
                 n_se=N_SE, min_diff=MIN_DIFF, target_scaling=True, norm_mode="frozen",
                 head_warmup=HEAD_WARMUP, head_warmup_C=1.0,
                 backbone_lr_scale=BACKBONE_LR_SCALE, lr_schedule="cosine", lr_warmup=0.1,
                 min_steps=MIN_STEPS, num_workers="auto", module=TransferNet,
                 criterion=torch.nn.MSELoss, optimizer=torch.optim.AdamW, lr=1e-3,
                 max_epochs=10, batch_size=32, train_split=None, device="auto", verbose=0,
                 **kwargs):
        self.backbone = backbone
        self.weights = weights
        self.freeze_depths = freeze_depths
        self.freeze_strategy = freeze_strategy
        self.image_size = image_size
        self.augment = augment
        self.head_hidden = head_hidden
        self.head_dropout = head_dropout
        self.cache = cache
        self.cache_memory = cache_memory
        self.random_state = random_state
        self.amp = amp
        self.cv = cv
        self.scoring = scoring
        self.n_se = n_se
        self.min_diff = min_diff
        self.target_scaling = target_scaling
        self.norm_mode = norm_mode
        self.head_warmup = head_warmup
        self.head_warmup_C = head_warmup_C
        self.backbone_lr_scale = backbone_lr_scale
        self.lr_schedule = lr_schedule
        self.lr_warmup = lr_warmup
        self.min_steps = min_steps
        self.num_workers = num_workers
        self.module = module
        self.criterion = criterion
        self.optimizer = optimizer
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.train_split = train_split
        self.device = device
        self.verbose = verbose
        vars(self).update(kwargs)

    # -- the target: numbers, plain folds ----------------------------------------------
    def _prepare_target(self, base, y, n_samples, params):
        y2d = base._encode_target(y, n_samples, fitting=True)  # validates y
        return (y2d[:, 0] if base._y_ndim == 1 else y2d), {}

    def _default_scorers(self, estimator) -> dict:
        return {"score": check_scoring(estimator)}  # R^2, GridSearchCV's default keys

    def _default_cv(self, y):
        if len(y) < 2:
            raise ValueError(f"cross-validation needs at least 2 samples, got {len(y)}; add "
                             f"samples, or fit a TransferRegressor at one freeze_depth")
        folds, repeats = DEFAULT_CV
        return RepeatedKFold(n_splits=min(folds, len(y)), n_repeats=repeats,
                             random_state=self._seed())

    def _int_cv(self, k):
        return KFold(k)

    def _fitted_target(self, refit):
        self.n_outputs_ = refit.n_outputs_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
