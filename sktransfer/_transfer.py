"""What TransferClassifier and TransferRegressor share: a skorch net around a backbone.

:class:`TransferBase` is a mixin placed before skorch's ``NeuralNetClassifier``
or ``NeuralNetRegressor``. It builds the network from a registered backbone,
freezes it with a strategy, trains it with the fine-tuning recipe (``_recipe``)
on cached frozen-prefix activations when it can (``_cached_fit``), handles
``sample_weight``, per-fit state and random streams (``_fit_state``) and the
``"auto"`` device. Prediction and ``transform`` come from ``_inference``,
persistence from ``_persist``, and every run of the network's stages outside
skorch's loop from ``_stages``. A subclass supplies the target handling:

* ``_encode_target(y, n_samples, fitting)`` -> the array the network trains on;
* ``_target_fitted()`` -> whether the target encoding was learnt (fitted);
* ``_n_outputs()`` -> width of the head;
* ``_scaled_target(y_enc, sample_weight, fitting)`` -> optional rescaling of it;
* ``_fit_head(head, features, target, sample_weight)`` -> the head warm-up on
  pooled features, returning its final objective.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from sklearn.exceptions import NotFittedError
from torch.utils.data import Dataset, Subset

from ._cache import prefix_activations
from ._cached_fit import ActivationDataset, Activations, CachedFit
from ._common import (clone_with_leaves, make_backbone, nested_params, preprocessor_for,
                      read_input, resolve_device)
from ._constraints import check_params
from ._epoch_table import EpochTable
from ._data import SampleDataset, VectorInput, make_augment, network_input, resolve_num_workers
from ._fit_state import FitState, restored_on_error
from ._inference import PredictionMixin
from ._network import resolve_freeze_depth
from ._persist import NetStateMixin
from ._random import FitRandomness, seeded
from ._recipe import (LRSchedule, epochs_for, optimizer_groups, optimizer_kwargs,
                      scaled_lr_setter, warm_up_new_head)
from ._sample_weight import check_sample_weight, reject_fit_params, weighted_loss
from ._stages import StageRunner, autocast, skorch_loader_defaults
from .freezing import FreezeContext, checked_param_groups, make_strategy

__all__ = ["TransferBase", "resolve_freeze_depth"]


class TransferBase(NetStateMixin, PredictionMixin):
    """Backbone, freezing, recipe, cache, persistence: see the module docstring.

    The parameters are TransferClassifier's (documented there) less the
    classification-only ones; a subclass ``__init__`` passes them all here.
    """

    # These share modules with module_: pickled with it (one memo, so they stay the same
    # objects, and skorch's map_location lets a CUDA-fitted model load on a CPU machine).
    cuda_dependent_attributes_ = ["backbone_", "freeze_context_", "freezer_"]
    _fit = None  # the running fit's FitState (see _fit_state); None between fits
    # Attributes that may hold a torch module but are no part of the network: a
    # torchvision transform passed as ``augment`` (and "light"/"flip" build one). skorch
    # registers every nn.Module attribute as a module of the net: it refuses one set
    # outside initialize() (TransferClassifier(augment=v2.RandomResizedCrop(...)) raised
    # SkorchAttributeError) and re-initialises the net when a registered module's param
    # is set (set_params(augment=None) after fit raised NotFittedError).
    _PLAIN_ATTRIBUTES = frozenset({"augment", "augment_"})

    def __init__(self, backbone, weights, freeze_depth, freeze_strategy, image_size, augment,
                 head_hidden, head_dropout, cache, cache_memory, random_state, amp, *,
                 norm_mode, head_warmup, head_warmup_C, backbone_lr_scale, lr_schedule,
                 lr_warmup, min_steps, num_workers, module, criterion, optimizer, lr, max_epochs,
                 batch_size, train_split, device, verbose, **kwargs):
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
                         device=device, verbose=verbose, **kwargs)
        self.backbone = backbone
        self.weights = weights
        self.freeze_depth = freeze_depth
        self.freeze_strategy = freeze_strategy
        self.image_size = image_size
        self.augment = augment
        self.head_hidden = head_hidden
        self.head_dropout = head_dropout
        self.cache = cache
        self.cache_memory = cache_memory
        self.random_state = random_state
        self.amp = amp
        self.norm_mode = norm_mode
        self.head_warmup = head_warmup
        self.head_warmup_C = head_warmup_C
        self.backbone_lr_scale = backbone_lr_scale
        self.lr_schedule = lr_schedule
        self.lr_warmup = lr_warmup
        self.min_steps = min_steps
        self.num_workers = num_workers

    # -- the target: supplied by the subclass ------------------------------------------
    def _encode_target(self, y, n_samples: int, fitting: bool):
        raise NotImplementedError

    def _target_fitted(self) -> bool:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _fit_head(self, head, features, target, sample_weight) -> float:
        raise NotImplementedError

    def _scaled_target(self, y_enc, sample_weight, fitting: bool):
        """The array the network trains on, from ``_encode_target``'s (identity here)."""
        return y_enc

    def __setattr__(self, name, value):
        if name in self._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def __sklearn_clone__(self):
        return clone_with_leaves(self)

    def get_params(self, deep=True, **kwargs):
        """The parameters; with ``deep``, nested ones (``callbacks__*``, an estimator's
        own) too, but a transform passed as ``augment`` is a value, not an estimator."""
        params = super().get_params(deep=False, **kwargs)
        if not deep:
            return params
        # skorch's deep get_params, less the look into augment (see nested_params)
        return {**nested_params(params), **self._get_params_callbacks(deep=True)}

    def _get_param_names(self):
        # skorch lists every public-looking attribute; private state is not a param
        return [k for k in super()._get_param_names() if not k.startswith("_")]

    def set_params(self, **params):
        """Set parameters; ``freeze_strategy__*`` options apply at the next fit."""
        strategy_opts = {k: v for k, v in params.items() if k.startswith("freeze_strategy__")}
        for key, value in strategy_opts.items():
            setattr(self, key, value)
            self._params_to_validate.add(key)
        rest = {k: v for k, v in params.items() if k not in strategy_opts}
        return super().set_params(**rest) if rest else self

    @property
    def _default_callbacks(self):
        # the epoch table (verbose=1) follows the console policy: no colour codes in a log
        callbacks = [(name, EpochTable() if name == "print_log" else cb)
                     for name, cb in super()._default_callbacks]
        return callbacks + [("lr_schedule", LRSchedule())]

    # -- device: "auto" stays the param; the resolved device is used while working --
    @contextlib.contextmanager
    def _on_device(self):
        requested = self.device
        if requested != "auto":
            resolve_device(requested)
            yield
            return
        self.device = resolve_device(requested)
        try:
            yield
        finally:
            self.device = requested

    # -- fitting ----------------------------------------------------------------------
    def _prepare_fit(self, X, y, fitting: bool):
        source = read_input(X, self.backbone if fitting else getattr(self, "backbone_",
                                                                     self.backbone))
        y_enc = self._encode_target(y, len(source), fitting)
        if isinstance(source, VectorInput):
            if not fitting and hasattr(self, "n_features_in_") \
                    and source.n_features != self.n_features_in_:
                raise ValueError(f"X has {source.n_features} features, but "
                                 f"{type(self).__name__} is expecting {self.n_features_in_} "
                                 f"features as input.")
        return source, y_enc

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Build the network from the backbone, freeze it, and train.

        Parameters
        ----------
        X : images (array, tensor, file paths, PIL images), texts or 2-D vectors
        y : array-like
            Labels (classifier: any sortable type) or targets (regressor: numbers,
            1-D or 2-D).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights: each sample's loss counts ``w`` times (an
            integer weight trains like repeating the sample; with
            ``norm_mode="train"`` BatchNorm layers in trainable blocks compute
            unweighted batch statistics). Any other fit parameter is an error.

        A fit that fails (an image file that turns out to be corrupt mid-epoch,
        say) raises and leaves the estimator as it was before the call.
        """
        reject_fit_params(f"{type(self).__name__}.fit", fit_params)
        check_params(self)  # _parameter_constraints (see _constraints), before any work
        warm = bool(self.warm_start and getattr(self, "initialized_", False))
        return self._train(X, y, sample_weight, fitting=True, resume=warm)

    def partial_fit(self, X, y=None, sample_weight=None, **fit_params):
        """Train further without re-initialising (see skorch's ``partial_fit``)."""
        return self._partial_fit(X, y, sample_weight, fit_params)

    def _partial_fit(self, X, y, sample_weight, fit_params, before_first_fit=None):
        reject_fit_params(f"{type(self).__name__}.partial_fit", fit_params)
        check_params(self)
        fitting = not self.initialized_
        return self._train(X, y, sample_weight, fitting=fitting, resume=not fitting,
                           before_first_fit=before_first_fit)

    def _train(self, X, y, sample_weight, fitting: bool, resume: bool, before_first_fit=None):
        """The one body of ``fit`` and ``partial_fit``.

        ``fitting``: the target encoding is learnt anew; ``resume``: the existing
        network trains on (``warm_start``, ``partial_fit``) instead of a new one.
        """
        with restored_on_error(self, keep_weights=resume):
            if fitting and before_first_fit is not None:
                before_first_fit()
            source, y_enc = self._prepare_fit(X, y, fitting=fitting)
            weights = check_sample_weight(sample_weight, len(source))
            y_enc = self._scaled_target(y_enc, weights, fitting=fitting)
            with self._on_device(), self._fitting(source, weights, resume=resume) as fit:
                if not resume:
                    with fit.rng.init():
                        self.initialize()
                # skorch's partial_fit: on_train_begin, fit_loop (below), on_train_end
                super().partial_fit(source, y_enc)
        return self

    @contextlib.contextmanager
    def _fitting(self, source, weights, resume: bool):
        """The running fit's :class:`~sktransfer._fit_state.FitState`, as ``self._fit``."""
        self._fit = FitState(source, weights, FitRandomness(
            self.random_state, self.device, len(self.history_) if resume else 0))
        try:
            yield self._fit
        finally:
            vars(self).pop("_fit", None)

    def initialize(self):
        with self._on_device():
            return super().initialize()

    def initialize_module(self):
        source = None if self._fit is None else self._fit.source
        if source is None or not self._target_fitted():
            raise NotFittedError(f"{type(self).__name__} builds its network from the training "
                                 f"data; call fit(X, y) instead of initialize()")
        backbone = make_backbone(self.backbone, self.weights, source, self.image_size)
        self.backbone_ = backbone
        self.preprocessor_ = preprocessor_for(backbone, self.image_size)
        self.augment_ = self._make_augment()
        self.freeze_depth_ = resolve_freeze_depth(self.freeze_depth, backbone)
        if isinstance(source, VectorInput):
            self.n_features_in_ = source.n_features
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        module_kwargs = {"norm_mode": self.norm_mode, **self.get_params_for("module")}
        self.module_ = self.module(backbone, self._n_outputs(), head_hidden=self.head_hidden,
                                   head_dropout=float(self.head_dropout), **module_kwargs)
        self.freezer_ = make_strategy(self.freeze_strategy, self.get_params_for("freeze_strategy"))
        self.freeze_context_ = FreezeContext(
            module=self.module_, blocks=self.module_.blocks, pool=self.module_.pool,
            head=self.module_.head, freeze_depth=self.freeze_depth_,
            max_epochs=self.max_epochs, lr=self.lr, norm_mode=self.module_.norm_mode)
        self.freezer_.setup(self.freeze_context_)
        # the head warm-up runs while the head is untouched since this initialisation (not
        # after a warm start, a skops load, or a callback such as LoadInitState loading one)
        self._fit.initial_head = [p.detach().clone() for p in self.module_.head.parameters()]
        if backbone.input_kind == "image":
            self.module_.to(memory_format=torch.channels_last)
        return self

    def _make_augment(self):
        return make_augment(self.augment, getattr(getattr(self.preprocessor_, "p", None),
                                                  "crop_size", None), self.backbone_.input_kind)

    def initialize_optimizer(self, triggered_directly=None):
        _, kwargs = self.get_params_for_optimizer("optimizer", [])
        kwargs.pop("param_groups", None)
        groups = optimizer_groups(checked_param_groups(self.freezer_, self.freeze_context_),
                                  self.module_.head, self.lr, self.backbone_lr_scale)
        kwargs = optimizer_kwargs(self.optimizer, groups, kwargs)
        self.optimizer_ = self.optimizer(groups, **kwargs)
        return self

    def _initialize_optimizer(self, reason=None):
        super()._initialize_optimizer(reason)
        # set_params(lr=...) moves the base rate; every group keeps its lr_scale
        self._register_virtual_param(["lr", "optimizer__lr"], scaled_lr_setter)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # a strategy's epoch counts from 0 in every fit / partial_fit, as ctx.max_epochs does
        if self._fit is not None:
            self._fit.epochs_before = len(self.history)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        fit = self._fit
        epoch = len(self.history) - 1 - (0 if fit is None else fit.epochs_before)
        self.freezer_.on_epoch_begin(self.freeze_context_, epoch)
        if fit is not None and fit.cached_fit is not None:
            # a deeper cached prefix while the strategy freezes more
            fit.cached_fit.begin_epoch(epoch)

    def _autocast(self):
        return autocast(self.amp, self.device)

    def _to_device(self, x):
        """A batch (tensor, or dict of tensors) on the device; from pinned memory to a
        GPU without blocking (the copy overlaps the work queued before it). uint8 pixel
        batches are normalised there (see ``_data.network_input``)."""
        if isinstance(x, dict):
            return {k: self._to_device(v) for k, v in x.items()}
        if isinstance(x, torch.Tensor):
            return network_input(x, getattr(self, "preprocessor_", None), self.device)
        return x

    def infer(self, x, **fit_params):
        if isinstance(x, dict) and "sample_weight" in x:  # the loss reads the weights
            x = x["x"]
        x = self._to_device(x)
        step = contextlib.nullcontext()
        if self.module_.training:  # dropout draws from this fit's own stream
            rng = None if self._fit is None else self._fit.rng
            step = rng.training_step() if rng is not None else seeded(None)
        with step, self._autocast():
            out = super().infer(x, **fit_params)
        return out.float() if self.amp else out

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = self._to_device(y_true)
        if isinstance(X, dict) and "sample_weight" in X:
            weights = torch.as_tensor(X["sample_weight"], device=y_pred.device)
            loss = weighted_loss(self.criterion_, lambda: super(TransferBase, self).get_loss(
                y_pred, y_true, X=X, training=training), weights)
        else:
            loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training:
            penalty = self.freezer_.penalty(self.freeze_context_)
            if penalty is not None:
                loss = loss + penalty
        return loss

    def check_data(self, X, y):
        # the target was validated and encoded in fit; skorch's check would redo it
        return None

    # -- frozen-prefix cache (see _cached_fit) ---------------------------------------------
    def _activation_context(self) -> str:
        return repr((self.backbone, getattr(self.preprocessor_, "p", None)))

    def _stage_runner(self, source=None) -> StageRunner:
        """This network's :class:`~sktransfer._stages.StageRunner`, reading ``source``
        with the decoding workers of the fit's training inputs."""
        workers = 0 if source is None else self._input_workers(source)
        return StageRunner(self.module_, self.preprocessor_, self.device, self.batch_size,
                           workers)

    def _prefix_activations(self, source, depth, store=True) -> list:
        """Outputs of stages ``0..depth-1`` for every sample, via the shared cache."""
        return prefix_activations(self._stage_runner(source), source, depth,
                                  self._activation_context(), verbose=self.verbose > 0,
                                  store=store)

    def _input_workers(self, source) -> int:
        """Decoding workers of a fit's training inputs, for reading them outside skorch's
        loaders (the frozen-prefix cache fill) and for judging worker persistence
        (``CachedFit``): an explicit ``iterator_train__num_workers`` wins."""
        explicit = vars(self).get("iterator_train__num_workers")
        if explicit is not None:
            return explicit
        return resolve_num_workers(getattr(self, "num_workers", "auto"), source,
                                   self.batch_size)

    def _body_trains(self) -> bool:
        """Whether the optimizer holds any parameter outside the head."""
        head = {id(p) for p in self.module_.head.parameters()}
        return any(id(p) not in head for group in self.optimizer_.param_groups
                   for p in group["params"])

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        fit = self._fit
        if fit is None or X is not fit.source:  # not the input of fit / partial_fit
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        if epochs is None:  # at least min_steps optimizer steps (see _recipe)
            epochs = epochs_for(self, len(X))
        self.n_epochs_ = epochs
        self.freeze_context_.max_epochs = epochs
        cached_fit = CachedFit.for_net(self, X, y)
        self.cache_used_ = cached_fit.used
        self.cache_depth_ = cached_fit.depth
        if fit.initial_head is not None:
            warm_up_new_head(self, X, y, cached_fit.activations, cached_fit.depth)
        fit.cached_fit = cached_fit
        try:
            with cached_fit:
                return super().fit_loop(cached_fit.dataset(), y, epochs=epochs, **fit_params)
        finally:
            fit.cached_fit = None
            self.cache_used_ = cached_fit.used

    # -- data plumbing ----------------------------------------------------------------
    def get_dataset(self, X, y=None):
        if isinstance(X, Dataset):
            return X
        fit = self._fit
        training = y is not None and fit is not None
        weights = fit.sample_weight if training else None
        if isinstance(X, Activations):
            return ActivationDataset(X, y, weights)
        if not hasattr(X, "load"):
            X = read_input(X, self.backbone_)
        augment = fit.rng.wrap_augment(self.augment_) if training else None
        return SampleDataset(X, y, self.preprocessor_, augment, sample_weight=weights,
                             pixels=True)

    def get_split_datasets(self, X, y=None, **fit_params):
        train, valid = super().get_split_datasets(X, y, **fit_params)
        # the validation part of a train_split is evaluated, so it is not augmented
        if isinstance(valid, Subset) and getattr(valid.dataset, "augment", None) is not None:
            plain = copy.copy(valid.dataset)
            plain.augment = None
            valid = Subset(plain, valid.indices)
        return train, valid

    def get_iterator(self, dataset, training=False):
        # skorch builds the loader, with the library's defaults (see _stages)
        defaults = skorch_loader_defaults(self, dataset, training, self._fit)
        vars(self).update(defaults)
        try:
            return super().get_iterator(dataset, training)
        finally:
            for key in defaults:
                delattr(self, key)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
