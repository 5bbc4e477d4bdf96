"""TransferClassifier: freezing observed from the outside, labels, sklearn plumbing."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit

from sktransfer import TransferClassifier

FAST = dict(max_epochs=2, batch_size=16, random_state=0, device="cpu", lr=1e-2)


@pytest.fixture
def pretrained(tiny_weights):
    return tiny_weights


def _block_state(clf, i):
    return {k: v.detach().clone() for k, v in clf.module_.blocks[i].state_dict().items()}


def _unchanged(before, after):
    return all(torch.equal(before[k], after[k]) for k in before)


def _moved(before, after):
    return any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


def _original_block(state, i):
    prefix = f"blocks.{i}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("cache", [True, False])
def test_freeze_all_changes_no_backbone_tensor(images, pretrained, cache):
    X, y = images
    path, state = pretrained
    clf = TransferClassifier("tiny_cnn", weights=path, freeze_depth="all", cache=cache,
                             **FAST).fit(X, y)
    for i in range(4):
        assert _unchanged(_original_block(state, i), _block_state(clf, i))  # BN stats included
    assert clf.cache_used_ is cache


def test_freeze_two_keeps_first_two_and_moves_top(images, pretrained):
    X, y = images
    path, state = pretrained
    clf = TransferClassifier("tiny_cnn", weights=path, freeze_depth=2, cache=False,
                             **FAST).fit(X, y)
    assert _unchanged(_original_block(state, 0), _block_state(clf, 0))
    assert _unchanged(_original_block(state, 1), _block_state(clf, 1))
    assert _moved(_original_block(state, 3), _block_state(clf, 3))


def test_freeze_zero_moves_everything(images, pretrained):
    X, y = images
    path, state = pretrained
    clf = TransferClassifier("tiny_cnn", weights=path, freeze_depth=0, **FAST).fit(X, y)
    for i in range(4):
        assert _moved(_original_block(state, i), _block_state(clf, i))


def test_only_trainable_parameters_reach_the_optimizer(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=3, **FAST).fit(X, y)
    in_optimizer = {id(p) for g in clf.optimizer_.param_groups for p in g["params"]}
    frozen = {id(p) for b in clf.module_.blocks[:3] for p in b.parameters()}
    assert not in_optimizer & frozen
    assert {id(p) for p in clf.module_.head.parameters()} <= in_optimizer


def test_frozen_blocks_stay_in_eval_mode_while_training(images):
    X, y = images
    seen = []
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, cache=False, **FAST)
    clf.fit(X, y)
    clf.module_.train()
    seen = [b.training for b in clf.module_.blocks]
    assert seen == [False, False, True, True]


@pytest.mark.parametrize("depth,expected", [(-1, 3), (-4, 0), (4, 5), ("all", 5), (0, 0)])
def test_freeze_depth_resolution(images, depth, expected):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=depth, max_epochs=1,
                             device="cpu").fit(X, y)
    assert clf.freeze_depth_ == expected


@pytest.mark.parametrize("depth,err,match", [
    (5, ValueError, r"freeze_depth=5 is out of range for backbone 'tiny_cnn', which has 4 "
                    r"blocks \(stem, stage1, stage2, stage3\): use 0\.\.4, -4\.\.-1"),
    (-5, ValueError, "out of range"),
    ("some", ValueError, r"freeze_depth must be an int or 'all', got 'some'"),
    (1.5, TypeError, "must be an int or 'all'"),
    (True, TypeError, "must be an int"),
])
def test_bad_freeze_depth(images, depth, err, match):
    X, y = images
    with pytest.raises(err, match=match):
        TransferClassifier("tiny_cnn", weights=None, freeze_depth=depth, max_epochs=1,
                           device="cpu").fit(X, y)


@pytest.mark.parametrize("labels", [
    np.array(["Dog", "cat", "dog", "Cat"] * 10),
    np.array([True, False] * 20),
    np.array([10, -3, 7] * 13 + [10]),
    [f"class {i % 3}" for i in range(40)],
])
def test_labels_of_any_type_round_trip(images, labels):
    X, _ = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, max_epochs=1,
                             device="cpu", random_state=0).fit(X, labels)
    expected = np.unique(np.asarray(labels))
    np.testing.assert_array_equal(clf.classes_, expected)
    pred = clf.predict(X)
    assert set(pred) <= set(expected) and pred.dtype == expected.dtype
    proba = clf.predict_proba(X)
    assert proba.shape == (40, len(expected))
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(pred, expected[proba.argmax(1)])


def test_single_class_and_mixed_types_are_clear_errors(images):
    X, _ = images
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu")
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, ["a"] * 40)
    with pytest.raises(ValueError, match="different lengths: 40 samples in X, 39 labels"):
        clf.fit(X, ["a", "b"] * 19 + ["a"])
    with pytest.raises((TypeError, ValueError), match="[Mm]ix"):
        clf.fit(X, ["a", 1] * 20)


def test_a_label_seen_once_is_a_warning_naming_the_closest_label(images):
    import warnings

    X, _ = images
    y = np.array(["cat_cup", "dog_bowl"] * 19 + ["catcup", "zebra"])
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu")
    with pytest.warns(UserWarning) as record:
        clf.fit(X, y)
    message = " ".join(str(w.message) for w in record if "once in y" in str(w.message))
    assert "'catcup' (did you mean 'cat_cup'?)" in message
    assert "'zebra'" in message and "'zebra' (did you mean" not in message
    assert "catcup" in clf.classes_  # still a class: the user decides
    with warnings.catch_warnings():  # every label once: meant, nothing to say
        warnings.simplefilter("error")
        clf.fit(X[:4], ["a", "b", "c", "d"])
        clf.fit(X, ["a", "b"] * 20)


def test_not_fitted_error_before_fit(images):
    X, _ = images
    clf = TransferClassifier("tiny_cnn", weights=None)
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(NotFittedError):
            method(X)


def test_random_state_gives_identical_models(images):
    X, y = images
    a = TransferClassifier("tiny_cnn", weights=None, freeze_depth=1, **FAST).fit(X, y)
    b = TransferClassifier("tiny_cnn", weights=None, freeze_depth=1, **FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_cached_and_uncached_paths_agree(images):
    X, y = images
    params = dict(weights=None, freeze_depth=2, **FAST)
    a = TransferClassifier("tiny_cnn", cache=True, **params).fit(X, y)
    b = TransferClassifier("tiny_cnn", cache=False, **params).fit(X, y)
    assert a.cache_used_ and not b.cache_used_
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5)


def test_clone_get_set_params(images):
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, optimizer__weight_decay=0.1,
                             freeze_strategy="discriminative", freeze_strategy__decay=0.3)
    params = clf.get_params()
    assert params["freeze_depth"] == 2 and params["optimizer__weight_decay"] == 0.1
    assert params["freeze_strategy__decay"] == 0.3
    twin = clone(clf)
    assert twin.get_params()["freeze_strategy__decay"] == 0.3
    twin.set_params(freeze_depth="all", lr=0.5, freeze_strategy__decay=0.9)
    assert twin.freeze_depth == "all" and twin.lr == 0.5 and twin.freeze_strategy__decay == 0.9
    assert clf.freeze_depth == 2


def test_skorch_features_keep_working(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, max_epochs=20,
                             train_split=ValidSplit(4, stratified=True),
                             callbacks=[EarlyStopping(patience=1, monitor="valid_loss")],
                             device="cpu", random_state=0, lr=1e-4).fit(X, y)
    assert "valid_loss" in clf.history[-1]
    assert 1 <= len(clf.history) <= 20
    epochs = len(clf.history)
    clf.partial_fit(X, y)
    assert len(clf.history) > epochs  # partial_fit continues the same history


def test_warm_start_continues(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, warm_start=True, **FAST).fit(X, y)
    clf.fit(X, y)
    assert len(clf.history) == 4


def test_grid_search_over_freeze_depth_and_lr_with_string_labels(images):
    X, y = images
    search = GridSearchCV(
        TransferClassifier("tiny_cnn", weights=None, max_epochs=2, device="cpu", random_state=0),
        {"freeze_depth": [0, 2, "all"], "lr": [1e-2, 1e-3]}, cv=2, error_score="raise")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    pred = search.predict(X)
    assert set(pred) <= {"cat", "dog"}
    assert search.best_estimator_.classes_.tolist() == ["cat", "dog"]


def test_randomized_search_cross_val_score_and_pipeline(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu", random_state=0)
    scores = cross_val_score(clf, X, y, cv=2)
    assert scores.shape == (2,)
    RandomizedSearchCV(clf, {"freeze_depth": [0, 1, 2, 3]}, n_iter=2, cv=2,
                       random_state=0).fit(X, y)
    pipe = make_pipeline(FunctionTransformer(lambda a: a * 0.9), clf).fit(X, y)
    assert pipe.score(X, y) >= 0


def test_pickle_and_joblib_round_trip(images, tmp_path):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=1, **FAST).fit(X, y)
    expected = clf.predict_proba(X)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(X), expected)
    assert again.device == "auto" or again.device == "cpu"


def test_head_shape_params(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, head_hidden=16, head_dropout=0.2,
                             **FAST).fit(X, y)
    linears = [m for m in clf.module_.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 2]
    with pytest.raises(ValueError, match="head_dropout"):
        clone(clf).set_params(head_dropout=1.5).fit(X, y)


def test_vectors_with_mlp_backbone_set_n_features_in():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 4)
    y = np.where(X[:, 0] > 0.5, "hi", "lo")
    clf = TransferClassifier("mlp", weights=None, freeze_depth=0, max_epochs=30, lr=1e-2,
                             device="cpu", random_state=0).fit(X, y)
    assert clf.n_features_in_ == 4 and clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match="X has 3 features, but TransferClassifier is "
                                         "expecting 4"):
        clf.predict(X[:, :3])


def test_device_cuda_without_cuda_is_clear(images, monkeypatch):
    X, y = images
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*device='auto'"):
        TransferClassifier("tiny_cnn", weights=None, device="cuda", max_epochs=1).fit(X, y)
    clf = TransferClassifier("tiny_cnn", weights=None, device="auto", max_epochs=1).fit(X, y)
    assert clf.device == "auto" and next(clf.module_.parameters()).device.type == "cpu"


# -- missing labels and failed fits (issue 14) -----------------------------------------------
@pytest.mark.parametrize("kind", ["object_nan", "list_none", "series_none", "float_nan"])
def test_missing_labels_are_named_with_their_positions(images, kind):
    import pandas as pd

    X, y = images
    labels = {"object_nan": np.array(list(y), dtype=object),
              "list_none": list(y), "series_none": pd.Series(list(y), dtype=object),
              "float_nan": (y == "cat").astype(float)}[kind]
    for position in (3, 17):
        labels[position] = None if kind in ("list_none", "series_none") else np.nan
    with pytest.raises(ValueError, match=r"y has 2 missing label\(s\) \(None or NaN\) at "
                                         r"position\(s\) 3, 17"):
        TransferClassifier("tiny_cnn", weights=None, **FAST).fit(X, labels)


@pytest.fixture
def files_with_a_truncated_jpeg(images, tmp_path):
    from PIL import Image

    X, y = images
    paths = []
    for i, image in enumerate(X):
        path = tmp_path / f"{i:02d}.jpg"
        Image.fromarray((image * 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    middle = paths[len(paths) // 2]
    data = open(middle, "rb").read()
    with open(middle, "wb") as f:
        f.write(data[: len(data) // 2])  # the header still reads: only decoding fails
    return paths, y, middle


@pytest.mark.parametrize("warm_start", [True, False])
def test_failed_fit_leaves_the_fitted_model_as_it_was(images, files_with_a_truncated_jpeg,
                                                      warm_start):
    X, y = images
    paths, _, broken = files_with_a_truncated_jpeg
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, warm_start=warm_start,
                             **{**FAST, "batch_size": 4}).fit(X, y)
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    module, proba, epochs = clf.module_, clf.predict_proba(X), len(clf.history)
    with pytest.raises(ValueError, match=rf"cannot decode image file '{broken}'"):
        clf.fit(paths, y)  # the bad file is met in the middle of the first epoch
    assert clf.module_ is module and len(clf.history) == epochs
    for key, value in clf.module_.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    np.testing.assert_allclose(clf.predict_proba(X), proba, atol=1e-6)
