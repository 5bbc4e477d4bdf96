"""A Hugging Face encoder cut into sktransfer blocks.

Every block takes and returns one tensor whose last channel is the attention
mask (see ``sktransfer._text``): the embedding block ``(N, L, 2)`` token ids +
mask -> ``(N, L, H + 1)``; an encoder block ``(N, L, H + 1)`` -> ``(N, L, H + 1)``;
the pool ``(N, L, H + 1)`` -> ``(N, H)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TextEmbeddings", "EncoderLayers", "MaskedPool", "POOL_MODES"]

POOL_MODES = ("mean", "cls", "max")
# FeatureExtractor(pooling=...) names -> ours
_ALIASES = {"avg": "mean", "mean": "mean", "cls": "cls", "max": "max"}


class TextEmbeddings(nn.Module):
    """Token ids + mask -> token embeddings + mask."""

    def __init__(self, embeddings: nn.Module, pad_token_id: int):
        super().__init__()
        self.embeddings = embeddings
        self.pad_token_id = int(pad_token_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = x[..., 0], x[..., -1]
        # batches are zero-padded; the model's own pad id matters (RoBERTa derives
        # position ids from it)
        ids = ids.masked_fill(mask == 0, self.pad_token_id)
        hidden = self.embeddings(input_ids=ids)
        return torch.cat([hidden, mask.to(hidden.dtype)[..., None]], dim=-1)


def _attention_mask(config, hidden: torch.Tensor, mask: torch.Tensor):
    """The mask in the form the model's attention implementation expects."""
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=config, inputs_embeds=hidden,
                                     attention_mask=mask.to(torch.long))


class EncoderLayers(nn.Module):
    """Consecutive transformer layers of the encoder, sharing one attention mask."""

    def __init__(self, layers, config):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x[..., -1]
        hidden = x[..., :-1].contiguous()
        attention = _attention_mask(self.config, hidden, mask)
        for layer in self.layers:
            out = layer(hidden, attention)
            hidden = out[0] if isinstance(out, tuple) else out
        return torch.cat([hidden, mask.to(hidden.dtype)[..., None]], dim=-1)


class MaskedPool(nn.Module):
    """``(N, L, H + 1)`` -> ``(N, H)``: mean over the attention mask, the first (CLS)
    token, or the max over real tokens; optionally L2-normalised."""

    def __init__(self, mode: str = "mean", normalize: bool = False):
        super().__init__()
        mode = _ALIASES.get(mode, mode)
        if mode not in POOL_MODES:
            raise ValueError(f"unknown text pooling {mode!r}; use one of {POOL_MODES} "
                             f"('avg' means 'mean')")
        self.mode = mode
        self.normalize = bool(normalize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # already pooled
            return x
        hidden, mask = x[..., :-1], x[..., -1:]
        if self.mode == "cls":
            out = hidden[:, 0]
        elif self.mode == "mean":
            out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        else:
            out = hidden.masked_fill(mask == 0, float("-inf")).amax(1)
        return F.normalize(out, p=2, dim=1) if self.normalize else out

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, normalize={self.normalize}"
