"""Two ways to save a fitted estimator: pickle (everything) and skops (plain data).

* ``pickle``, ``joblib``, ``copy`` and ``cloudpickle`` (process pools, dask) go
  through ``__reduce_ex__`` and keep the whole object, optimizer state and
  freezing strategy included, so a reloaded model resumes training exactly.
  Loading a pickle runs whatever code the file names: only load your own files.
* ``skops.io.dump``/``load`` go through ``__getstate__``/``__setstate__``, which
  hold only plain data: parameters, numbers, strings, numpy arrays (the network
  weights, as a ``{name: array}`` dict) and a few type references. Loading
  rebuilds the network from the backbone *name* with code already installed
  and copies the arrays in; it never unpickles bytes. The types a file refers
  to must be trusted explicitly; ``skops.io.get_untrusted_types(file=...)``
  lists them. For a ``TransferClassifier`` with default parameters they are the
  estimator itself (its ``__setstate__`` is the rebuild just described, and it
  refuses a state that carries pickled bytes) and the classes its ``module``,
  ``criterion``, ``optimizer``, ``iterator_*`` and ``dataset`` parameters name -
  ``sktransfer._network.TransferNet``, ``torch.nn.modules.loss.CrossEntropyLoss``,
  ``torch.optim.adamw.AdamW``, ``torch.utils.data.dataloader.DataLoader``,
  ``skorch.dataset.Dataset`` - which a load only references, never calls. A
  ``FeatureExtractor`` needs ``sktransfer._extractor.FeatureExtractor`` only.
  Other parameter values (callbacks, a ``train_split``, a custom criterion) add
  their own types to the list.

A skops-loaded model predicts and transforms exactly as the saved one did; its
optimizer starts afresh, so resume training from a pickle or skorch's
``save_params`` checkpoint instead.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PlainStateMixin", "NetStateMixin", "module_arrays", "load_module_arrays",
           "backbone_meta", "restore_backbone_meta", "architecture_source"]


def _restore(cls, state):
    """pickle's constructor for a :class:`PlainStateMixin` object."""
    obj = cls.__new__(cls)
    obj._set_full_state(state)
    return obj


class PlainStateMixin:
    """``__reduce_ex__`` (pickle) keeps ``_full_state``; ``__getstate__`` (skops) is plain.

    Subclasses implement ``_full_state``/``_set_full_state`` (everything, for pickle)
    and ``__getstate__``/``__setstate__`` (plain data only, for skops).
    """

    def __reduce_ex__(self, protocol):
        return _restore, (type(self), self._full_state())


class NetStateMixin(PlainStateMixin):
    """Both ways of saving a ``TransferBase`` (see the module docstring).

    A skops state names what it keeps: parameters and private settings, and of the
    fitted attributes (``name_``) those in ``_SAVED_FITTED``. Those in
    ``_REBUILT_FITTED`` - torch objects, and what is derived from them - are rebuilt
    at the load from the backbone name and the saved weight arrays, as are the
    modules, criteria and optimizers skorch registers. A fitted attribute in
    neither list is an error when saving, never silently left out.
    """

    #: fitted attributes a skops state keeps as they are (plain data)
    _SAVED_FITTED = ("initialized_", "history_", "freeze_depth_", "n_features_in_",
                     "n_epochs_", "cache_used_", "cache_depth_", "head_warmup_loss_",
                     "target_mean_", "target_scale_", "n_outputs_",
                     # skorch's own bookkeeping, copied onto the instance when it is made
                     "prefixes_", "cuda_dependent_attributes_")
    #: fitted attributes a skops load rebuilds (torch objects and what holds them)
    _REBUILT_FITTED = ("module_", "criterion_", "optimizer_", "callbacks_", "virtual_params_",
                       "init_context_", "backbone_", "preprocessor_", "augment_",
                       "freeze_context_", "freezer_")

    def _full_state(self):
        state = super().__getstate__()  # skorch: torch objects go in one pickled blob
        state.pop("_fit", None)  # a fit's own state never outlives it (see _fit_state)
        return state

    def _rebuilt_fitted(self) -> set:
        registered = [*getattr(self, "_modules", ()), *getattr(self, "_criteria", ()),
                      *getattr(self, "_optimizers", ())]
        return set(self._REBUILT_FITTED) | {name + "_" for name in registered}

    def __getstate__(self):
        """Plain data only (what skops stores): parameters, arrays, the history."""
        params = set(self.get_params(deep=False))
        rebuilt = self._rebuilt_fitted()
        state = {}
        for key, value in self.__dict__.items():
            fitted = key.endswith("_") and not key.startswith("_") and key not in params
            if key == "_fit" or key in rebuilt:
                continue
            if fitted and key not in self._SAVED_FITTED:
                raise TypeError(f"{type(self).__name__} cannot save its fitted attribute "
                                f"{key!r} in a plain (skops) state: it is in neither "
                                f"_SAVED_FITTED nor _REBUILT_FITTED")
            state[key] = value
        history = getattr(self, "history_", None)
        state["history_"] = None if history is None else [dict(row) for row in history]
        if getattr(self, "initialized_", False) and hasattr(self, "module_"):
            state["_network_arrays"] = module_arrays(self.module_)
            state["_backbone_meta"] = backbone_meta(self.backbone_)
        return state

    def __setstate__(self, state):
        """Rebuild from :meth:`__getstate__`'s plain data (a skops load)."""
        from skorch.history import History

        from ._common import preprocessor_for
        from ._fit_state import FitState
        from ._random import seeded

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
        # the saved head is trained already: no initial head, so no warm-up
        self._fit = FitState(architecture_source(self), None, None)
        try:
            with self._on_device(), seeded(0):
                self.initialize()
        finally:
            self.weights = weights
            vars(self).pop("_fit", None)
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
        from ._common import resolve_device

        requested = state.get("device")
        if requested == "auto":
            state["device"] = resolve_device("auto")
        super().__setstate__(state)
        # skorch may leave a torch.device after mapping CUDA -> CPU; keep params plain
        self.device = "auto" if requested == "auto" else str(self.device)


def module_arrays(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A module's state dict as CPU numpy arrays (skops stores them as .npy files)."""
    out = {}
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        out[name] = tensor.numpy().copy()
    return out


def load_module_arrays(module: torch.nn.Module, arrays: dict, what: str) -> None:
    """Copy ``arrays`` (from :func:`module_arrays`) into ``module``, strictly."""
    if not isinstance(arrays, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in arrays.items()):
        raise TypeError(f"the saved weights of {what} are not a dict of numpy arrays")
    current = module.state_dict()
    tensors = {}
    for name, array in arrays.items():
        if name in current:
            tensors[name] = torch.from_numpy(np.ascontiguousarray(array)).to(current[name].dtype)
    missing = sorted(set(current) - set(arrays))
    unexpected = sorted(set(arrays) - set(current))
    if missing or unexpected:
        raise ValueError(f"the saved weights do not fit the rebuilt {what}: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}. Was it saved with "
                         f"another version of the backbone?")
    module.load_state_dict(tensors)


def backbone_meta(backbone) -> dict:
    """What a skops state keeps of a built backbone besides its arrays: the weights'
    name and the image preprocessing (which pretrained weights may define). A text
    backbone's tokenizer is code, not data: the rebuild from the backbone name brings it."""
    import dataclasses

    from .backbones import Preprocessing

    preprocessing = backbone.preprocessing
    return {"weights": backbone.weights,
            "preprocessing": dataclasses.asdict(preprocessing)
            if isinstance(preprocessing, Preprocessing) else None}


def architecture_source(estimator):
    """An empty input of the kind ``estimator`` was fitted on, to rebuild its network
    from the backbone name at a skops load (no data is read)."""
    from ._data import ImageInput, VectorInput
    from ._text import TextInput
    from .backbones import declared_input_kind

    if hasattr(estimator, "n_features_in_"):
        return VectorInput(np.zeros((1, estimator.n_features_in_), np.float32))
    kind = declared_input_kind(estimator.backbone)
    if kind == "text":
        return TextInput([])
    if kind == "audio":
        from ._audio import AudioInput

        return AudioInput([], "waveform")
    return ImageInput([], "pil")


def restore_backbone_meta(backbone, meta: dict) -> None:
    """Put :func:`backbone_meta`'s record back on a backbone rebuilt without weights."""
    from .backbones import Preprocessing

    backbone.weights = meta["weights"]
    if meta["preprocessing"] is not None:
        backbone.preprocessing = Preprocessing(**meta["preprocessing"])
