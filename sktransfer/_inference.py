"""Prediction and ``transform`` for ``TransferBase``: what runs after fit.

:class:`PredictionMixin` checks the input against the fitted model, reuses the
cached frozen-prefix activations of the last fit where it can (the rows are
shared with the folds of a cross-validation) and runs the network's stages
through the :class:`~sktransfer._stages.StageRunner`. ``transform`` runs a
BatchNorm-folded copy of the network, as ``FeatureExtractor`` does (see
``_bn_fold``).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.exceptions import NotFittedError
from torch.utils.data import Dataset

from ._bn_fold import folded
from ._cache import ACTIVATIONS, activation_bytes
from ._cached_fit import ActivationDataset, Activations
from ._common import check_source_kind, read_input
from ._data import VectorInput
from ._stages import StageRunner, entering_at

__all__ = ["PredictionMixin"]


class PredictionMixin(TransformerMixin):
    """``predict``'s input checks, the cached-prefix reuse and ``transform``.

    A ``TransformerMixin`` itself: scikit-learn wraps ``transform`` for
    ``set_output`` only in the class that defines it."""

    def _check_fitted(self):
        if not getattr(self, "initialized_", False) or not self._target_fitted():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 f"'fit' with appropriate arguments before using this estimator.")

    def _predict_source(self, X):
        self._check_fitted()
        if isinstance(X, Dataset):  # skorch's scoring callbacks pass the validation Subset
            return X
        source = read_input(X, self.backbone_)
        check_source_kind(source, self.backbone_)
        if isinstance(source, VectorInput) and source.n_features != self.n_features_in_:
            raise ValueError(f"X has {source.n_features} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return source

    def _prediction_input(self, source):
        """``(input, start)`` for predicting on ``source``: its cached frozen-prefix
        activations and the stage they enter at, or ``(source, 0)``.

        When the last fit trained on cached prefix activations, prediction looks
        the same prefix up in the shared cache and computes (and stores) only the
        missing rows: in cross-validation the validation samples of one fold are
        training samples of the others, so their rows are usually there already,
        and those a fold computes serve the next folds' fits. The rows come from
        the current weights (the cache key is their fingerprint) in eval mode,
        which is how a prediction runs the prefix anyway. Skipped when the rows
        would not fit in ``cache_memory``.
        """
        depth = getattr(self, "cache_depth_", 0)
        if not depth or self.cache is False or not hasattr(source, "load"):
            return source, 0
        ACTIVATIONS.set_max_bytes(self.cache_memory)
        if activation_bytes(self._stage_runner(), source, depth) > self.cache_memory:
            return source, 0
        rows = Activations(self._prefix_activations(source, depth), self.preprocessor_)
        return ActivationDataset(rows), depth

    def forward_iter(self, X, training=False, device="cpu"):
        with self._on_device():
            X, start = (X, 0) if training else self._prediction_input(X)
            with entering_at(self.module_, start):
                yield from super().forward_iter(X, training=training, device=device)

    def transform(self, X):
        """Features of the fine-tuned backbone (its pooled output, the head's input).

        The network runs with each BatchNorm folded into the convolution before it
        (the same features up to float rounding; see ``FeatureExtractor``).

        Returns
        -------
        features : ndarray of shape (n_samples, backbone_.num_features), float32
        """
        source = self._predict_source(X)
        stop = self.module_.n_blocks + 1
        with self._on_device():
            self.module_.eval()
            n_samples = len(source)
            source, start = self._prediction_input(source)
            network = folded(self.module_, make=n_samples >= self.batch_size)
            runner = StageRunner(network, self.preprocessor_, self.device, self.batch_size,
                                 amp=self.amp)
            batches = self.get_iterator(self.get_dataset(source), training=False)
            outs = runner.run(batches, stop, start)
        return torch.cat(outs).numpy()

    def get_feature_names_out(self, input_features=None):
        """``<class name, lower case><i>`` names (``transferclassifier0``, ...), one per
        column of :meth:`transform`."""
        self._check_fitted()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.backbone_.num_features)],
                          dtype=object)
