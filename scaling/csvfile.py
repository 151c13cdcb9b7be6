"""The one CSV writer: every table the project writes (finetuning, compression, profiles, studies) goes through
here, and `scaling.analysis.runs.read_table` reads them back.

Two ways to write: :func:`write` replaces a whole table atomically (a reader never sees half of it), and
:func:`append` grows one a row at a time, so a killed job keeps every row it finished.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scaling.errors import UserError


def read(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a table as dicts of strings (empty for a missing or empty file)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Replaces the table with `rows` (columns: given, or the union in first-seen order). No rows and no columns
    removes the file, so a table left by an earlier run never outlives what it described."""
    path = Path(path)
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    if not columns:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def append(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Adds `rows` to the table, writing the header first when the file is new; a table with other columns is
    refused rather than mixed."""
    path = Path(path)
    columns = list(columns)
    new = not path.is_file() or not path.stat().st_size
    if not new:
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise UserError(f"{path} has columns {header}, not {columns}: use another file (--out)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)
