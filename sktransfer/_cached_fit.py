"""Training on cached frozen-prefix activations: a fit's data, epoch by epoch.

:func:`~sktransfer._cache.prefix_activations` keeps the output of frozen
stages one row per sample in the process-wide cache, so that folds and
grid-search candidates share them. A fit then reads those rows every epoch, so
it gathers them once into :class:`Activations`: one tensor, samples first and
feature maps channels-last (the layout the network runs in), from which a
batch is a single indexing copy - no per-sample dataset call, no
``torch.stack`` of hundreds of rows, no layout conversion per batch. Rows of
different lengths (texts) stay a list and are padded per batch as before.

:class:`CachedFit` decides what each epoch of one fit trains on:

* the stages a strategy keeps frozen for the whole fit (``frozen_prefix``) are
  cached once and the network starts after them (``_stages.enter_at``);
* a strategy that freezes more for some epochs (``frozen_prefix_at``: the
  head-only epochs of ``lp_ft`` and ``gradual``) gets those epochs trained on
  the cached output of the deeper prefix, computed when the phase starts; the
  next epoch that freezes less switches back. The data set, its train /
  validation split and the loaders stay those of one skorch fit (shuffling
  draws from the fit's generator as before, the history and the learning-rate
  schedule run on); only what an index of the data set returns changes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ._cache import ACTIVATIONS, activation_bytes, prefix_activations
from ._data import PreparedBatch, TextPreprocessor, collate_samples
from ._stages import enter_at
from .freezing import checked_frozen_prefix, checked_frozen_prefix_at, declares_epoch_prefixes

__all__ = ["Activations", "ActivationDataset", "CachedFit"]


class Activations:
    """The output of a frozen prefix for every sample of a fit, ready to batch.

    Rows that a batch simply stacks become one tensor (feature maps
    channels-last); text rows, which a batch pads and masks (``preprocessor``),
    stay a list, whatever their lengths.
    """

    def __init__(self, rows: list[torch.Tensor], preprocessor=None):
        self.preprocessor = preprocessor
        self._rows: list | None = None
        self._data: torch.Tensor | None = None
        # a text batch of pooled vectors is a plain stack too (see TextPreprocessor.collate)
        stacked = not isinstance(preprocessor, TextPreprocessor) or (rows and rows[0].dim() == 1)
        if rows and stacked and len({tuple(r.shape) for r in rows}) == 1:
            data = torch.stack(rows)
            self._data = (data.contiguous(memory_format=torch.channels_last)
                          if data.dim() == 4 else data)
        else:
            self._rows = list(rows)

    def __len__(self) -> int:
        return len(self._rows) if self._data is None else len(self._data)

    def row(self, index: int) -> torch.Tensor:
        return self._rows[index] if self._data is None else self._data[index]

    def batch(self, indices) -> torch.Tensor:
        """Rows ``indices``, in that order, as one batch."""
        if self._data is None:
            return collate_samples([self._rows[i] for i in indices], self.preprocessor)
        return self._data[torch.as_tensor(indices, dtype=torch.long)]


class ActivationDataset(Dataset):
    """Cached activations with the fit's encoded targets (and sample weights).

    Items are those of :class:`~sktransfer._data.SampleDataset` (``(x, y)``, x a
    ``{"x", "sample_weight"}`` dict with weights); a data loader asking for a
    batch of indices (``__getitems__``) gets the whole batch at once, a
    :class:`~sktransfer._data.PreparedBatch`.
    """

    def __init__(self, activations: Activations, y=None, sample_weight=None):
        self.activations = activations
        n = len(activations)
        # copies: the loader's batches never share memory with the caller's arrays
        self._y = torch.full((n,), -1) if y is None else torch.from_numpy(np.array(y))
        self._weights = None if sample_weight is None else torch.from_numpy(
            np.array(sample_weight))

    def __len__(self) -> int:
        return len(self.activations)

    def __getitem__(self, index):
        index = int(index)
        x = self.activations.row(index)
        if self._weights is not None:
            x = {"x": x, "sample_weight": self._weights[index]}
        return x, self._y[index]

    def __getitems__(self, indices) -> PreparedBatch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.activations.batch(indices)
        if self._weights is not None:
            x = {"x": x, "sample_weight": self._weights[idx]}
        return PreparedBatch(x, self._y[idx])


class _EpochInputs(Dataset):
    """A fit's training data whose samples come from ``current``, switched between epochs."""

    def __init__(self, base: Dataset):
        self.base = self.current = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        return self.current[index]

    def __getitems__(self, indices):
        batched = getattr(self.current, "__getitems__", None)
        return batched(indices) if batched is not None else [self.current[i] for i in indices]


class CachedFit:
    """What each epoch of one fit trains on.

    Built at the start of ``fit_loop`` (:meth:`for_net`): checks ``cache``,
    computes the whole-fit prefix (``depth`` stages, 0 = none), and
    :meth:`dataset` is the data set to hand skorch. :meth:`begin_epoch` (after
    the strategy's ``on_epoch_begin``) switches to a deeper cached prefix for the
    epochs whose ``frozen_prefix_at`` asks for one. Use it as a context manager
    around the training: on exit the network takes raw inputs again.

    Parameters
    ----------
    runner : StageRunner
        Runs the network's stages over the training inputs (see ``_stages``).
    strategy, context : the fitted freezing strategy and its ``FreezeContext``
    source, y : the training input and the encoded target
    make_dataset : callable
        ``make_dataset(x, y)``: the fit's data set of inputs or activations (the
        estimator's ``get_dataset``, which adds sample weights).
    cache, cache_memory : the estimator's parameters
    cache_context : str
        What else the activations depend on (backbone, preprocessing; see ``_cache``).
    augmenting : bool
        Whether the training inputs are randomly augmented.
    persistent_workers : bool
        Whether the user asked for persistent data-loader workers that decode.
    verbose : bool
    """

    def __init__(self, runner, strategy, context, source, y, *, make_dataset, cache,
                 cache_memory, cache_context: str, augmenting: bool,
                 persistent_workers: bool, verbose: bool = False):
        self.runner, self.strategy, self.context = runner, strategy, context
        self.source, self.y = source, y
        self._make_dataset = make_dataset
        self.cache, self.cache_memory = cache, cache_memory
        self._cache_context, self._verbose = cache_context, verbose
        self._bytes: dict[int, int] = {}
        self.frozen = self.depth = 0  # the strategy's whole-fit prefix; the cached one
        self.phased = False
        self.activations: Activations | None = None
        self._inputs: _EpochInputs | None = None
        self._base: Dataset | None = None
        self._plan(augmenting, persistent_workers)
        self.current = self.depth
        self.used = self.depth > 0

    @classmethod
    def for_net(cls, net, source, y) -> "CachedFit":
        """The :class:`CachedFit` of a fit of ``net`` (a ``TransferBase``) on ``source``."""
        runner = net._stage_runner(source)
        loader = net.get_params_for("iterator_train")
        # only persistence the user asked for: the default is dropped for a phased fit
        # (see _stages.skorch_loader_defaults), whose data set changes between epochs
        persistent = runner.num_workers > 0 and bool(loader.get("persistent_workers"))
        return cls(runner, net.freezer_, net.freeze_context_, source, y,
                   make_dataset=net.get_dataset, cache=net.cache,
                   cache_memory=net.cache_memory, cache_context=net._activation_context(),
                   augmenting=net.augment_ is not None, persistent_workers=persistent,
                   verbose=net.verbose > 0)

    # -- planning -------------------------------------------------------------------
    def _plan(self, augmenting: bool, persistent: bool) -> None:
        ACTIVATIONS.set_max_bytes(self.cache_memory)  # the latest fit's budget, up or down
        if self.cache is False:
            return
        self.frozen = checked_frozen_prefix(self.strategy, self.context)
        per_epoch = declares_epoch_prefixes(self.strategy)
        if augmenting:
            return self._refuse("random augmentation makes the frozen output differ every "
                                "epoch")
        if per_epoch and persistent and self.frozen == 0:
            return self._refuse("the strategy freezes stages for some epochs only, and "
                                "persistent data-loader workers would keep the first epoch's "
                                "input; set iterator_train__persistent_workers=False")
        if self.frozen <= 0 and not per_epoch:
            return self._refuse("no stage is frozen for the whole fit")
        self.phased = per_epoch and not persistent
        if self.frozen > 0 and self._fits(self.frozen):
            self.depth = self.frozen
            self.activations = Activations(self._rows(self.depth), self.runner.preprocessor)

    def _rows(self, depth: int) -> list:
        return prefix_activations(self.runner, self.source, depth, self._cache_context,
                                  verbose=self._verbose)

    def _fits(self, depth: int) -> bool:
        """Whether the activations of stages ``0..depth-1`` fit ``cache_memory`` (or raise)."""
        if depth not in self._bytes:
            self._bytes[depth] = activation_bytes(self.runner, self.source, depth)
        if self._bytes[depth] <= self.cache_memory:
            return True
        self._refuse(f"the activations need {self._bytes[depth] / 2**20:.0f} MiB, more than "
                     f"cache_memory={self.cache_memory / 2**20:.0f} MiB")
        return False

    def _refuse(self, reason: str) -> None:
        if self.cache is True:
            raise ValueError(f"cache=True but caching is not possible: {reason}")

    # -- the data skorch trains on -------------------------------------------------------
    def dataset(self):
        """What to pass to skorch's ``fit_loop`` (the raw source when nothing is cached)."""
        if self.activations is None and not self.phased:
            return self.source
        self._base = self._make_dataset(self.activations if self.activations is not None
                                        else self.source, self.y)
        if not self.phased:
            return self._base
        self._inputs = _EpochInputs(self._base)
        return self._inputs

    def begin_epoch(self, epoch: int) -> None:
        """Train ``epoch`` on the deepest cached prefix that its strategy keeps frozen."""
        if not self.phased:
            return
        asked = checked_frozen_prefix_at(self.strategy, self.context, epoch, self.frozen)
        target = asked if asked > self.depth and self._fits(asked) else self.depth
        if target == self.current:
            return
        if target == self.depth:
            self._inputs.current = self._base
        else:
            rows = Activations(self._rows(target), self.runner.preprocessor)
            self._inputs.current = self._make_dataset(rows, self.y)
            self.used = True
        self.current = target
        enter_at(self.runner.module, target)

    def __enter__(self):
        enter_at(self.runner.module, self.current)
        return self

    def __exit__(self, *exc):
        enter_at(self.runner.module, 0)
        return False
