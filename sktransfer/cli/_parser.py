"""The ``sktransfer`` command line: arguments and their types."""

from __future__ import annotations

import argparse

from . import _commands as commands
from ._download import cmd_download

__all__ = ["build_parser", "PROG"]

from ._errors import PROG
_CV_DEFAULT = 3
_MODEL_HELP = ("a model written by `sktransfer fit`: FILE.skops (read with skops, only the "
               "types sktransfer writes are trusted) or a joblib pickle (load only trusted "
               "files)")


# -- argument types -------------------------------------------------------------------
def _freeze_depth(text: str):
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid freeze depth {text!r}: use an int (negative counts from the top) "
            f"or 'all'") from None


def _weights(text: str):
    return None if text.lower() in ("none", "random") else text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _option(text: str):
    """``KEY=VALUE`` -> (key, parsed value) for ``--freeze-strategy-option``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    for convert in (int, float):
        try:
            return key, convert(raw)
        except ValueError:
            pass
    return key, {"none": None, "true": True, "false": False}.get(raw.lower(), raw)


# -- the parser -------------------------------------------------------------------------
def _add_model_options(p: argparse.ArgumentParser, search: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backbone", default="resnet18", metavar="NAME",
                   help="registered backbone (see `sktransfer backbones`); default: "
                        "%(default)s. efficientnet_lite0 (plugin) has weights that ship "
                        "with pip")
    g.add_argument("--weights", type=_weights, default="DEFAULT", metavar="W",
                   help="DEFAULT (pretrained: from a package, the cache, or downloaded "
                        "into the cache on first use), none "
                        "(random init), a weights name, or a .pth/.safetensors file; "
                        "default: %(default)s")
    if search:
        g.add_argument("--freeze-depth", type=_freeze_depth, nargs="+", default=[0, "all"],
                       metavar="K", help="freeze depths to try (ints and/or 'all'); "
                                         "default: 0 all")
        g.add_argument("--freeze-strategy", "--strategy", dest="freeze_strategy", nargs="+",
                       default=["depth"], metavar="NAME",
                       help="freezing strategies to try (see `sktransfer strategies`); "
                            "default: depth")
    else:
        g.add_argument("--freeze-depth", type=_freeze_depth, default="all", metavar="K",
                       help="frozen blocks: an int (negative counts from the top) or 'all' "
                            "(linear probe); default: %(default)s")
        g.add_argument("--freeze-strategy", "--strategy", dest="freeze_strategy",
                       default="depth", metavar="NAME",
                       help="freezing strategy (see `sktransfer strategies`); default: "
                            "%(default)s")
    g.add_argument("--freeze-strategy-option", "--strategy-option", dest="strategy_option",
                   type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="option of the freezing strategy, e.g. decay=0.3 (repeatable)")
    g.add_argument("--image-size", type=_positive_int, default=None, metavar="PX",
                   help="side of the square network input; default: the weights' own")
    g.add_argument("--augment", choices=["none", "flip", "light"], default="none",
                   help="training-time augmentation; default: %(default)s")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=_positive_int, default=10, metavar="N",
                   help="epochs; default: %(default)s")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate; "
                                                                     "default: %(default)s")
    t.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                   help="default: %(default)s")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda; default: %(default)s")
    t.add_argument("--seed", type=int, default=0, help="random seed; default: %(default)s")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, description="Transfer learning from the shell: pretrained backbones, "
                               "a grid-searchable freeze depth, plugins.",
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full Python traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("backbones", help="list backbones (plugins included) and whether "
                                         "their pretrained weights are on this machine",
                       description="List registered backbones, the package that provides "
                                   "each, and whether its weights='DEFAULT' are on this "
                                   "machine (cached or shipped by a package) or would be "
                                   "downloaded on first use.")
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                   help="fnmatch pattern, e.g. 'resnet*' or '*lite*'")
    p.add_argument("--no-weights", dest="check_weights", action="store_false",
                   help="do not check weight availability (faster)")
    p.add_argument("--available", action="store_true",
                   help="only backbones usable now without a download: pretrained weights "
                        "on this machine (a package that ships them, the torch hub or Hugging "
                        "Face cache)")
    p.set_defaults(func=commands.cmd_backbones)

    p = sub.add_parser("download", help="fetch pretrained weights now, e.g. to prepare an "
                                        "offline machine",
                       description="Download the pretrained weights of each backbone NAME into "
                                   "the cache its ecosystem uses (torch hub cache "
                                   "$TORCH_HOME/hub/checkpoints, Hugging Face cache "
                                   "$HF_HOME/hub) and print where each file went. Weights a pip "
                                   "package ships are not downloaded. With --to DIR they go to "
                                   "DIR/torch and DIR/huggingface instead: copy DIR to an offline "
                                   "machine and set TORCH_HOME=DIR/torch and "
                                   "HF_HUB_CACHE=DIR/huggingface/hub there.")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="backbone names, e.g. resnet18 timm/resnet18 "
                        "hf/sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--weights", default="DEFAULT", metavar="W",
                   help="DEFAULT or a weights name (e.g. IMAGENET1K_V2); default: %(default)s")
    p.add_argument("--to", default=None, metavar="DIR",
                   help="prepare this folder for an offline machine instead of filling this "
                        "machine's caches")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("strategies", aliases=["freezers"], help="list freezing strategies",
                       description="List registered freezing strategies (plugins included).")
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN")
    p.set_defaults(func=commands.cmd_strategies)

    p = sub.add_parser("fit", help="fine-tune on a folder of images and save the model",
                       description="Fit a TransferClassifier (or, with --task regression, a "
                                   "TransferRegressor) on DATA and save it: FILE.skops is "
                                   "written with skops, any other name with joblib (a pickle). "
                                   "It reports training accuracy; run `sktransfer evaluate` on "
                                   "held-out data or `sktransfer search` to cross-validate.")
    p.add_argument("image_dir", metavar="DATA", help="folder with one sub-folder of images per "
                   "class, or a .csv file with a text and a label column")
    _add_csv_options(p)
    p.add_argument("--out", "-o", default="model.joblib", metavar="FILE",
                   help="where to write the fitted model (.skops: skops, else joblib); "
                        "default: %(default)s")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also write the learning curve to this PNG file")
    p.add_argument("--quiet", "-q", action="store_true", help="no epoch table")
    p.add_argument("--task", choices=["classification", "regression"], default="classification",
                   help="regression fits a TransferRegressor to a numeric label column of a "
                   ".csv file (a column of image paths or texts); default: %(default)s")
    _add_model_options(p)
    p.set_defaults(func=commands.cmd_fit)

    p = sub.add_parser("predict", help="predict labels of images with a saved model (CSV)",
                       description="Write path,label,probability CSV rows to stdout, one per "
                                   "image. Folders are searched for image files. "
                                   "WARNING: unless its name ends in .skops, MODEL is a pickle "
                                   "(joblib) file, and loading a pickle runs whatever code it "
                                   "holds: only load models you wrote yourself or got from "
                                   "someone you trust.")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("images", nargs="+", metavar="INPUT", help="image files or folders, or one "
                   ".csv file whose text column is predicted (text models)")
    _add_csv_options(p, labels=False)
    p.add_argument("--no-header", dest="header", action="store_false",
                   help="omit the CSV header line")
    p.set_defaults(func=commands.cmd_predict)

    p = sub.add_parser("search", help="grid-search freeze depth (and freezing strategy) with "
                                      "cross-validation",
                       description="Cross-validate every combination of --freeze-depth and "
                                   "--freeze-strategy on IMAGE_DIR, print a table, plot the score "
                                   "against freeze depth.")
    p.add_argument("image_dir", metavar="DATA", help="folder with one sub-folder of images per "
                   "class, or a .csv file with a text and a label column")
    _add_csv_options(p)
    p.add_argument("--cv", type=_positive_int, default=_CV_DEFAULT, metavar="K",
                   help="cross-validation folds; default: %(default)s")
    p.add_argument("--plot", metavar="PNG", default="freeze_depth.png",
                   help="where to write the plot; default: %(default)s ('' for none)")
    p.add_argument("--out", "-o", default=None, metavar="FILE",
                   help="also save the best model (refit on all images) here (.skops: "
                        "skops, else joblib)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_model_options(p, search=True)
    p.set_defaults(func=commands.cmd_search)

    p = sub.add_parser("evaluate", help="score a saved model on labelled data",
                       description="Score MODEL on DATA (a folder with one sub-folder of "
                                   "images per class, or a .csv file, read as `fit` reads "
                                   "them): a classifier prints accuracy, a per-class report "
                                   "and a confusion matrix, a regressor R^2 and MAE.")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("image_dir", metavar="DATA", help="folder with one sub-folder of images per "
                   "class, or a .csv file with a text (or image path) and a label column")
    _add_csv_options(p)
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also draw the confusion matrix (classifiers) or predicted against "
                        "true values (regressors) to this PNG file")
    p.set_defaults(func=commands.cmd_evaluate)
    return parser


def _add_csv_options(p: argparse.ArgumentParser, labels: bool = True) -> None:
    g = p.add_argument_group("CSV input (text backbones, e.g. --backbone minilm_l6)")
    g.add_argument("--text-column", default="text", metavar="NAME",
                   help="column holding the texts; default: %(default)s")
    if labels:
        g.add_argument("--label-column", default="label", metavar="NAME",
                       help="column holding the labels; default: %(default)s")
