"""``fit(X, y, sample_weight=w)``: checked weights and the weighted loss.

The weights are normalised to mean 1 over the training set, and each batch's
loss is the mean of ``weight * per-sample loss``. With the whole set in one
batch that is ``sum(w * loss) / sum(w)``, exactly the loss of the data with
every sample repeated ``w`` times; with smaller batches it is an unbiased
estimate of it, as an unweighted mini-batch loss is of the full loss.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = ["check_sample_weight", "reject_fit_params", "weighted_loss"]


def reject_fit_params(where: str, fit_params: dict) -> None:
    """Raise for fit parameters that are not understood, before any work starts."""
    if fit_params:
        names = ", ".join(sorted(map(repr, fit_params)))
        raise TypeError(f"{where} got unexpected fit parameter(s) {names}; it accepts "
                        f"sample_weight only. Estimator options go in the constructor or "
                        f"set_params(), e.g. set_params(max_epochs=5)")


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """Validated weights as float32, scaled to mean 1 (None stays None).

    A scalar weighs every sample the same, which is the unweighted fit.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    if isinstance(sample_weight, torch.Tensor):
        sample_weight = sample_weight.detach().cpu().numpy()
    elif hasattr(sample_weight, "to_numpy"):
        sample_weight = sample_weight.to_numpy()
    try:
        w = np.array(sample_weight, dtype=np.float64)  # a copy: the caller's array is kept
    except (TypeError, ValueError) as exc:
        raise TypeError(f"sample_weight must be numbers, one per sample; {exc}") from exc
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D (one weight per sample), got shape "
                         f"{w.shape}")
    if len(w) != n_samples:
        raise ValueError(f"sample_weight has {len(w)} weights but X has {n_samples} samples; "
                         f"pass one weight per sample")
    bad = np.flatnonzero(~np.isfinite(w))
    if len(bad):
        raise ValueError(f"sample_weight contains NaN or infinite values (first at index "
                         f"{bad[0]}: {w[bad[0]]}); weights must be finite")
    bad = np.flatnonzero(w < 0)
    if len(bad):
        raise ValueError(f"sample_weight contains negative values (first at index {bad[0]}: "
                         f"{w[bad[0]]}); weights must be >= 0")
    total = w.sum()
    if total <= 0:
        raise ValueError("sample_weight is all zero (the weights sum to 0): at least one "
                         "sample needs a positive weight")
    return (w * (n_samples / total)).astype(np.float32)


def weighted_loss(criterion, compute_loss, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``weights * per-sample loss``; ``compute_loss()`` calls ``criterion``.

    The criterion's ``reduction`` is switched to ``"none"`` for the call.
    """
    if not hasattr(criterion, "reduction"):
        raise TypeError(f"sample_weight needs a criterion with a 'reduction' option (as "
                        f"torch's losses have); {type(criterion).__name__} has none")
    reduction = criterion.reduction
    criterion.reduction = "none"
    try:
        per_sample = compute_loss()
    finally:
        criterion.reduction = reduction
    if per_sample.dim() > 1:  # per-element losses (e.g. several outputs): one per sample
        per_sample = per_sample.flatten(1).mean(1)
    if per_sample.shape != weights.shape:
        raise ValueError(f"sample_weight needs one loss value per sample; "
                         f"{type(criterion).__name__} gave shape {tuple(per_sample.shape)} "
                         f"for a batch of {len(weights)}")
    return (per_sample * weights.to(per_sample.dtype)).mean()
