"""Resemblyzer's GE2E speaker encoder cut into blocks.

The encoder (Wan et al. 2018, as trained by Resemblyzer) is a 3-layer LSTM
over 40 mel bands, the last frame's hidden state through ``Linear(256, 256)``
and ReLU, L2-normalised: a 256-d voice embedding. Blocks: ``lstm0``,
``lstm1``, ``lstm2`` (one LSTM layer each, ``(N, T, F)`` -> ``(N, T, 256)``)
and ``projection`` (last frame -> Linear -> ReLU, ``(N, 256)``); the pool
L2-normalises, so the whole backbone computes ``VoiceEncoder.forward``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sktransfer import PretrainedWeights

__all__ = ["LSTMLayer", "Projection", "L2Normalize", "TimePool", "ResemblyzerWeights",
           "encoder_blocks", "load_encoder_state"]

HIDDEN = 256
N_LAYERS = 3


class LSTMLayer(nn.Module):
    """One LSTM layer over a ``(N, T, F)`` frame sequence."""

    def __init__(self, in_features: int, hidden: int = HIDDEN):
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, 1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class Projection(nn.Module):
    """The last frame's hidden state -> Linear -> ReLU."""

    def __init__(self, hidden: int = HIDDEN, out_features: int = HIDDEN):
        super().__init__()
        self.linear = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(x[:, -1]))


class L2Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2, dim=1)


class TimePool(nn.Module):
    """``(N, T, C)`` -> ``(N, C)`` for features read after an LSTM block: the mean
    (``"avg"``), the max, or the ``"last"`` frame; ``(N, C)`` passes through."""

    MODES = ("avg", "max", "last")

    def __init__(self, mode: str = "avg"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown pooling {mode!r} for the resemblyzer backbone; use one "
                             f"of {self.MODES}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x
        if self.mode == "avg":
            return x.mean(1)
        return x.amax(1) if self.mode == "max" else x[:, -1]

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def encoder_blocks(n_mels: int) -> list[nn.Module]:
    return [LSTMLayer(n_mels), LSTMLayer(HIDDEN), LSTMLayer(HIDDEN), Projection()]


class ResemblyzerWeights(PretrainedWeights):
    """``pretrained.pt`` of the installed Resemblyzer wheel, found without importing the
    package (``import resemblyzer`` imports librosa and numba)."""

    def path(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / self.filename


def load_encoder_state(blocks, path: Path) -> None:
    """Copy Resemblyzer's checkpoint (``model_state``: ``lstm.*_l{k}``, ``linear.*``) into
    the blocks; every tensor of the blocks must be filled."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state", checkpoint)
    mapped = {}
    for k in range(N_LAYERS):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            mapped[f"{k}.lstm.{kind}_l0"] = state[f"lstm.{kind}_l{k}"]
    mapped[f"{N_LAYERS}.linear.weight"] = state["linear.weight"]
    mapped[f"{N_LAYERS}.linear.bias"] = state["linear.bias"]
    nn.ModuleList(blocks).load_state_dict(mapped, strict=True)
