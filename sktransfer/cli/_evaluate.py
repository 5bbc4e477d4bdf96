"""``sktransfer evaluate``: score a saved model on labelled data, as text and a picture."""

from __future__ import annotations

import sys

from ._errors import CLIError
from ._output import save_plot, table
from ._reading import read_labelled

__all__ = ["evaluate"]


def evaluate(model, args) -> int:
    from .._regressor import TransferRegressor

    regression = isinstance(model, TransferRegressor)
    if not regression and not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise CLIError(f"{args.model!r} does not hold a fitted classifier or regressor "
                       f"({type(model).__name__})")
    args.task = "regression" if regression else "classification"
    backbone = getattr(model, "backbone_", None)
    items, y = read_labelled(args.image_dir, args, getattr(backbone, "input_kind", None))
    pred = model.predict(items)
    print(f"{args.model} on {args.image_dir} ({len(items)} samples)")
    if regression:
        _regression_report(y, pred, args)
    else:
        _classification_report(model, y, pred, args)
    return 0


def _classification_report(model, y, pred, args) -> None:
    import numpy as np
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

    y = np.asarray(y).astype(np.asarray(model.classes_).dtype, copy=False)
    unknown = sorted(set(np.unique(y).tolist()) - set(np.asarray(model.classes_).tolist()))
    if unknown:
        print(f"note: labels the model was not trained on: {', '.join(map(str, unknown))} "
              f"(every such sample counts as an error)", file=sys.stderr)
    labels = sorted(set(np.asarray(model.classes_).tolist()) | set(unknown))
    print(f"accuracy {accuracy_score(y, pred):.3f}\n")
    print(classification_report(y, pred, labels=labels, zero_division=0))
    matrix = confusion_matrix(y, pred, labels=labels)
    print("confusion matrix (rows: true label, columns: predicted label)")
    print(table([[str(label), *row] for label, row in zip(labels, matrix.tolist())],
                ["true \\ predicted", *map(str, labels)]))
    if args.plot:
        def draw():
            from sklearn.metrics import ConfusionMatrixDisplay

            display = ConfusionMatrixDisplay(matrix, display_labels=labels).plot()
            display.ax_.set_title(f"{args.model} on {args.image_dir}")
            return display.figure_

        save_plot(draw, args.plot)


def _regression_report(y, pred, args) -> None:
    import numpy as np
    from sklearn.metrics import mean_absolute_error, r2_score

    pred = np.asarray(pred).reshape(len(y), -1)[:, 0] if np.ndim(pred) > 1 else pred
    print(f"R^2 {r2_score(y, pred):.3f}")
    print(f"MAE {mean_absolute_error(y, pred):.4g}")
    if args.plot:
        def draw():
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 5))
            ax.scatter(y, pred, s=12, alpha=0.7)
            low, high = float(min(np.min(y), np.min(pred))), float(max(np.max(y), np.max(pred)))
            ax.plot([low, high], [low, high], color="grey", linestyle="--", label="predicted = true")
            ax.set_xlabel("true value")
            ax.set_ylabel("predicted value")
            ax.set_title(f"{args.model} on {args.image_dir}")
            ax.legend()
            return fig

        save_plot(draw, args.plot)
