"""Frozen-prefix activation cache, shared by every estimator in the process.

When stages ``0..k-1`` of a network are frozen and evaluated in eval mode, and
the inputs are deterministic, their output is a pure function of (sample,
weights of those stages, preprocessing). The cache stores it *per sample* and
per stage depth, keyed by fingerprints of all three, so

* every epoch of one fit reuses it (the main win);
* grid-search candidates and cross-validation folds that see the same samples
  and the same frozen weights reuse it, even though each fold is a different
  subset;
* a deeper prefix is derived from a shallower one already cached (``k=3`` starts
  from the stored output of stage 1 instead of from pixels).

Entries are evicted least-recently-used once the total passes the budget.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["LRUCache", "ACTIVATIONS", "FEATURES", "sample_keys", "data_fingerprint",
           "stage_fingerprints", "clear_caches"]


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p)
    return h.digest()


def sample_keys(source) -> list[bytes]:
    """One fingerprint per sample of an :class:`~sktransfer._data.ImageInput`/``VectorInput``."""
    form = source.form
    items = source.items
    if form == "array":
        arr = items.array if hasattr(items, "array") else items
        meta = f"{arr.dtype}{arr.shape[1:]}{getattr(items, 'layout', '')}".encode()
        return [_digest(meta, np.ascontiguousarray(arr[i]).data) for i in range(len(arr))]
    if form == "vector":
        meta = f"{items.dtype}{items.shape[1:]}".encode()
        return [_digest(meta, np.ascontiguousarray(row).data) for row in items]
    if form == "text":
        return [_digest(b"text", t.encode("utf-8", "surrogatepass")) for t in items]
    if form == "paths":
        keys = []
        for p in items:
            st = os.stat(p)
            keys.append(_digest(f"{os.path.abspath(p)}\0{st.st_mtime_ns}\0{st.st_size}".encode()))
        return keys
    return [_digest(f"{img.mode}{img.size}".encode(), img.tobytes()) for img in items]


def data_fingerprint(source) -> str:
    """One hash for a whole input: its form and every sample's key, in order."""
    return _digest(source.form.encode(), *sample_keys(source)).hex()


def stage_fingerprints(stages) -> list[bytes]:
    """A running fingerprint of the weights of stages ``0..i`` for every ``i``."""
    running = b"prefix"
    out = []
    for stage in stages:
        h = hashlib.blake2b(running, digest_size=16)
        h.update(type(stage).__name__.encode())
        for name, t in stage.state_dict().items():
            h.update(name.encode())
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data
                     if t.numel() else b"")
        running = h.digest()
        out.append(running)
    return out


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.numel()
    return int(value.nbytes)


class LRUCache:
    """Thread-safe least-recently-used store of tensors or arrays, bounded in bytes
    (and optionally in entries)."""

    def __init__(self, max_bytes: int, max_entries: int | None = None):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._store: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key):
        with self._lock:
            value = self._store.get(key)
            if value is not None:
                self._store.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            if key in self._store:
                return
            self._store[key] = value
            self._bytes += _nbytes(value)
            while self._store and (self._bytes > self.max_bytes or (
                    self.max_entries is not None and len(self._store) > self.max_entries)):
                _, old = self._store.popitem(last=False)
                self._bytes -= _nbytes(old)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._bytes = 0
            self.hits = self.misses = 0


#: (context, prefix fingerprint, sample key) -> activation tensor on the CPU
ACTIVATIONS = LRUCache(max_bytes=2 << 30)
#: (model fingerprint, data fingerprint) -> FeatureExtractor output
FEATURES = LRUCache(max_bytes=1 << 30, max_entries=32)


def clear_caches() -> None:
    """Drop every cached activation and feature of this process."""
    ACTIVATIONS.clear()
    FEATURES.clear()
