"""A variance-aware choice of ``freeze_depth`` from cross-validation results.

On a few dozen images the fold scores of fine-tuned candidates swing by more
than the differences between them, so "the best mean test score" picks noise.
:func:`select_most_frozen` prefers the more frozen (cheaper, steadier)
candidate unless a deeper fine-tune is better by more than the noise, measured
on the same splits (paired differences). It works as ``GridSearchCV``'s
``refit=`` and is the rule :class:`~sktransfer.TransferClassifierCV` applies.
"""

from __future__ import annotations

import numbers
import re

import numpy as np

__all__ = ["select_most_frozen", "brier_scorer", "unresolved_frozen_rank", "N_SE", "MIN_DIFF"]

#: the rule's default tolerance, in standard errors of the paired differences. With
#: TransferClassifierCV's default scores (accuracy and the Brier score together), 0 and
#: 0.5 met the selection targets on the tasks of small_data.py (5 tasks x 5 seeds; 1.0
#: kept the probe on a seed of 10-per-class digits where full fine-tuning was better by
#: 0.09); 0.5 is the more cautious of the two: see benchmarks/README.md, "Choosing the
#: rule"
N_SE = 0.5
#: the rule's default region of practical equivalence: a candidate whose mean score is
#: at most this much below the best's is a tie, however small the standard error of the
#: difference. With three folds that SE can come out near 0 by chance: on faces15 (seeds
#: 7-9 of small_data.py) every candidate scored 10/10 on every fold, Brier scores 1e-4
#: apart then counted as clearly different, and depth 0 won where the probe was 0.018
#: better held out. 0.005 fixed those seeds and changed no other choice on seeds 5-9 of
#: five tasks; 0.01 (the region Benavoli et al., JMLR 2017, use for accuracy) and 0.02
#: moved textures20 toward the probe and cost it 0.001 and 0.004 (benchmarks/README.md,
#: "A floor under the noise")
MIN_DIFF = 0.005


def brier_scorer(estimator, X, y, sample_weight=None) -> float:
    """Minus the multiclass Brier score of ``estimator``'s ``predict_proba``: a scorer.

    ``-mean_i sum_k (p_ik - [y_i == k])**2``, from -2 (every sample confidently
    wrong) to 0 (every sample certain and right); higher is better, as scikit-learn's
    scorers are. Where accuracy moves in steps of one sample and often ties on a
    fold of ten images, the Brier score also sees how sure each candidate was of
    the right class, and unlike the log-loss one confident mistake cannot swamp a
    fold. Any labels work (scikit-learn's ``"neg_brier_score"`` needs a
    ``pos_label`` for two string classes); a label the estimator never saw counts
    as a probability of 0 for the true class. :class:`TransferClassifierCV` scores
    by it and accuracy together by default; in ``GridSearchCV`` pass
    ``scoring={"accuracy": "accuracy", "brier": brier_scorer}`` with
    ``refit=functools.partial(select_most_frozen, scorer=["accuracy", "brier"])``.
    """
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    y = np.asarray(y)
    onehot = np.asarray(estimator.classes_)[None, :] == y[:, None]
    per_sample = ((proba - onehot) ** 2).sum(axis=1)
    return -float(np.average(per_sample, weights=sample_weight))


def unresolved_frozen_rank(depth):
    """How frozen a ``freeze_depth`` value is, without knowing the backbone (higher: more).

    ``"all"`` first, then negative ints in the order -1, -2, ... (they count
    from the top, so -1 trains only the last block), then non-negative ints,
    larger first. ``None`` for a value that is no freeze depth.
    """
    if isinstance(depth, str):
        return (2, 0) if depth == "all" else None
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, numbers.Integral):
        return None
    depth = int(depth)
    return (1, depth) if depth < 0 else (0, depth)


def _check_tolerance(name: str, value, meaning: str) -> float:
    """``n_se`` or ``min_diff``: a finite number >= 0, else a ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 ({meaning}), got {value!r}")
    return float(value)


def _depth_key(params_list) -> str | None:
    """The key of the ``freeze_depth`` parameter in the candidates' params, if any."""
    keys = sorted({k for params in params_list for k in params
                   if k == "freeze_depth" or k.endswith("__freeze_depth")})
    if len(keys) > 1:
        raise ValueError(f"cv_results holds several freeze depth parameters {keys}; "
                         f"select_most_frozen needs exactly one")
    return keys[0] if keys else None


def _split_scores(cv_results, scorer: str | None) -> np.ndarray:
    """Test scores as an array (n_candidates, n_splits)."""
    name = "score" if scorer is None else scorer
    pattern = re.compile(rf"^split(\d+)_test_{re.escape(name)}$")
    found = sorted((int(m.group(1)), k) for k in cv_results
                   if (m := pattern.match(k)) is not None)
    if not found:
        metrics = sorted(k[len("mean_test_"):] for k in cv_results
                         if k.startswith("mean_test_"))
        if scorer is None and metrics:
            raise ValueError(f"cv_results has no 'split0_test_score': it was made with several "
                             f"scorers ({metrics}); say which one with "
                             f"functools.partial(select_most_frozen, scorer={metrics[0]!r})")
        raise ValueError(f"cv_results has no per-split test scores 'split<i>_test_{name}' "
                         f"(scorers found: {metrics})")
    return np.column_stack([np.asarray(cv_results[k], dtype=float) for _, k in found])


def _scorer_names(scorer) -> list:
    """``scorer`` as a list of names: ``[None]`` (single-metric results) or names."""
    if scorer is None or isinstance(scorer, str):
        return [scorer]
    if isinstance(scorer, dict) or not hasattr(scorer, "__iter__"):
        raise ValueError(f"scorer must be None, a scorer's name or a list of names, got "
                         f"{scorer!r}")
    names = list(scorer)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"scorer must be None, a scorer's name or a non-empty list of "
                         f"names, got {scorer!r}")
    return names


def select(cv_results, n_se: float, frozen_rank, scorer=None, min_diff: float = 0.0) -> int:
    """Index of the candidate :func:`select_most_frozen` describes.

    ``frozen_rank(depth)`` orders depth values (higher: more frozen; ``None``:
    not a depth). :class:`~sktransfer.TransferClassifierCV` passes one that
    knows the backbone, so negative depths land where they belong. ``scorer``:
    ``None``, a name, or several names (a candidate must be within noise of the
    best by every one of them). ``min_diff``: a shortfall in mean score up to
    which a candidate is within noise whatever the SE.
    """
    n_se = _check_tolerance("n_se", n_se, "how many standard errors of the paired score "
                                          "differences count as noise")
    min_diff = _check_tolerance("min_diff", min_diff, "a difference in mean score that "
                                                      "still counts as a tie")
    names = _scorer_names(scorer)
    params_list = list(cv_results["params"])
    tables = [_split_scores(cv_results, name) for name in names]
    means = [scores.mean(axis=1) for scores in tables]
    failed = np.any([np.isnan(m) for m in means], axis=0)
    if failed.all():  # every candidate failed (error_score=nan)
        return 0
    bests = [int(np.nanargmax(np.where(failed, np.nan, m))) for m in means]
    key = _depth_key(params_list)
    if key is None:
        return bests[0]
    within = ~failed
    for scores, mean, best in zip(tables, means, bests):
        n_splits = scores.shape[1]
        for index in np.flatnonzero(within):
            diffs = scores[best] - scores[index]
            # one split has no spread to measure noise by: only min_diff counts
            se = diffs.std(ddof=1) / np.sqrt(n_splits) if n_splits > 1 else 0.0
            within[index] = mean[best] - mean[index] <= max(n_se * se, min_diff)
    ranks = [frozen_rank(params[key]) if key in params else None for params in params_list]
    ranked = [i for i in range(len(params_list)) if ranks[i] is not None]
    chosen = [i for i in ranked if within[i]]
    if chosen:  # the most frozen within noise; the same depth: the better first score
        return int(max(chosen, key=lambda i: (ranks[i], means[0][i])))
    # the scores disagree beyond noise (one best by each): the deeper fine-tune of those
    # bests, the one some score found clearly better than the more frozen one
    ranked_bests = [i for i in bests if ranks[i] is not None]
    return int(min(ranked_bests, key=lambda i: ranks[i])) if ranked_bests else bests[0]


def select_most_frozen(cv_results, *, n_se=N_SE, scorer=None, min_diff=MIN_DIFF) -> int:
    """Pick the most frozen candidate whose score is within noise of the best.

    A refit rule for :class:`~sklearn.model_selection.GridSearchCV` over
    ``freeze_depth`` (``refit=select_most_frozen``), and the rule
    :class:`~sktransfer.TransferClassifierCV` applies. On small sets the fold
    scores of fine-tuned candidates vary by more than the differences between
    them; this prefers the more frozen candidate unless a deeper one is better
    by more than that noise.

    The rule: let ``b`` be the candidate with the best mean test score. A
    candidate ``c`` is *within noise* when
    ``mean(b) - mean(c) <= max(n_se * SE, min_diff)``, where ``SE`` is the
    standard error of the paired per-split differences
    ``score_b(split) - score_c(split)`` (their standard deviation with
    ``ddof=1`` divided by ``sqrt(n_splits)``; each split of a repeated
    cross-validation counts as a split) and ``min_diff`` a difference too
    small to matter whatever its SE. Among the
    candidates within noise, the most frozen one wins; candidates with the
    same depth (a grid over other parameters too) are told apart by their
    mean score.

    How frozen: ``"all"`` most, then negative ints in the order -1, -2, ...
    (they count from the top of the backbone, whose size this function does
    not know), then non-negative ints, larger first.
    :class:`~sktransfer.TransferClassifierCV` knows the backbone and orders
    negative depths by the number of blocks they freeze.

    With a single split there is no spread to measure: only candidates within
    ``min_diff`` of the best count as within noise. A grid without a ``freeze_depth``
    parameter (it may be a Pipeline step's, ``<step>__freeze_depth``) gets the
    best mean, as ``refit=True`` would; candidates of a grid that lack it only
    win as the best. Candidates whose mean is NaN (failed fits) are never
    chosen.

    Parameters
    ----------
    cv_results : dict
        ``GridSearchCV.cv_results_`` (what sklearn passes a callable ``refit``).
    n_se : float, default=N_SE (0.5)
        How many standard errors of the paired differences count as noise; 0
        picks the best mean (ties to the most frozen), 1 is the classic
        one-standard-error rule. 0.5 with accuracy and the Brier score together
        met the selection targets of ``benchmarks/small_data.py`` on seeds 0-4 (and
        on 4 of 5 tasks on fresh seeds; benchmarks/README.md). For another value in
        ``GridSearchCV`` use ``functools.partial(select_most_frozen, n_se=1)``.
    scorer : None, str or list of str, default=None
        With several scorers (``scoring`` a list or dict), the name of the one
        to judge by, or several names: then a candidate is within noise only
        when it is within noise of the best by each of them, so a deeper
        candidate that is clearly better by any one score beats a more frozen
        one. When no candidate is within noise of every best (the scores
        disagree beyond noise), the least frozen of the per-score bests wins.
        :class:`~sktransfer.TransferClassifierCV`'s default judges by
        ``["accuracy", "brier"]``; in ``GridSearchCV`` that is
        ``scoring={"accuracy": "accuracy", "brier": brier_scorer},
        refit=functools.partial(select_most_frozen, scorer=["accuracy", "brier"])``.
    min_diff : float, default=MIN_DIFF (0.005)
        A region of practical equivalence: a candidate whose mean score is at
        most this much below the best's is within noise, however small the SE.
        With three folds the SE itself is noisy and can come out near 0 (every
        candidate right on every fold, Brier scores 1e-4 apart); 0 turns the
        floor off. The same value applies to every scorer, so give it in the
        scorers' units (0.005 is half a percent of accuracy, a fifth of a
        sample on folds of 40).

    Returns
    -------
    index : int
        The chosen candidate's index into ``cv_results["params"]``.

    Notes
    -----
    With a callable ``refit``, ``GridSearchCV`` sets ``best_index_``,
    ``best_params_`` and ``best_estimator_`` but not ``best_score_``; read
    ``cv_results_["mean_test_score"][search.best_index_]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import select_most_frozen
    >>> cv_results = {"params": [{"freeze_depth": "all"}, {"freeze_depth": 0}],
    ...               "split0_test_score": np.array([0.80, 0.90]),
    ...               "split1_test_score": np.array([0.85, 0.75]),
    ...               "split2_test_score": np.array([0.80, 0.85])}
    >>> select_most_frozen(cv_results)  # depth 0 is better by 0.017, with an SE of 0.060
    0
    >>> select_most_frozen(cv_results, n_se=0)
    1
    """
    return select(cv_results, n_se, unresolved_frozen_rank, scorer, min_diff)
