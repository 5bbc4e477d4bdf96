"""The variance-aware refit rule, on hand-made cv_results_ and inside GridSearchCV."""

import doctest
import functools

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import sktransfer
from sktransfer import TransferClassifier, brier_scorer, select_most_frozen


def results(depths, scores, key="freeze_depth"):
    """cv_results_ with one row of per-split scores per candidate."""
    scores = np.asarray(scores, dtype=float)
    out = {"params": [{key: d} for d in depths],
           "mean_test_score": scores.mean(axis=1)}
    for i in range(scores.shape[1]):
        out[f"split{i}_test_score"] = scores[:, i]
    return out


def test_deeper_candidate_better_by_less_than_noise_loses_to_the_frozen_one():
    # depth 0 wins on average by 0.03, but swings +-0.15 between splits (SE 0.087)
    cv = results(["all", 5, 0], [[0.82, 0.82, 0.82, 0.82],
                                 [0.70, 0.90, 0.75, 0.85],
                                 [1.00, 0.70, 1.00, 0.70]])
    assert select_most_frozen(cv) == 0
    assert select_most_frozen(cv, n_se=0) == 2


def test_deeper_candidate_better_by_more_than_noise_wins():
    cv = results(["all", 0], [[0.70, 0.72, 0.69, 0.71],
                              [0.90, 0.91, 0.89, 0.92]])
    assert select_most_frozen(cv) == 1


def test_the_most_frozen_candidate_within_noise_wins_not_the_first():
    # "all" is clearly worse; 5 and 0 are within noise of each other: 5 is more frozen
    cv = results([0, 5, "all"], [[0.90, 0.80, 0.90, 0.80],
                                 [0.80, 0.90, 0.85, 0.80],
                                 [0.50, 0.50, 0.50, 0.50]])
    assert select_most_frozen(cv) == 1


def test_n_se_sets_the_tolerance():
    # depth 0 better by 0.017 with an SE of 0.060: within 0.5 SE (the default), not 0
    cv = results(["all", 0], [[0.80, 0.85, 0.80], [0.90, 0.75, 0.85]])
    assert select_most_frozen(cv) == 0
    assert select_most_frozen(cv, n_se=0) == 1
    assert functools.partial(select_most_frozen, n_se=0)(cv) == 1


def test_differences_below_min_diff_are_ties_however_small_their_se():
    # every candidate right on every fold: Brier-like scores 1e-4 apart with an SE near 0
    cv = results(["all", -1, 0], [[-0.0004, -0.0003, -0.0005],
                                  [-0.0002, -0.0001, -0.0002],
                                  [-0.0001, -0.0000, -0.0001]])
    assert select_most_frozen(cv, min_diff=0) == 2  # 0.0003 better, 4 SE: "clearly"
    assert select_most_frozen(cv) == 0  # within the default 0.005: the probe
    # a shortfall beyond min_diff is judged by its SE as before
    cv = results(["all", 0], [[0.70, 0.71, 0.70], [0.72, 0.73, 0.72]])
    assert select_most_frozen(cv) == 1
    assert select_most_frozen(cv, min_diff=0.03) == 0


def test_min_diff_is_the_only_tolerance_with_one_split():
    cv = results(["all", 0], [[0.800], [0.804]])
    assert select_most_frozen(cv) == 0
    assert select_most_frozen(cv, min_diff=0) == 1


@pytest.mark.parametrize("min_diff", [-0.1, float("inf"), "0.01", False])
def test_a_bad_min_diff_is_refused(min_diff):
    with pytest.raises(ValueError, match="min_diff must be a finite number >= 0"):
        select_most_frozen(results(["all", 0], [[0.8, 0.8], [0.9, 0.9]]), min_diff=min_diff)


@pytest.mark.parametrize("n_se", [-1, float("nan"), "1", True])
def test_a_bad_n_se_is_refused(n_se):
    with pytest.raises(ValueError, match="n_se must be a finite number >= 0"):
        select_most_frozen(results(["all", 0], [[0.8, 0.8], [0.9, 0.9]]), n_se=n_se)


def test_one_split_gives_the_best_mean_and_ties_go_to_the_most_frozen():
    assert select_most_frozen(results(["all", 0], [[0.80], [0.81]])) == 1
    assert select_most_frozen(results([0, 3, "all"], [[0.9], [0.9], [0.8]])) == 1


def test_a_grid_without_freeze_depth_gets_the_best_mean():
    cv = results([1e-3, 1e-2, 1e-1], [[0.80, 0.80], [0.82, 0.83], [0.81, 0.81]], key="lr")
    assert select_most_frozen(cv) == 1


def test_freeze_depth_of_a_pipeline_step_is_found():
    cv = results(["all", 0], [[0.80, 0.85, 0.80], [0.90, 0.75, 0.85]],
                 key="transferclassifier__freeze_depth")
    assert select_most_frozen(cv) == 0


def test_negative_depths_rank_after_all_and_before_non_negative_ones():
    tied = [[0.8, 0.8, 0.8]] * 4
    assert select_most_frozen(results([0, -2, -1, 6], tied)) == 2
    assert select_most_frozen(results([0, -2, "all", -1], tied)) == 2


def test_other_params_with_the_same_depth_are_told_apart_by_their_mean():
    cv = {"params": [{"freeze_depth": 0, "lr": 1e-3}, {"freeze_depth": "all", "lr": 1e-3},
                     {"freeze_depth": "all", "lr": 1e-2}],
          "split0_test_score": np.array([0.90, 0.84, 0.86]),
          "split1_test_score": np.array([0.80, 0.84, 0.85]),
          "split2_test_score": np.array([0.88, 0.84, 0.86])}
    assert select_most_frozen(cv) == 2


def test_failed_candidates_are_never_chosen():
    cv = results(["all", 0], [[np.nan, 0.8], [0.7, 0.75]])
    assert select_most_frozen(cv) == 1


def test_several_scorers_need_a_name():
    cv = {"params": [{"freeze_depth": "all"}, {"freeze_depth": 0}],
          "mean_test_acc": np.array([0.8, 0.9]),
          "split0_test_acc": np.array([0.8, 0.9]), "split1_test_acc": np.array([0.8, 0.9])}
    with pytest.raises(ValueError, match=r"scorer='acc'"):
        select_most_frozen(cv)
    assert select_most_frozen(cv, scorer="acc") == 1


def two_scores(depths, accuracy, brier):
    """cv_results_ of a search with the scorers "accuracy" and "brier"."""
    out = {"params": [{"freeze_depth": d} for d in depths]}
    for name, scores in (("accuracy", accuracy), ("brier", brier)):
        scores = np.asarray(scores, dtype=float)
        out[f"mean_test_{name}"] = scores.mean(axis=1)
        for i in range(scores.shape[1]):
            out[f"split{i}_test_{name}"] = scores[:, i]
    return out


BOTH = ["accuracy", "brier"]


def test_several_scorers_a_deeper_candidate_clearly_better_by_either_one_wins():
    # every candidate 10/10 on every fold: accuracy cannot tell them apart; the Brier
    # score sees depth 0 clearly surer of the right class -> depth 0
    tied = [[1.0, 1.0, 1.0]] * 3
    brier = [[-0.20, -0.22, -0.18], [-0.15, -0.16, -0.17], [-0.02, -0.03, -0.01]]
    cv = two_scores(["all", -1, 0], tied, brier)
    assert select_most_frozen(cv, scorer="accuracy") == 0
    assert select_most_frozen(cv, scorer=BOTH) == 2
    # under-confident fine-tune: right more often (accuracy), worse Brier -> still depth 0,
    # the scores disagree beyond noise and the least frozen of their bests wins
    accuracy = [[0.60, 0.62, 0.61], [0.62, 0.63, 0.62], [0.75, 0.76, 0.74]]
    brier = [[-0.50, -0.52, -0.51], [-0.55, -0.56, -0.55], [-0.70, -0.71, -0.69]]
    cv = two_scores(["all", -1, 0], accuracy, brier)
    assert select_most_frozen(cv, scorer="brier") == 0
    assert select_most_frozen(cv, scorer=BOTH) == 2


def test_several_scorers_within_noise_of_both_keeps_the_most_frozen():
    accuracy = [[0.80, 0.70, 0.90], [0.85, 0.62, 0.95]]  # 0 better by 0.007, SE 0.043
    brier = [[-0.30, -0.40, -0.20], [-0.25, -0.50, -0.15]]  # a tie
    cv = two_scores(["all", 0], accuracy, brier)
    assert select_most_frozen(cv, scorer=BOTH) == 0
    assert select_most_frozen(cv, scorer=BOTH, n_se=0) == 1


def test_several_scorers_failed_candidates_are_never_chosen():
    cv = two_scores(["all", 0], [[np.nan, 1.0, 1.0], [0.5, 0.5, 0.5]],
                    [[-0.1, -0.1, -0.1], [-0.6, -0.6, -0.6]])
    assert select_most_frozen(cv, scorer=BOTH) == 1


@pytest.mark.parametrize("scorer", [[], [1], {"accuracy": 1}, 3])
def test_bad_scorer_lists_are_refused(scorer):
    cv = two_scores(["all", 0], [[1.0, 1.0]] * 2, [[-0.1, -0.1]] * 2)
    with pytest.raises(ValueError, match="scorer must be None, a scorer's name"):
        select_most_frozen(cv, scorer=scorer)


def test_docstring_example_runs():
    from sktransfer import _selection

    result = doctest.testmod(_selection)
    assert result.attempted > 0 and result.failed == 0


def test_works_as_refit_of_a_real_grid_search(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, random_state=0,
                             device="cpu")
    grid = {"freeze_depth": [0, 2, "all"]}
    search = GridSearchCV(clf, grid, cv=StratifiedKFold(2), refit=select_most_frozen).fit(X, y)
    expected = select_most_frozen(search.cv_results_)
    assert search.best_index_ == expected
    assert search.best_estimator_.freeze_depth == grid["freeze_depth"][expected]
    assert search.predict(X[:3]).dtype == y.dtype

    pipe = make_pipeline(FunctionTransformer(), clf)
    search = GridSearchCV(pipe, {"transferclassifier__freeze_depth": [0, "all"]},
                          cv=StratifiedKFold(2),
                          refit=functools.partial(select_most_frozen, n_se=2)).fit(X, y)
    assert search.best_index_ in (0, 1)
    assert search.best_estimator_[-1].freeze_depth == [0, "all"][search.best_index_]

    # the README's multi-metric form: TransferClassifierCV's default scores
    refit = functools.partial(select_most_frozen, scorer=["accuracy", "brier"])
    search = GridSearchCV(clf, grid, cv=StratifiedKFold(2), refit=refit,
                          scoring={"accuracy": "accuracy", "brier": brier_scorer}).fit(X, y)
    assert search.best_index_ == refit(search.cv_results_)
    assert search.best_estimator_.freeze_depth == grid["freeze_depth"][search.best_index_]


def test_exported():
    assert "select_most_frozen" in sktransfer.__all__


class _Fixed:
    """An estimator whose predict_proba is given: for brier_scorer."""

    def __init__(self, classes, proba):
        self.classes_, self._proba = np.asarray(classes), np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return self._proba[X]


def test_brier_scorer_is_minus_the_multiclass_brier_score():
    est = _Fixed(["cat", "dog", "owl"], [[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 1.0, 0.0]])
    X, y = np.arange(3), np.array(["cat", "dog", "owl"])
    # right and sure: 0; dog at 0.5: 0.2^2 + 0.5^2 + 0.3^2 = 0.38; owl, sure of dog: 2
    assert sktransfer.brier_scorer(est, X, y) == pytest.approx(-(0 + 0.38 + 2) / 3)
    assert sktransfer.brier_scorer(est, X, y, sample_weight=[1, 0, 0]) == 0
    # two string classes need no pos_label (scikit-learn's "neg_brier_score" does)
    two = _Fixed(["no", "yes"], [[0.9, 0.1], [0.4, 0.6]])
    assert sktransfer.brier_scorer(two, np.arange(2), ["no", "no"]) == pytest.approx(
        -(0.02 + 0.72) / 2)


def test_brier_scorer_tells_apart_candidates_that_tie_on_accuracy():
    y = np.array([0, 1, 0, 1])
    sure = _Fixed([0, 1], [[0.95, 0.05], [0.05, 0.95]] * 2)
    unsure = _Fixed([0, 1], [[0.6, 0.4], [0.4, 0.6]] * 2)
    X = np.arange(4)
    assert np.all(sure._proba.argmax(1) == unsure._proba.argmax(1))
    assert sktransfer.brier_scorer(sure, X, y) > sktransfer.brier_scorer(unsure, X, y)
