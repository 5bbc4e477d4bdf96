"""Per-fit randomness: the same ``random_state`` gives the same model in threads too.

torch draws initialisation, dropout and most augmentations from one global
generator per process (per device on CUDA). Reseeding it around a whole fit, as
``torch.manual_seed`` does, is not thread-safe: two fits running at once (a
``GridSearchCV(n_jobs=2)`` under joblib's threading backend) draw from it in an
interleaved order and end up with different models. So each fit owns its random
streams, :class:`FitRandomness`, derived from ``random_state``:

* **data-loader shuffling** comes from a private ``torch.Generator`` handed to
  the loader's ``RandomSampler``, and **loader-worker seeds** from a second one
  handed to the ``DataLoader``, so neither touches the global generator. Two,
  not one: a loader draws worker seeds once per epoch without workers but once
  per fit with persistent workers, so a shared generator would make the order
  of the samples depend on the number of workers;
* **network construction** (random init of the backbone and the new head),
  **dropout** in each training forward pass, and **augmentation** of each sample
  in the main process still need the global generator, because
  ``nn.Module.__init__``, ``nn.Dropout`` and torchvision's transforms take no
  generator argument. Those short sections run under one process-wide lock,
  :data:`RNG_LOCK`, with the global state saved, seeded from the fit's own stream
  and restored (``torch.random.fork_rng``). Concurrent fits therefore take turns
  for their training forward passes only; backward passes, data loading,
  prediction and the frozen-prefix cache run in parallel.

Inside a data-loader *worker process* the global generator belongs to that worker
and torch has already seeded it from the fit's worker generator, so augmentation
there runs without the lock. Code outside sktransfer that draws from torch's
global generator in another thread while a fit runs is not covered.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import torch

__all__ = ["RNG_LOCK", "seed_from", "seeded", "FitRandomness"]

#: held while torch's global generator is seeded for one fit's draws
RNG_LOCK = threading.RLock()


def seed_from(random_state) -> int | None:
    """An int seed from ``random_state`` (None stays None)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    raise ValueError(f"random_state must be None, an int or a numpy RandomState; got "
                     f"{random_state!r}")


def _cuda_devices(device) -> list[int]:
    if device is None or not torch.cuda.is_available():
        return []
    dev = torch.device(device)
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


@contextlib.contextmanager
def _global_seed(seed: int, devices):
    with RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def seeded(random_state, device=None):
    """Draw from torch's global generator seeded with ``random_state``, then restore it.

    Holds :data:`RNG_LOCK` for the duration, so keep the body short (building a
    network). ``random_state=None`` still takes the lock, so that a concurrent
    seeded section cannot see this one's draws.
    """
    seed = seed_from(random_state)
    if seed is None:
        with RNG_LOCK:
            yield
        return
    with _global_seed(seed, _cuda_devices(device)):
        yield


class FitRandomness:
    """The random streams of one fit: init, shuffling, dropout, augmentation.

    Parameters
    ----------
    random_state : None, int or numpy RandomState
        None draws the root seed from torch's global generator (so
        ``torch.manual_seed`` before ``fit`` still makes an unseeded fit repeatable).
    device : str
        The device the fit trains on (its CUDA generator is seeded too).
    resume_epoch : int
        Epochs already trained; a continued fit (``partial_fit``, ``warm_start``)
        gets streams of its own instead of repeating the first fit's.
    """

    def __init__(self, random_state, device="cpu", resume_epoch: int = 0):
        seed = seed_from(random_state)
        if seed is None:
            with RNG_LOCK:
                seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        init, shuffle, dropout, augment = np.random.SeedSequence(
            [seed, int(resume_epoch)]).spawn(4)
        self._devices = _cuda_devices(device)
        self.init_seed = _as_seed(init)
        self.loader_generator = torch.Generator().manual_seed(_as_seed(shuffle))
        (workers,) = shuffle.spawn(1)
        self.worker_generator = torch.Generator().manual_seed(_as_seed(workers))
        self._dropout = np.random.default_rng(dropout)
        self._augment = np.random.default_rng(augment)

    def init(self):
        """Context for building the network (random initialisation)."""
        return _global_seed(self.init_seed, self._devices)

    def training_step(self):
        """Context for one training forward pass (dropout masks)."""
        return _global_seed(int(self._dropout.integers(2**62)), self._devices)

    def wrap_augment(self, augment):
        """``augment`` drawing from this fit's stream (None stays None)."""
        return None if augment is None else _SeededAugment(augment, self._augment)


def _as_seed(sequence: np.random.SeedSequence) -> int:
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(2))


class _SeededAugment:
    """An augmentation whose global-generator draws come from one fit's stream."""

    def __init__(self, augment, rng: np.random.Generator):
        self.augment = augment
        self.rng = rng

    def __call__(self, x):
        if torch.utils.data.get_worker_info() is not None:
            # a loader worker process: its global generator is its own, seeded by torch
            # from the fit's worker generator
            return self.augment(x)
        with _global_seed(int(self.rng.integers(2**62)), []):
            return self.augment(x)
