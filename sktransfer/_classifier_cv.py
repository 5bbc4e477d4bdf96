"""TransferClassifierCV: a TransferClassifier that picks its own freeze_depth by CV."""

from __future__ import annotations

import difflib
import functools
import numbers
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold, check_cv
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._classifier import TransferClassifier
from ._common import make_backbone, read_input
from ._constraints import check_params
from ._network import TransferNet, resolve_freeze_depth
from ._params import CLASSIFIER_CV_CONSTRAINTS
from ._recipe import BACKBONE_LR_SCALE, HEAD_WARMUP, HEAD_WARMUP_C, LABEL_SMOOTHING, MIN_STEPS
from ._selection import MIN_DIFF, N_SE, brier_scorer, select

__all__ = ["TransferClassifierCV", "DEFAULT_FREEZE_DEPTHS", "DEFAULT_CV"]

#: the candidates ``freeze_depths`` tries by default: a probe, the top block, everything
DEFAULT_FREEZE_DEPTHS = ("all", -1, 0)
#: ``cv=None``: stratified ``(folds, repeats)``, fewer folds when a class has fewer samples
DEFAULT_CV = (3, 1)

# parameters of TransferClassifierCV that TransferClassifier does not have
_CV_PARAMS = ("freeze_depths", "cv", "scoring", "n_se", "min_diff")


@functools.lru_cache(maxsize=1)
def _transfer_classifier_names() -> tuple[frozenset, tuple]:
    """TransferClassifier's parameter names and its prefixes (``optimizer__`` ...)."""
    default = TransferClassifier()
    # skorch routes module__, criterion__ and optimizer__ besides its listed prefixes
    prefixes = tuple(default.prefixes_) + ("module", "criterion", "optimizer")
    return frozenset(default.get_params(deep=False)), prefixes


class TransferClassifierCV(ClassifierMixin, TransformerMixin, BaseEstimator):
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

    # -- parameters: the explicit ones, plus whatever TransferClassifier kwargs were given --
    def _get_param_names(self):
        explicit = super()._get_param_names()
        extra = sorted(k for k in vars(self)
                       if k not in explicit and not k.startswith("_") and not k.endswith("_"))
        return sorted(explicit + extra)

    def set_params(self, **params):
        """Set parameters, TransferClassifier's prefixed ones (``optimizer__lr``) included."""
        names, prefixes = _transfer_classifier_names()
        if "freeze_depth" in params:
            raise ValueError(f"{type(self).__name__} takes freeze_depths (the candidates), not "
                             f"freeze_depth; use set_params(freeze_depths=[...])")
        direct = {k: v for k, v in params.items()
                  if k not in self._get_param_names()
                  and (k in names or k.split("__", 1)[0] in prefixes)}
        for key, value in direct.items():
            setattr(self, key, value)
        rest = {k: v for k, v in params.items() if k not in direct}
        # prefixed keys of existing params (optimizer__weight_decay set before) are plain
        # attributes too, never a nested estimator's params
        for key in [k for k in rest if "__" in k and k.split("__", 1)[0] in prefixes]:
            setattr(self, key, rest.pop(key))
        return super().set_params(**rest) if rest else self

    def _transfer_params(self) -> dict:
        """The parameters every candidate gets, checked against TransferClassifier's."""
        params = self.get_params(deep=False)
        for name in _CV_PARAMS:
            params.pop(name)
        names, prefixes = _transfer_classifier_names()
        if "freeze_depth" in params:
            raise ValueError(f"{type(self).__name__} takes freeze_depths (the candidates), not "
                             f"freeze_depth={params['freeze_depth']!r}; the choice is "
                             f"freeze_depth_ after fit. Use freeze_depths=[...]")
        unknown = sorted(k for k in params
                         if k not in names and k.split("__", 1)[0] not in prefixes)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{type(self).__name__} got unknown parameter(s) {unknown}: not "
                             f"TransferClassifier parameters nor prefixed ones such as "
                             f"optimizer__weight_decay{hint}")
        return params

    # -- checks ----------------------------------------------------------------------------
    def _check_freeze_depths(self) -> list:
        depths = list(self.freeze_depths)  # a collection (see _parameter_constraints)
        if not depths:
            raise ValueError("freeze_depths is empty; give at least one candidate, e.g. "
                             "freeze_depths=['all', -1, 0]")
        for depth in depths:
            if not (depth == "all" if isinstance(depth, str) else
                    isinstance(depth, numbers.Integral)
                    and not isinstance(depth, (bool, np.bool_))):
                raise ValueError(f"freeze_depths holds {depth!r}, which is no freeze_depth; "
                                 f"use ints (negative: from the top) or 'all'")
        seen = set()
        for depth in depths:
            key = depth if isinstance(depth, str) else int(depth)
            if key in seen:
                raise ValueError(f"freeze_depths lists {depth!r} twice: {depths!r}; list each "
                                 f"candidate once")
            seen.add(key)
        return depths

    def _check_scoring(self, estimator) -> dict:
        """{name: scorer}; the name is ``"score"`` for one scorer (GridSearchCV's keys)."""
        scoring = self.scoring
        if scoring is None:
            return {"accuracy": check_scoring(estimator, scoring="accuracy"),
                    "brier": brier_scorer}
        if isinstance(scoring, dict):
            named = dict(scoring)
        elif isinstance(scoring, (list, tuple, set)):
            named = {name: name for name in scoring}
        else:
            return {"score": check_scoring(estimator, scoring=scoring)}
        bad = [name for name in named if not isinstance(name, str)]
        if not named or bad or len(named) != len(scoring):
            raise ValueError(f"scoring must be None, one scorer (a name or a callable), a list "
                             f"of distinct scorer names or a dict {{name: scorer}}; got "
                             f"{scoring!r}")
        return {name: check_scoring(estimator, scoring=value) for name, value in named.items()}

    def _splits(self, X, y) -> list:
        cv = self.cv
        if cv is None:
            _, counts = np.unique(y, return_counts=True)
            smallest = int(counts.min())
            if smallest < 2:
                label = np.unique(y)[np.argmin(counts)].tolist()
                raise ValueError(f"class {label!r} has a single sample: cross-validation needs "
                                 f"at least 2 per class. Add samples, or pass your own cv= "
                                 f"(e.g. an iterable of (train, test) indices)")
            folds, repeats = DEFAULT_CV
            seed = self.random_state
            if isinstance(seed, np.random.RandomState):  # a copy: the caller's is not drawn from
                seed = int(_copied(seed).randint(2**31 - 1))
            cv = RepeatedStratifiedKFold(n_splits=min(folds, smallest), n_repeats=repeats,
                                         random_state=seed)
        elif isinstance(cv, numbers.Integral) and not isinstance(cv, (bool, np.bool_)):
            cv = StratifiedKFold(int(cv))
        cv = check_cv(cv, y, classifier=True)
        splits = list(cv.split(X, y))
        if not splits:
            raise ValueError(f"cv={self.cv!r} gave no (train, test) splits")
        return splits

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Score every candidate by cross-validation, choose one, refit it on all the data.

        Parameters
        ----------
        X : images (array, tensor, file paths, PIL images), texts or 2-D vectors
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Weights for every training fit (fold scores are unweighted).

        Returns
        -------
        self
        """
        check_params(self)  # _parameter_constraints (see _constraints), before any work
        depths = self._check_freeze_depths()
        n_se, min_diff = float(self.n_se), float(self.min_diff)
        params = self._transfer_params()
        base = TransferClassifier(freeze_depth=depths[0], **params)
        scorers = self._check_scoring(base)
        X = indexable(X)[0]  # array-likes without indexing (an __array__ only) become arrays
        n_samples = _num_samples(X)
        y_enc = base._encode_target(y, n_samples, fitting=True)  # validates y
        classes = base.classes_
        y_arr = classes[y_enc]
        splits = self._splits(X, y_arr)
        backbone = make_backbone(self.backbone, self.weights, read_input(X, self.backbone),
                                 self.image_size)
        stages = self._resolved(depths, backbone)
        weights = None if sample_weight is None else np.asarray(sample_weight)

        # within a split: the shallowest frozen prefix first, each deeper one (and the
        # pooled features every candidate's head warm-up uses) derived from the cached one
        # before it; fully trainable candidates last, their warm-up features cached by then
        order = sorted(range(len(depths)), key=lambda i: (stages[i] == 0, stages[i]))
        fold_params = {} if "classes" in params else {"classes": classes}
        scores = {name: np.full((len(depths), len(splits)), np.nan) for name in scorers}
        fit_times, score_times = np.zeros((2, len(depths), len(splits)))
        for s, (train, test) in enumerate(splits):
            X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
            w_train = None if weights is None else weights[train]
            for i in order:
                estimator = clone(base).set_params(freeze_depth=depths[i], **fold_params)
                start = time.perf_counter()
                estimator.fit(X_train, y_arr[train], sample_weight=w_train)
                fit_times[i, s] = time.perf_counter() - start
                start = time.perf_counter()
                for name, scorer in scorers.items():
                    scores[name][i, s] = scorer(estimator, X_test, y_arr[test])
                score_times[i, s] = time.perf_counter() - start

        results = _cv_results(depths, scores, fit_times, score_times)
        names = None if list(scorers) == ["score"] else list(scorers)
        best = select(results, n_se, lambda depth: resolve_freeze_depth(depth, backbone),
                      scorer=names, min_diff=min_diff)
        start = time.perf_counter()
        refit = clone(base).set_params(freeze_depth=depths[best]).fit(
            X, y, sample_weight=sample_weight)
        self.refit_time_ = time.perf_counter() - start
        self.cv_results_ = results
        self.best_index_ = best
        self.freeze_depth_ = depths[best]
        self.best_score_ = float(results[f"mean_test_{next(iter(scorers))}"][best])
        self.best_estimator_ = refit
        self.scorer_ = scorers["score"] if names is None else scorers
        self.n_splits_ = len(splits)
        self.classes_ = refit.classes_
        if hasattr(refit, "n_features_in_"):
            self.n_features_in_ = refit.n_features_in_
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return self

    @staticmethod
    def _resolved(depths, backbone) -> list[int]:
        resolved = [resolve_freeze_depth(d, backbone) for d in depths]
        for i, depth in enumerate(resolved):
            if depth in resolved[:i]:
                other = depths[resolved.index(depth)]
                raise ValueError(
                    f"freeze_depths {other!r} and {depths[i]!r} freeze the same part of "
                    f"backbone {backbone.name!r}, which has {backbone.n_blocks} blocks "
                    f"({backbone.n_blocks} means 'all'); list each candidate once")
        return resolved

    # -- the chosen classifier -----------------------------------------------------------
    def predict(self, X):
        """Labels predicted by ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """Class probabilities of ``best_estimator_``, columns in ``classes_`` order."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    def decision_function(self, X):
        """Logits of ``best_estimator_`` (see ``TransferClassifier.decision_function``)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    def transform(self, X):
        """Pooled features of ``best_estimator_``'s fine-tuned backbone."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.transform(X)

    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s columns (``best_estimator_``'s)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.get_feature_names_out(input_features)

    def score(self, X, y, sample_weight=None):
        """``best_estimator_``'s score: accuracy when ``scoring`` is None (as every
        classifier's ``score``), else ``scoring``'s (the first of several)."""
        check_is_fitted(self, "best_estimator_")
        if self.scoring is None:
            return self.best_estimator_.score(X, y, sample_weight=sample_weight)
        scorer = next(iter(self.scorer_.values())) if isinstance(self.scorer_, dict) \
            else self.scorer_
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return scorer(self.best_estimator_, X, y, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _copied(random_state: np.random.RandomState) -> np.random.RandomState:
    copy = np.random.RandomState()
    copy.set_state(random_state.get_state())
    return copy


def _cv_results(depths, scores: dict, fit_times, score_times) -> dict:
    """``GridSearchCV.cv_results_``'s layout for a grid over ``freeze_depth``;
    ``scores`` maps each scorer's name (``"score"`` for a single one) to an array
    (candidates, splits)."""
    from scipy.stats import rankdata

    results = {}
    for name, array in (("fit_time", fit_times), ("score_time", score_times)):
        results[f"mean_{name}"] = array.mean(axis=1)
        results[f"std_{name}"] = array.std(axis=1)
    values = np.array(depths)
    if values.dtype.kind == "U" or values.ndim != 1:
        values = np.array(depths, dtype=object)
    results["param_freeze_depth"] = np.ma.MaskedArray(values, mask=False)
    results["params"] = [{"freeze_depth": d} for d in depths]
    for name, table in scores.items():
        for s in range(table.shape[1]):
            results[f"split{s}_test_{name}"] = table[:, s].copy()
        means = table.mean(axis=1)
        results[f"mean_test_{name}"] = means
        results[f"std_test_{name}"] = table.std(axis=1)
        results[f"rank_test_{name}"] = rankdata(-means, method="min").astype(np.int32)
    return results
