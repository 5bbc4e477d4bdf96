"""Declared parameter constraints (sktransfer._constraints): every parameter of every public
estimator is checked at the start of fit, whichever way its value arrived."""

import inspect
import pathlib

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold

import sktransfer._extractor as extractor_module
import sktransfer._search_cv as search_cv_module
import sktransfer._transfer as transfer_module
from sktransfer import (FeatureExtractor, TransferClassifier, TransferClassifierCV,
                        TransferRegressor, TransferRegressorCV)
from sktransfer._constraints import (HasMethods, InvalidParameterError, Interval, StrOptions,
                                     check_params, check_value)

ESTIMATORS = [TransferClassifier, TransferRegressor, TransferClassifierCV, TransferRegressorCV,
              FeatureExtractor]


def _signature(cls) -> list[str]:
    return [name for name, p in inspect.signature(cls).parameters.items()
            if p.kind is not p.VAR_KEYWORD]


CASES = [(cls, name) for cls in ESTIMATORS for name in _signature(cls)]


@pytest.fixture
def no_work(monkeypatch):
    """Reading X is the first piece of work of every fit: make it fail loudly."""
    def started(*args, **kwargs):
        raise AssertionError("fit started working before checking its parameters")

    for module in (transfer_module, search_cv_module, extractor_module):
        monkeypatch.setattr(module, "read_input", started)


def _data():
    X = np.zeros((4, 8, 8, 3), dtype=np.float32)
    return X, np.array([0, 1, 0, 1])


def _fit(est, partial=False):
    X, y = _data()
    if partial:
        return est.partial_fit(X, y)
    return est.fit(X) if isinstance(est, FeatureExtractor) else est.fit(X, y)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_constraints_cover_exactly_the_signature(cls):
    assert set(cls._parameter_constraints) == set(_signature(cls))
    check_params(cls())  # the defaults satisfy them


def test_parameter_counts():
    counts = {cls.__name__: len(cls._parameter_constraints) for cls in ESTIMATORS}
    assert counts == {"TransferClassifier": 30, "TransferRegressor": 30,
                      "TransferClassifierCV": 34, "TransferRegressorCV": 34,
                      "FeatureExtractor": 12}


@pytest.mark.parametrize("how", ["constructor", "set_params", "clone"])
@pytest.mark.parametrize("cls, name", CASES, ids=[f"{c.__name__}-{n}" for c, n in CASES])
def test_a_wrong_kind_is_refused_at_fit_before_any_work(no_work, cls, name, how):
    bad = object()
    if how == "constructor":
        est = cls(**{name: bad})
    elif how == "set_params":
        est = cls().set_params(**{name: bad})
    else:
        est = clone(cls(**{name: bad}))
    with pytest.raises(InvalidParameterError,
                       match=rf"{cls.__name__}\({name}=<object .*\): {name} must be .*, "
                             rf"got object <object"):
        _fit(est)


@pytest.mark.parametrize("cls", [TransferClassifier, TransferRegressor],
                         ids=lambda c: c.__name__)
def test_partial_fit_checks_too(no_work, cls):
    with pytest.raises(InvalidParameterError, match=r"max_epochs=<object"):
        _fit(cls(max_epochs=object()), partial=True)


@pytest.mark.parametrize("cls, params, match", [
    (TransferClassifier, {"amp": 1}, r"amp must be True or False, got int 1"),
    (TransferClassifier, {"cache_memory": "2G"}, r"cache_memory must be a number of bytes"),
    (TransferClassifier, {"max_epochs": 2.0}, r"max_epochs must be an int >= 0, got float 2.0"),
    (TransferClassifier, {"freeze_depth": True}, r"freeze_depth must be an int or 'all'"),
    (TransferClassifier, {"freeze_depth": "al"}, r"did you mean 'all'\?"),
    (TransferClassifier, {"batch_size": 0}, r"batch_size must be an int >= 1 or -1, got 0"),
    # torch's loaders take Python ints only
    (TransferClassifier, {"batch_size": np.int64(8)}, r"batch_size must be an int >= 1 or -1, "
                                                      r"got int64 np.int64\(8\)"),
    (FeatureExtractor, {"batch_size": np.int64(8)}, r"got int64 np.int64\(8\)"),
    (TransferClassifier, {"lr": float("nan")}, r"lr must be a number >= 0, got nan"),
    (TransferClassifier, {"label_smoothing": 1.0}, r"label_smoothing must be a number in"),
    (TransferRegressor, {"target_scaling": "yes"}, r"target_scaling must be True or False"),
    (TransferClassifierCV, {"scoring": 3}, r"scoring must be None, a str, a callable, a list"),
    (TransferClassifierCV, {"cv": 2.5}, r"cv must be None, an int, a scikit-learn splitter"),
    (TransferClassifierCV, {"freeze_depths": 3}, r"freeze_depths must be a list"),
    (FeatureExtractor, {"memory": 3}, r"memory must be None, a str, a PathLike or a Memory"),
    (FeatureExtractor, {"layer": 1.5}, r"layer must be None, an int, a str, a list or a tuple"),
    (FeatureExtractor, {"pooling": "mean"}, r"pooling must be one of"),
])
def test_wrong_values_name_the_parameter_and_the_allowed_values(no_work, cls, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        _fit(cls(**params))


def test_strategy_options_are_checked_by_their_declared_constraints(no_work):
    with pytest.raises(InvalidParameterError,
                       match=r"TransferClassifier\(freeze_strategy__every=0\): "
                             r"freeze_strategy__every must be a positive int, got 0"):
        _fit(TransferClassifier(freeze_strategy="gradual", freeze_strategy__every=0))
    est = TransferClassifier(freeze_strategy="lp_ft").set_params(
        freeze_strategy__switch_epoch="late")
    with pytest.raises(InvalidParameterError, match=r"freeze_strategy__switch_epoch='late'"):
        _fit(clone(est))
    # options a strategy does not declare are left to it (it names unknown ones itself)
    check_params(TransferClassifier(freeze_strategy="depth", freeze_strategy__nope=1))


@pytest.mark.parametrize("cls, params", [
    (TransferClassifier, {"batch_size": -1, "max_epochs": 0, "lr": 0.0, "lr_warmup": 0.0,
                          "head_warmup_C": 1e-9, "freeze_depth": np.int64(-1),
                          "cache": np.bool_(True), "cache_memory": 0, "amp": True,
                          "weights": pathlib.Path("w.pth"), "device": torch.device("cpu"),
                          "random_state": np.random.RandomState(0), "verbose": True,
                          "augment": lambda x: x, "image_size": np.int32(32)}),
    (TransferRegressor, {"target_scaling": False, "head_warmup_C": "auto", "num_workers": 0,
                         "train_split": None, "criterion": torch.nn.L1Loss()}),
    (TransferClassifierCV, {"freeze_depths": np.array([0, -1]), "cv": KFold(3),
                            "scoring": {"acc": "accuracy"}, "n_se": 0,
                            "min_diff": 0}),
    (TransferClassifierCV, {"freeze_depths": ("all",), "cv": [([0], [1])],
                            "scoring": ("accuracy", "neg_log_loss"), "n_se": 1.5}),
    (FeatureExtractor, {"layer": ["layer3", -1], "memory": pathlib.Path("cache"),
                        "pooling": "catavgmax", "batch_size": 1}),
])
def test_valid_edge_values_are_accepted(cls, params):
    check_params(cls(**params))


def test_invalid_parameter_error_is_both_value_and_type_error():
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


def test_constraint_building_blocks():
    check_value("F", "x", 0.5, [Interval(float, 0, 1, closed="neither")])
    with pytest.raises(InvalidParameterError, match=r"x must be a number in \(0, 1\), got 1.0"):
        check_value("F", "x", 1.0, [Interval(float, 0, 1, closed="neither")])
    with pytest.raises(InvalidParameterError, match=r"got 'frozn' \(did you mean 'frozen'\?\)"):
        check_value("F", "x", "frozn", [StrOptions(["frozen", "train"])])
    with pytest.raises(InvalidParameterError, match=r"int lacks fit"):
        check_value("F", "x", 1, [HasMethods(["fit"])])
    long = "x" * 500
    with pytest.raises(InvalidParameterError) as info:
        check_value("F", "x", long, [int])
    assert len(str(info.value)) < 300  # the value's repr is shortened


def test_a_valid_fit_still_works_with_edge_values():
    rng = np.random.RandomState(0)
    X, y = rng.rand(8, 32, 32, 3).astype(np.float32), np.array(["a", "b"] * 4)
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=np.int64(2),
                             max_epochs=np.int64(1), batch_size=3, cache=np.bool_(True), device="cpu",
                             random_state=0).fit(X, y)
    assert clf.predict(X).shape == (8,)
