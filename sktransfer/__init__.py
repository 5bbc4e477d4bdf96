"""sktransfer: transfer learning as a first-class citizen of scikit-learn."""

from ._registry import PluginError, refresh_plugins
from .backbones import (Backbone, CorruptWeightsError, GlobalPool, MissingWeightsError,
                        Preprocessing, PretrainedWeights, TextPreprocessing, TokenPool,
                        UnsafeWeightsError, WeightsDownloadError, download_weights, get_backbone,
                        list_backbones, register_backbone)
from .freezing import (FreezeContext, FreezeStrategy, get_freezer, get_strategy, list_freezers,
                       list_strategies, register_freezer, register_strategy)
from ._cache import clear_caches
from ._audio import AudioPreprocessing
from ._data import load_audio_folder, load_image_folder
from ._selection import brier_scorer, select_most_frozen

__version__ = "0.1.0"

__all__ = [
    "TransferClassifier", "TransferRegressor", "FeatureExtractor", "Backbone", "Preprocessing", "GlobalPool",
    "TokenPool", "PretrainedWeights", "register_backbone", "get_backbone", "list_backbones",
    "register_strategy", "get_strategy", "list_strategies", "FreezeStrategy", "FreezeContext",
    "load_image_folder", "refresh_plugins", "PluginError", "clear_caches", "MissingWeightsError",
    "UnsafeWeightsError", "CorruptWeightsError", "WeightsDownloadError", "download_weights",
    "TextPreprocessing", "TransferClassifierCV", "TransferRegressorCV", "select_most_frozen",
    "brier_scorer",
    "AudioPreprocessing", "load_audio_folder",
    "__version__",
    # older names of the freezing-strategy registry, kept as aliases
    "register_freezer", "get_freezer", "list_freezers",
]


def __getattr__(name):
    # The estimators import skorch; keep `import sktransfer` light for plugins and the CLI.
    if name == "TransferClassifier":
        from ._classifier import TransferClassifier
        return TransferClassifier
    if name == "TransferRegressor":
        from ._regressor import TransferRegressor
        return TransferRegressor
    if name == "TransferClassifierCV":
        from ._classifier_cv import TransferClassifierCV
        return TransferClassifierCV
    if name == "TransferRegressorCV":
        from ._regressor_cv import TransferRegressorCV
        return TransferRegressorCV
    if name == "FeatureExtractor":
        from ._extractor import FeatureExtractor
        return FeatureExtractor
    raise AttributeError(f"module 'sktransfer' has no attribute {name!r}")
