"""TransferRegressorCV: the same search as TransferClassifierCV, over a TransferRegressor."""

import doctest
import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

import sktransfer
from sktransfer import TransferRegressor, TransferRegressorCV
from sktransfer._network import resolve_freeze_depth
from sktransfer._search_cv import DEFAULT_CV, DEFAULT_FREEZE_DEPTHS
from sktransfer._selection import MIN_DIFF, N_SE, select


def tiny(**params):
    params = {"backbone": "tiny_cnn", "weights": None, "freeze_depths": ["all", 0],
              "max_epochs": 1, "random_state": 0, "device": "cpu", **params}
    return TransferRegressorCV(**params)


@pytest.fixture(scope="module")
def data():
    X = np.random.RandomState(0).rand(24, 32, 32, 3).astype("float32")
    return X, X[..., 0].mean(axis=(1, 2)) * 10 - X[..., 2].mean(axis=(1, 2)) * 5


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return tiny(freeze_depths=["all", 2, 0]).fit(X, y)


def test_signature_mirrors_transfer_regressor():
    cv_params = inspect.signature(TransferRegressorCV).parameters
    for name, param in inspect.signature(TransferRegressor).parameters.items():
        if name == "freeze_depth":
            continue
        assert name in cv_params, name
        assert cv_params[name].default is param.default or \
            cv_params[name].default == param.default, name
        assert cv_params[name].kind == param.kind, name
    assert cv_params["freeze_depths"].default == DEFAULT_FREEZE_DEPTHS
    assert cv_params["min_diff"].default == MIN_DIFF


def test_fitted_attributes_and_cv_results_layout(fitted, data):
    X, y = data
    res = fitted.cv_results_
    folds, repeats = DEFAULT_CV
    assert fitted.n_splits_ == folds * repeats
    assert [p["freeze_depth"] for p in res["params"]] == ["all", 2, 0]
    # the default scoring: the candidates' R^2, GridSearchCV's single-metric keys
    for key in ["mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"]:
        assert res[key].shape == (3,), key
    assert sorted(k for k in res if k.startswith("split")) == \
        sorted(f"split{i}_test_score" for i in range(folds * repeats))
    backbone = sktransfer.get_backbone("tiny_cnn")
    assert fitted.best_index_ == select(res, N_SE, lambda d: resolve_freeze_depth(d, backbone),
                                        min_diff=MIN_DIFF)
    assert fitted.freeze_depth_ == ["all", 2, 0][fitted.best_index_]
    assert fitted.best_score_ == res["mean_test_score"][fitted.best_index_]
    best = fitted.best_estimator_
    assert isinstance(best, TransferRegressor) and best.freeze_depth == fitted.freeze_depth_
    assert fitted.n_outputs_ == 1
    # delegation: predictions in y's units, R^2 as score, the fine-tuned features
    np.testing.assert_allclose(fitted.predict(X), best.predict(X))
    assert fitted.predict(X).shape == (24,)
    assert fitted.score(X, y) == best.score(X, y)
    np.testing.assert_allclose(fitted.transform(X), best.transform(X))
    # a fold score is that fold's R^2 of the candidate fitted on the rest
    train, test = next(KFold(3, shuffle=True, random_state=0).split(X))
    fold = clone(best).set_params(freeze_depth="all").fit(X[train], y[train])
    assert res["split0_test_score"][0] == pytest.approx(fold.score(X[test], y[test]), abs=1e-4)


def test_two_targets_and_a_user_scorer(data):
    X, y = data
    Y = np.column_stack([y, -2 * y])
    est = tiny(cv=2, scoring="neg_mean_absolute_error").fit(X, Y)
    assert est.n_outputs_ == 2 and est.predict(X).shape == (24, 2)
    assert est.score(X, Y) <= 0  # the scorer's, not R^2
    assert "mean_test_score" in est.cv_results_


def test_bad_input_is_refused_before_training(data):
    X, y = data
    with pytest.raises(ValueError, match="y must hold numbers for a regressor"):
        tiny().fit(X, np.array(["a", "b"] * 12))
    with pytest.raises(ValueError, match="takes freeze_depths"):
        tiny(freeze_depth=0).fit(X, y)
    with pytest.raises(ValueError, match="not TransferRegressor parameters"):
        tiny(label_smoothing=0.1).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 samples"):
        tiny().fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="min_diff must be a finite number >= 0"):
        tiny(min_diff=-1).fit(X, y)
    with pytest.raises(NotFittedError):
        tiny().predict(X)


def test_inputs_are_not_modified_and_the_seed_repeats(data):
    X, y = data
    X0, y0 = X.copy(), y.copy()
    a = tiny(cv=2).fit(X, y)
    b = tiny(cv=2).fit(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(a.cv_results_["mean_test_score"],
                                  b.cv_results_["mean_test_score"])


def test_clone_pipeline_nested_cv_and_grid_search(data):
    X, y = data
    est = tiny(cv=2, optimizer__weight_decay=0.05)
    assert clone(est).get_params() == est.get_params()
    pipe = make_pipeline(FunctionTransformer(), est)
    assert pipe.fit(X, y).predict(X[:2]).shape == (2,)
    assert pipe[-1].best_estimator_.optimizer__weight_decay == 0.05
    assert cross_val_score(tiny(cv=2), X, y, cv=2).shape == (2,)
    search = GridSearchCV(tiny(cv=2), {"lr": [1e-3, 1e-2]}, cv=2).fit(X, y)
    assert search.best_estimator_.lr in (1e-3, 1e-2)


def test_exported_and_docstring_example_runs():
    from sktransfer import _regressor_cv

    assert "TransferRegressorCV" in sktransfer.__all__
    result = doctest.testmod(_regressor_cv)
    assert result.attempted > 0 and result.failed == 0


@parametrize_with_checks(
    # the 2-D `mlp` backbone with random weights, trained as test_regressor.py's check does
    # (a probe on random features misses check_regressors_train's R^2 > 0.5)
    [TransferRegressorCV(backbone="mlp", weights=None, freeze_depths=[-1, 0], cv=2,
                         max_epochs=12, lr=1e-2, batch_size=64, random_state=0, device="cpu")],
    expected_failed_checks=lambda estimator: {
        "check_sample_weight_equivalence_on_dense_data": (
            "a sample repeated w times lands in several folds where a weighted sample lands "
            "in one, so the cross-validated choice can differ; and the networks train in "
            "float32 (as for TransferClassifierCV)"),
        "check_methods_subset_invariance": (
            "float32 kernels round differently for different batch sizes, above the check's "
            "atol=1e-7 (as for TransferRegressor)")},
)
@pytest.mark.slow
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
