"""Audio for sktransfer: spectrogram CNNs, a speaker encoder, offline speech.

Registered through the entry point group ``sktransfer.backbones``::

    [project.entry-points."sktransfer.backbones"]
    resemblyzer = "sktransfer_audio:resemblyzer"
    "audio/*" = "sktransfer_audio:audio_backbone"

``audio/<image backbone>`` (e.g. ``audio/efficientnet_lite0``, ``audio/resnet18``)
    any registered image backbone with its own pretrained weights behind a fixed
    log-mel front end (:class:`LogMel`, 64 bands, 1 s clips, 25 ms windows every
    10 ms, ImageNet normalisation): the blocks, ``freeze_depth``, the prefix
    cache and strategies are the image backbone's. ``image_size`` (estimator
    parameter) resizes the spectrogram image to a square. Other front-end
    settings: :func:`register_audio_backbone`.
``resemblyzer``
    Resemblyzer's GE2E speaker encoder (3-layer LSTM on 40 mel bands, 256-d
    L2-normalised embedding) with four blocks (see ``_resemblyzer``); weights
    from the ``Resemblyzer`` wheel's ``pretrained.pt``. Input: 1.6 s clips
    (:class:`MelFrames`).

Input (``X``): a list / object array / Series of mono float waveforms in
``[-1, 1]`` at 16 kHz (:data:`SAMPLE_RATE`), or paths to audio files at any
rate (decoded with soundfile, stereo mixed down, resampled with soxr). Clips
are centre-cropped or zero-padded to the front end's ``clip_seconds``.
"""

from __future__ import annotations

from sktransfer import AudioPreprocessing, Backbone, PretrainedWeights, register_backbone
from sktransfer.backbones import build_backbone, pretrained_weights

from ._frontend import LogMel, MelFrames, fix_length, mel_filterbank
from ._reader import AudioFileReader
from ._resemblyzer import (L2Normalize, ResemblyzerWeights, TimePool, encoder_blocks,
                           load_encoder_state)
from ._speech import SpeechData, spoken_words, synthesize

__all__ = ["audio_backbone", "resemblyzer", "register_audio_backbone", "LogMel", "MelFrames",
           "AudioFileReader", "fix_length", "mel_filterbank", "spoken_words", "synthesize",
           "SpeechData", "SAMPLE_RATE", "RESEMBLYZER_WEIGHTS"]
__version__ = "0.1.0"

SAMPLE_RATE = 16000
PREFIX = "audio/"

RESEMBLYZER_WEIGHTS = ResemblyzerWeights(
    "resemblyzer", "pretrained.pt", module="resemblyzer", package="Resemblyzer",
    description="Resemblyzer GE2E speaker encoder (pretrained.pt)")


def _spectrogram_backbone(name: str, image_name: str, weights, image_size, frontend: LogMel):
    if image_name.startswith(PREFIX) or image_name == "resemblyzer":
        raise ValueError(f"backbone {name!r}: {image_name!r} is an audio backbone; "
                         f"'audio/<name>' takes an image backbone, e.g. "
                         f"'audio/efficientnet_lite0' (see list_backbones())")
    image = build_backbone(image_name, weights, image_size=image_size)
    if image.input_kind != "image":
        raise ValueError(f"backbone {name!r}: {image_name!r} takes {image.input_kind}s; "
                         f"'audio/<name>' needs an image backbone (see list_backbones())")
    p = image.preprocessing
    frontend = LogMel(**{**_settings(frontend), "channels": image.in_channels,
                         "mean": tuple(p.mean), "std": tuple(p.std)})
    return Backbone(
        name=name, blocks=list(image.blocks), pool=image.pool, num_features=image.num_features,
        block_names=image.block_names,
        preprocessing=AudioPreprocessing(frontend.sample_rate, frontend, AudioFileReader(),
                                         name="log-mel"),
        input_kind="audio", in_channels=image.in_channels, weights=image.weights,
        pool_for_block=image.pool_for_block, source_module=image.source_module,
        min_input_size=image.min_input_size)


def _settings(frontend) -> dict:
    return {f: getattr(frontend, f) for f in frontend.__dataclass_fields__ if not f.startswith("_")}


def audio_backbone(name: str, weights="DEFAULT", image_size=None) -> Backbone:
    """``audio/<image backbone>``: the default :class:`LogMel` front end into that backbone.

    ``weights`` are the image backbone's (``"DEFAULT"``: its ImageNet weights).
    """
    return _spectrogram_backbone(name, name[len(PREFIX):], weights, image_size, LogMel())


def _audio_weights(name: str, weights: str = "DEFAULT"):
    """What ``audio/<name>`` loads: the image backbone's weights (for the namespace
    itself, ``audio/*``, a stand-in that names them)."""
    image_name = name[len(PREFIX):]
    if image_name == "*":
        return PretrainedWeights(name, "<the image backbone's weights>", folder="<image backbone>",
                                 description="the image backbone's pretrained weights")
    return pretrained_weights(image_name, weights)


audio_backbone.input_kind = "audio"
audio_backbone.pretrained_weights = _audio_weights


def register_audio_backbone(name: str, image_backbone: str, frontend: LogMel):
    """Register ``name``: ``image_backbone`` behind a :class:`LogMel` front end of your own.

    Examples
    --------
    >>> from sktransfer_audio import LogMel, register_audio_backbone
    >>> register_audio_backbone("kws_cnn", "tiny_cnn", LogMel(n_mels=32, clip_seconds=0.5))
    >>> from sktransfer.backbones import BACKBONES
    >>> BACKBONES.unregister("kws_cnn")
    """
    if not isinstance(frontend, LogMel):
        raise TypeError(f"frontend must be a sktransfer_audio.LogMel, got "
                        f"{type(frontend).__name__}")

    def builder(weights="DEFAULT", image_size=None):
        return _spectrogram_backbone(name, image_backbone, weights, image_size, frontend)

    builder.input_kind = "audio"
    builder.pretrained_weights = lambda _, w="DEFAULT": pretrained_weights(image_backbone, w)
    register_backbone(name, builder)


def _time_pool(index: int, mode: str) -> TimePool:
    return TimePool(mode)


def resemblyzer(weights="DEFAULT") -> Backbone:
    """Resemblyzer's GE2E speaker encoder (see the module docstring).

    Parameters
    ----------
    weights : None or "DEFAULT"
        ``"DEFAULT"``: ``pretrained.pt`` from the installed ``Resemblyzer``
        wheel; ``None``: random initialisation. A file in sktransfer's own
        names (``blocks.<i>.``) is loaded by sktransfer.
    """
    if weights not in (None, "DEFAULT", "default"):
        raise ValueError(f"unknown weights {weights!r} for backbone 'resemblyzer'; use None, "
                         f"'DEFAULT' or a path to a .pt/.safetensors file")
    frontend = MelFrames()
    blocks = encoder_blocks(frontend.n_mels)
    loaded = None
    if weights is not None:
        path = RESEMBLYZER_WEIGHTS.locate()  # MissingWeightsError: "pip install Resemblyzer"
        load_encoder_state(blocks, path)
        loaded = RESEMBLYZER_WEIGHTS.description
    for block in blocks:
        block.eval()
    return Backbone(
        name="resemblyzer", blocks=blocks, pool=L2Normalize(), num_features=256,
        block_names=["lstm0", "lstm1", "lstm2", "projection"],
        preprocessing=AudioPreprocessing(frontend.sample_rate, frontend, AudioFileReader(),
                                         name="mel frames"),
        input_kind="audio", in_channels=1, weights=loaded, pool_for_block=_time_pool)


resemblyzer.input_kind = "audio"
resemblyzer.pretrained_weights = RESEMBLYZER_WEIGHTS
