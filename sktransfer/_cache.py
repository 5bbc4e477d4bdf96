"""Frozen-prefix activation cache, shared by every estimator in the process.

When stages ``0..depth-1`` of a network are frozen and evaluated in eval mode, and
the inputs are deterministic, their output is a pure function of (sample,
weights of those stages, preprocessing). The cache stores it *per sample* and
per stage depth, keyed by fingerprints of all three, so

* every epoch of one fit reuses it (the main win);
* grid-search candidates and cross-validation folds that see the same samples
  and the same frozen weights reuse it, even though each fold is a different
  subset;
* a deeper prefix is derived from a shallower one already cached (``depth=3`` starts
  from the stored output of stage 1 instead of from pixels).

Entries are evicted least-recently-used once the total passes the budget. The
budget is that of the latest fit (``cache_memory``); :func:`clear_caches`
releases everything.

A file's key is its absolute path (as bytes, so any file name works) with its
size, modification time, inode, device and status-change time: copying over a
file with ``cp -p`` / ``rsync -t`` / ``tar`` keeps size and mtime but not the
inode (a new file) or ctime (rewritten in place), which only the kernel sets.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections import OrderedDict

import numpy as np
import torch

from ._data._decode import orientation as _orientation
from ._bn_fold import _FOLDED

__all__ = ["LRUCache", "ACTIVATIONS", "FEATURES", "sample_keys", "data_fingerprint",
           "stage_fingerprints", "clear_caches", "prefix_activations", "activation_bytes"]


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
    if form == "waveform":
        return [_digest(b"waveform", wave.data) for wave in items]
    if form == "paths":
        return [_file_key(p) for p in items]
    return [_digest(f"{img.mode}{img.size}{_orientation(img)}".encode(), img.tobytes())
            for img in items]


def _file_key(path) -> bytes:
    st = os.stat(path)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    return _digest(os.fsencode(os.path.abspath(path)), b"\0", repr(stamp).encode())


def data_fingerprint(source) -> str:
    """One hash for a whole input: its form and every sample's key, in order."""
    return _digest(source.form.encode(), *sample_keys(source)).hex()


def stage_fingerprints(stages) -> list[bytes]:
    """A running fingerprint of the weights of stages ``0..i`` for every ``i``."""
    running = b"prefix"
    out = []
    for stage in stages:
        running = _digest(running, _stage_digest(stage))
        out.append(running)
    return out


#: stage -> (signature of its tensors, digest of its type and state), see _stage_digest
_STAGE_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stage_digest(stage) -> bytes:
    """Hash of a stage's type and state (parameters and buffers, names, dtypes, values).

    Hashing a large prefix costs ~0.1 s (resnet18), which a small ``predict`` call
    should not pay each time, so the hash is kept while every tensor of the stage
    is the same object, at the same address, with the same autograd version
    counter: an optimizer step, ``load_state_dict`` or any in-place operation
    bumps that counter. Writing through ``param.data`` bypasses it; call
    :func:`clear_caches` after changing weights that way.
    """
    tensors = stage.state_dict(keep_vars=True)
    signature = tuple((name, id(t), t.data_ptr(), t._version) for name, t in tensors.items())
    memo = _STAGE_DIGESTS.get(stage)
    if memo is not None and memo[0] == signature:
        return memo[1]
    h = hashlib.blake2b(type(stage).__name__.encode(), digest_size=16)
    for name, t in tensors.items():
        h.update(name.encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data
                 if t.numel() else b"")
    digest = h.digest()
    _STAGE_DIGESTS[stage] = (signature, digest)
    return digest


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
            self._evict()

    def set_max_bytes(self, max_bytes: int) -> None:
        """Change the budget, evicting least-recently-used entries at once if it shrank."""
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()

    def _evict(self) -> None:
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
    """Release the memory of every cached activation and feature in this process.

    ``TransferClassifier`` keeps frozen-prefix activations (up to the latest
    fit's ``cache_memory``) and ``FeatureExtractor`` keeps recent features, so
    that grid-search candidates, folds and repeated ``transform`` calls share
    them. Call this when you are done with that data; later fits and
    transforms simply recompute what they need.

    Examples
    --------
    >>> import sktransfer
    >>> sktransfer.clear_caches()
    """
    ACTIVATIONS.clear()
    FEATURES.clear()
    _STAGE_DIGESTS.clear()
    _FOLDED.clear()


def activation_bytes(runner, source, depth: int) -> int:
    """Bytes the outputs of stages ``0..depth-1`` take for every sample of ``source``
    (``runner``: a :class:`~sktransfer._stages.StageRunner`; see its ``output_bytes``)."""
    from ._data import SampleDataset

    return runner.output_bytes(SampleDataset(source, None, runner.preprocessor), depth)


def _stages_label(n_blocks: int, depth: int) -> str:
    """What a fill of stages ``0..depth-1`` computes, in words: stage ``n_blocks`` is the
    pool, not a block."""
    blocks = min(depth, n_blocks)
    names = "block 0" if blocks == 1 else f"blocks 0..{blocks - 1}"
    if depth > n_blocks:
        return f"caching pooled features ({names} and the pool)"
    return f"caching frozen {names}"


def _padding(runner, preprocessor, n_todo: int) -> int:
    """How many repeats of the last sample make every batch of a fill of ``n_todo``
    samples exactly ``runner.batch_size`` long.

    CPU and GPU kernels pick their algorithm by the batch's size, so the same image
    gives outputs a few float bits apart in a batch of 32 and in a batch of 7. Which
    samples a fill computes depends on what the cache already holds (another fold,
    another candidate, another task fitted earlier in the process), and a small
    fine-tune amplifies those bits into different models. With every batch the same
    size, a cached row depends on its sample alone (and the batch size, which is in
    the key). Texts are left as they come: their batches are padded to the longest
    text, so their shape varies anyway; so is ``batch_size=-1`` (one batch of
    whatever is missing).
    """
    from ._text import TextPreprocessor

    if runner.batch_size == -1 or isinstance(preprocessor, TextPreprocessor):
        return 0
    return -n_todo % runner.batch_size


def prefix_activations(runner, source, depth: int, context: str, *, verbose: bool = False,
                       store: bool = True) -> list[torch.Tensor]:
    """Outputs of stages ``0..depth-1`` for every sample of ``source``, via :data:`ACTIVATIONS`.

    ``runner`` (a :class:`~sktransfer._stages.StageRunner`) holds the network, its
    preprocessing, device, batch size and decoding workers; ``source`` gives the
    per-sample keys and the inputs; ``context`` names what else the output
    depends on (backbone, preprocessing; the runner's batch size, autocast and device
    kind are added here). Samples already cached are looked up;
    for the others, the deepest shallower prefix cached for all of them is the
    starting point, so a deeper candidate reuses a shallower one's work.
    ``store=False`` computes without filling the cache (``cache=False``). Rows are
    stored and returned one per sample, unpadded: the preprocessor pads a batch of
    texts and splits the output again (images are simply stacked). Every batch of
    a fill has the runner's batch size (:func:`_padding`), so a row does not depend on
    which other samples were missing from the cache.
    """
    from ._console import progress_bar
    from ._data import SampleDataset, collate_samples, split_batch

    module, preprocessor = runner.module, runner.preprocessor
    # what else a row's bits depend on: the batch size it was computed in (see
    # _padding), bfloat16 autocast, and the kind of device
    context = (context, runner.batch_size, bool(runner.amp), torch.device(runner.device).type)
    prints = stage_fingerprints(module.stages[:depth])
    keys = sample_keys(source)
    rows: list[torch.Tensor | None] = [ACTIVATIONS.get((context, prints[depth - 1], key))
                                       for key in keys] if store else [None] * len(keys)
    todo = [i for i, r in enumerate(rows) if r is None]
    ACTIVATIONS.hits += len(keys) - len(todo)
    ACTIVATIONS.misses += len(todo)
    if not todo:
        return rows
    batch_size = runner.batch_for(len(todo))  # the loader below batches the same way
    fill = todo + [todo[-1]] * _padding(runner, preprocessor, len(todo))
    start, inputs = 0, None
    for j in range(depth - 1, 0, -1) if store else ():
        found = [ACTIVATIONS.get((context, prints[j - 1], keys[i])) for i in fill]
        if all(f is not None for f in found):
            start, inputs = j, found
            break
    if inputs is None:
        batches = runner.loader(SampleDataset(source, None, preprocessor, pixels=True), fill)
    else:
        batches = (collate_samples(inputs[lo:lo + batch_size], preprocessor)
                   for lo in range(0, len(fill), batch_size))
    bar = progress_bar(len(fill), _stages_label(module.n_blocks, depth), verbose)

    def keep(i, out):
        idx = todo[i * batch_size:(i + 1) * batch_size]  # the padding rows are dropped
        for index, row in zip(idx, split_batch(out, preprocessor)):
            rows[index] = row.clone()
            if store:
                ACTIVATIONS.put((context, prints[depth - 1], keys[index]), rows[index])

    try:
        runner.run(batches, depth, start, each=keep, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    return rows
