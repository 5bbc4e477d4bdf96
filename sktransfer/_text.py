"""Text as an input kind: validation, tokenisation, padding per batch.

For a backbone whose ``input_kind`` is ``"text"``, ``X`` is a batch of texts:
a list, tuple, 1-D array, pandas Series or one-column DataFrame of ``str``.

Samples flow through the network as ``(L, C)`` tensors of variable length
``L``; a batch pads them to its longest and appends the attention mask as the
last channel, ``(N, L_max, C + 1)``. Token ids are ``(L, 1)`` long tensors, so
the first block receives ``(N, L, 2)`` = ids and mask; every later block keeps
the mask as its last channel. :meth:`TextPreprocessor.split` undoes the
padding, which is how the frozen-prefix cache stores text activations:
unpadded, one per sample.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["TextInput", "TextPreprocessor", "as_text_input", "one_column"]


class TextInput:
    """A validated list of texts; ``load(i)`` gives the ``str``."""

    kind = "text"
    form = "text"

    def __init__(self, texts: list[str]):
        self.items = texts

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> str:
        return self.items[index]


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def one_column(X, name: str, kind: str, items: str):
    """A pandas Series, or a DataFrame's one column, as a 1-D object array; anything
    else as it is. (Texts and audio clips come in a column of a table.)"""
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # DataFrame
        if X.shape[1] != 1:
            raise ValueError(f"{name} is a DataFrame with {X.shape[1]} columns "
                             f"({list(X.columns)[:5]}); this backbone takes one column of "
                             f"{items}: pass {name}['<{kind} column>']")
        X = X.iloc[:, 0]
    if hasattr(X, "iloc") and hasattr(X, "to_numpy"):  # Series
        X = X.to_numpy(dtype=object)
    return X


def as_text_input(X, name: str = "X") -> TextInput:
    """Validate ``X`` as a batch of texts (see the module docstring)."""
    if isinstance(X, TextInput):
        return X
    if X is None:
        raise ValueError(f"{name} is None; pass a list of texts")
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} is a single {type(X).__name__} ({X[:40]!r}...); this backbone "
                        f"takes a batch of texts: pass a list, e.g. [{name}]")
    X = one_column(X, name, "text", "texts")
    if isinstance(X, torch.Tensor):
        raise TypeError(f"{name} is a torch tensor; this backbone takes texts (a list of str)")
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"{name} has shape {X.shape}; a text backbone takes a 1-D batch of "
                             f"texts (a list, a 1-D array or one column)")
        items = X.tolist()
    elif isinstance(X, (list, tuple)):
        items = list(X)
    else:
        raise TypeError(f"{name} is of unsupported type {type(X).__name__}; a text backbone "
                        f"takes a list, array, pandas Series or one-column DataFrame of str")
    if len(items) == 0:
        raise ValueError(f"{name} is empty (0 texts); pass at least one text")
    for i, v in enumerate(items):
        if isinstance(v, str):
            continue
        if _missing(v):
            raise ValueError(f"{name}[{i}] is missing ({v!r}); a text backbone needs a str for "
                             f"every sample: drop those rows or fill them, e.g. "
                             f"X.fillna('')")
        if isinstance(v, bytes):
            raise TypeError(f"{name}[{i}] is bytes ({v[:40]!r}); decode it first, e.g. "
                            f"v.decode('utf-8')")
        raise TypeError(f"{name}[{i}] is {type(v).__name__} {v!r:.60}, not a str; a text "
                        f"backbone takes texts (convert with str() if that is meant)")
    return TextInput([str(v) for v in items])


class TextPreprocessor:
    """A text backbone's :class:`~sktransfer.TextPreprocessing` at work: texts -> token ids,
    and variable-length samples <-> padded batches."""

    def __init__(self, preprocessing):
        self.p = preprocessing

    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        """Token ids ``(L, 1)`` (long) per text, truncated to ``max_length``."""
        ids = self.p.tokenize(list(texts), int(self.p.max_length))
        if len(ids) != len(texts):
            raise RuntimeError(f"the tokenizer {self.p.name!r} returned {len(ids)} sequences "
                               f"for {len(texts)} texts")
        return [torch.as_tensor(seq, dtype=torch.long).reshape(-1, 1) for seq in ids]

    def __call__(self, text: str) -> torch.Tensor:
        return self.encode([text])[0]

    @staticmethod
    def collate(samples: list[torch.Tensor]) -> torch.Tensor:
        """``(L_i, C)`` samples -> ``(N, max L_i, C + 1)``: zero-padded, mask last.

        Pooled ``(F,)`` vectors (a cached whole backbone) are simply stacked."""
        if samples[0].dim() == 1:
            return torch.stack(samples)
        longest = max(len(s) for s in samples)
        first = samples[0]
        batch = first.new_zeros((len(samples), longest, first.shape[1] + 1))
        for row, sample in zip(batch, samples):
            row[:len(sample), :-1] = sample
            row[:len(sample), -1] = 1
        return batch

    @staticmethod
    def split(batch: torch.Tensor) -> list[torch.Tensor]:
        """The inverse of :meth:`collate`: each sample without padding or mask."""
        if batch.dim() == 2:
            return list(batch)
        lengths = (batch[..., -1] != 0).sum(1).tolist()
        return [row[:n, :-1] for row, n in zip(batch, lengths)]
