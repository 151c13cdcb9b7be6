"""seqio task registry: span corruption and MLM over C4, the embedded sotu corpus, and user text files.

Importing this module registers (idempotently; re-registering a name replaces it):

    c4_span_corruption, c4_mlm          tfds `c4/en:3.1.0` ($SCALING_C4_VERSION, $SCALING_C4_DATA_DIR; or call
                                        `register_c4_tasks(version=..., data_dir=..., vocabulary_path=...)`)
    sotu_span_corruption, sotu_mlm      the embedded State of the Union corpus, split by year
    sotu_cramming_mlm                   sotu with the crammed BERT's curation (compression filter, rows sorted by
                                        sentence count: `curation.CRAMMING`) and 25% masking
    sotu_mlm_25, sotu_curated_mlm       Table 5's regroupings (the masking rate is training's, §4.3): sotu as it is
                                        at 25% masking ("original data"), curated at 15% ("original train")
    c4_cramming_mlm                     the same over C4, read from the curated files that
                                        `python -m scaling.data.prepare_cramming` writes ($SCALING_C4_CRAMMING_DIR)

`register_text_tasks(name, glob)` registers `{name}_span_corruption` and `{name}_mlm` over `.txt`/`.jsonl` files.
Importing it also imports `translation`, which registers `wmt14_en_fr` and `sotu_en_pseudofr` (and has
`register_translation_tasks` for parallel files).

Any entry of seqio's `TaskRegistry` or `MixtureRegistry` trains and inspects, these and stock ones alike:
`task_spec` reads what `pipeline` needs from the seqio task itself. A task whose preprocessors include
`preprocessors.mlm_rows` is MLM (its `mask_rate` keyword is the masking rate); any other task with `inputs`
and `targets` output features is encoder-decoder (span corruption, with the noise parameters of a
`preprocessors.span_corruption` preprocessor when it has one). `check_splits` refuses a task that lacks a split
before anything trains.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import seqio
import tensorflow as tf
from absl import logging

from scaling.data import corpora, curation, objectives, preprocessors, translation, vocab  # noqa: F401 (registers)
from scaling.errors import UserError

Objective = Literal["span_corruption", "mlm"]
TEXT_SHUFFLE_BUFFER = 256  # documents are already shuffled at the source; this mixes neighbouring rows
C4_SHUFFLE_BUFFER = 1000
MLM_MASK_RATE = objectives.MLM_MASK_RATE
CRAMMING_MASK_RATE = 0.25


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What `pipeline` needs to know about a registered task or mixture beyond seqio's view of it.

    `noise_density` and `mean_noise_span_length` are None for an encoder-decoder task without our
    `preprocessors.span_corruption` (its corruption, if any, is unknown); `corpus` is set for tasks over a
    :class:`TextCorpus` (their read and curation reports); `tasks` lists a mixture's tasks.
    """

    name: str
    objective: Objective
    noise_density: float | None = objectives.NOISE_DENSITY
    mean_noise_span_length: float | None = objectives.MEAN_NOISE_SPAN_LENGTH
    mask_rate: float = MLM_MASK_RATE
    corpus: TextCorpus | None = None
    tasks: tuple[str, ...] = ()


def registered_tasks() -> list[str]:
    """Every seqio task and mixture name, ours and stock ones."""
    return sorted({*seqio.TaskRegistry.names(), *seqio.MixtureRegistry.names()})


def _provider(name: str) -> seqio.Task | seqio.Mixture:
    if name in seqio.TaskRegistry.names():
        return seqio.TaskRegistry.get(name)
    if name in seqio.MixtureRegistry.names():
        return seqio.MixtureRegistry.get(name)
    known = registered_tasks()
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UserError(
        f"Unknown task {name!r}; {hint}registered: {', '.join(known)} (register your own files with "
        "scaling.data.tasks.register_text_tasks, or any seqio.TaskRegistry / MixtureRegistry entry)"
    )


def _keywords(steps: Sequence[Callable], fn: Callable) -> dict | None:
    """The bound keywords of the first preprocessor that is `fn` (or a functools.partial of it); None if none is."""
    for step in steps:
        if step is fn:
            return {}
        if isinstance(step, functools.partial) and step.func is fn:
            return dict(step.keywords)
    return None


def _single_spec(task: seqio.Task) -> TaskSpec:
    source = task.source
    corpus = source.corpus if isinstance(source, CorpusSource) else None
    mlm = _keywords(task.preprocessors, preprocessors.mlm_rows)
    if mlm is not None:
        return TaskSpec(task.name, "mlm", mask_rate=mlm.get("mask_rate", MLM_MASK_RATE), corpus=corpus)
    features = sorted(task.output_features)
    if not {"inputs", "targets"} <= set(features):
        raise UserError(
            f"Task {task.name!r} has output features {features}: the trainer takes encoder-decoder tasks (features "
            "'inputs' and 'targets') and MLM tasks (with the preprocessor scaling.data.preprocessors.mlm_rows)"
        )
    span = _keywords(task.preprocessors, preprocessors.span_corruption)
    if span is None:
        return TaskSpec(task.name, "span_corruption", None, None, corpus=corpus)
    return TaskSpec(
        task.name,
        "span_corruption",
        span.get("noise_density", objectives.NOISE_DENSITY),
        span.get("mean_noise_span_length", objectives.MEAN_NOISE_SPAN_LENGTH),
        corpus=corpus,
    )


def task_spec(name: str) -> TaskSpec:
    """The objective and its parameters of any registered seqio task or mixture, read from seqio's registry.

    A mixture's tasks must share the objective and vocabulary (and, for MLM, the mask rate); its noise
    parameters are those of its densest task. An unknown name is a :class:`UserError` listing the known ones.
    """
    provider = _provider(name)
    if isinstance(provider, seqio.Task):
        return _single_spec(provider)
    specs = [_single_spec(task) for task in provider.tasks]
    names = tuple(spec.name for spec in specs)
    found = {spec.objective for spec in specs}
    if len(found) > 1:
        raise UserError(f"Mixture {name!r} mixes objectives {sorted(found)} ({names}); use tasks of one objective")
    vocabularies = [_task_vocabulary(task) for task in provider.tasks]
    if any(v != vocabularies[0] for v in vocabularies[1:]):
        raise UserError(f"Mixture {name!r} has tasks with different vocabularies ({names}); use one vocabulary")
    if specs[0].objective == "mlm":
        rates = {spec.mask_rate for spec in specs}
        if len(rates) > 1:
            raise UserError(f"Mixture {name!r} has tasks with mask rates {sorted(rates)}; rows are masked at one")
        return TaskSpec(name, "mlm", mask_rate=rates.pop(), tasks=names)
    densest = max(specs, key=lambda spec: spec.noise_density or 0.0)
    return TaskSpec(name, "span_corruption", densest.noise_density, densest.mean_noise_span_length, tasks=names)


def subtasks(name: str) -> list[seqio.Task]:
    """The seqio tasks of a task (itself) or a mixture (all of its tasks, sub-mixtures flattened)."""
    provider = _provider(name)
    return [provider] if isinstance(provider, seqio.Task) else list(provider.tasks)


def _known_splits(task: seqio.Task) -> tuple[str, ...] | None:
    """The task's splits, or None where listing them would open the dataset (a tfds source given no splits)."""
    source = task.source
    if isinstance(source, seqio.TfdsDataSource):
        return tuple(getattr(source, "_splits", ())) or None  # its `splits` property would load the tfds info
    return tuple(source.splits)


def check_splits(name: str, splits: Sequence[str], *, read: bool = True) -> None:
    """Refuses a task or mixture that lacks one of `splits`, before anything trains (the trainer calls it with
    `train` and `config.data.eval_split`).

    With `read`, the splits of tasks over a :class:`TextCorpus` are read now (and kept for training), so that an
    empty split or one over the unreadable-line threshold fails here too. A mixture needs each split in one of
    its tasks at least (seqio skips the others, with a warning logged here). Raises a one-line :class:`UserError`.
    """
    tasks_ = subtasks(name)
    for split in splits:
        known = {task.name: _known_splits(task) for task in tasks_}
        having = [task for task in tasks_ if known[task.name] is None or split in known[task.name]]
        if not having:
            theirs = sorted({s for found in known.values() for s in found or ()})
            if split == "train":
                raise UserError(f"Task {name!r} has no 'train' split (its splits: {theirs}); training reads 'train'")
            other = next((s for s in theirs if s != "train"), None)
            evaluate = (
                f"evaluate on a split it has (--config.data.eval_split={other})"
                if other is not None
                else "evaluate on the training text (--config.data.eval_split=train)"
            )
            raise UserError(
                f"Task {name!r} has no {split!r} split (its splits: {theirs}): add {split} files "
                f"(register_text_tasks(..., validation_glob=...)), or {evaluate}"
            )
        missing = [task.name for task in tasks_ if task not in having]
        if missing:
            logging.warning("mixture %s: tasks %s have no %r split; seqio skips them there", name, missing, split)
        if read:
            for task in having:
                if isinstance(task.source, CorpusSource):
                    task.source.corpus.documents(split)


class TextCorpus:
    """Documents of each split, read, curated and kept in memory; a seqio `FunctionDataSource`'s dataset_fn.

    Files are listed lazily (per split) so that registering never touches the disk; problems surface when a
    split is first read, with the file name and what to do. A corpus whose curation sorts yields token rows instead
    of text (:meth:`rows`): the training split's rows sorted as Cramming sorts them, other splits' rows in document
    order (shuffled by the seed, as text corpora are) so that evaluation's first rows are a sample, not the head.
    """

    def __init__(
        self,
        name: str,
        files: Mapping[str, Callable[[], Sequence[Path]]],
        vocabulary: seqio.SentencePieceVocabulary,
        curation_options: curation.Curation = curation.NO_CURATION,
        text_key: str = "text",
        max_bad_fraction: float = corpora.MAX_BAD_FRACTION,
    ):
        self.name = name
        self.splits = tuple(files)
        self._files = files
        self.vocabulary = vocabulary
        self.curation = curation_options
        self._text_key = text_key
        self.max_bad_fraction = max_bad_fraction
        self._cache: dict[str, tuple[list[str], corpora.ReadReport, curation.CurationReport]] = {}
        self._sorted: np.ndarray | None = None  # the training split's sorted rows

    @property
    def tokenized(self) -> bool:
        """True when `dataset_fn` yields token rows (`{"tokens": int32[sort_length]}`) instead of `{"text": ...}`."""
        return self.curation.sort

    def _load(self, split: str) -> tuple[list[str], corpora.ReadReport, curation.CurationReport]:
        if split not in self._files:
            raise UserError(f"Corpus {self.name!r} has no split {split!r}; it has {self.splits}")
        if split not in self._cache:
            paths = list(self._files[split]())
            read = corpora.ReadReport()
            docs = list(corpora.read_documents(paths, read, self._text_key))
            where = f"corpus {self.name!r} split {split!r}"
            corpora.check_bad_lines(read, where, self.max_bad_fraction, self._text_key)
            count_tokens = lambda text: len(self.vocabulary.tokenizer.EncodeAsIds(text))
            docs, cured = curation.curate(docs, self.curation, count_tokens)
            if not docs:
                raise UserError(
                    f"{where.capitalize()} has no documents left: {read.summary()}; {cured} (files: "
                    f"{[str(p) for p in paths[:5]]}). Add text to the files or change the curation options."
                )
            if self.tokenized and split == "train":  # sorted once; the order does not depend on the seed
                self._sorted = self._rows(docs, split, None)
                cured.rows_sorted = len(self._sorted)
            logging.info("%s: %s; %s", where, read.summary(), cured)
            self._cache[split] = (docs, read, cured)
        return self._cache[split]

    def documents(self, split: str) -> list[str]:
        return self._load(split)[0]

    def reports(self, split: str) -> tuple[corpora.ReadReport, curation.CurationReport]:
        _, read, cured = self._load(split)
        return read, cured

    def _rows(self, docs: list[str], split: str, seed: int | None) -> np.ndarray:
        if split != "train" and seed is not None:
            docs = [docs[i] for i in np.random.default_rng(seed).permutation(len(docs))]
        tokenized = self.vocabulary.tokenizer.EncodeAsIds(docs)
        rows = curation.token_rows(tokenized, self.curation.sort_length)
        if split == "train":
            rows = curation.sort_rows(rows, curation.sentence_ends(self.vocabulary))
        if not len(rows):
            raise UserError(
                f"Corpus {self.name!r} split {split!r} has fewer than {self.curation.sort_length} tokens after "
                "curation: add text or lower curation.sort_length"
            )
        return rows

    def rows(self, split: str, seed: int | None = None) -> np.ndarray:
        """A sorting corpus's token rows (int32 [rows, sort_length], documents joined by EOS): the training split's
        ordered by `curation.sort_rows` (Cramming's sentence-length curriculum), others in document order after
        a shuffle by `seed` (none when None)."""
        if not self.tokenized:
            raise ValueError(f"corpus {self.name!r} does not sort, so it yields text, not rows")
        docs = self.documents(split)
        return self._sorted if split == "train" else self._rows(docs, split, seed)

    def dataset_fn(self, split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        """Documents as {"text": ...}, shuffled by `seed` (same order on every host); for a sorting corpus, its
        :meth:`rows` as {"tokens": ...} (never shuffled: the order is the curriculum)."""
        if self.tokenized:
            return tf.data.Dataset.from_tensor_slices({"tokens": self.rows(split, seed)})
        docs = self.documents(split)
        if shuffle_files:
            order = np.random.default_rng(seed).permutation(len(docs))
            docs = [docs[i] for i in order]
        return tf.data.Dataset.from_tensor_slices({"text": tf.constant(docs, tf.string)})

    def source(self) -> CorpusSource:
        return CorpusSource(self)


class CorpusSource(seqio.FunctionDataSource):
    """A seqio source over a :class:`TextCorpus`, which it keeps (`corpus`) for `task_spec` and `check_splits`."""

    def __init__(self, corpus: TextCorpus):
        super().__init__(corpus.dataset_fn, splits=corpus.splits)
        self.corpus = corpus


def _task_vocabulary(task: seqio.Task | seqio.Mixture) -> seqio.Vocabulary:
    features = task.output_features
    return features["inputs" if "inputs" in features else "targets"].vocabulary


def vocabulary(task: str) -> seqio.Vocabulary:
    """The vocabulary a registered task or mixture tokenizes with (its inputs', or targets' for MLM-only features)."""
    return _task_vocabulary(_provider(task))


def _add(
    spec: TaskSpec,
    source: seqio.DataSource,
    vocabulary: seqio.Vocabulary,
    shuffle_buffer: int | None,
    tokenized: bool = False,
) -> str:
    """Registers `spec` as a seqio task (replacing an earlier task of that name); its preprocessors carry the
    objective's parameters, which `task_spec` reads back. A `tokenized` source yields `{"tokens": ...}` rows already
    joined by EOS (a sorting :class:`TextCorpus`; MLM only), which are re-cut without a second separator."""
    key = "targets" if spec.objective == "span_corruption" else "inputs"
    if spec.objective == "span_corruption":
        if tokenized:
            raise ValueError(f"{spec.name}: span corruption reads text, not a sorted corpus's token rows")
        objective = functools.partial(
            preprocessors.span_corruption,
            noise_density=spec.noise_density,
            mean_noise_span_length=spec.mean_noise_span_length,
        )
        features = {
            "inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
            "targets": seqio.Feature(vocabulary, add_eos=True),
        }
        finish = [objective, seqio.preprocessors.append_eos_after_trim]
    else:
        features = {
            "inputs": seqio.Feature(vocabulary, add_eos=False),
            "targets": seqio.Feature(vocabulary, add_eos=False),
        }
        rows = {"separator": None} if tokenized else {}
        finish = [functools.partial(preprocessors.mlm_rows, mask_rate=spec.mask_rate, **rows)]
    if tokenized:
        read = [functools.partial(seqio.preprocessors.rekey, key_map={key: "tokens"})]
    else:
        read = [
            functools.partial(seqio.preprocessors.rekey, key_map={key: "text"}),
            functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
        ]
    if spec.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(spec.name)
    seqio.TaskRegistry.add(
        spec.name,
        source=source,
        preprocessors=[
            *read,
            seqio.CacheDatasetPlaceholder(),  # epochs repeat here, so the corruption is redrawn every epoch
            *finish,
        ],
        output_features=features,
        shuffle_buffer_size=shuffle_buffer,
    )
    return spec.name


def _register_pair(
    prefix: str,
    source: seqio.DataSource,
    vocabulary: seqio.Vocabulary,
    shuffle_buffer: int | None,
    corpus: TextCorpus | None,
    noise_density: float,
    mean_noise_span_length: float,
    mask_rate: float,
) -> list[str]:
    return [
        _add(
            TaskSpec(
                f"{prefix}_span_corruption", "span_corruption", noise_density, mean_noise_span_length, corpus=corpus
            ),
            source,
            vocabulary,
            shuffle_buffer,
        ),
        _add(TaskSpec(f"{prefix}_mlm", "mlm", mask_rate=mask_rate, corpus=corpus), source, vocabulary, shuffle_buffer),
    ]


C4_CRAMMING_DIR_ENV = "SCALING_C4_CRAMMING_DIR"
CRAMMING_MANIFEST = "curation.json"  # written last by scaling.data.prepare_cramming: its presence means complete
PREPARE_CRAMMING = "python -m scaling.data.prepare_cramming"


def c4_cramming_dir(directory: str | None = None, data_dir: str | None = None) -> str:
    """Where the curated C4 lives: the argument, else $SCALING_C4_CRAMMING_DIR, else `c4_cramming` in C4's data dir."""
    return (
        directory or os.environ.get(C4_CRAMMING_DIR_ENV) or os.path.join(corpora.c4_data_dir(data_dir), "c4_cramming")
    )


def prepared_cramming_files(directory: str, split: str, vocabulary_path: str) -> list[Path]:
    """The curated C4 files of `split`; a :class:`UserError` naming the preparation command when they are missing,
    incomplete or curated with another tokenizer (the compression filter counts that tokenizer's tokens)."""
    manifest = Path(directory) / CRAMMING_MANIFEST
    if not manifest.is_file():
        raise UserError(
            "Task c4_cramming_mlm trains on Cramming's curated C4 (compression-filtered, then sorted; §4.4) and "
            f"never on raw C4, but {directory} holds no prepared corpus (no {CRAMMING_MANIFEST}). "
            f"Prepare it once with `{PREPARE_CRAMMING} --out={directory}` (reads the prepared tfds C4; --help for "
            f"the sizes), or point ${C4_CRAMMING_DIR_ENV} at a prepared directory. Offline, the same recipe runs on "
            "the embedded corpus: --config.data.task=sotu_cramming_mlm"
        )
    info = json.loads(manifest.read_text())
    if info.get("vocabulary") != str(vocabulary_path):
        raise UserError(
            f"{directory} was curated with the vocabulary {info.get('vocabulary')!r}, but c4_cramming_mlm tokenizes "
            f"with {str(vocabulary_path)!r}: prepare it again with `{PREPARE_CRAMMING} --out={directory} "
            f"--vocabulary={vocabulary_path}`"
        )
    files = sorted((Path(directory) / split).glob("*.jsonl"))
    if not files:
        raise UserError(f"{directory}/{split} holds no .jsonl files; prepare it again with `{PREPARE_CRAMMING}`")
    return files


def register_c4_tasks(
    version: str | None = None,
    data_dir: str | None = None,
    vocabulary_path: str = vocab.T5_SPM_PATH,
    noise_density: float = objectives.NOISE_DENSITY,
    mean_noise_span_length: float = objectives.MEAN_NOISE_SPAN_LENGTH,
    mask_rate: float = MLM_MASK_RATE,
    cramming_dir: str | None = None,
) -> list[str]:
    """`c4_span_corruption` and `c4_mlm` over a prepared tfds C4, with T5's vocabulary by default, as in production;
    `c4_cramming_mlm` (25% masking) over the curated files in :func:`c4_cramming_dir`, whose rows it sorts.

    Sorting (and the optional dedup) needs the whole corpus, which a tfds stream never is, so the curation runs once
    in `scaling.data.prepare_cramming` (the filter, and dedup with --dedup, written to files); reading the files sorts
    the training rows.
    """
    source = corpora.c4_source(version, data_dir, "sotu_span_corruption")
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    names = _register_pair(
        "c4", source, vocabulary, C4_SHUFFLE_BUFFER, None, noise_density, mean_noise_span_length, mask_rate
    )
    directory = c4_cramming_dir(cramming_dir, data_dir)
    spelled = str(vocabulary_path or vocab.DEFAULT_SPM_PATH)
    files = {split: functools.partial(prepared_cramming_files, directory, split, spelled) for split in corpora.SPLITS}
    cramming = TextCorpus("c4_cramming", files, vocabulary, curation.Curation(sort=True))  # filtered already
    return [*names, *_text_tasks("c4_cramming", cramming, noise_density, mean_noise_span_length, CRAMMING_MASK_RATE)]


def _text_tasks(
    prefix: str,
    corpus: TextCorpus,
    noise_density: float,
    mean_noise_span_length: float,
    mask_rate: float,
) -> list[str]:
    """`{prefix}_span_corruption` and `{prefix}_mlm` over a corpus; only `{prefix}_mlm` over a sorting one (Cramming's
    sorted rows are an MLM curriculum; they are never shuffled: their order is the point)."""
    if corpus.tokenized:
        spec = TaskSpec(f"{prefix}_mlm", "mlm", mask_rate=mask_rate, corpus=corpus)
        return [_add(spec, corpus.source(), corpus.vocabulary, None, tokenized=True)]
    return _register_pair(
        prefix,
        corpus.source(),
        corpus.vocabulary,
        TEXT_SHUFFLE_BUFFER,
        corpus,
        noise_density,
        mean_noise_span_length,
        mask_rate,
    )


def register_sotu_tasks(vocabulary_path: str | None = None) -> list[str]:
    """The embedded corpus: sotu_span_corruption, sotu_mlm, sotu_cramming_mlm (Cramming's curation, 25%) and the two
    regroupings Table 5's ablation needs, sotu_mlm_25 and sotu_curated_mlm."""
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    files = {split: functools.partial(corpora.sotu_files, split) for split in corpora.SPLITS}
    plain = TextCorpus("sotu", files, vocabulary)
    names = _text_tasks("sotu", plain, objectives.NOISE_DENSITY, objectives.MEAN_NOISE_SPAN_LENGTH, MLM_MASK_RATE)
    cramming = TextCorpus("sotu_cramming", files, vocabulary, curation.CRAMMING)
    density, span = objectives.NOISE_DENSITY, objectives.MEAN_NOISE_SPAN_LENGTH
    names += _text_tasks("sotu_cramming", cramming, density, span, CRAMMING_MASK_RATE)
    # Table 5 resets data and training separately, and the masking rate is training's (§4.3 "Objective"; the authors'
    # train/bert-o4.yaml:31 vs bert-original.yaml:30): the original data keeps 25%, the original training masks 15%.
    mask25 = TaskSpec("sotu_mlm_25", "mlm", mask_rate=CRAMMING_MASK_RATE, corpus=plain)
    mask15 = TaskSpec("sotu_curated_mlm", "mlm", mask_rate=MLM_MASK_RATE, corpus=cramming)
    names.append(_add(mask25, plain.source(), vocabulary, TEXT_SHUFFLE_BUFFER))
    names.append(_add(mask15, cramming.source(), vocabulary, None, tokenized=True))
    return names


def register_text_tasks(
    name: str,
    glob: str | Sequence[str],
    *,
    validation_glob: str | Sequence[str] | None = None,
    vocabulary_path: str | None = None,
    curation_options: curation.Curation = curation.NO_CURATION,
    text_key: str = "text",
    noise_density: float = objectives.NOISE_DENSITY,
    mean_noise_span_length: float = objectives.MEAN_NOISE_SPAN_LENGTH,
    mask_rate: float = MLM_MASK_RATE,
    max_bad_fraction: float = corpora.MAX_BAD_FRACTION,
) -> list[str]:
    """`{name}_span_corruption` and `{name}_mlm` over user `.txt` (one document per line) / `.jsonl` files (only
    `{name}_mlm` when `curation_options` sorts: `curation.CRAMMING` is Cramming's whole recipe).

    The globs are expanded now, so a typo fails here; `validation_glob` adds the validation split that training
    evaluates on (without it, training refuses the task unless `config.data.eval_split` names another split).
    Lines that are not UTF-8, not JSON, or lack a string `text_key` are skipped and logged as `file:line`; when a
    split is read, more than `max_bad_fraction` of its non-blank lines unreadable (default 0.01, i.e. 1%; 1.0
    accepts any), or a file with no readable line, is a :class:`UserError` naming the file, the counts and the
    first bad line numbers.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise UserError(f"max_bad_fraction = {max_bad_fraction!r}: use a fraction of lines in [0, 1] (default 0.01)")
    train = corpora.expand_glob(glob)
    files = {"train": lambda: train}
    if validation_glob is not None:
        validation = corpora.expand_glob(validation_glob)
        overlap = set(train) & set(validation)
        if overlap:
            raise ValueError(f"Files in both train and validation: {sorted(map(str, overlap))[:3]}")
        files["validation"] = lambda: validation
    corpus = TextCorpus(
        name, files, vocab.get_vocabulary(vocabulary_path), curation_options, text_key, max_bad_fraction
    )
    return _text_tasks(name, corpus, noise_density, mean_noise_span_length, mask_rate)


register_c4_tasks()
register_sotu_tasks()
