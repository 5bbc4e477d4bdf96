"""What TransferClassifierCV and TransferRegressorCV share: candidates, folds, the rule.

A subclass sets ``_estimator`` (the estimator each candidate is) and provides the
target's part: ``_prepare_target`` (validate ``y``; the labels or values to split
and fit on), ``_default_cv``, ``_int_cv``, ``_default_scorers`` and
``_fitted_target`` (the fitted attributes that come from the refit).
"""

from __future__ import annotations

import difflib
import functools
import numbers
import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._common import clone_with_leaves, make_backbone, nested_params, read_input
from ._constraints import check_params
from ._network import resolve_freeze_depth
from ._selection import select

#: the candidates ``freeze_depths`` tries by default: a probe, the top block, everything
DEFAULT_FREEZE_DEPTHS = ("all", -1, 0)
#: ``cv=None``: ``(folds, repeats)``, fewer folds when the data cannot fill them
DEFAULT_CV = (3, 1)

# parameters of the searches that their candidate estimators do not have
_CV_PARAMS = ("freeze_depths", "cv", "scoring", "n_se", "min_diff")


@functools.lru_cache(maxsize=None)
def _estimator_names(estimator_class) -> tuple[frozenset, tuple]:
    """The candidate estimator's parameter names and its prefixes (``optimizer__`` ...)."""
    default = estimator_class()
    # skorch routes module__, criterion__ and optimizer__ besides its listed prefixes
    prefixes = tuple(default.prefixes_) + ("module", "criterion", "optimizer")
    return frozenset(default.get_params(deep=False)), prefixes


class TransferSearchCV(TransformerMixin, BaseEstimator):
    """Base of the ``*CV`` estimators: fit every ``freeze_depths`` candidate on the same
    splits, choose with :func:`~sktransfer.select_most_frozen`'s rule, refit on all."""

    _estimator = None  # the candidates' class, set by each subclass

    # -- parameters: the explicit ones, plus whatever candidate kwargs were given ----------
    def _get_param_names(self):
        explicit = super()._get_param_names()
        extra = sorted(k for k in vars(self)
                       if k not in explicit and not k.startswith("_") and not k.endswith("_"))
        return sorted(explicit + extra)

    def __sklearn_clone__(self):
        return clone_with_leaves(self)

    def get_params(self, deep=True):
        """The parameters; with ``deep``, nested estimators' too (never a transform
        passed as ``augment``: see :func:`~sktransfer._common.nested_params`)."""
        params = super().get_params(deep=False)
        return nested_params(params) if deep else params

    def set_params(self, **params):
        """Set parameters, the candidates' prefixed ones (``optimizer__lr``) included."""
        names, prefixes = _estimator_names(self._estimator)
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
        """The parameters every candidate gets, checked against the candidates' own."""
        params = self.get_params(deep=False)
        for name in _CV_PARAMS:
            params.pop(name)
        names, prefixes = _estimator_names(self._estimator)
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
                             f"{self._estimator.__name__} parameters nor prefixed ones such "
                             f"as optimizer__weight_decay{hint}")
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
            return self._default_scorers(estimator)
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

    def _seed(self):
        """``random_state`` for the default splitter; a RandomState is copied, not drawn."""
        seed = self.random_state
        if isinstance(seed, np.random.RandomState):
            copy = np.random.RandomState()
            copy.set_state(seed.get_state())
            seed = int(copy.randint(2**31 - 1))
        return seed

    def _splits(self, X, y) -> list:
        cv = self.cv
        if cv is None:
            cv = self._default_cv(y)
        elif isinstance(cv, numbers.Integral) and not isinstance(cv, (bool, np.bool_)):
            cv = self._int_cv(int(cv))
        cv = check_cv(cv, y, classifier=is_classifier(self))
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
        y : array-like of shape (n_samples,) (or (n_samples, n_targets) for a regressor)
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
        base = self._estimator(freeze_depth=depths[0], **params)
        scorers = self._check_scoring(base)
        X = indexable(X)[0]  # array-likes without indexing (an __array__ only) become arrays
        y_fit, fold_params = self._prepare_target(base, y, _num_samples(X), params)
        splits = self._splits(X, y_fit)
        backbone = make_backbone(self.backbone, self.weights, read_input(X, self.backbone),
                                 self.image_size)
        stages = self._resolved(depths, backbone)
        weights = None if sample_weight is None else np.asarray(sample_weight)

        # within a split: the shallowest frozen prefix first, each deeper one (and the
        # pooled features every candidate's head warm-up uses) derived from the cached one
        # before it; fully trainable candidates last, their warm-up features cached by then
        order = sorted(range(len(depths)), key=lambda i: (stages[i] == 0, stages[i]))
        scores = {name: np.full((len(depths), len(splits)), np.nan) for name in scorers}
        fit_times, score_times = np.zeros((2, len(depths), len(splits)))
        for s, (train, test) in enumerate(splits):
            X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
            w_train = None if weights is None else weights[train]
            for i in order:
                estimator = clone(base).set_params(freeze_depth=depths[i], **fold_params)
                start = time.perf_counter()
                estimator.fit(X_train, y_fit[train], sample_weight=w_train)
                fit_times[i, s] = time.perf_counter() - start
                start = time.perf_counter()
                for name, scorer in scorers.items():
                    scores[name][i, s] = scorer(estimator, X_test, y_fit[test])
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
        self._fitted_target(refit)
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

    # -- the chosen estimator --------------------------------------------------------------
    def predict(self, X):
        """``best_estimator_``'s predictions."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def transform(self, X):
        """Pooled features of ``best_estimator_``'s fine-tuned backbone."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.transform(X)

    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s columns (``best_estimator_``'s)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.get_feature_names_out(input_features)

    def score(self, X, y, sample_weight=None):
        """``best_estimator_``'s score when ``scoring`` is None (accuracy for a
        classifier, R^2 for a regressor), else ``scoring``'s (the first of several)."""
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
