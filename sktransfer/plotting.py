"""Pictures of a transfer-learning fit: score against freeze depth, learning curves.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``, so nothing global changes, no window opens, and it works on a
machine without a display: save it with ``fig.savefig("plot.png")`` or let a
notebook show it. matplotlib is imported on first use only; it is an optional
dependency (``pip install sktransfer[plot]``).
"""

from __future__ import annotations

import numbers
import textwrap

import numpy as np

__all__ = ["plot_freeze_depth", "plot_history"]


def _matplotlib():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("sktransfer.plotting needs matplotlib, which is not installed; "
                          "pip install 'sktransfer[plot]' (or pip install matplotlib)") from exc
    from matplotlib.figure import Figure

    return matplotlib, Figure


def _new_axes(ax, figsize):
    """``ax`` and its figure, or a fresh Agg-backed figure with one axes."""
    _, Figure = _matplotlib()
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # Agg, whatever backend pyplot would pick
    return fig, fig.add_subplot()


def _depth_order(value):
    """Sort key: ints by stage count (negatives count from the top), then "all"."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (0, value) if value >= 0 else (1, value)
    return (2, str(value))


def _label(value) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, str):
        return value
    name = type(value).__name__
    return name if not isinstance(value, (numbers.Number, tuple, list)) else repr(value)


#: scorers whose values lie in [0, 1] (sklearn's names, matched as prefixes so that
#: "f1_macro", "roc_auc_ovr", "precision_weighted" ... count too)
_UNIT_SCORERS = ("accuracy", "balanced_accuracy", "top_k_accuracy", "average_precision",
                 "roc_auc", "f1", "precision", "recall", "jaccard")


def _score_range(search, results, metric: str) -> tuple[float, float]:
    """The range the search's score ``metric`` can take (a bounded scorer), else (-inf, inf).

    ``scoring=None`` means the estimator's own ``score``: accuracy for a classifier,
    R^2 for a regressor (sklearn's conventions). Of several scorers (``metric`` not
    ``"score"``) the name says which: sklearn's names, and ``brier``
    (:func:`~sktransfer.brier_scorer`, TransferClassifierCV's)."""
    from sklearn.base import is_classifier, is_regressor

    if metric == "brier":
        return -2.0, 0.0
    if metric != "score":
        scoring = metric
    elif hasattr(search, "cv_results_"):  # a search estimator: its tags are its estimator's
        scoring = getattr(search, "scoring", None)
        if scoring is None:
            scoring = "accuracy" if is_classifier(search) else \
                "r2" if is_regressor(search) else None
    else:
        scoring = results.get("scoring")
    scoring = _scorer_name(scoring)
    if scoring is None:
        return -np.inf, np.inf
    if scoring.startswith(_UNIT_SCORERS):
        return 0.0, 1.0
    if scoring.startswith("neg_"):  # sklearn's negated losses
        return -np.inf, 0.0
    if scoring in ("r2", "explained_variance") or scoring.startswith("d2_"):
        return -np.inf, 1.0
    return -np.inf, np.inf


def _scorer_name(scoring) -> str | None:
    """sklearn's name of a scorer: a name as given, a scorer object ``get_scorer(name)``
    returns (``scoring=get_scorer("accuracy")``) recognised by its description, None for
    any other callable (its range is unknown)."""
    if isinstance(scoring, str) or scoring is None:
        return scoring
    from sklearn.metrics import get_scorer, get_scorer_names

    described = repr(scoring)
    if not described.startswith("make_scorer("):
        return None
    return next((name for name in get_scorer_names() if repr(get_scorer(name)) == described),
                None)


def plot_freeze_depth(search, param: str = "freeze_depth", ax=None, title: str | None = None,
                      scorer: str | None = None, score_range: tuple | None = None):
    """Cross-validated score against ``freeze_depth``, one line per other setting.

    Parameters
    ----------
    search : fitted GridSearchCV / RandomizedSearchCV, or its ``cv_results_`` dict
        A search whose grid includes ``param`` (optionally under a pipeline
        prefix, e.g. ``transferclassifier__freeze_depth``).
    param : str, default="freeze_depth"
        The parameter on the x axis; every other varying parameter (such as
        ``freeze_strategy``) gets its own line.
    ax : matplotlib Axes, optional
        Draw there instead of on a new figure.
    title : str, optional
    scorer : str, optional
        Which score to plot when the search used several (``mean_test_<scorer>``);
        by default the first (``accuracy`` for
        :class:`~sktransfer.TransferClassifierCV`'s default scoring).
    score_range : (low, high), optional
        The values the plotted score can take, to clip its band to: for a scoring
        function of your own (a callable the plot cannot recognise), e.g. ``(0, 1)``
        for one that returns an accuracy. By default inferred (below).

    Returns
    -------
    matplotlib.figure.Figure
        Mean test score with a +-1 std band; the best candidate is ringed (for
        a search with a ``best_index_``, such as a ``select_most_frozen`` refit or
        a TransferClassifierCV, the chosen one). For a
        bounded score the band is clipped to the values the score can take
        (accuracy, F1, ROC AUC ... to [0, 1]; R^2 to at most 1; ``neg_*`` losses
        to at most 0): ``scoring=None`` is the estimator's own score (accuracy
        for a classifier), a scorer from ``sklearn.metrics.get_scorer`` is known by
        its name, and a ``cv_results_`` dict with a ``"scoring"`` entry names its
        scorer there. Any other callable scorer is unbounded unless ``score_range``
        says otherwise.

    Examples
    --------
    >>> fig = plot_freeze_depth(search)          # doctest: +SKIP
    >>> fig.savefig("freeze_depth.png")          # doctest: +SKIP
    """
    results = getattr(search, "cv_results_", search)
    if not isinstance(results, dict) or "params" not in results:
        raise TypeError(f"plot_freeze_depth needs a fitted GridSearchCV (or its cv_results_), "
                        f"got {type(search).__name__}")
    params = results["params"]
    key = next((k for k in params[0] if k == param or k.endswith("__" + param)), None) \
        if params else None
    if key is None:
        raise ValueError(f"the search did not vary {param!r}; its parameters are "
                         f"{sorted(params[0]) if params else []}")
    metrics = [k[len("mean_test_"):] for k in results if k.startswith("mean_test_")]
    metric = scorer or ("score" if "score" in metrics else metrics[0] if metrics else "score")
    if metric not in metrics:
        raise ValueError(f"the search has no mean_test_{metric}; its scores are {metrics}")
    means = np.asarray(results[f"mean_test_{metric}"], dtype=float)
    stds = np.asarray(results.get(f"std_test_{metric}", np.zeros_like(means)), dtype=float)
    others = sorted({k for p in params for k in p if k != key})
    varying = [k for k in others if len({repr(p.get(k)) for p in params}) > 1]

    depths = sorted({p[key] for p in params}, key=_depth_order)
    position = {repr(d): i for i, d in enumerate(depths)}
    lines: dict[str, list[int]] = {}
    for i, p in enumerate(params):
        name = ", ".join(f"{k.split('__')[-1]}={_label(p.get(k))}" for k in varying) or "score"
        lines.setdefault(name, []).append(i)

    if score_range is not None:
        low, high = (float(v) for v in score_range)
        if not low < high:
            raise ValueError(f"score_range={score_range!r} must be (low, high) with low < high")
    else:
        low, high = _score_range(search, results, metric)
    fig, ax = _new_axes(ax, (6.4, 4.2))
    for name, rows in lines.items():
        rows = sorted(rows, key=lambda r: position[repr(params[r][key])])
        x = np.array([position[repr(params[r][key])] for r in rows])
        m, s = means[rows], stds[rows]
        ok = np.isfinite(m)
        ax.plot(x[ok], m[ok], marker="o", label=name)
        ax.fill_between(x[ok], np.clip(m - s, low, high)[ok], np.clip(m + s, low, high)[ok],
                        alpha=0.2)
    chosen = getattr(search, "best_index_", None)
    if chosen is None and np.isfinite(means).any():
        chosen = int(np.nanargmax(means))
    if chosen is not None:
        ax.plot([position[repr(params[chosen][key])]], [means[chosen]], marker="o", ms=14,
                mfc="none", mec="black", mew=1.5, ls="none", label="best")
    ax.set_xticks(range(len(depths)), [str(d) for d in depths])
    ax.set_xlabel(f"{param} (frozen blocks; negative = counted from the top, "
                  f"'all' = linear probe)" if param == "freeze_depth" else param)
    scoring = results.get("scoring") or "score" if metric == "score" else metric
    ax.set_ylabel(f"cross-validated {scoring if isinstance(scoring, str) else 'score'}")
    ax.set_title(title or f"Score against {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_history(classifier, ax=None, title: str | None = None):
    """Learning curve of a fitted :class:`~sktransfer.TransferClassifier` (or any skorch net).

    Training loss per epoch, validation loss when a validation split was used,
    and validation accuracy on a second axis when recorded. Epochs are ticked at
    whole numbers; the estimator's settings in the title wrap onto more lines
    rather than run out of the figure.

    Parameters
    ----------
    classifier : fitted skorch net, or its ``history``
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    history = getattr(classifier, "history", classifier)
    try:
        epochs = list(history[:, "epoch"])
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"plot_history needs a fitted skorch net or its history; "
                         f"{type(classifier).__name__} has no recorded epochs (fit it "
                         f"first)") from exc
    if not epochs:
        raise ValueError("the history is empty: fit the classifier first")

    def column(name):
        values = [row.get(name) for row in history]
        if all(v is None for v in values):
            return None
        return np.array([np.nan if v is None else float(v) for v in values])

    fig, ax = _new_axes(ax, (6.4, 4.2))
    train = column("train_loss")
    valid = column("valid_loss")
    acc = column("valid_acc")
    handles = []
    if train is not None:
        handles += ax.plot(epochs, train, marker=".", label="train loss")
    if valid is not None:
        handles += ax.plot(epochs, valid, marker=".", label="validation loss")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    formatter = ax.yaxis.get_major_formatter()
    if hasattr(formatter, "set_useOffset"):  # an offset text ("1e-6+6.93e-1") hits the title
        formatter.set_useOffset(False)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (cross-entropy)")
    ax.grid(alpha=0.3)
    if acc is not None:
        twin = ax.twinx()
        handles += twin.plot(epochs, acc, color="tab:green", marker=".",
                             label="validation accuracy")
        twin.set_ylabel("accuracy")
        twin.set_ylim(0, 1.02)
    if handles:
        ax.legend(handles=handles, labels=[h.get_label() for h in handles], fontsize="small")
    name = "model" if history is classifier else type(classifier).__name__
    details = []
    for attr in ("backbone", "freeze_depth", "freeze_strategy"):
        if hasattr(classifier, attr):
            details.append(f"{attr}={_label(getattr(classifier, attr))}")
    if title is None:
        title = f"Learning curve of {name}"
        if details:
            title += "\n" + textwrap.fill(", ".join(details), width=55)
    ax.set_title(title, fontsize="medium")
    return fig
