"""What one call to ``fit`` / ``partial_fit`` of a ``TransferBase`` knows while it runs.

A :class:`FitState` is made at the start of the call, held as ``net._fit`` and
dropped at its end, whether the fit succeeds or raises (compare scikit-learn's
``_fit_context``). Nothing in it outlives the call: it is never pickled or saved,
and ``net._fit is None`` means no fit is running (skorch's hooks - ``get_dataset``,
``get_iterator``, ``infer``, ``on_epoch_begin`` - are also called by prediction).
"""

from __future__ import annotations

import dataclasses

__all__ = ["FitState"]


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
