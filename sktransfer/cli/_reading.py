"""Reading the ``sktransfer`` command's data: image or audio folders, CSV files, media files."""

from __future__ import annotations

import csv
from pathlib import Path

from .._files import check_regular_file
from ._errors import CLIError

__all__ = ["check_data_exists", "is_csv", "read_csv", "read_labelled", "csv_items", "image_files", "class_counts"]


def is_csv(path: str) -> bool:
    return str(path).lower().endswith(".csv")


def read_csv(path: str, columns: list[str]) -> list[list[str]]:
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


def csv_items(path: str, values: list[str], column: str, input_kind: str | None) -> list[str]:
    """The items of a CSV column as the model reads them.

    For a text backbone they are texts, unchanged. Otherwise they are image paths: a
    relative one is relative to the CSV file's folder (so the CSV and its images can
    move together), an absolute one stays as written, and a missing file is named
    as written and where it was looked for.
    """
    if input_kind == "text":
        return values
    what = "audio file" if input_kind == "audio" else "image file"
    folder = Path(path).parent
    items = []
    for line, value in enumerate(values, start=2):
        written = Path(value).expanduser()
        where = written if written.is_absolute() else folder / written
        if not where.exists():
            raise CLIError(f"{path!r} line {line}: {what} {value!r} in column {column!r} "
                           f"not found (looked for {str(where)!r}; relative paths are read from "
                           f"the CSV file's folder)")
        items.append(str(where))
    return items


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
            return items, _numeric_targets(data, args.label_column, values)
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
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file()
                           and f.suffix.lower() in extensions
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise CLIError(f"no {what} files found in folder {item!r}")
            files += found
        elif p.exists():
            check_regular_file(p, f"{what} file")
            files.append(str(p))
        else:
            raise CLIError(f"{what} file not found: {item!r}")
    return files
