"""sktransfer: transfer learning as a first-class citizen of scikit-learn."""

from ._registry import PluginError, refresh_plugins
from .backbones import (Backbone, GlobalPool, MissingWeightsError, Preprocessing, TokenPool,
                        UnsafeWeightsError, get_backbone, list_backbones, register_backbone)
from .backbones import TextPreprocessing
from .freezing import FreezeContext, FreezeStrategy, get_freezer, list_freezers, register_freezer
from ._data import load_image_folder

__version__ = "0.1.0"

__all__ = [
    "TransferClassifier", "FeatureExtractor", "Backbone", "Preprocessing", "GlobalPool",
    "TokenPool", "register_backbone", "get_backbone", "list_backbones", "register_freezer",
    "get_freezer", "list_freezers", "FreezeStrategy", "FreezeContext", "load_image_folder",
    "refresh_plugins", "PluginError", "MissingWeightsError", "UnsafeWeightsError",
    "TextPreprocessing", "__version__",
]


def __getattr__(name):
    # The estimators import skorch; keep `import sktransfer` light for plugins and the CLI.
    if name == "TransferClassifier":
        from ._classifier import TransferClassifier
        return TransferClassifier
    if name == "FeatureExtractor":
        from ._extractor import FeatureExtractor
        return FeatureExtractor
    raise AttributeError(f"module 'sktransfer' has no attribute {name!r}")
