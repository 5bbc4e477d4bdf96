"""FeatureExtractor: images in, pretrained features out, for any sklearn model."""

from __future__ import annotations

import hashlib
import os
from numbers import Integral

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._cache import FEATURES, data_fingerprint, stage_fingerprints
from ._common import (check_source_kind, make_backbone, preprocessor_for, progress_bar,
                      read_input, resolve_device, seeded)
from ._bn_fold import folded
from ._constraints import Interval, StrOptions, check_params
from ._data import VectorInput, resolve_num_workers
from ._params import DEVICE, IMAGE_SIZE, NUM_WORKERS, WEIGHTS
from ._persist import (PlainStateMixin, architecture_source, backbone_meta, load_module_arrays,
                       module_arrays, restore_backbone_meta)
from ._stages import StageRunner
from ._text import TextInput
from .backbones._spec import GlobalPool

__all__ = ["FeatureExtractor", "FEATURES"]


class _Extractor(nn.Module):
    """``blocks[:stop]`` followed by a pooling module.

    With ``taps`` (fused layers), ``pool`` is a ``ModuleList`` with one pooling
    module per tapped block index: one pass runs the blocks once, pools each
    tapped block's output, and concatenates them in ``taps`` order.
    """

    def __init__(self, blocks, pool, taps: list[int] | None = None):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.pool = pool
        self.taps = taps

    def forward(self, x):
        if self.taps is None:
            return self.pool(self.blocks(x))
        pooled = {}
        for index, block in enumerate(self.blocks):
            x = block(x)
            for j, tap in enumerate(self.taps):
                if tap == index:
                    pooled[j] = self.pool[j](x).flatten(1)
        outs = [pooled[j] for j in range(len(self.taps))]
        self.widths = [out.shape[1] for out in outs]
        return torch.cat(outs, dim=1)


class FeatureExtractor(PlainStateMixin, TransformerMixin, BaseEstimator):
    """Pretrained features as a scikit-learn transformer.

    Parameters
    ----------
    backbone : str, default="resnet18"
        A registered backbone (see :func:`sktransfer.list_backbones`).
    weights : None, "DEFAULT", str or path, default="DEFAULT"
        As for :class:`TransferClassifier`.
    layer : int, str, list/tuple of those, or None, default=None
        Which block's output to read: an index (negative counts from the top),
        a block name (``"layer3"``), or None for the last block (pooled the
        way the backbone pools it). A list or tuple (``[-2, -1]``,
        ``("layer3", "layer4")``) fuses several blocks: their pooled outputs
        are concatenated, in the order given, all from one forward pass per
        batch; :meth:`get_feature_names_out` then names each column after its
        block (``layer3_avg_17``). Grid-searchable like any parameter.
    pooling : {"avg", "max", "avgmax", "catavgmax", "cls"}, default="avg"
        How an intermediate feature map becomes a vector (``layer`` given).
        For text backbones ``"avg"`` and ``"max"`` pool over the attention mask
        and ``"cls"`` takes the first token.
    image_size : int or None, default=None
        Resize/crop size; None uses the weights' own.
    batch_size : int, default=64
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    num_workers : "auto" or int, default="auto"
        Data-loader worker processes decoding the images. ``"auto"``: for a
        list of image file paths, ``min(CPU cores, 8, number of batches)``
        (0 when that is 1); for in-memory inputs (arrays, PIL images, vectors,
        texts) 0, where workers would only add the cost of moving each sample
        between processes. An int is used as given.
    cache : bool, default=True
        Remember the features of data already transformed (in this process),
        so the repeated ``transform`` of a grid search costs nothing.
    memory : None, str or joblib.Memory, default=None
        Also cache features on disk, as ``Pipeline(memory=...)`` does.
    random_state : int or None, default=None
        Seeds random initialisation when ``weights=None``.
    verbose : int, default=0
        1 shows a progress bar while features are computed.

    Attributes
    ----------
    backbone_ : Backbone
    n_features_out_ : int
    n_features_in_ : int
        Columns of X (vector backbones only).

    Notes
    -----
    ``transform`` runs a copy of the network with each BatchNorm folded into
    the convolution before it (the same features up to float rounding, ~10 %
    faster on CPU; see ``sktransfer._bn_fold``). ``extractor_`` and ``backbone_``
    stay as built, and a network carrying forward hooks runs unfolded, so
    hooks see every layer.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FeatureExtractor
    >>> X = np.random.RandomState(0).randint(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    >>> FeatureExtractor("tiny_cnn", weights=None, random_state=0).fit_transform(X).shape
    (4, 64)
    """

    _parameter_constraints = {
        "backbone": [str], "weights": WEIGHTS,
        "layer": [None, Interval(Integral, None, None), str, list, tuple],
        "pooling": [StrOptions(GlobalPool.MODES + ("cls",))], "image_size": IMAGE_SIZE,
        "batch_size": [Interval(int, 1, None, desc="a positive int")], "device": DEVICE,
        "num_workers": NUM_WORKERS, "cache": ["boolean"],
        "memory": [None, str, os.PathLike, joblib.Memory], "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, backbone="resnet18", weights="DEFAULT", layer=None, pooling="avg",
                 image_size=None, batch_size=64, device="auto", num_workers="auto", cache=True,
                 memory=None, random_state=None, verbose=0):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.cache = cache
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose

    def _stop(self, backbone, layer="param") -> int | None:
        """Index one past the last block to run; None = all blocks + backbone pool."""
        layer = self.layer if layer == "param" else layer
        if layer is None:
            return None
        names = backbone.block_names
        if isinstance(layer, str):
            if layer not in names:
                raise ValueError(f"layer={layer!r} is not a block of {backbone.name!r}; "
                                 f"its blocks are {names}")
            return names.index(layer) + 1
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer must be None, an int, a block name or a list of those, "
                            f"got {layer!r}")
        n = len(names)
        if not -n <= layer < n:
            raise ValueError(f"layer={layer} is out of range for {backbone.name!r} "
                             f"({n} blocks: {names}); use 0..{n - 1} or -{n}..-1")
        return (int(layer) % n) + 1

    def _fused_stops(self, backbone) -> list[int] | None:
        """For ``layer=[...]``: the block index of each listed layer (None otherwise)."""
        if not isinstance(self.layer, (list, tuple)):
            return None
        if not self.layer:
            raise ValueError("layer=[] names no block; give at least one index or block name, "
                             "or None for the last block")
        stops = [self._stop(backbone, layer) for layer in self.layer]
        stops = [backbone.n_blocks if stop is None else stop for stop in stops]
        taps = [stop - 1 for stop in stops]
        if len(set(taps)) != len(taps):
            names = [backbone.block_names[t] for t in taps]
            raise ValueError(f"layer={list(self.layer)!r} names a block twice ({names}); list "
                             f"each block once")
        return taps

    def _pool(self, backbone, stop: int):
        """``(stop, pool)``: the backbone's own pool for its last block, else a block pool."""
        if stop == backbone.n_blocks and self.pooling == "avg" \
                and backbone.pool_for_block is None and isinstance(backbone.pool, GlobalPool):
            return stop, backbone.pool
        return stop, backbone.block_pool(stop - 1, self.pooling)

    def fit(self, X, y=None):
        """Resolve and load the backbone; check ``X`` fits it."""
        check_params(self)  # _parameter_constraints (see _constraints), before any work
        source = read_input(X, self.backbone)
        self._build(source, self.weights)
        if isinstance(source, VectorInput):
            self.n_features_in_ = source.n_features
        sample = source.__class__(source.items[:1]) if isinstance(source, VectorInput) \
            else _head(source)
        # fused layers: run it (no disk cache), so the extractor records each block's width
        out = self._run(sample) if isinstance(self.stop_, tuple) else self._transform_source(
            sample, use_cache=False)
        self.n_features_out_ = out.shape[1]
        if isinstance(self.stop_, tuple):  # columns per fused block, from that one sample
            self.fused_widths_ = list(self._network(len(sample)).widths)  # what ran
        return self

    def _build(self, source, weights) -> None:
        """The backbone, preprocessing and the extracting network, on ``device_``."""
        device = resolve_device(self.device)
        with seeded(self.random_state if self.random_state is not None else 0):
            backbone = make_backbone(self.backbone, weights, source, self.image_size)
        taps = self._fused_stops(backbone)
        if taps is None:
            stop = self._stop(backbone)
            if stop is None:
                stop, pool = backbone.n_blocks, backbone.pool
            else:
                stop, pool = self._pool(backbone, stop)
            extractor = _Extractor(list(backbone.blocks)[:stop], pool)
        else:
            stop = max(taps) + 1
            pools = nn.ModuleList([self._pool(backbone, tap + 1)[1] for tap in taps])
            extractor = _Extractor(list(backbone.blocks)[:stop], pools, taps)
            stop = tuple(taps)
        self.backbone_ = backbone
        self.preprocessor_ = preprocessor_for(backbone, self.image_size)
        self.extractor_ = extractor.to(device).eval()
        if backbone.input_kind == "image":
            self.extractor_ = self.extractor_.to(memory_format=torch.channels_last)
        self.stop_ = stop
        self.device_ = device

    def _cache_key(self) -> bytes:
        """What the feature cache keys this model's outputs on: weights + preprocessing.

        Hashing every weight takes ~0.4 s for a resnet18, so it happens at the first
        cached transform, not in ``fit``; ``stage_fingerprints`` keeps the digest while
        the weights are unchanged, so later calls cost a signature check (and nothing
        is stored on the estimator: ``transform`` leaves it as it was)."""
        settings = (self.backbone, self.preprocessor_ and self.preprocessor_.p, self.pooling,
                    self.stop_, repr(self.extractor_.pool))  # parameter-free pools differ
        return b"".join(stage_fingerprints([self.extractor_])) + repr(settings).encode()

    def transform(self, X) -> np.ndarray:
        """Features of ``X``: a float32 array ``(n_samples, n_features_out_)``."""
        check_is_fitted(self, "extractor_")
        check_params(self)  # batch_size, cache, memory... may have changed since fit
        source = read_input(X, self.backbone_)
        check_source_kind(source, self.backbone_)
        if isinstance(source, VectorInput) and source.n_features != self.n_features_in_:
            raise ValueError(f"X has {source.n_features} features, but FeatureExtractor is "
                             f"expecting {self.n_features_in_} features as input.")
        return self._transform_source(source, use_cache=self.cache)

    def _transform_source(self, source, use_cache: bool) -> np.ndarray:
        key = None
        if use_cache or self.memory is not None:
            key = hashlib.blake2b(self._cache_key() + data_fingerprint(source).encode(),
                                  digest_size=16).hexdigest()
        if use_cache:
            hit = FEATURES.get(key)
            if hit is not None:
                return hit.copy()
        if self.memory is not None:
            out = _disk_memory(self.memory).cache(_compute_cached, ignore=["self", "source"])(
                self, source, key)
        else:
            out = self._run(source)
        out = np.ascontiguousarray(out, dtype=np.float32)
        if use_cache:
            FEATURES.put(key, out.copy())
        return out

    def _run(self, source) -> np.ndarray:
        bar = progress_bar(len(source), f"{self.backbone} features",
                           bool(self.verbose) and len(source) > 1)
        workers = 0 if isinstance(source, TextInput) else resolve_num_workers(
            self.num_workers, source, self.batch_size)
        runner = StageRunner(self._network(len(source)), self.preprocessor_, self.device_,
                             self.batch_size, workers)
        try:
            return runner.features(source, progress=bar)
        finally:
            if bar is not None:
                bar.close()

    def _network(self, n_samples: int) -> nn.Module:
        """What runs on ``n_samples`` inputs: from one batch up, the BatchNorm-folded copy
        (see ``sktransfer._bn_fold``; folding resnet18 takes ~0.1 s, more than it saves on
        fewer images), below that the copy only when it is already made."""
        return folded(self.extractor_, make=n_samples >= self.batch_size)

    def get_feature_names_out(self, input_features=None):
        """``featureextractor<i>`` names, one per output column.

        With fused layers (``layer=[...]``): ``<block>_<pooling>_<i>`` names
        (``layer3_avg_17``), ``i`` counting within that block's columns.
        """
        check_is_fitted(self, "n_features_out_")
        if not isinstance(self.stop_, tuple):
            return np.asarray([f"featureextractor{i}" for i in range(self.n_features_out_)],
                              dtype=object)
        names = []
        for tap, width in zip(self.stop_, self.fused_widths_):
            block = self.backbone_.block_names[tap]
            names += [f"{block}_{self.pooling}_{i}" for i in range(width)]
        return np.asarray(names, dtype=object)

    # -- persistence (see _persist.py) --------------------------------------------------
    def __getstate__(self):
        """Plain data only (what skops stores): parameters, sizes and weight arrays."""
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("backbone_", "preprocessor_", "extractor_", "device_")}
        if "extractor_" in self.__dict__:
            state["_network_arrays"] = module_arrays(nn.ModuleDict(
                {"blocks": self.backbone_.blocks, "pool": self.extractor_.pool}))
            state["_backbone_meta"] = backbone_meta(self.backbone_)
        return state

    def __setstate__(self, state):
        """Rebuild from :meth:`__getstate__`'s plain data (a skops load)."""
        state = dict(state)
        arrays = state.pop("_network_arrays", None)
        meta = state.pop("_backbone_meta", None)
        self.__dict__.update(state)
        if arrays is None:
            return
        # the architecture only; the saved arrays are the weights
        self._build(architecture_source(self), None)
        load_module_arrays(nn.ModuleDict({"blocks": self.backbone_.blocks,
                                          "pool": self.extractor_.pool}), arrays,
                           "FeatureExtractor network")
        restore_backbone_meta(self.backbone_, meta)
        self.preprocessor_ = preprocessor_for(self.backbone_, self.image_size)

    def _full_state(self):
        state = self.__dict__.copy()
        if "extractor_" in state and self.device_ != "cpu":
            # a CPU copy (the live model stays where it is), so the file loads anywhere
            import copy

            state["extractor_"], state["backbone_"] = copy.deepcopy(
                (self.extractor_, self.backbone_))
            state["extractor_"].to("cpu")
        return state

    def _set_full_state(self, state):
        self.__dict__.update(state)
        if "extractor_" in state:
            self.device_ = resolve_device(self.device)
            self.extractor_ = self.extractor_.to(self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _head(source):
    """The first sample of an image (or text) source, as a source."""
    from ._data import ImageInput

    if isinstance(source, TextInput):
        return TextInput(source.items[:1])
    if source.kind == "audio":
        return source.head()
    return ImageInput(source.items[:1] if source.form != "array" else
                      _slice_view(source.items), source.form)


def _slice_view(view):
    from ._data._arrays import _ArrayView

    return _ArrayView(view.array[:1], view.layout)


def _disk_memory(memory):
    if isinstance(memory, (str, os.PathLike)):
        return joblib.Memory(os.fspath(memory), verbose=0)
    return memory  # a joblib.Memory (see _parameter_constraints)


def _compute_cached(self, source, key):
    # joblib keys the disk cache on `key` alone (model + data fingerprint)
    return self._run(source)
