"""CSV files of samples: a column of image / audio paths or texts, and a label column."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["is_csv", "read_csv", "numeric_column", "csv_items"]


def is_csv(path) -> bool:
    return str(path).lower().endswith(".csv")


def read_csv(path, columns: list[str], *, missing_hint: str = "") -> list[list[str]]:
    """The given columns of a CSV file (header line first), as lists of str.

    ``missing_hint`` ends the message about a missing column (how to name another).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"CSV file not found: {path!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise ValueError(f"{path!r} has no column {missing[0]!r}; its columns are "
                                 f"{header}.{missing_hint}")
            rows = [[row[c] for c in columns] for row in reader]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path!r} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise ValueError(f"{path!r} is not a readable CSV file: {exc}") from exc
    for line, row in enumerate(rows, start=2):
        for column, value in zip(columns, row):
            if value is None:
                raise ValueError(f"{path!r} line {line}: no value in column {column!r} (the "
                                 f"row has fewer fields than the header)")
    if not rows:
        raise ValueError(f"{path!r} has a header but no rows")
    return [list(col) for col in zip(*rows)]


def numeric_column(path, column: str, values: list[str], *, why: str = "") -> np.ndarray:
    """A CSV column as float numbers; the first non-number is named with its line.
    ``why`` ends that message (what needs the numbers)."""
    out = np.empty(len(values), dtype=np.float64)
    for line, value in enumerate(values, start=2):
        try:
            out[line - 2] = float(value)
        except ValueError:
            out[line - 2] = np.nan
        if not np.isfinite(out[line - 2]):
            raise ValueError(f"{path!r} line {line}: {value!r} in column {column!r} is not a "
                             f"finite number{why}")
    return out


def csv_items(path, values: list[str], column: str, input_kind: str | None) -> list[str]:
    """The items of a CSV column as the model reads them.

    For a text backbone they are texts, unchanged. Otherwise they are image (or audio)
    paths: a relative one is relative to the CSV file's folder (so the CSV and its
    files can move together), an absolute one stays as written, and a missing file is
    named as written and where it was looked for.
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
            raise FileNotFoundError(f"{path!r} line {line}: {what} {value!r} in column "
                                    f"{column!r} not found (looked for {str(where)!r}; "
                                    f"relative paths are read from the CSV file's folder)")
        items.append(str(where))
    return items
