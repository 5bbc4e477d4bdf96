"""Running stages ``start..stop`` of a network over a source: the one stage runner and
the one data-loader builder.

A network here is a sequence of stages (a backbone's blocks, then its pool; see
``TransferNet``). Four jobs run a slice of it over data outside skorch's training
loop - filling the frozen-prefix cache (``_cache``), sizing that cache,
``FeatureExtractor.transform`` and ``TransferBase.transform`` - and all of them ask
a :class:`StageRunner`. Every ``DataLoader`` the library makes comes from
:func:`data_loader`, or from skorch's ``get_iterator`` with the defaults of
:func:`skorch_loader_defaults`; both take their worker and ``pin_memory`` settings
from :func:`loader_options`, the one loader policy.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, Subset

from ._data import (PairCollate, SampleDataset, dataset_source, network_input,
                    resolve_num_workers, torch_ready)
from ._data._loader import loader_options
from ._text import TextInput

__all__ = ["StageRunner", "data_loader", "loader_options", "skorch_loader_defaults",
           "enter_at", "entering_at", "autocast"]


def data_loader(dataset, *, batch_size: int, num_workers: int = 0, device=None,
                collate_fn=None, persistent: bool = False, **kwargs) -> DataLoader:
    """A ``DataLoader`` under the loader policy (:func:`loader_options`), in order.

    It has a private generator: no loader draws from torch's global one (see
    ``_random``). ``device=None`` means the batches stay on the CPU (no pinning).
    """
    kwargs.setdefault("generator", torch.Generator())
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                      collate_fn=collate_fn,
                      **loader_options(num_workers, "cpu" if device is None else device,
                                       persistent=persistent), **kwargs)


def skorch_loader_defaults(net, dataset, training: bool, fit=None) -> dict:
    """skorch ``iterator_train__*`` / ``iterator_valid__*`` defaults for ``net``'s loaders.

    Shuffling and loader-worker seeds come from the fit's own generators (``fit``: the
    running :class:`~sktransfer._fit_state.FitState`); evaluation loaders get a private
    generator too, so no loader draws from torch's global one. Keys the user set
    (``net.iterator_train__shuffle=...``) are left out: theirs win.
    """
    prefix = "iterator_train__" if training else "iterator_valid__"
    set_by_user = vars(net)
    # texts are padded per batch (images: plain stacking)
    defaults = {prefix + "generator": torch.Generator(),
                prefix + "collate_fn": PairCollate(getattr(net, "preprocessor_", None))}
    rng = None if fit is None else fit.rng
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
        batch_size = set_by_user.get(prefix + "batch_size", net.batch_size)
        workers = defaults[prefix + "num_workers"] = resolve_num_workers(
            getattr(net, "num_workers", "auto"), dataset_source(dataset),
            len(dataset) if batch_size == -1 else batch_size)
    from ._common import resolve_device

    options = loader_options(workers, resolve_device(net.device))
    cached_fit = None if fit is None else fit.cached_fit
    if training and cached_fit is not None and cached_fit.phased:
        # what an index returns changes between epochs (see _cached_fit): workers kept
        # from the first epoch would go on returning that epoch's inputs
        options.pop("persistent_workers", None)
    for key, value in options.items():
        defaults[prefix + key] = value
    return {k: v for k, v in defaults.items() if k not in set_by_user}


def enter_at(module, stage: int) -> None:
    """The network takes its input at ``stage`` from now on (see ``TransferNet.start``):
    0 for raw inputs, ``k`` for the cached output of stages ``0..k-1``."""
    module.start = stage


@contextlib.contextmanager
def entering_at(module, stage: int):
    """:func:`enter_at` ``stage`` for the duration of the block, raw inputs after it."""
    enter_at(module, stage)
    try:
        yield
    finally:
        enter_at(module, 0)


def autocast(amp: bool, device):
    """bfloat16 autocast on CUDA when ``amp``; nothing otherwise."""
    if amp and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class StageRunner:
    """Runs stages ``start..stop`` of ``module`` over a source, in eval mode, no grad.

    Parameters
    ----------
    module : nn.Module
        A network with ``forward_prefix(x, stop, start)`` (``TransferNet``), or a
        module run whole (``FeatureExtractor``'s extracting network).
    preprocessor : the backbone's preprocessing (pads text batches, normalises pixels)
    device : where the network runs
    batch_size : int
        Samples per batch; -1 (skorch's "the whole set"): every sample of a
        source in one batch.
    num_workers : int
        Decoding processes of the loaders this runner builds.
    amp : bool
        bfloat16 autocast on CUDA.
    """

    def __init__(self, module, preprocessor, device, batch_size: int, num_workers: int = 0,
                 amp: bool = False):
        self.module = module
        self.preprocessor = preprocessor
        self.device = device
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.amp = amp

    def batch_for(self, n_samples: int) -> int:
        """The batch size for a source of ``n_samples``: ``batch_size``, or all of them
        for -1 (as skorch reads ``batch_size=-1``)."""
        return max(1, n_samples if self.batch_size == -1 else self.batch_size)

    # -- reading a source ------------------------------------------------------------
    def loader(self, samples, indices=None) -> DataLoader:
        """Batches of ``samples`` (a dataset of ``(x, y)``), or of ``samples[indices]``,
        in order, decoded by ``num_workers`` processes."""
        dataset = samples if indices is None else Subset(samples, indices)
        return data_loader(dataset, batch_size=self.batch_for(len(dataset)),
                           num_workers=self.num_workers,
                           device=self.device, collate_fn=PairCollate(self.preprocessor),
                           shuffle=False)

    def _array_batch(self, source, lo: int, size: int) -> torch.Tensor:
        """A batch straight from the array: uint8 -> float per batch, preprocessed at once."""
        items = source.items
        hi = min(lo + size, len(source))
        if source.form == "vector":
            return torch.from_numpy(np.asarray(items[lo:hi], dtype=np.float32))
        t = torch.from_numpy(torch_ready(items.array[lo:hi]))
        t = {"nhwc": lambda a: a.permute(0, 3, 1, 2), "nhw": lambda a: a[:, None],
             "nchw": lambda a: a}[items.layout](t)
        t = t.float().div_(255.0) if not t.is_floating_point() else t.float()
        return self.preprocessor(t)

    # -- running ---------------------------------------------------------------------
    def forward(self, x, stop=None, start: int = 0) -> torch.Tensor:
        """Stages ``start..stop-1`` on one collated CPU batch ``x`` (the caller holds
        eval and inference mode); the whole module when it has no ``forward_prefix``."""
        x = network_input(x, self.preprocessor, self.device)
        forward_prefix = getattr(self.module, "forward_prefix", None)
        with autocast(self.amp, self.device):
            if forward_prefix is not None:
                return forward_prefix(x, stop, start)
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.module(x)

    @contextlib.contextmanager
    def _evaluating(self):
        module = self.module
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            module.train(was_training)

    def run(self, batches, stop=None, start: int = 0, *, each=None, progress=None) -> list:
        """The CPU output of every batch of ``batches`` (``(x, y)`` pairs or plain ``x``).

        With ``each``, ``each(i, out)`` is called for batch ``i`` (inside inference
        mode) and nothing is collected.
        """
        outs = []
        with self._evaluating():
            for i, batch in enumerate(batches):
                x = batch[0] if isinstance(batch, (list, tuple)) else batch
                out = self.forward(x, stop, start).cpu()
                if each is not None:
                    each(i, out)
                else:
                    outs.append(out.float())
                if progress is not None:
                    progress.update(len(out))
        return outs

    def output_bytes(self, samples, stop: int) -> int:
        """Bytes the outputs of stages ``0..stop-1`` take for every sample of ``samples``.

        Measured on the first sample and multiplied: for texts, whose lengths vary,
        an estimate.
        """
        from ._data import collate_samples, split_batch

        batch = collate_samples([samples[0][0]], self.preprocessor)
        with self._evaluating():
            out = self.forward(batch, stop)
        (row,) = split_batch(out, self.preprocessor)
        return row.element_size() * row.numel() * len(samples)

    def features(self, source, stop=None, progress=None) -> np.ndarray:
        """Outputs for every sample of ``source``, in input order, as a float array.

        Texts are tokenised in batches of similar length (less padding); arrays
        read without workers are batched straight from the array; everything else
        goes through :meth:`loader`.
        """
        if isinstance(source, TextInput):
            pre = self.preprocessor
            ids = pre.encode(source.items)
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            size = self.batch_for(len(order))
            batches = (pre.collate([ids[i] for i in order[lo:lo + size]])
                       for lo in range(0, len(order), size))
            out = torch.cat(self.run(batches, stop, progress=progress)).numpy()
            result = np.empty_like(out)
            result[order] = out
            return result
        if source.form in ("array", "vector") and self.num_workers == 0:
            size = self.batch_for(len(source))
            batches = (self._array_batch(source, lo, size) for lo in range(0, len(source), size))
        else:
            batches = self.loader(SampleDataset(source, None, self.preprocessor, pixels=True))
        return torch.cat(self.run(batches, stop, progress=progress)).numpy()
