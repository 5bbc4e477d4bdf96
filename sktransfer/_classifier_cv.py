"""TransferClassifierCV: a TransferClassifier that picks its own freeze_depth by CV."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.metrics import check_scoring
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from ._classifier import TransferClassifier
from ._network import TransferNet
from ._params import CLASSIFIER_CV_CONSTRAINTS
from ._recipe import BACKBONE_LR_SCALE, HEAD_WARMUP, HEAD_WARMUP_C, LABEL_SMOOTHING, MIN_STEPS
from ._search_cv import DEFAULT_CV, DEFAULT_FREEZE_DEPTHS, TransferSearchCV
from ._selection import MIN_DIFF, N_SE, brier_scorer

__all__ = ["TransferClassifierCV", "DEFAULT_FREEZE_DEPTHS", "DEFAULT_CV"]


class TransferClassifierCV(ClassifierMixin, TransferSearchCV):
    """A TransferClassifier that chooses how much to fine-tune by cross-validation.

    Like :class:`~sklearn.linear_model.LogisticRegressionCV` does for ``C``:
    every candidate in ``freeze_depths`` is fitted and scored on the same
    cross-validation splits, one is chosen with a variance-aware rule
    (:func:`~sktransfer.select_most_frozen`), and a
    :class:`~sktransfer.TransferClassifier` at that depth is refit on all the
    data (``best_estimator_``); ``predict``, ``predict_proba``,
    ``decision_function``, ``score`` and ``transform`` are its.

    The rule: let ``b`` be the candidate with the best mean test score. A
    candidate ``c`` is *within noise* when
    ``mean(b) - mean(c) <= max(n_se * SE, min_diff)``, ``SE`` being the
    standard error of the paired per-split differences
    ``score_b(split) - score_c(split)`` (standard deviation with ``ddof=1``
    over ``sqrt(n_splits)``; every split of a repeated cross-validation
    counts). With several scores (the default: accuracy and the Brier score)
    ``c`` must be within noise of each score's best. Among the candidates
    within noise the most frozen wins (here negative depths are resolved
    against the backbone: ``-1`` freezes all but the last block); when none is
    (the scores' bests disagree beyond noise), the least frozen of the bests.
    With one split only candidates within ``min_diff`` of the best are. On a few dozen
    images the fold scores of fine-tuned candidates swing by more than the
    differences between them; this keeps the cheaper, steadier candidate
    unless a deeper fine-tune is clearly better by some score.

    It costs much less than the ``GridSearchCV`` it replaces: within a split
    the candidates run from the shallowest frozen prefix to the deepest and
    then the fully trainable ones, so the process-wide frozen-prefix cache
    computes the backbone's output once per sample and every deeper prefix,
    the head warm-up features of every candidate and the fold scoring start
    from cached activations (see ``cache``).

    Parameters
    ----------
    freeze_depths : sequence of int or "all", default=DEFAULT_FREEZE_DEPTHS
        The candidate ``freeze_depth`` values, as :class:`TransferClassifier`
        takes them (``("all", -1, 0)``: a linear probe, only the last block
        trains, everything trains). No duplicates, also after resolving
        negative depths and ``n_blocks`` (which is ``"all"``).
    cv : None, int, splitter or iterable, default=None
        ``None``: stratified, shuffled 3-fold splits (``DEFAULT_CV`` = (3 folds,
        1 repeat): within 4x the cost of one ``freeze_depth=0`` fit, see
        ``benchmarks/small_data.py``), seeded by ``random_state``, with fewer
        folds when a class has fewer than 3 samples (at least 2 per class
        needed). An int ``k``:
        ``StratifiedKFold(k)``. Any scikit-learn splitter or iterable of
        ``(train, test)`` index arrays.
    scoring : None, str, callable, list or dict, default=None
        What the candidates are compared by. ``None``: accuracy *and*
        :func:`~sktransfer.brier_scorer` (minus the Brier score of the fold
        predictions' probabilities); a deeper candidate clearly better by
        either wins. On folds of 10-30 images accuracy ties (every candidate
        10/10) or moves in steps of one image, where the Brier score still sees
        how sure each candidate was of the right class; but the Brier score
        alone penalises under-confident fine-tunes (a text task kept its probe
        too often) where accuracy sees that they are right more often. Each
        alone missed a selection target of ``benchmarks/small_data.py``, both
        together met them (benchmarks/README.md, "Choosing the rule"). Any
        single scikit-learn scorer name or ``scorer(estimator, X, y)``
        callable (higher is better), or several as a list of names or a dict
        ``{name: scorer}``, judged together as the default's two are. Fold
        scores are unweighted, as in ``GridSearchCV``.
    n_se : float, default=N_SE (0.5)
        The rule's tolerance: how many standard errors of the paired score
        differences count as noise. 0 picks the best mean (ties to the most
        frozen), 1 is the classic one-standard-error rule.
    min_diff : float, default=MIN_DIFF (0.005)
        A shortfall in mean score that is a tie whatever its SE, in the
        scorers' units (with three folds the SE can come out near 0); 0: off.
    backbone, weights, freeze_strategy, image_size, augment, head_hidden, \
head_dropout, cache, cache_memory, random_state, amp, norm_mode, head_warmup, \
head_warmup_C, backbone_lr_scale, lr_schedule, lr_warmup, min_steps, label_smoothing, \
num_workers, module, criterion, optimizer, lr, max_epochs, batch_size, \
train_split, device, verbose
        As for :class:`~sktransfer.TransferClassifier`, with the same defaults,
        given to every candidate. ``random_state`` seeds every candidate the
        same way (and the default ``cv``'s shuffling).
    **kwargs
        Any other :class:`TransferClassifier` parameter, skorch's prefixed ones
        included (``optimizer__weight_decay``, ``iterator_train__num_workers``,
        ``callbacks__<name>__<param>``, ``freeze_strategy__<option>``,
        ``warm_start``, ``callbacks``); ``get_params`` / ``set_params`` /
        ``clone`` carry them.

    Attributes
    ----------
    freeze_depth_ : int or str
        The chosen candidate, as given in ``freeze_depths``.
    best_index_ : int
        Its index in ``freeze_depths`` and in ``cv_results_["params"]``.
    best_score_ : float
        Its mean cross-validated score (the first scorer's: accuracy by
        default; not necessarily the highest mean).
    best_estimator_ : TransferClassifier
        A classifier at ``freeze_depth_``, refit on all of ``X``.
    cv_results_ : dict of arrays
        ``GridSearchCV``'s layout, one entry per candidate in ``freeze_depths``
        order: ``params``, ``param_freeze_depth``, ``split<i>_test_<name>``,
        ``mean_test_<name>``, ``std_test_<name>``, ``rank_test_<name>`` for
        each scorer (``<name>``: ``accuracy`` and ``brier`` by default, the
        names of a list or dict ``scoring``, ``score`` for a single scorer),
        ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time``.
    n_splits_ : int
        Number of cross-validation splits.
    refit_time_ : float
        Seconds the refit on all the data took.
    scorer_ : callable or dict
        The scorer the candidates were scored with; ``{name: scorer}`` for
        several (the default's ``accuracy`` and ``brier``).
    classes_ : ndarray
        The labels seen in ``fit``, sorted.
    n_features_in_ : int
        Columns of X (vector backbones only).

    See Also
    --------
    select_most_frozen : the same rule as a ``refit=`` for ``GridSearchCV``.
    TransferRegressorCV : the same search over a ``TransferRegressor``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifierCV
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(24, 32, 32, 3).astype("float32")
    >>> y = np.array(["cat", "dog"] * 12)
    >>> X[y == "cat", :, :, 0] += 0.5
    >>> X = X.clip(0, 1)
    >>> clf = TransferClassifierCV("tiny_cnn", weights=None, freeze_depths=["all", 0],
    ...                            max_epochs=1, random_state=0, device="cpu").fit(X, y)
    >>> clf.freeze_depth_ in ("all", 0), clf.cv_results_["mean_test_accuracy"].shape
    (True, (2,))
    >>> clf.predict(X[:2]).dtype.kind
    'U'
    """

    _parameter_constraints = CLASSIFIER_CV_CONSTRAINTS  # see _params

    def __init__(self, backbone="resnet18", weights="DEFAULT",
                 freeze_depths=DEFAULT_FREEZE_DEPTHS, freeze_strategy="depth", image_size=None,
                 augment=None, head_hidden=None, head_dropout=0.0, cache="auto",
                 cache_memory=2 << 30, random_state=None, amp=False, *, cv=None, scoring=None,
                 n_se=N_SE, min_diff=MIN_DIFF, norm_mode="frozen", head_warmup=HEAD_WARMUP,
                 head_warmup_C=HEAD_WARMUP_C, backbone_lr_scale=BACKBONE_LR_SCALE,
                 lr_schedule="cosine", lr_warmup=0.1, min_steps=MIN_STEPS,
                 label_smoothing=LABEL_SMOOTHING, num_workers="auto", module=TransferNet,
                 criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.AdamW, lr=1e-3,
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
        self.norm_mode = norm_mode
        self.head_warmup = head_warmup
        self.head_warmup_C = head_warmup_C
        self.backbone_lr_scale = backbone_lr_scale
        self.lr_schedule = lr_schedule
        self.lr_warmup = lr_warmup
        self.min_steps = min_steps
        self.label_smoothing = label_smoothing
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

    _estimator = TransferClassifier
    score = TransferSearchCV.score  # before ClassifierMixin's: honours scoring=

    # -- the target: labels, stratified folds ------------------------------------------
    def _prepare_target(self, base, y, n_samples, params):
        y_enc = base._encode_target(y, n_samples, fitting=True)  # validates y
        # every fold's candidates know every class, even one a fold's training part lacks
        fold_params = {} if "classes" in params else {"classes": base.classes_}
        return base.classes_[y_enc], fold_params

    def _default_scorers(self, estimator) -> dict:
        return {"accuracy": check_scoring(estimator, scoring="accuracy"), "brier": brier_scorer}

    def _default_cv(self, y):
        _, counts = np.unique(y, return_counts=True)
        smallest = int(counts.min())
        if smallest < 2:
            label = np.unique(y)[np.argmin(counts)].tolist()
            raise ValueError(f"class {label!r} has a single sample: cross-validation needs "
                             f"at least 2 per class. Add samples, or pass your own cv= "
                             f"(e.g. an iterable of (train, test) indices)")
        folds, repeats = DEFAULT_CV
        return RepeatedStratifiedKFold(n_splits=min(folds, smallest), n_repeats=repeats,
                                       random_state=self._seed())

    def _int_cv(self, k):
        return StratifiedKFold(k)

    def _fitted_target(self, refit):
        self.classes_ = refit.classes_

    # -- the chosen classifier -----------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities of ``best_estimator_``, columns in ``classes_`` order."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    def decision_function(self, X):
        """Logits of ``best_estimator_`` (see ``TransferClassifier.decision_function``)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)
