"""The scikit-learn clients a user reaches for, called the way a user calls them."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from sktransfer import FeatureExtractor, TransferClassifier


def _clf(**kw):
    params = dict(backbone="tiny_cnn", weights=None, freeze_depth=1, max_epochs=2, lr=1e-2,
                  batch_size=8, random_state=0)
    params.update(kw)
    return TransferClassifier(**params)


@pytest.fixture(scope="module")
def data(make_images):
    return make_images(24)


def _weights(estimator):
    return {k: v.detach().cpu().clone() for k, v in estimator.module_.state_dict().items()}


# -- 4. the same random_state gives the same model under threads ---------------------
@pytest.mark.timeout(300)
def test_threaded_grid_search_matches_the_sequential_one(data):
    X, y = data
    # every source of randomness at once: random init, shuffling, dropout, augmentation
    clf = _clf(head_dropout=0.5, head_hidden=8, augment="flip")
    grid = {"freeze_depth": [0, 2]}
    cv = KFold(2, shuffle=True, random_state=0)
    sequential = GridSearchCV(clf, grid, cv=cv, n_jobs=1).fit(X, y)
    with joblib.parallel_backend("threading"):
        threaded = GridSearchCV(clf, grid, cv=cv, n_jobs=2).fit(X, y)
    for i in range(2):
        np.testing.assert_array_equal(threaded.cv_results_[f"split{i}_test_score"],
                                      sequential.cv_results_[f"split{i}_test_score"])

    # the fitted weights of every split, not only the scores, are the same
    with joblib.parallel_backend("threading"):
        fits = cross_validate(clf, X, y, cv=cv, n_jobs=2, return_estimator=True)
    alone = cross_validate(clf, X, y, cv=cv, n_jobs=1, return_estimator=True)
    for a, b in zip(fits["estimator"], alone["estimator"]):
        for name, value in _weights(a).items():
            torch.testing.assert_close(value, _weights(b)[name], rtol=0, atol=0, msg=name)


# -- 2. fit(X, y, sample_weight=w) ----------------------------------------------------
@pytest.mark.parametrize("kind, kw", [
    ("images", dict(freeze_depth="all")),               # trained on cached activations
    ("images", dict(freeze_depth="all", cache=False)),  # frozen blocks run every step
    ("vectors", dict(backbone="mlp", freeze_depth=0)),  # everything trains
], ids=["cached", "uncached", "vectors"])
def test_integer_weights_train_like_repeated_samples(data, kind, kw):
    X, y = data
    if kind == "vectors":
        X = np.random.RandomState(0).rand(len(y), 5).astype(np.float32)
    w = np.random.RandomState(1).randint(0, 4, len(y))
    w[:2] = [0, 3]
    # the whole set in one batch, so both fits take the same steps (tiny_cnn's trainable
    # BatchNorm would see different batch statistics, hence a frozen backbone for images)
    # head_warmup=0: the L-BFGS warm-up minimises the same objective either way, but
    # stops at a tolerance that depends on its scale, so it matches repeats only closely
    make = lambda: _clf(max_epochs=3, batch_size=200, head_warmup=0, **kw)  # noqa: E731
    weighted = make().fit(X, y, sample_weight=w)
    repeated = make().fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.cache_used_ == (kw.get("cache", "auto") == "auto" and kind == "images")
    for name, value in _weights(repeated).items():
        torch.testing.assert_close(_weights(weighted)[name], value, rtol=1e-4, atol=1e-5,
                                   msg=name)
    np.testing.assert_allclose(weighted.history[:, "train_loss"],
                               repeated.history[:, "train_loss"], rtol=1e-5)
    # and the weights really changed the fit
    plain = make().fit(X, y)
    assert not np.allclose(plain.history[-1, "train_loss"], weighted.history[-1, "train_loss"])


def test_sample_weight_is_a_fit_parameter_and_reaches_every_fold(data):
    from sklearn.utils.validation import has_fit_parameter

    X, y = data
    assert has_fit_parameter(_clf(), "sample_weight")
    w = np.where(y == "cat", 3.0, 1.0)
    search = GridSearchCV(_clf(max_epochs=1), {"lr": [1e-2, 1e-3]}, cv=2)
    search.fit(X, y, sample_weight=w)
    assert set(search.predict(X[:4])) <= {"cat", "dog"}
    mini = _clf(max_epochs=2, batch_size=5).fit(X, y, sample_weight=w)  # a ragged last batch
    assert np.isfinite(mini.history[:, "train_loss"]).all()


@pytest.mark.parametrize("weights, match", [
    (lambda n: -np.ones(n), "negative values .*index 0"),
    (lambda n: np.r_[np.ones(n - 1), np.nan], "NaN or infinite .*index 23"),
    (lambda n: np.ones(n - 1), "23 weights but X has 24 samples"),
    (lambda n: np.zeros(n), "all zero"),
    (lambda n: np.ones((n, 2)), "1-D"),
    (lambda n: ["a"] * n, "numbers"),
])
def test_bad_sample_weight_is_a_clear_error_before_any_work(data, weights, match):
    X, y = data
    clf = _clf()
    with pytest.raises((ValueError, TypeError), match=match):
        clf.fit(X, y, sample_weight=weights(len(y)))
    assert not clf.initialized_


def test_unknown_fit_parameter_is_a_clear_error_before_any_work(data):
    X, y = data
    clf = _clf()
    with pytest.raises(TypeError, match="unexpected fit parameter.*'epochs'.*sample_weight"):
        clf.fit(X, y, epochs=3)
    assert not clf.initialized_
    with pytest.raises(TypeError, match="partial_fit got unexpected fit parameter.*'sw'"):
        clf.partial_fit(X, y, sw=np.ones(len(y)))
    assert not clf.initialized_


def test_sample_weight_is_not_modified(data):
    X, y = data
    w = np.arange(len(y), dtype=np.float64)
    _clf(max_epochs=1).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(w, np.arange(len(y)))


# -- 1. an image column next to tabular columns ---------------------------------------
@pytest.fixture(scope="module")
def table(data, tmp_path_factory):
    """A DataFrame with an image-path column, a PIL column and a numeric column."""
    pd = pytest.importorskip("pandas")
    from PIL import Image

    X, y = data
    folder = tmp_path_factory.mktemp("images")
    paths, pils = [], []
    for i, img in enumerate((X * 255).astype(np.uint8)):
        pils.append(Image.fromarray(img))
        paths.append(str(folder / f"img_{i:03d}.png"))
        pils[-1].save(paths[-1])
    age = np.random.RandomState(2).randint(20, 60, len(y)).astype(float)
    return pd.DataFrame({"image": paths, "photo": pils, "age": age}), y


@pytest.mark.parametrize("column", ["image", "photo"])
def test_image_column_in_a_column_transformer(table, column):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df, y = table
    features = FeatureExtractor("tiny_cnn", weights=None, random_state=0)
    columns = ColumnTransformer([("img", features, [column]), ("num", StandardScaler(), ["age"])])
    pipe = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(df, y)
    assert set(pipe.predict(df)) <= {"cat", "dog"}

    out = columns.transform(df)
    alone = clone(features).fit_transform(list(df[column]))  # the column as a plain list
    np.testing.assert_allclose(out[:, :-1], alone, rtol=1e-6)
    np.testing.assert_allclose(out[:, -1], StandardScaler().fit_transform(df[["age"]])[:, 0])
    names = columns.get_feature_names_out()
    assert names[0] == "img__featureextractor0" and names[-1] == "num__age"


def test_one_column_frame_and_n_by_1_array_are_image_columns(table):
    df, y = table
    clf = _clf(max_epochs=1).fit(df[["image"]], y)
    expected = clf.predict_proba(list(df["image"]))
    np.testing.assert_array_equal(clf.predict_proba(df[["image"]]), expected)
    np.testing.assert_array_equal(clf.predict_proba(df[["image"]].to_numpy()), expected)
    np.testing.assert_array_equal(clf.predict_proba(df[["photo"]].to_numpy()), expected)
    # a numeric (n, 1) array stays one-feature vectors
    vectors = TransferClassifier("mlp", weights=None, max_epochs=1, random_state=0)
    assert vectors.fit(df[["age"]].to_numpy(), y).n_features_in_ == 1


# -- 5. a fitted TransferClassifier as a transformer ----------------------------------
def test_fitted_classifier_transforms_to_fine_tuned_features(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = data
    clf = _clf(freeze_depth=0, max_epochs=2).fit(X, y)
    features = clf.transform(X)
    assert features.shape == (len(X), clf.backbone_.num_features)
    assert features.dtype == np.float32
    # they are the head's input: the head applied to them gives the classifier's logits
    with torch.no_grad():
        logits = clf.module_.head(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], clf.decision_function(X),
                               rtol=1e-5, atol=1e-5)
    # fine-tuned, so not the features of the backbone it started from
    untrained = FeatureExtractor("tiny_cnn", weights=None, random_state=0).fit_transform(X)
    assert not np.allclose(features, untrained)
    names = clf.get_feature_names_out()
    assert len(names) == features.shape[1] and names[0] == "transferclassifier0"

    pipe = Pipeline([("finetuned", _clf(freeze_depth=0)), ("logreg", LogisticRegression())])
    pipe.fit(X, y)
    np.testing.assert_allclose(pipe.named_steps["logreg"].coef_.shape, (1, features.shape[1]))
    assert pipe.score(X, y) >= 0.5
    frame = pipe[:1].set_output(transform="pandas").transform(X[:3])
    assert list(frame.columns) == list(names)


def test_transform_before_fit_is_not_fitted_error(data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _clf().transform(data[0])
