"""Data-loader settings that fit the machine: how many decoding workers, pinned memory.

``num_workers="auto"`` decodes image *files* in worker processes: decoding a
camera JPEG costs tens of milliseconds, more than the network's forward pass per
image on a GPU and a good part of it on a CPU. In-memory inputs (arrays, PIL
images, vectors, texts, cached activations) stay in the main process, where a
worker would only add the cost of shipping each sample through shared memory.
"""

from __future__ import annotations

import math
import numbers
import os

from torch.utils.data import Subset

__all__ = ["AUTO_MAX_WORKERS", "available_cpus", "check_num_workers", "resolve_num_workers",
           "loader_options", "dataset_source"]

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


def resolve_num_workers(num_workers, source, batch_size: int) -> int:
    """The worker count for reading ``source`` in batches of ``batch_size``.

    An int is used as given. ``"auto"``: for image files, ``min(cores,
    AUTO_MAX_WORKERS, number of batches)``, and 0 when that is 1 (one batch is
    decoded no faster by one worker than by the main process); for any other
    input, 0.
    """
    check_num_workers(num_workers)
    if num_workers != "auto":
        return int(num_workers)
    if getattr(source, "form", None) != "paths":
        return 0
    n_batches = math.ceil(len(source) / max(1, int(batch_size)))
    workers = min(available_cpus(), AUTO_MAX_WORKERS, n_batches)
    return workers if workers > 1 else 0


def loader_options(num_workers: int, device) -> dict:
    """``pin_memory`` for CUDA, ``persistent_workers`` (kept across epochs) with workers."""
    options = {"pin_memory": str(device).startswith("cuda")}
    if num_workers > 0:
        options["persistent_workers"] = True
    return options
