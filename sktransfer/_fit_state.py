"""What one call to ``fit`` / ``partial_fit`` of a ``TransferBase`` knows while it runs.

A :class:`FitState` is made at the start of the call, held as ``net._fit`` and
dropped at its end, whether the fit succeeds or raises (compare scikit-learn's
``_fit_context``). Nothing in it outlives the call: it is never pickled or saved,
and ``net._fit is None`` means no fit is running (skorch's hooks - ``get_dataset``,
``get_iterator``, ``infer``, ``on_epoch_begin`` - are also called by prediction).
:func:`restored_on_error` puts the estimator back as it was when a fit raises.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses

__all__ = ["FitState", "restored_on_error"]


@dataclasses.dataclass
class FitState:
    """The running fit's data and the helpers it made.

    Attributes
    ----------
    source : the validated training input (``ImageInput``, ``VectorInput``, ...)
    sample_weight : ndarray or None
        Checked sample weights of ``source``.
    rng : FitRandomness
        The fit's random streams (initialisation, shuffling, augmentation, dropout).
    cached_fit : CachedFit or None
        What each epoch trains on (set by ``fit_loop``).
    initial_head : list of tensors or None
        The head's parameters as initialised in this fit: the head warm-up runs only
        while the head still holds them.
    epochs_before : int
        Epochs in the history when this call began training (a strategy's epoch
        counts from 0 in every call).
    """

    source: object
    sample_weight: object
    rng: object
    cached_fit: object = None
    initial_head: list | None = None
    epochs_before: int = 0


@contextlib.contextmanager
def restored_on_error(net, keep_weights: bool):
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
