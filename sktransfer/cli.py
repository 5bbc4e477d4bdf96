"""The ``sktransfer`` command: list backbones and freezing strategies, fit, predict, search.

Every subcommand has ``--help``. Exit codes follow shell habits: 0 success,
1 an error while working (bad image folder, missing weights, unreadable model),
2 a usage error (unknown option, bad value), 130 interrupted. Errors are one
line on stderr; ``--traceback`` (or ``SKTRANSFER_TRACEBACK=1``) shows the full
Python traceback instead.

Every file a command writes (models, plots) is written to a temporary file in
the same folder and renamed over the target only when complete, so a failed or
interrupted command (Ctrl-C exits 130) leaves an existing file untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import signal
import sys
import time
from pathlib import Path

from ._env import env_flag
from ._files import atomic_output, check_regular_file

__all__ = ["main", "build_parser"]

PROG = "sktransfer"
_CV_DEFAULT = 3


class CLIError(Exception):
    """A problem to report as one line, with an exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


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
                   help="DEFAULT (pretrained, from the local cache or a package), none "
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
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, description="Transfer learning from the shell: pretrained backbones, "
                               "a grid-searchable freeze depth, plugins.",
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full Python traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("backbones", help="list backbones (plugins included) and whether "
                                         "their pretrained weights are available offline",
                       description="List registered backbones, the package that provides "
                                   "each, and whether its weights='DEFAULT' can be loaded "
                                   "offline.")
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                   help="fnmatch pattern, e.g. 'resnet*' or '*lite*'")
    p.add_argument("--no-weights", dest="check_weights", action="store_false",
                   help="do not check weight availability (faster)")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("strategies", aliases=["freezers"], help="list freezing strategies",
                       description="List registered freezing strategies (plugins included).")
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN")
    p.set_defaults(func=cmd_strategies)

    p = sub.add_parser("fit", help="fine-tune on a folder of images and save the model",
                       description="Fit a TransferClassifier on IMAGE_DIR (one sub-folder "
                                   "per class) and save it with joblib.")
    p.add_argument("image_dir", metavar="DATA", help="folder with one sub-folder of images per "
                   "class, or a .csv file with a text and a label column")
    _add_csv_options(p)
    p.add_argument("--out", "-o", default="model.joblib", metavar="FILE",
                   help="where to write the fitted model; default: %(default)s")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also write the learning curve to this PNG file")
    p.add_argument("--quiet", "-q", action="store_true", help="no epoch table")
    p.add_argument("--task", choices=["classification", "regression"], default="classification",
                   help="regression fits a TransferRegressor to a numeric label column of a "
                   ".csv file (a column of image paths or texts); default: %(default)s")
    _add_model_options(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="predict labels of images with a saved model (CSV)",
                       description="Write path,label,probability CSV rows to stdout, one per "
                                   "image. Folders are searched for image files. "
                                   "WARNING: MODEL is a pickle (joblib) file, and loading a "
                                   "pickle runs whatever code it holds: only load models you "
                                   "wrote yourself or got from someone you trust.")
    p.add_argument("model", metavar="MODEL", help="a model written by `sktransfer fit` (a "
                                                  "pickle: load only trusted files)")
    p.add_argument("images", nargs="+", metavar="INPUT", help="image files or folders, or one "
                   ".csv file whose text column is predicted (text models)")
    _add_csv_options(p, labels=False)
    p.add_argument("--no-header", dest="header", action="store_false",
                   help="omit the CSV header line")
    p.set_defaults(func=cmd_predict)

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
                   help="also save the best model (refit on all images) here")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_model_options(p, search=True)
    p.set_defaults(func=cmd_search)
    return parser


# -- helpers -----------------------------------------------------------------------------
def _add_csv_options(p: argparse.ArgumentParser, labels: bool = True) -> None:
    g = p.add_argument_group("CSV input (text backbones, e.g. --backbone minilm_l6)")
    g.add_argument("--text-column", default="text", metavar="NAME",
                   help="column holding the texts; default: %(default)s")
    if labels:
        g.add_argument("--label-column", default="label", metavar="NAME",
                       help="column holding the labels; default: %(default)s")


def _is_csv(path: str) -> bool:
    return str(path).lower().endswith(".csv")


def _read_csv(path: str, columns: list[str]) -> list[list[str]]:
    """The given columns of a CSV file (header line first), as lists of str."""
    if not Path(path).is_file():
        raise CLIError(f"CSV file not found: {path!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise CLIError(f"{path!r} has no column {missing[0]!r}; its columns are "
                               f"{header}. Name the columns with --text-column and "
                               f"--label-column")
            rows = [[row[c] for c in columns] for row in reader]
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path!r} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise CLIError(f"{path!r} is not a readable CSV file: {exc}") from exc
    for line, row in enumerate(rows, start=2):
        for column, value in zip(columns, row):
            if value is None:
                raise CLIError(f"{path!r} line {line}: no value in column {column!r} (the "
                               f"row has fewer fields than the header)")
    if not rows:
        raise CLIError(f"{path!r} has a header but no rows")
    return [list(col) for col in zip(*rows)]


def _numeric_targets(path: str, column: str, values: list[str]):
    """A CSV column as float targets; the first non-number is named with its line."""
    import numpy as np

    out = np.empty(len(values), dtype=np.float64)
    for line, value in enumerate(values, start=2):
        try:
            out[line - 2] = float(value)
        except ValueError:
            out[line - 2] = np.nan
        if not np.isfinite(out[line - 2]):
            raise CLIError(f"{path!r} line {line}: {value!r} in column {column!r} is not a "
                           f"finite number; --task regression needs a numeric target in "
                           f"every row")
    return out


def _load_folder(image_dir: str, args=None):
    import numpy as np

    from ._data import load_image_folder

    if getattr(args, "task", "classification") == "regression":
        if not _is_csv(image_dir):
            raise CLIError(f"--task regression needs a .csv file with a numeric target column "
                           f"(--label-column) and a column of image paths or texts "
                           f"(--text-column); {image_dir!r} is not a .csv file")
        texts, values = _read_csv(image_dir, [args.text_column, args.label_column])
        return texts, _numeric_targets(image_dir, args.label_column, values)
    if _is_csv(image_dir):
        texts, labels = _read_csv(image_dir, [args.text_column, args.label_column])
        labels = np.asarray(labels)
        if len(set(labels.tolist())) < 2:
            raise CLIError(f"{image_dir!r} has one label ({labels[0]!r}) in column "
                           f"{args.label_column!r}; a classifier needs at least 2")
        return texts, labels
    paths, labels = load_image_folder(image_dir)
    classes, counts = _class_counts(labels)
    if len(classes) < 2:
        raise CLIError(f"{image_dir!r} has one class folder ({classes[0]!r}); a classifier "
                       f"needs at least 2 sub-folders of images")
    return paths, labels


def _class_counts(labels):
    import numpy as np

    classes, counts = np.unique(labels, return_counts=True)
    return classes.tolist(), counts.tolist()


def _classifier(args, **overrides):
    from . import TransferClassifier, TransferRegressor

    params = dict(backbone=args.backbone, weights=args.weights,
                  freeze_depth=args.freeze_depth, freeze_strategy=args.freeze_strategy,
                  image_size=args.image_size,
                  augment=None if args.augment == "none" else args.augment,
                  max_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                  device=args.device, random_state=args.seed)
    params.update({f"freeze_strategy__{k}": v for k, v in args.strategy_option})
    params.update(overrides)
    if getattr(args, "task", "classification") == "regression":
        return TransferRegressor(**params)
    return TransferClassifier(**params)


def _check_backbone(name: str) -> None:
    """Fail early, with a suggestion, on an unknown backbone name."""
    from .backbones import BACKBONES

    BACKBONES.source(name)  # raises the registry's error, with suggestions


def _check_output(path: str) -> None:
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise CLIError(f"cannot write {path!r}: folder {str(parent)!r} does not exist")
    if Path(path).is_dir():
        raise CLIError(f"cannot write {path!r}: it is a folder")


def _save_model(model, path: str) -> None:
    import joblib

    with atomic_output(path) as tmp:
        joblib.dump(model, tmp)


def _save_plot(make_figure, path: str) -> None:
    """Draw and write a plot, or say why it was skipped when matplotlib is missing."""
    try:
        fig = make_figure()
    except ImportError as exc:
        if "matplotlib" not in str(exc):
            raise
        print(f"plot skipped ({path} not written): matplotlib is not installed; "
              f"pip install 'sktransfer[plot]' to get it", file=sys.stderr)
        return
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix[1:].lower() or None)
    print(f"plot written to {path}", file=sys.stderr)


def _weights_status(name: str) -> tuple[str, str]:
    """(offline status, weights file and source) of backbone ``name``'s DEFAULT weights.

    Status: "yes" (the file is on this machine), "no" (it is not), "none" (no
    pretrained weights), "?" (the provider does not state them; nothing is
    built to find out). Read from what the provider states (``pretrained_weights``).
    """
    from .backbones import pretrained_weights

    try:
        stated = pretrained_weights(name)
    except LookupError:
        return "?", "not stated by its provider"
    if stated is None:
        return "none", "-"
    status = "yes" if stated.available() else "no"
    return status, f"{Path(stated.filename).name} ({stated.source})"


def _table(rows, header) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


# -- commands ----------------------------------------------------------------------------
def cmd_backbones(args) -> int:
    from .backbones import BACKBONES, list_backbones

    names = list_backbones(args.pattern)
    if not names:
        raise CLIError(f"no backbone matches {args.pattern!r}; run `{PROG} backbones` for all")
    rows, unstated, failed = [], 0, {}
    progress = _progress(names, "checking weights", disable=not args.check_weights
                         or len(names) < 4)
    for name in progress:
        source = BACKBONES.source(name)
        if not args.check_weights:
            rows.append((name, source))
            continue
        try:
            status, where = _weights_status(name)
        except Exception as exc:  # noqa: BLE001 - one provider's failure must not stop the listing
            status, where = "?", "error (see below)"
            failed[name] = f"{type(exc).__name__}: {exc}"
        unstated += where == "not stated by its provider"
        rows.append((name, source, status, where))
    header = ("backbone", "from") + (("weights offline", "weights file") if args.check_weights
                                     else ())
    print(_table(rows, header))
    for name, why in failed.items():
        print(f"warning: could not read the weights of {name!r}: {why}", file=sys.stderr)
    for name, why in BACKBONES.failed().items():
        print(f"warning: plugin {name!r} failed to load ({why})", file=sys.stderr)
    if args.check_weights:
        print("\nweights offline: yes = weights='DEFAULT' loads now; no = pretrained weights "
              "exist but are not on this machine; none = no pretrained weights "
              "(use --weights none)"
              + ("; ? = the plugin does not state its weights (get_backbone(name, "
                 "weights='DEFAULT') tells)" if unstated else ""), file=sys.stderr)
    return 0


def cmd_strategies(args) -> int:
    from .freezing import STRATEGIES, list_strategies

    names = list_strategies(args.pattern)
    if not names:
        raise CLIError(f"no freezing strategy matches {args.pattern!r}; run "
                       f"`{PROG} strategies` for all")
    rows = []
    for name in names:
        builder = STRATEGIES.builder(name)
        doc = (getattr(builder, "__doc__", None) or "").strip().splitlines()
        summary = doc[0].split(":", 1)[-1].strip().replace("``", "") if doc else ""
        rows.append((name, STRATEGIES.source(name), summary))
    print(_table(rows, ("strategy", "from", "what it does")))
    return 0


def cmd_fit(args) -> int:
    _check_output(args.out)
    if args.plot:
        _check_output(args.plot)
    paths, labels = _load_folder(args.image_dir, args)
    _check_backbone(args.backbone)
    regression = args.task == "regression"
    if regression:
        what = (f"a numeric target (mean {labels.mean():.4g}, std {labels.std():.4g})")
    else:
        classes, counts = _class_counts(labels)
        what = f"{len(classes)} classes: " + ", ".join(f"{c} ({n})"
                                                       for c, n in zip(classes, counts))
    print(f"fitting {args.backbone} (freeze_depth={args.freeze_depth}, freeze_strategy="
          f"{args.freeze_strategy}) on {len(paths)} samples of {what}", file=sys.stderr)
    clf = _classifier(args, verbose=0 if args.quiet else 1)
    start = time.perf_counter()
    # skorch's epoch table goes to stdout via print; keep stdout for results
    with _stdout_to_stderr(), _interrupts() as interrupted:
        clf.fit(paths, labels)
        interrupted.check()
    elapsed = time.perf_counter() - start
    _save_model(clf, args.out)
    metric = "R^2" if regression else "accuracy"
    print(f"training {metric} {clf.score(paths, labels):.3f}; fit took {elapsed:.1f} s; "
          f"model written to {args.out}")
    if args.plot:
        from .plotting import plot_history

        _save_plot(lambda: plot_history(clf), args.plot)
    return 0


def _image_files(items) -> list[str]:
    from ._data import IMAGE_EXTENSIONS

    files = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file()
                           and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise CLIError(f"no image files found in folder {item!r}")
            files += found
        elif p.exists():
            check_regular_file(p, "image file")
            files.append(str(p))
        else:
            raise CLIError(f"image file not found: {item!r}")
    return files


def cmd_predict(args) -> int:
    import joblib
    import numpy as np

    model = Path(args.model)
    if not model.exists():
        raise CLIError(f"model file not found: {args.model!r} (write one with "
                       f"`{PROG} fit IMAGE_DIR --out {args.model}`)")
    check_regular_file(model, "model file")
    texts = None
    if any(_is_csv(item) for item in args.images):
        if len(args.images) != 1:
            raise CLIError("pass one .csv file, or image files and folders, not both")
        (texts,) = _read_csv(args.images[0], [args.text_column])
    files = texts if texts is not None else _image_files(args.images)
    try:
        clf = joblib.load(model)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a model"
        raise CLIError(f"cannot read model {args.model!r}: {type(exc).__name__}: {exc}") \
            from exc
    from ._regressor import TransferRegressor

    if isinstance(clf, TransferRegressor) and hasattr(clf, "target_mean_"):
        pred = clf.predict(files).reshape(len(files), -1)
        with _raw_file_names(sys.stdout):
            writer = csv.writer(sys.stdout, lineterminator="\n")
            if args.header:
                names = ["prediction"] if pred.shape[1] == 1 else [
                    f"prediction{i}" for i in range(pred.shape[1])]
                writer.writerow(["text" if texts is not None else "path", *names])
            for path, row in zip(files, pred):
                writer.writerow([path, *(f"{v:.6g}" for v in row)])
        return 0
    if not hasattr(clf, "predict_proba") or not hasattr(clf, "classes_"):
        raise CLIError(f"{args.model!r} does not hold a fitted classifier or regressor "
                       f"({type(clf).__name__})")
    proba = clf.predict_proba(files)
    best = np.argmax(proba, axis=1)
    with _raw_file_names(sys.stdout):
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if args.header:
            writer.writerow(["text" if texts is not None else "path", "label", "probability"])
        for path, index, row in zip(files, best, proba):
            writer.writerow([path, clf.classes_[index], f"{row[index]:.4f}"])
    return 0


@contextlib.contextmanager
def _raw_file_names(stream):
    """Write file names that are not valid in the stream's encoding back as their
    original bytes (Python holds them as surrogates), as ``ls`` does."""
    errors = getattr(stream, "errors", None)
    if errors is None or not hasattr(stream, "reconfigure"):
        yield
        return
    stream.reconfigure(errors="surrogateescape")
    try:
        yield
    finally:
        stream.reconfigure(errors=errors)


def cmd_search(args) -> int:
    import numpy as np
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    if args.out:
        _check_output(args.out)
    if args.plot:
        _check_output(args.plot)
    paths, labels = _load_folder(args.image_dir, args)
    _check_backbone(args.backbone)
    from .freezing import STRATEGIES

    for name in args.freeze_strategy:
        STRATEGIES.source(name)  # raises the registry's error, with suggestions
    classes, counts = _class_counts(labels)
    if args.cv < 2:
        raise CLIError("--cv must be at least 2")
    if min(counts) < args.cv:
        small = classes[int(np.argmin(counts))]
        raise CLIError(f"class {small!r} has {min(counts)} image(s), fewer than --cv "
                       f"{args.cv}; add images or lower --cv")
    grid = {"freeze_depth": list(dict.fromkeys(args.freeze_depth)),
            "freeze_strategy": list(dict.fromkeys(args.freeze_strategy))}
    n_fits = len(grid["freeze_depth"]) * len(grid["freeze_strategy"]) * args.cv
    print(f"searching {n_fits // args.cv} settings x {args.cv} folds of {args.backbone} on "
          f"{len(paths)} samples of {len(classes)} classes", file=sys.stderr)
    bar = _progress(None, "cross-validating", total=n_fits, disable=args.quiet)
    accuracy = get_scorer("accuracy")

    def scorer(estimator, X, y):  # counts finished fits for the progress bar
        interrupted.check()  # skorch swallows Ctrl-C in fit; stop the search here
        bar.update(1)
        return accuracy(estimator, X, y)

    search = GridSearchCV(_classifier(args, freeze_depth=grid["freeze_depth"][0]), grid,
                          cv=StratifiedKFold(args.cv, shuffle=True, random_state=args.seed),
                          scoring=scorer, error_score="raise", refit=bool(args.out))
    start = time.perf_counter()
    try:
        with _interrupts() as interrupted:
            search.fit(paths, labels)
            interrupted.check()
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    res = search.cv_results_
    order = np.argsort(res["rank_test_score"], kind="stable")
    rows = [(res["rank_test_score"][i], res["param_freeze_depth"][i],
             res["param_freeze_strategy"][i], f"{res['mean_test_score'][i]:.3f}",
             f"{res['std_test_score'][i]:.3f}", f"{res['mean_fit_time'][i]:.1f}")
            for i in order]
    print(_table(rows, ("rank", "freeze_depth", "freeze_strategy", "accuracy", "std",
                        "fit time (s)")))
    best = search.best_params_
    print(f"best: freeze_depth={best['freeze_depth']} freeze_strategy={best['freeze_strategy']} "
          f"(accuracy {search.best_score_:.3f}, {args.cv}-fold CV); search took {elapsed:.1f} s")
    if args.out:
        _save_model(search.best_estimator_, args.out)
        print(f"best model written to {args.out}", file=sys.stderr)
    if args.plot:
        from .plotting import plot_freeze_depth

        _save_plot(lambda: plot_freeze_depth(search, title=f"{args.backbone}: accuracy against "
                                                           f"freeze depth"), args.plot)
    return 0


# -- plumbing ----------------------------------------------------------------------------
class _stdout_to_stderr:
    def __enter__(self):
        self._old = sys.stdout
        sys.stdout = sys.stderr

    def __exit__(self, *exc):
        sys.stdout = self._old


class _InterruptFlag:
    def __init__(self):
        self.seen = False

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts():
    """Remember a Ctrl-C that library code swallows (skorch ends ``fit`` quietly on
    KeyboardInterrupt and keeps the half-trained model); ``check()`` re-raises it."""
    flag = _InterruptFlag()

    def handler(signum, frame):
        flag.seen = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals cannot be caught here
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(iterable, desc, total=None, disable=False):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stderr,
                leave=False, dynamic_ncols=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run the ``sktransfer`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code instead of exiting, so it can be called from Python.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        show_traceback = args.traceback or env_flag("SKTRANSFER_TRACEBACK")
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    from sklearn.exceptions import NotFittedError

    from . import PluginError

    expected = (CLIError, ValueError, TypeError, OSError, PluginError, NotFittedError,
                ImportError)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sktransfer predict ... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        except OSError:
            pass
        return 0
    except expected as exc:
        if show_traceback:
            raise
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return getattr(exc, "code", 1) if isinstance(exc, CLIError) else 1


if __name__ == "__main__":
    sys.exit(main())
