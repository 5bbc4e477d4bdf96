"""What TransferClassifier and TransferRegressor share: a skorch net around a backbone.

:class:`TransferBase` is a mixin placed before skorch's ``NeuralNetClassifier``
or ``NeuralNetRegressor``. It builds the network from a registered backbone,
freezes it with a strategy, trains it with the fine-tuning recipe (``_recipe``)
on cached frozen-prefix activations when it can, handles ``sample_weight``,
per-fit random streams, the ``"auto"`` device, persistence (``_persist``) and
:meth:`~TransferBase.transform`. A subclass supplies the target handling:

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
import numbers

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.exceptions import NotFittedError
from skorch.history import History
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from ._cache import ACTIVATIONS, activation_bytes, prefix_activations
from ._cached_fit import ActivationDataset, Activations, CachedFit
from ._common import check_source_kind, make_backbone, preprocessor_for, read_input, resolve_device
from ._constraints import check_params
from ._data import (PairCollate, SampleDataset, VectorInput, dataset_source, loader_options,
                    make_augment, network_input, resolve_num_workers)
from ._persist import (PlainStateMixin, architecture_source, backbone_meta, load_module_arrays,
                       module_arrays, restore_backbone_meta)
from ._random import FitRandomness, seeded
from ._recipe import (LRSchedule, epochs_for, optimizer_groups,
                      optimizer_kwargs, resolve_head_warmup_C, scaled_lr_setter)
from ._sample_weight import check_sample_weight, reject_fit_params, weighted_loss
from .freezing import FreezeContext, checked_param_groups, make_freezer

__all__ = ["TransferBase", "resolve_freeze_depth"]


def resolve_freeze_depth(freeze_depth, backbone) -> int:
    """``freeze_depth`` -> number of frozen stages (``n_blocks + 1`` = whole backbone).

    Stages are the backbone's blocks followed by its pool, so ``"all"`` and
    ``n_blocks`` freeze the pool too (a linear probe).
    """
    n = backbone.n_blocks
    names = ", ".join(backbone.block_names)
    if isinstance(freeze_depth, str):
        if freeze_depth == "all":
            return n + 1
        raise ValueError(f"freeze_depth={freeze_depth!r} is not understood; use an int in "
                         f"-{n}..{n} or 'all' (backbone {backbone.name!r} has {n} blocks: {names})")
    if isinstance(freeze_depth, (bool, np.bool_)) or not isinstance(freeze_depth, numbers.Integral):
        raise TypeError(f"freeze_depth must be an int or 'all', got "
                        f"{type(freeze_depth).__name__} {freeze_depth!r}")
    k = int(freeze_depth)
    if not -n <= k <= n:
        raise ValueError(f"freeze_depth={k} is out of range for backbone {backbone.name!r}, "
                         f"which has {n} blocks ({names}): use 0..{n}, -{n}..-1 (counting from "
                         f"the top) or 'all'")
    k = n + k if k < 0 else k
    return n + 1 if k == n else k


@contextlib.contextmanager
def _restored_on_error(net, keep_weights: bool):
    """A fit that raises leaves ``net`` as it was before the fit.

    Attributes are restored from a shallow copy (a fresh fit builds new
    modules, so the old ones are untouched) and the history from a copy (skorch
    clears it in place). When the fit continues training the existing network
    (``warm_start``, ``partial_fit``) its weights, optimizer state,
    ``requires_grad`` flags and train/eval modes are copied first too, so a bad
    file found mid-epoch leaves the model exactly as it was.
    """
    saved = dict(net.__dict__)
    history = copy.deepcopy(getattr(net, "history_", None))
    kept = None
    if keep_weights:
        module = net.module_
        kept = (copy.deepcopy(module.state_dict()), copy.deepcopy(net.optimizer_.state_dict()),
                {n: p.requires_grad for n, p in module.named_parameters()},
                {n: m.training for n, m in module.named_modules()})
    try:
        yield
    except BaseException:
        net.__dict__.clear()
        net.__dict__.update(saved)
        net.__dict__["history_"] = history
        if kept is not None:
            weights, optimizer, grads, modes = kept
            net.module_.load_state_dict(weights)
            net.optimizer_.load_state_dict(optimizer)
            for name, param in net.module_.named_parameters():
                param.requires_grad_(grads[name])
            for name, sub in net.module_.named_modules():
                sub.training = modes[name]
        raise



class TransferBase(PlainStateMixin, TransformerMixin):
    """Backbone, freezing, recipe, cache, persistence: see the module docstring.

    The parameters are TransferClassifier's (documented there) less the
    classification-only ones; a subclass ``__init__`` passes them all here.
    """

    # These share modules with module_: pickled with it (one memo, so they stay the same
    # objects, and skorch's map_location lets a CUDA-fitted model load on a CPU machine).
    cuda_dependent_attributes_ = ["backbone_", "freeze_context_", "freezer_"]

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
        return list(super()._default_callbacks) + [("lr_schedule", LRSchedule())]

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
        with _restored_on_error(self, keep_weights=warm):
            source, y_enc = self._prepare_fit(X, y, fitting=True)
            weights = check_sample_weight(sample_weight, len(source))
            y_enc = self._scaled_target(y_enc, weights, fitting=True)
            with self._on_device(), self._fitting(source, weights, resume=warm):
                if not warm:
                    with self._fit_rng.init():
                        self.initialize()
                self.partial_fit(source, y_enc)
        return self

    def partial_fit(self, X, y=None, sample_weight=None, **fit_params):
        """Train further without re-initialising (see skorch's ``partial_fit``)."""
        return self._partial_fit(X, y, sample_weight, fit_params)

    def _partial_fit(self, X, y, sample_weight, fit_params, before_first_fit=None):
        if hasattr(X, "load"):  # already validated by fit
            with self._on_device():
                return super().partial_fit(X, y)
        reject_fit_params(f"{type(self).__name__}.partial_fit", fit_params)
        check_params(self)
        fitting = not self.initialized_
        with _restored_on_error(self, keep_weights=not fitting):
            if fitting and before_first_fit is not None:
                before_first_fit()
            source, y_enc = self._prepare_fit(X, y, fitting=fitting)
            weights = check_sample_weight(sample_weight, len(source))
            y_enc = self._scaled_target(y_enc, weights, fitting=fitting)
            with self._on_device(), self._fitting(source, weights, resume=not fitting):
                if fitting:
                    with self._fit_rng.init():
                        self.initialize()
                return super().partial_fit(source, y_enc)

    @contextlib.contextmanager
    def _fitting(self, source, weights, resume: bool):
        """The training data, weights and random streams of the running fit."""
        self._fit_source = source
        self._fit_sample_weight = weights
        self._fit_rng = FitRandomness(self.random_state, self.device,
                                      len(self.history_) if resume else 0)
        try:
            yield
        finally:
            self._fit_source = self._fit_sample_weight = self._fit_rng = None

    def initialize(self):
        with self._on_device():
            return super().initialize()

    def initialize_module(self):
        source = getattr(self, "_fit_source", None)
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
        self.freezer_ = make_freezer(self.freeze_strategy, self.get_params_for("freeze_strategy"))
        self.freeze_context_ = FreezeContext(
            module=self.module_, blocks=self.module_.blocks, pool=self.module_.pool,
            head=self.module_.head, freeze_depth=self.freeze_depth_,
            max_epochs=self.max_epochs, lr=self.lr, norm_mode=self.module_.norm_mode)
        self.freezer_.setup(self.freeze_context_)
        # the head warm-up runs while the head is untouched since this initialisation (not
        # after a warm start, a skops load, or a callback such as LoadInitState loading one)
        self._initial_head = [p.detach().clone() for p in self.module_.head.parameters()]
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
        self._epochs_before_fit = len(self.history)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        epoch = len(self.history) - 1 - getattr(self, "_epochs_before_fit", 0)
        self.freezer_.on_epoch_begin(self.freeze_context_, epoch)
        cached_fit = getattr(self, "_cached_fit", None)
        if cached_fit is not None:  # a deeper cached prefix while the strategy freezes more
            cached_fit.begin_epoch(epoch)

    def _autocast(self):
        if self.amp and torch.device(self.device).type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

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
            rng = getattr(self, "_fit_rng", None)
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

    def _prefix_activations(self, source, k, store=True) -> list:
        """Outputs of stages ``0..k-1`` for every sample, via the shared cache."""
        return prefix_activations(
            self.module_, source, SampleDataset(source, None, self.preprocessor_, pixels=True), k,
            self._activation_context(), batch_size=self.batch_size, device=self.device,
            verbose=self.verbose > 0, store=store, preprocessor=self.preprocessor_,
            num_workers=self._input_workers(source))

    def _input_workers(self, source) -> int:
        """Decoding workers of a fit's training inputs, for reading them outside skorch's
        loaders (the frozen-prefix cache fill) and for judging worker persistence
        (``CachedFit``): an explicit ``iterator_train__num_workers`` wins."""
        explicit = vars(self).get("iterator_train__num_workers")
        if explicit is not None:
            return explicit
        return resolve_num_workers(getattr(self, "num_workers", "auto"), source,
                                   self.batch_size)

    def _warm_up_head(self, X, y, cached: Activations | None, k: int):
        """Train the new head on pooled features of the frozen backbone (see ``_recipe``)."""
        initial, self._initial_head = self._initial_head, None
        self.head_warmup_loss_ = None
        untouched = all(torch.equal(p.detach(), q)
                        for p, q in zip(self.module_.head.parameters(), initial))
        if not self.head_warmup or not untouched:
            return
        n_stages = self.module_.n_blocks + 1
        if cached is not None and k == n_stages:
            features = cached
        else:
            # via the cache: starts from the cached prefix, and head-only epochs reuse it
            features = Activations(self._prefix_activations(
                X, n_stages, store=self.cache is not False), self.preprocessor_)
        train, _ = self.get_split_datasets(features, y)
        # a private generator: no loader draws from torch's global one (see _random)
        inputs, target = next(iter(DataLoader(train, batch_size=len(train),
                                              collate_fn=PairCollate(),
                                              generator=torch.Generator())))
        weights = None
        if isinstance(inputs, dict):  # sample_weight (see SampleDataset)
            inputs, weights = inputs["x"], inputs["sample_weight"].float().to(self.device)
        self.head_warmup_loss_ = self._fit_head(self.module_.head, inputs.to(self.device),
                                                target.to(self.device), weights)

    def _body_trains(self) -> bool:
        """Whether the optimizer holds any parameter outside the head."""
        head = {id(p) for p in self.module_.head.parameters()}
        return any(id(p) not in head for group in self.optimizer_.param_groups
                   for p in group["params"])

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        if not hasattr(X, "load"):  # a Dataset, or cached features (the head warm-up)
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        if epochs is None:  # at least min_steps optimizer steps (see _recipe)
            epochs = epochs_for(self, len(X))
        self.n_epochs_ = epochs
        self.freeze_context_.max_epochs = epochs
        cached_fit = CachedFit(self, X, y)
        self.cache_used_ = cached_fit.used
        self.cache_depth_ = cached_fit.depth
        if getattr(self, "_initial_head", None) is not None:
            self._warm_up_head(X, y, cached_fit.activations, cached_fit.depth)
        self._cached_fit = cached_fit
        try:
            with cached_fit:
                return super().fit_loop(cached_fit.dataset(), y, epochs=epochs, **fit_params)
        finally:
            self._cached_fit = None
            self.cache_used_ = cached_fit.used

    # -- data plumbing ----------------------------------------------------------------
    def get_dataset(self, X, y=None):
        if isinstance(X, Dataset):
            return X
        training = y is not None and getattr(self, "_fit_source", None) is not None
        weights = self._fit_sample_weight if training else None
        if isinstance(X, Activations):
            return ActivationDataset(X, y, weights)
        if not hasattr(X, "load"):
            X = read_input(X, self.backbone_)
        augment = self._fit_rng.wrap_augment(self.augment_) if training else None
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
        # shuffling and loader-worker seeds come from the fit's own generators; evaluation
        # loaders get a private one too, so no loader draws from torch's global generator
        prefix = "iterator_train__" if training else "iterator_valid__"
        set_by_user = vars(self)
        # texts are padded per batch (images: plain stacking)
        defaults = {prefix + "generator": torch.Generator(),
                    prefix + "collate_fn": PairCollate(getattr(self, "preprocessor_", None))}
        rng = getattr(self, "_fit_rng", None)
        if training:
            defaults[prefix + "shuffle"] = True
            if rng is not None:
                defaults[prefix + "generator"] = rng.worker_generator
                if not any(prefix + key in set_by_user
                           for key in ("shuffle", "sampler", "batch_sampler")):
                    # the order comes from a sampler of its own: a loader draws worker seeds
                    # from its generator once per epoch without workers but once per fit with
                    # persistent ones, so sharing one generator would tie the order of the
                    # samples to the number of workers
                    defaults[prefix + "shuffle"] = False
                    defaults[prefix + "sampler"] = RandomSampler(
                        dataset, generator=rng.loader_generator)
        workers = set_by_user.get(prefix + "num_workers")
        if workers is None:
            batch_size = set_by_user.get(prefix + "batch_size", self.batch_size)
            workers = defaults[prefix + "num_workers"] = resolve_num_workers(
                getattr(self, "num_workers", "auto"), dataset_source(dataset),
                len(dataset) if batch_size == -1 else batch_size)
        options = loader_options(workers, resolve_device(self.device))
        cached_fit = getattr(self, "_cached_fit", None)
        if training and cached_fit is not None and cached_fit.phased:
            # what an index returns changes between epochs (see _cached_fit): workers kept
            # from the first epoch would go on returning that epoch's inputs
            options.pop("persistent_workers", None)
        for key, value in options.items():
            defaults[prefix + key] = value
        defaults = {k: v for k, v in defaults.items() if k not in set_by_user}
        vars(self).update(defaults)
        try:
            return super().get_iterator(dataset, training)
        finally:
            for key in defaults:
                delattr(self, key)

    # -- prediction -------------------------------------------------------------------

    def _check_fitted(self):
        if not getattr(self, "initialized_", False) or not self._target_fitted():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 f"'fit' with appropriate arguments before using this estimator.")

    def _predict_source(self, X):
        self._check_fitted()
        if isinstance(X, Dataset):  # skorch's scoring callbacks pass the validation Subset
            return X
        source = read_input(X, self.backbone_)
        check_source_kind(source, self.backbone_)
        if isinstance(source, VectorInput) and source.n_features != self.n_features_in_:
            raise ValueError(f"X has {source.n_features} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return source

    def _prediction_input(self, source):
        """``(input, start)`` for predicting on ``source``: its cached frozen-prefix
        activations and the stage they enter at, or ``(source, 0)``.

        When the last fit trained on cached prefix activations, prediction looks
        the same prefix up in the shared cache and computes (and stores) only the
        missing rows: in cross-validation the validation samples of one fold are
        training samples of the others, so their rows are usually there already,
        and those a fold computes serve the next folds' fits. The rows come from
        the current weights (the cache key is their fingerprint) in eval mode,
        which is how a prediction runs the prefix anyway. Skipped when the rows
        would not fit in ``cache_memory``.
        """
        k = getattr(self, "cache_depth_", 0)
        if not k or self.cache is False or not hasattr(source, "load"):
            return source, 0
        ACTIVATIONS.set_max_bytes(self.cache_memory)
        nbytes = activation_bytes(self.module_, SampleDataset(source, None, self.preprocessor_),
                                  k, self.device, self.preprocessor_)
        if nbytes > self.cache_memory:
            return source, 0
        rows = Activations(self._prefix_activations(source, k), self.preprocessor_)
        return ActivationDataset(rows), k

    @contextlib.contextmanager
    def _entering_at(self, start: int):
        """The network takes its input at stage ``start`` (see ``TransferNet.start``)."""
        self.module_.start = start
        try:
            yield
        finally:
            self.module_.start = 0

    def forward_iter(self, X, training=False, device="cpu"):
        with self._on_device():
            X, start = (X, 0) if training else self._prediction_input(X)
            with self._entering_at(start):
                yield from super().forward_iter(X, training=training, device=device)

    def transform(self, X):
        """Features of the fine-tuned backbone (its pooled output, the head's input).

        Returns
        -------
        features : ndarray of shape (n_samples, backbone_.num_features), float32
        """
        source = self._predict_source(X)
        stop = self.module_.n_blocks + 1
        outs = []
        with self._on_device():
            self.module_.eval()
            source, start = self._prediction_input(source)
            dataset = self.get_dataset(source)
            with torch.inference_mode():
                for x, _ in self.get_iterator(dataset, training=False):
                    with self._autocast():
                        out = self.module_.forward_prefix(self._to_device(x), stop, start)
                    outs.append(out.float().cpu())
        return torch.cat(outs).numpy()

    def get_feature_names_out(self, input_features=None):
        """``<class name, lower case><i>`` names (``transferclassifier0``, ...), one per
        column of :meth:`transform`."""
        self._check_fitted()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.backbone_.num_features)],
                          dtype=object)

    # -- persistence (see _persist.py) --------------------------------------------------
    _TRANSIENT = ("_fit_source", "_fit_sample_weight", "_fit_rng", "_cached_fit")

    def _full_state(self):
        state = super().__getstate__()  # skorch: torch objects go in one pickled blob
        for key in self._TRANSIENT:
            state.pop(key, None)
        return state

    def __getstate__(self):
        """Plain data only (what skops stores): parameters, arrays, the history."""
        torch_held = tuple(self.cuda_dependent_attributes_) + (
            "module_", "criterion_", "optimizer_", "callbacks_", "virtual_params_",
            "preprocessor_", "augment_", "init_context_", "history_") + self._TRANSIENT
        # fitted torch objects (module_, optimizer_, ...; skorch's extra ones such as
        # criterion2_ too), but not parameters that merely share a prefix (backbone_lr_scale)
        state = {k: v for k, v in self.__dict__.items()
                 if not (k.startswith(torch_held) and k.endswith("_"))}
        history = getattr(self, "history_", None)
        state["history_"] = None if history is None else [dict(row) for row in history]
        if getattr(self, "initialized_", False) and hasattr(self, "module_"):
            state["_network_arrays"] = module_arrays(self.module_)
            state["_backbone_meta"] = backbone_meta(self.backbone_)
        return state

    def __setstate__(self, state):
        """Rebuild from :meth:`__getstate__`'s plain data (a skops load)."""
        if "__cuda_dependent_attributes__" in state:
            raise ValueError("refusing to unpickle the network bytes found in this state: a "
                             "plain (skops) state holds numpy arrays only. Load pickles with "
                             "pickle/joblib, and only files you trust.")
        state = dict(state)
        arrays = state.pop("_network_arrays", None)
        meta = state.pop("_backbone_meta", None)
        history = state.pop("history_", None)
        self.__dict__.update(state)
        self.history_ = None if history is None else History(history)
        if arrays is None:
            return
        weights = self.weights
        self.weights = None  # the architecture only; the saved arrays are the weights
        self._fit_source = architecture_source(self)
        try:
            with self._on_device(), seeded(0):
                self.initialize()
        finally:
            self.weights, self._fit_source = weights, None
        self._initial_head = None  # the saved head is trained already
        self.history_ = History(history)
        load_module_arrays(self.module_, arrays, f"{type(self).__name__} network")
        restore_backbone_meta(self.backbone_, meta)
        self.preprocessor_ = preprocessor_for(self.backbone_, self.image_size)
        self.augment_ = self._make_augment()

    def load_params(self, *args, **kwargs):
        # skorch maps the files to self.device, which must be a real device, not "auto"
        with self._on_device():
            return super().load_params(*args, **kwargs)

    def _set_full_state(self, state):
        requested = state.get("device")
        if requested == "auto":
            state["device"] = resolve_device("auto")
        super().__setstate__(state)
        # skorch may leave a torch.device after mapping CUDA -> CPU; keep params plain
        self.device = "auto" if requested == "auto" else str(self.device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
