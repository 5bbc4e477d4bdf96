"""Reading the ``sktransfer`` command's data: image or audio folders, CSV files, media files."""

from __future__ import annotations

from pathlib import Path

from .._data import csv_items, is_csv, list_files, numeric_column
from .._data import read_csv as _read_csv
from .._files import check_regular_file
from ._errors import PROG, CLIError

__all__ = ["check_data_exists", "is_csv", "read_csv", "read_labelled", "csv_items", "image_files",
           "class_counts"]


def read_csv(path: str, columns: list[str]) -> list[list[str]]:
    """The given columns of a CSV file, with the flags that name other columns."""
    return _read_csv(path, columns,
                     missing_hint=" Name the columns with --text-column and --label-column")


def check_data_exists(data: str) -> None:
    """The cheapest check first: DATA names something (before options are checked)."""
    if not Path(data).exists():
        what = "CSV file" if is_csv(data) else "image folder"
        raise FileNotFoundError(f"{what} not found: {data!r}")


def read_labelled(data: str, args, input_kind: str | None):
    """(items, labels) of a labelled folder or CSV file, read the same way by ``fit``,
    ``search`` and ``evaluate``; numeric targets for ``--task regression``."""
    import numpy as np

    from .._data import load_audio_folder, load_image_folder

    regression = getattr(args, "task", "classification") == "regression"
    if regression and not is_csv(data):
        raise CLIError(f"--task regression needs a .csv file with a numeric target column "
                       f"(--label-column) and a column of image paths or texts "
                       f"(--text-column); {data!r} is not a .csv file")
    if is_csv(data):
        texts, values = read_csv(data, [args.text_column, args.label_column])
        items = csv_items(data, texts, args.text_column, input_kind)
        if regression:
            return items, numeric_column(data, args.label_column, values,
                                         why="; --task regression needs a numeric target in "
                                             "every row")
        labels = np.asarray(values)
        if len(set(labels.tolist())) < 2:
            raise CLIError(f"{data!r} has one label ({labels[0]!r}) in column "
                           f"{args.label_column!r}; a classifier needs at least 2")
        return items, labels
    audio = input_kind == "audio"
    paths, labels = (load_audio_folder if audio else load_image_folder)(data)
    classes, _ = class_counts(labels)
    if len(classes) < 2:
        raise CLIError(f"{data!r} has one class folder ({classes[0]!r}); a classifier "
                       f"needs at least 2 sub-folders of {'audio files' if audio else 'images'}")
    return paths, labels


def class_counts(labels):
    import numpy as np

    classes, counts = np.unique(labels, return_counts=True)
    return classes.tolist(), counts.tolist()


def image_files(items, input_kind: str | None = None) -> list[str]:
    """The files named on the command line, folders listed (audio files for an audio model)."""
    from .._data import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS

    what, extensions = ("audio", AUDIO_EXTENSIONS) if input_kind == "audio" else \
        ("image", IMAGE_EXTENSIONS)
    files = []
    for item in items:
        p = Path(item)
        if p.is_dir():  # listed as fit lists its class folders (load_image_folder)
            found = list_files(p, extensions, what=what, caller=f"{PROG} predict")
            if not found:
                raise CLIError(f"no {what} files found in folder {item!r}")
            files += found
        elif p.exists():
            check_regular_file(p, f"{what} file")
            files.append(str(p))
        else:
            raise CLIError(f"{what} file not found: {item!r}")
    return files
