"""Saving and loading the ``sktransfer`` command's models: skops or joblib, by suffix.

``FILE.skops`` is written and read with skops (plain data, no pickled code; see
``sktransfer/_persist.py``); any other name with joblib (a pickle). A skops file
is read trusting exactly the types a model written by ``sktransfer fit`` or
``search`` refers to; a file that asks for more is refused, naming the types.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .._files import atomic_output, check_regular_file
from ._errors import PROG, CLIError

__all__ = ["save_model", "load_model", "CLI_SKOPS_TYPES"]

# every type a TransferClassifier / TransferRegressor with the command's parameters
# refers to (see sktransfer/_persist.py): the estimators, their network, and the
# classes named by their module / criterion / optimizer / iterator / dataset parameters
CLI_SKOPS_TYPES = (
    "sktransfer._classifier.TransferClassifier",
    "sktransfer._regressor.TransferRegressor",
    "sktransfer._network.TransferNet",
    "torch.nn.modules.loss.CrossEntropyLoss",
    "torch.nn.modules.loss.MSELoss",
    "torch.optim.adamw.AdamW",
    "torch.utils.data.dataloader.DataLoader",
    "skorch.dataset.Dataset",
)


def _is_skops(path) -> bool:
    return str(path).lower().endswith(".skops")


def _skops_io():
    try:
        import skops.io
    except ImportError as exc:
        raise CLIError("a .skops model needs the skops package: pip install "
                       "'sktransfer[skops]' (or write the model to a .joblib file)") from exc
    return skops.io


def save_model(model, path: str) -> None:
    """Write ``model`` to ``path`` (skops for ``.skops``, else joblib), atomically."""
    if _is_skops(path):
        sio = _skops_io()
        with atomic_output(path) as tmp:
            sio.dump(model, tmp)
        return
    import joblib

    with atomic_output(path) as tmp:
        joblib.dump(model, tmp)


def load_model(path: str):
    """Read a model written by :func:`save_model`; a :class:`CLIError` says why not."""
    model = Path(path)
    if not model.exists():
        raise CLIError(f"model file not found: {path!r} (write one with "
                       f"`{PROG} fit DATA --out {path}`)")
    check_regular_file(model, "model file")
    if _is_skops(path):
        sio = _skops_io()
        try:
            untrusted = sio.get_untrusted_types(file=model)
            extra = sorted(set(untrusted) - set(CLI_SKOPS_TYPES))
            if extra:
                raise CLIError(f"{path!r} refers to types `{PROG}` does not trust: "
                               f"{', '.join(extra)}. Load it in Python with "
                               f"skops.io.load(file, trusted=[...]) after checking them")
            return sio.load(model, trusted=list(untrusted))
        except CLIError:
            raise
        except Exception as exc:  # noqa: BLE001 - any read failure means "not a skops model"
            raise CLIError(f"cannot read model {path!r} as a skops file: "
                           f"{type(exc).__name__}: {exc}") from exc
    if zipfile.is_zipfile(model):
        raise CLIError(f"cannot read model {path!r}: it is a zip archive (a skops model?), "
                       f"which is read by its name ending: rename it to "
                       f"{model.with_suffix('.skops').name!r}")
    import joblib

    try:
        return joblib.load(model)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a model"
        raise CLIError(f"cannot read model {path!r}: not a joblib/pickle model file "
                       f"({type(exc).__name__}: {exc}); `{PROG} fit --out` writes "
                       f"FILE.joblib or FILE.skops") from exc
