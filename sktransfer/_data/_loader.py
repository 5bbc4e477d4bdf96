"""Data-loader settings that fit the machine: how many decoding workers, pinned memory.

``num_workers="auto"`` decodes image *files* in worker processes: decoding a
camera JPEG costs tens of milliseconds, more than the network's forward pass per
image on a GPU and a good part of it on a CPU. In-memory inputs (arrays, PIL
images, vectors, texts, cached activations) stay in the main process, where a
worker would only add the cost of shipping each sample through shared memory.
"""

from __future__ import annotations

import math
import multiprocessing
import numbers
import os
import sys
import threading

from torch.utils.data import Subset

__all__ = ["AUTO_MAX_WORKERS", "available_cpus", "check_num_workers", "resolve_num_workers",
           "loader_options", "dataset_source", "worker_context"]

#: the most workers ``num_workers="auto"`` starts (decoding rarely scales further)
AUTO_MAX_WORKERS = 8


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_num_workers(num_workers, name: str = "num_workers") -> None:
    """``"auto"`` or an int >= 0, else a ``ValueError``/``TypeError`` saying so."""
    if isinstance(num_workers, str):
        if num_workers == "auto":
            return
        hint = " (did you mean 'auto'?)" if num_workers.strip().lower() == "auto" else ""
        raise ValueError(f"{name}={num_workers!r} is not understood{hint}; use 'auto' (worker "
                         f"processes for image files, none for in-memory data) or an int >= 0")
    if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral):
        raise TypeError(f"{name} must be 'auto' or an int >= 0, got "
                        f"{type(num_workers).__name__} {num_workers!r}")
    if num_workers < 0:
        raise ValueError(f"{name} must be 'auto' or an int >= 0, got {num_workers}")


def dataset_source(dataset):
    """The input (``ImageInput``, ...) behind a ``SampleDataset`` or a ``Subset`` of one."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "source", None)


def _in_worker_thread() -> bool:
    return threading.current_thread() is not threading.main_thread()


def resolve_num_workers(num_workers, source, batch_size: int) -> int:
    """The worker count for reading ``source`` in batches of ``batch_size``.

    An int is used as given. ``"auto"``: for image files, ``min(cores,
    AUTO_MAX_WORKERS, number of batches)``, and 0 when that is 1 (one batch is
    decoded no faster by one worker than by the main process); for any other
    input, 0. Also 0 when called from a thread other than the main one (joblib's
    threading backend, dask's worker threads): the threads are already the
    parallelism (decoding releases the GIL), and processes started from a
    thread must be spawned, which costs seconds of imports each.
    """
    check_num_workers(num_workers)
    if num_workers != "auto":
        return int(num_workers)
    if getattr(source, "form", None) != "paths" or _in_worker_thread():
        return 0
    batch_size = len(source) if batch_size == -1 else int(batch_size)  # -1: the whole set
    n_batches = math.ceil(len(source) / max(1, batch_size))
    workers = min(available_cpus(), AUTO_MAX_WORKERS, n_batches)
    return workers if workers > 1 else 0


def worker_context():
    """The multiprocessing context loader workers start in, named explicitly.

    A ``DataLoader`` left to itself starts workers with the process-wide default
    start method, and that is not always a plain one: joblib's loky workers (what
    ``GridSearchCV(n_jobs=2)`` runs its fits in) set it to ``"loky"``, whose
    ``Process`` a ``DataLoader`` cannot start (``'Process' object has no attribute
    'env'``); dask and Ray workers may set others. The platform's own default is
    named instead: ``"fork"`` on Linux (what a plain process uses, cheap: workers
    share the parent's pages), ``"spawn"`` elsewhere (macOS and Windows).
    From a thread other than the main one it is ``"spawn"`` everywhere: a fork
    copies only the calling thread, and a lock another thread holds at that
    moment (the allocator's, the import lock, a decoder's) stays held in the
    child for good: a hang seen with ``GridSearchCV(n_jobs=2)`` under joblib's
    threading backend.
    """
    if sys.platform.startswith("linux") and not _in_worker_thread():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def loader_options(num_workers: int, device, *, persistent: bool = True) -> dict:
    """Keyword arguments for every ``DataLoader`` the library builds: the one loader policy.

    ``pin_memory`` for CUDA; with workers, an explicit start method
    (:func:`worker_context`) and, when the loader is read more than once
    (``persistent``: the epochs of a fit), ``persistent_workers``.
    """
    options = {"pin_memory": str(device).startswith("cuda")}
    if num_workers > 0:
        options["multiprocessing_context"] = worker_context()
        if persistent:
            options["persistent_workers"] = True
    return options
