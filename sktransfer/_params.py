"""The allowed values of the parameters TransferClassifier, TransferRegressor and
TransferClassifierCV share (see ``_constraints``); each estimator's own
``_parameter_constraints`` starts from these."""

from __future__ import annotations

import os
from numbers import Integral, Real

import torch

from ._constraints import Collection, HasMethods, Interval, Options, StrOptions
from ._recipe import LR_SCHEDULES, NORM_MODES
from .freezing import STRATEGY_HOOKS

__all__ = ["TRANSFER_CONSTRAINTS", "CLASSIFIER_CV_CONSTRAINTS", "WEIGHTS", "DEVICE",
           "NUM_WORKERS", "IMAGE_SIZE"]

WEIGHTS = [None, str, os.PathLike]
DEVICE = [str, torch.device, None]
NUM_WORKERS = [StrOptions(["auto"]), Interval(Integral, 0, None)]
IMAGE_SIZE = [None, Interval(Integral, 1, None, desc="a positive int")]

#: everything but the target's own parameter (label_smoothing, target_scaling)
TRANSFER_CONSTRAINTS = {
    "backbone": [str],
    "weights": WEIGHTS,
    "freeze_depth": [Interval(Integral, None, None), StrOptions(["all"])],
    "freeze_strategy": [str, HasMethods(STRATEGY_HOOKS, desc="a strategy object")],
    "image_size": IMAGE_SIZE,
    # which name fits which input kind is checked with the backbone (make_augment)
    "augment": [None, StrOptions(["light", "flip", "specaugment"],
                                 desc="'light', 'flip', 'specaugment' (audio)"), callable],
    "head_hidden": [None, Interval(Integral, 1, None, desc="a positive int")],
    "head_dropout": [Interval(Real, 0, 1, closed="left", desc="in [0, 1)")],
    "cache": [StrOptions(["auto"]), "boolean"],
    "cache_memory": [Interval(Integral, 0, None, desc="a number of bytes (an int >= 0)")],
    "random_state": ["random_state"],
    "amp": ["boolean"],
    "norm_mode": [StrOptions(NORM_MODES)],
    "head_warmup": [Interval(Integral, 0, None, desc="an int in [0, inf)")],
    "head_warmup_C": [StrOptions(["auto"]), Interval(Real, 0, None, closed="neither")],
    "backbone_lr_scale": [Interval(Real, 0, None)],
    "lr_schedule": [StrOptions(LR_SCHEDULES)],
    "lr_warmup": [Interval(Real, 0, 1, closed="left")],
    "min_steps": [Interval(Integral, 0, None, desc="an int in [0, inf)")],
    "num_workers": NUM_WORKERS,
    "module": [callable],
    "criterion": [callable],
    "optimizer": [callable],
    "lr": [Interval(Real, 0, None)],
    "max_epochs": [Interval(Integral, 0, None)],
    # a Python int: torch's loaders refuse numpy integers
    "batch_size": [Interval(int, 1, None, desc="an int >= 1"), Options(int, [-1])],
    "train_split": [None, callable],
    "device": DEVICE,
    "verbose": ["verbose"],
}

#: the searches' own parameters (TransferClassifierCV, TransferRegressorCV)
SEARCH_CONSTRAINTS = {
    "freeze_depths": [Collection(desc="a list of freeze_depth candidates (ints or 'all'), "
                                      "e.g. freeze_depths=['all', -1, 0]")],
    "cv": [None, Interval(Integral, None, None),
           HasMethods(["split", "get_n_splits"], desc="a scikit-learn splitter"),
           Collection(desc="an iterable of (train, test) indices")],
    "scoring": [None, str, callable, list, tuple, set, dict],
    "n_se": [Interval(Real, 0, None, desc="a finite number >= 0 (how many standard errors "
                                          "of the paired score differences count as noise)")],
    "min_diff": [Interval(Real, 0, None, desc="a finite number >= 0 (a difference in mean "
                                              "score that still counts as a tie)")],
}
_CANDIDATE = {k: v for k, v in TRANSFER_CONSTRAINTS.items() if k != "freeze_depth"}

#: TransferClassifierCV's: every candidate's, less freeze_depth, plus the search's own
CLASSIFIER_CV_CONSTRAINTS = {
    **_CANDIDATE, "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    **SEARCH_CONSTRAINTS,
}
#: TransferRegressorCV's, likewise
REGRESSOR_CV_CONSTRAINTS = {**_CANDIDATE, "target_scaling": ["boolean"], **SEARCH_CONSTRAINTS}
