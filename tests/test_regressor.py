"""TransferRegressor: sklearn's checks, targets (1-D, 2-D, scaled), cache, grid, persistence."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import TransferRegressor
from sktransfer._recipe import warm_up_regression_head

FAST = dict(max_epochs=2, batch_size=16, random_state=0, device="cpu", lr=1e-2)

# Every expected failure, with the reason. Aim: none.
EXPECTED_FAILED = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ itself sets history_, initialized_ and virtual_params_; "
        "skorch's callbacks and set_params rely on them existing before fit"),
    "check_sample_weight_equivalence_on_dense_data": (
        "the network trains in float32: weighted and repeated fits agree to float32 "
        "precision, above the check's rtol=1e-7 (as for TransferClassifier)"),
    "check_methods_subset_invariance": (
        "transform gives float32 features and the CPU's float32 kernels round differently "
        "for different batch sizes, above the check's atol=1e-7 (as for TransferClassifier)"),
}


@parametrize_with_checks(
    [TransferRegressor(backbone="mlp", weights=None, freeze_depth=0, max_epochs=30, lr=1e-2,
                       batch_size=64, random_state=0, device="cpu")],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible_regressor(estimator, check):
    check(estimator)


@pytest.fixture
def regression_images():
    """40 RGB images whose target is how red they are (plus a second, negated target)."""
    rng = np.random.RandomState(0)
    X = rng.rand(40, 32, 32, 3).astype(np.float32) * 0.5
    redness = rng.rand(40).astype(np.float32)
    X[..., 0] += 0.5 * redness[:, None, None]
    return X, redness * 10.0


def test_fit_predict_shapes_and_r2_score(regression_images):
    X, y = regression_images
    reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth=2, **FAST).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (40,) and pred.dtype == np.float64
    assert reg.score(X, y) == pytest.approx(r2_score(y, pred))
    assert reg.n_outputs_ == 1
    assert reg.target_mean_ == pytest.approx([y.mean()], rel=1e-6)
    assert reg.target_scale_ == pytest.approx([y.std()], rel=1e-6)
    assert not hasattr(reg, "predict_proba")


def test_two_d_targets(regression_images):
    X, y = regression_images
    Y = np.c_[y, -3 * y + 100]
    reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth="all", **FAST).fit(X, Y)
    pred = reg.predict(X)
    assert pred.shape == (40, 2)
    # a linear probe fits both columns with the same (affinely related) features
    np.testing.assert_allclose(pred[:, 1], -3 * pred[:, 0] + 100, rtol=1e-4, atol=1e-3)
    assert reg.score(X, Y) == pytest.approx(r2_score(Y, pred))
    one_col = TransferRegressor("tiny_cnn", weights=None, freeze_depth="all",
                                **FAST).fit(X, y[:, None])
    assert one_col.predict(X).shape == (40, 1)
    with pytest.raises(ValueError, match="target column"):
        reg.partial_fit(X, y)


@pytest.mark.parametrize("freeze_depth", ["all", 2])
def test_target_scaling_makes_the_fit_unit_free(regression_images, freeze_depth):
    X, y = regression_images
    a = TransferRegressor("tiny_cnn", weights=None, freeze_depth=freeze_depth, **FAST).fit(X, y)
    b = TransferRegressor("tiny_cnn", weights=None, freeze_depth=freeze_depth,
                          **FAST).fit(X, y * 1000 + 5)
    np.testing.assert_allclose(b.predict(X), a.predict(X) * 1000 + 5, rtol=1e-4, atol=1e-2)
    assert b.target_mean_[0] == pytest.approx(y.mean() * 1000 + 5, rel=1e-6)


def test_without_target_scaling_the_network_sees_raw_targets(regression_images):
    X, y = regression_images
    reg = TransferRegressor("tiny_cnn", weights=None, target_scaling=False, **FAST).fit(X, y)
    assert reg.target_mean_.tolist() == [0.0] and reg.target_scale_.tolist() == [1.0]
    with pytest.raises(TypeError, match="target_scaling"):
        TransferRegressor("tiny_cnn", weights=None, target_scaling="yes", **FAST).fit(X, y)


def test_bad_targets_are_clear_errors(regression_images):
    X, y = regression_images
    reg = TransferRegressor("tiny_cnn", weights=None, **FAST)
    with pytest.raises(ValueError, match="TransferClassifier"):
        reg.fit(X, np.array(["a", "b"] * 20))
    with pytest.raises(ValueError, match="NaN"):
        reg.fit(X, np.where(np.arange(40) == 3, np.nan, y))
    with pytest.raises(ValueError, match="different lengths"):
        reg.fit(X, y[:10])
    y_copy = y.copy()
    reg.fit(X, y)
    np.testing.assert_array_equal(y, y_copy)  # the user's target is not modified


def test_head_warmup_is_ridge_on_the_probe_features(regression_images):
    X, y = regression_images
    reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth="all", max_epochs=0,
                            head_warmup_C=0.5, device="cpu", random_state=0).fit(X, y)
    features = reg.transform(X)
    ridge = Ridge(alpha=1 / 0.5).fit(features, (y - y.mean()) / y.std())
    np.testing.assert_allclose(reg.predict(X), ridge.predict(features) * y.std() + y.mean(),
                               rtol=1e-4, atol=1e-4)


def test_lbfgs_warmup_matches_closed_form_ridge():
    torch.manual_seed(0)
    features = torch.randn(50, 6)
    target = features @ torch.randn(6, 2) + 0.1 * torch.randn(50, 2)
    weight = torch.rand(50) + 0.5
    linear = torch.nn.Sequential(torch.nn.Linear(6, 2))
    warm_up_regression_head(linear, features, target, max_iter=100, C=2.0, sample_weight=weight)
    ridge = Ridge(alpha=0.5).fit(features.numpy(), target.numpy(), sample_weight=weight.numpy())
    np.testing.assert_allclose(linear(features).detach().numpy(), ridge.predict(features.numpy()),
                               rtol=1e-4, atol=1e-4)
    # a head with a hidden layer is fitted by L-BFGS on the same objective and gets close
    deep = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    loss = warm_up_regression_head(deep, features, target, max_iter=200, C=2.0)
    assert loss < float(((target - target.mean(0)) ** 2).sum(1).mean())


def test_prefix_cache_is_used_and_matches_uncached(regression_images, tiny_weights):
    X, y = regression_images
    path, _ = tiny_weights
    a = TransferRegressor("tiny_cnn", weights=path, freeze_depth=2, cache=True, **FAST).fit(X, y)
    b = TransferRegressor("tiny_cnn", weights=path, freeze_depth=2, cache=False, **FAST).fit(X, y)
    assert a.cache_used_ and not b.cache_used_
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4)


def test_grid_search_over_freeze_depth_and_pipeline(regression_images):
    X, y = regression_images
    search = GridSearchCV(TransferRegressor("tiny_cnn", weights=None, **FAST),
                          {"freeze_depth": [0, 2, "all"]}, cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(X).shape == (40,)
    pipe = make_pipeline(FunctionTransformer(lambda a: a * 0.9),
                         TransferRegressor("tiny_cnn", weights=None, **FAST)).fit(X, y)
    assert np.isfinite(pipe.score(X, y))
    # transform: the fine-tuned backbone's features into another regressor
    pipe = make_pipeline(TransferRegressor("tiny_cnn", weights=None, **FAST), Ridge()).fit(X, y)
    assert pipe.predict(X).shape == (40,)


def test_pickle_round_trip_predicts_identically(regression_images):
    X, y = regression_images
    reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth=1, **FAST).fit(X, np.c_[y, y])
    loaded = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    np.testing.assert_array_equal(loaded.transform(X), reg.transform(X))


def test_skops_round_trip_predicts_identically(regression_images, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y = regression_images
    reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth=1, **FAST).fit(X, y)
    sio.dump(reg, tmp_path / "model.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "model.skops")
    assert "sktransfer._regressor.TransferRegressor" in untrusted
    loaded = sio.load(tmp_path / "model.skops", trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


def test_sample_weight_moves_the_fit(regression_images):
    X, y = regression_images
    w = np.where(y > np.median(y), 10.0, 0.1)
    reg = TransferRegressor("tiny_cnn", weights=None, freeze_depth="all", **FAST)
    weighted = reg.fit(X, y, sample_weight=w).target_mean_[0]
    assert weighted == pytest.approx(np.average(y, weights=w), rel=1e-5)
