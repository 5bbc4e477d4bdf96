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

__all__ = ["PlainStateMixin", "module_arrays", "load_module_arrays", "backbone_meta",
           "restore_backbone_meta", "architecture_source"]


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
