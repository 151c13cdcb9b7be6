"""Translation tasks: WMT14 English→French through tfds, the user's own parallel files, and an offline corpus.

Importing this module registers (`scaling.data.tasks` imports it, so every command knows these names):

    wmt14_en_fr        tfds `wmt14_translate/fr-en:1.0.0` (Li et al. §2.1: 36M training pairs, newstest2013 is
                       the validation split, newstest2014 the test split) with T5's vocabulary, where it is
                       prepared in the tfds data dir ($SCALING_WMT14_DATA_DIR, $TFDS_DATA_DIR or
                       ~/tensorflow_datasets; or call `register_wmt14_tasks(data_dir=...)`). Where it is not, the
                       first read fails at once with the `tfds build` command, before tfds can start a download.
    sotu_en_pseudofr   offline: sentences of the embedded State of the Union corpus (split by year, as the text
                       tasks are) and their English→pseudo-French rewrite (:func:`pseudo_french`), a deterministic
                       word mapping — a stand-in that exercises the whole path, not a language.

`register_translation_tasks(name, glob, ...)` registers `name` over the user's TSV or JSONL parallel files.

Every translation task yields `inputs` = T5's task prefix + the source sentence ("translate English to French:
…") and `targets` = the target sentence, each tokenized with EOS appended after trimming to the feature lengths.
The trainer trains them as any encoder-decoder task without corruption (`scaling.data.tasks.task_spec` reads them
as such); `scaling.downstream.translation` reads the texts (:func:`texts`), decodes and scores them with BLEU.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import seqio
import tensorflow as tf
from absl import logging

from scaling.data import corpora, vocab
from scaling.errors import UserError

Format = Literal["tsv", "jsonl"]
FORMATS: dict[str, Format] = {".tsv": "tsv", ".jsonl": "jsonl"}
PAIR_SUFFIXES = tuple(FORMATS)
LANGUAGES = {"en": "English", "fr": "French", "de": "German", "ro": "Romanian", "cs": "Czech", "ru": "Russian"}
SHUFFLE_BUFFER = 1000

WMT14_TASK = "wmt14_en_fr"
WMT14_TFDS_NAME = "wmt14_translate/fr-en:1.0.0"
WMT14_DATA_DIR_ENV = "SCALING_WMT14_DATA_DIR"
WMT14_SPLITS = ("train", "validation", "test")  # validation: newstest2013; test: newstest2014
OFFLINE_TASK = "sotu_en_pseudofr"


def task_prefix(source_language: str, target_language: str) -> str:
    """T5's prefix, e.g. "translate English to French: " (Raffel et al., Appendix D)."""
    unknown = [code for code in (source_language, target_language) if code not in LANGUAGES]
    if unknown:
        raise UserError(
            f"Unknown language code(s) {unknown}: use one of {sorted(LANGUAGES)}, or pass prefix= to name the task"
        )
    return f"translate {LANGUAGES[source_language]} to {LANGUAGES[target_language]}: "


def translate(ds: tf.data.Dataset, source_language: str, target_language: str, prefix: str) -> tf.data.Dataset:
    """Pairs {source_language: …, target_language: …} → {"inputs": prefix + source, "targets": target}.

    Bind the keywords with functools.partial: :func:`translation_spec` reads them back from a task.
    """

    def pair(example: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {"inputs": tf.strings.join([prefix, example[source_language]]), "targets": example[target_language]}

    return ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class TranslationSpec:
    name: str
    source_language: str
    target_language: str
    prefix: str


def translation_spec(task: str) -> TranslationSpec:
    """The languages and prefix of a registered translation task; a UserError for any other task."""
    names = seqio.TaskRegistry.names()
    if task not in names:
        raise UserError(f"Unknown task {task!r}; translation tasks: {', '.join(translation_tasks())}")
    for step in seqio.TaskRegistry.get(task).preprocessors:
        if isinstance(step, functools.partial) and step.func is translate:
            return TranslationSpec(task, **step.keywords)
    raise UserError(
        f"Task {task!r} is not a translation task (its preprocessors lack scaling.data.translation.translate); "
        f"translation tasks: {', '.join(translation_tasks())}"
    )


def texts(task: str, split: str) -> tf.data.Dataset:
    """{"source", "inputs", "targets"} strings of a translation task's split, in source order (unshuffled): the
    source sentence, the model's input (prefix + source) and the reference, exactly as the task builds them."""
    spec = translation_spec(task)
    source = seqio.TaskRegistry.get(task).source
    if split not in source.splits:
        raise UserError(f"Task {task!r} has no {split!r} split; its splits are {list(source.splits)}")
    pairs = source.get_dataset(split=split, shuffle=False)
    languages = {"source_language": spec.source_language, "target_language": spec.target_language}
    built = translate(pairs, **languages, prefix=spec.prefix)
    return tf.data.Dataset.zip((pairs, built)).map(
        lambda raw, ex: {"source": raw[spec.source_language], **ex}, num_parallel_calls=tf.data.AUTOTUNE
    )


def translation_tasks() -> list[str]:
    """Every registered seqio task that translates."""
    return sorted(
        name
        for name in seqio.TaskRegistry.names()
        if any(
            isinstance(step, functools.partial) and step.func is translate
            for step in seqio.TaskRegistry.get(name).preprocessors
        )
    )


def register(
    name: str,
    source: seqio.DataSource,
    vocabulary: seqio.Vocabulary,
    source_language: str,
    target_language: str,
    prefix: str | None = None,
) -> str:
    """Registers `name` (replacing an earlier task of that name) over a source of language-keyed pairs."""
    if source_language == target_language:
        raise UserError(f"Task {name!r}: source and target language are both {source_language!r}; name two")
    prefix = task_prefix(source_language, target_language) if prefix is None else prefix
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=source,
        preprocessors=[
            functools.partial(
                translate, source_language=source_language, target_language=target_language, prefix=prefix
            ),
            functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
            seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features={
            "inputs": seqio.Feature(vocabulary, add_eos=True),
            "targets": seqio.Feature(vocabulary, add_eos=True),
        },
        shuffle_buffer_size=SHUFFLE_BUFFER,
    )
    return name


# ------------------------------------------------------------------------------------------------ WMT14


def wmt14_data_dir(data_dir: str | None = None) -> str:
    """The argument, else $SCALING_WMT14_DATA_DIR, else $TFDS_DATA_DIR, else tfds' default."""
    return corpora.tfds_data_dir(data_dir, WMT14_DATA_DIR_ENV)


def register_wmt14_tasks(data_dir: str | None = None, vocabulary_path: str = vocab.T5_SPM_PATH) -> list[str]:
    """`wmt14_en_fr` over tfds' prepared WMT14 fr-en, English→French, with T5's vocabulary by default."""
    directory = wmt14_data_dir(data_dir)
    name = WMT14_TFDS_NAME.partition(":")[0]
    hint = f"`tfds build {name} --data_dir={directory}` (it downloads several GB of WMT data)"
    source = corpora.PreparedTfdsSource(WMT14_TFDS_NAME, directory, WMT14_SPLITS, OFFLINE_TASK, hint)
    return [register(WMT14_TASK, source, vocab.get_vocabulary(vocabulary_path), "en", "fr")]


# ----------------------------------------------------------------------------------- pairs in memory


class PairSource(seqio.FunctionDataSource):
    """Sentence pairs of each split from `read(split)`, read once (on first use) and kept in memory.

    Rows are {source_language: …, target_language: …}, shuffled by seqio's seed when asked (the same order on
    every host); `pairs(split)` gives them in file order for evaluation.
    """

    def __init__(
        self,
        read: Callable[[str], list[tuple[str, str]]],
        splits: Sequence[str],
        source_language: str,
        target_language: str,
    ):
        super().__init__(self._dataset_fn, splits=tuple(splits))
        self._read = read
        self._languages = (source_language, target_language)
        self._cache: dict[str, list[tuple[str, str]]] = {}

    def pairs(self, split: str) -> list[tuple[str, str]]:
        if split not in self.splits:
            raise UserError(f"No split {split!r} here; the splits are {self.splits}")
        if split not in self._cache:
            self._cache[split] = self._read(split)
        return self._cache[split]

    def _dataset_fn(self, split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        pairs = self.pairs(split)
        if shuffle_files:
            pairs = [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))]
        source, target = self._languages
        return tf.data.Dataset.from_tensor_slices(
            {
                source: tf.constant([p[0] for p in pairs], tf.string),
                target: tf.constant([p[1] for p in pairs], tf.string),
            }
        )


# ------------------------------------------------------------------------------------- the user's files


def _field(record: object, path: str) -> object:
    """`record["a"]["b"]` for the dotted path "a.b" (Hugging Face dumps nest pairs under "translation")."""
    for key in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def _parse(line: str, fmt: Format, fields: tuple[str | int, str | int]) -> tuple[str, str] | str:
    """The (source, target) pair of one line, or why the line is unreadable."""
    if fmt == "tsv":  # the fields are column numbers
        columns = line.rstrip("\r\n").split("\t")
        source, target = int(fields[0]), int(fields[1])
        if max(source, target) >= len(columns):
            return f"{len(columns)} tab-separated field(s), no column {max(source, target)}"
        return columns[source].strip(), columns[target].strip()
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return corpora.NOT_JSON
    if not isinstance(record, dict):
        return corpora.NOT_JSON
    source, target = (_field(record, str(f)) for f in fields)
    if not isinstance(source, str) or not isinstance(target, str):
        missing = [f for f, v in zip(fields, (source, target)) if not isinstance(v, str)]
        return f"no {' or '.join(repr(f) for f in missing)} string"
    return source.strip(), target.strip()


def _fix(file: corpora.FileReport, fmt: Format, fields: tuple[str | int, str | int]) -> str:
    if file.utf16 or file.non_utf8:
        return file.fix()
    knob = "or pass source_field=/target_field="
    if fmt == "tsv":
        return f"make each line source<TAB>target (columns {fields[0]} and {fields[1]}, {knob})"
    return f"make each line one JSON object with string fields {fields[0]!r} and {fields[1]!r} ({knob})"


def read_pairs(
    paths: Sequence[Path],
    fmt: Format,
    fields: tuple[str | int, str | int],
    where: str,
    max_bad_fraction: float = corpora.MAX_BAD_FRACTION,
) -> list[tuple[str, str]]:
    """(source, target) of every readable line, in file order; pairs with an empty side are skipped (counted).

    Unreadable lines — not UTF-8, not JSON, a missing field or column — are counted per file and logged as
    `file:line (why)`; more than `max_bad_fraction` of the non-blank lines unreadable (1.0 accepts any), or a
    file with no readable line, is a one-line :class:`UserError` naming the file, its counts, the first bad
    lines and the fix.
    """
    pairs: list[tuple[str, str]] = []
    lines = bad = empty = 0
    bad_files: dict[Path, corpora.FileReport] = {}
    for path in paths:
        file = corpora.FileReport()
        for number, raw in enumerate(corpora._lines(path), start=1):
            if not raw.strip(corpora._BLANK):
                continue
            file.lines += 1
            line = corpora._decode(raw, number == 1, file)
            parsed = corpora.NOT_UTF8 if line is None else _parse(line, fmt, fields)
            if isinstance(parsed, str):
                file.add(number, parsed)
            elif not all(parsed):
                empty += 1
            else:
                file.documents += 1
                pairs.append(parsed)
        lines += file.lines
        if file.bad:
            bad += file.bad
            bad_files[path] = file
    knob = "or pass max_bad_fraction= to register_translation_tasks (a fraction of lines; 1.0 accepts any)"
    for path, file in bad_files.items():
        examples = ", ".join(f"{path}:{number} ({kind})" for number, kind in file.first_bad)
        logging.warning(
            "%s: skipped %d of %d lines: %s%s", where, file.bad, file.lines, examples, ", …" * (file.bad > 5)
        )
        first = f"first at {examples}"
        if file.bad == file.lines and max_bad_fraction < 1.0:
            raise UserError(f"{where}: no line of {path} is readable ({first}): {_fix(file, fmt, fields)}; {knob}")
    if bad > max_bad_fraction * lines and max_bad_fraction < 1.0:
        path, file = max(bad_files.items(), key=lambda item: item[1].bad)
        examples = ", ".join(f"{path}:{number} ({kind})" for number, kind in file.first_bad)
        raise UserError(
            f"{where}: {bad} of {lines} lines are unreadable, over the {max_bad_fraction:g} limit: {path} has "
            f"{file.bad} of {file.lines} (first at {examples}); {_fix(file, fmt, fields)}, {knob}"
        )
    if not pairs:
        raise UserError(
            f"{where} has no sentence pairs ({lines} lines, {empty} with an empty side) in "
            f"{[str(p) for p in paths[:5]]}: add pairs to the files"
        )
    logging.info(
        "%s: %d pairs from %d files; skipped %d unreadable, %d with an empty side",
        where,
        len(pairs),
        len(paths),
        bad,
        empty,
    )
    return pairs


def register_translation_tasks(
    name: str,
    glob: str | Sequence[str],
    *,
    validation_glob: str | Sequence[str] | None = None,
    source_language: str = "en",
    target_language: str = "fr",
    source_field: str | int | None = None,
    target_field: str | int | None = None,
    format: Format | None = None,
    prefix: str | None = None,
    vocabulary_path: str | None = None,
    max_bad_fraction: float = corpora.MAX_BAD_FRACTION,
) -> list[str]:
    """Registers the translation task `name` over the user's parallel files; returns `[name]`.

    `format` is "tsv" (one pair a line, tab-separated; `source_field`/`target_field` are 0-based columns, default
    0 and 1) or "jsonl" (one JSON object a line; the fields are keys, dotted for nested ones such as
    "translation.en", default the language codes); None reads it from the files' suffix. The globs are expanded
    now, so a typo fails here; `validation_glob` adds the validation split that training evaluates on and
    `python -m scaling.translate` scores by default. The prefix is T5's ("translate English to French: ") unless
    given. Files are read when a split is first used: unreadable lines are reported as :func:`read_pairs` says.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise UserError(f"max_bad_fraction = {max_bad_fraction!r}: use a fraction of lines in [0, 1] (default 0.01)")
    files = {"train": corpora.expand_glob(glob, PAIR_SUFFIXES)}
    if validation_glob is not None:
        files["validation"] = corpora.expand_glob(validation_glob, PAIR_SUFFIXES)
        overlap = set(files["train"]) & set(files["validation"])
        if overlap:
            raise UserError(f"Files in both train and validation: {sorted(map(str, overlap))[:3]}")
    suffixes = {p.suffix for paths in files.values() for p in paths}
    if format is None:
        if len(suffixes) > 1:
            raise UserError(f"Task {name!r}: files of both kinds {sorted(suffixes)}; pass format='tsv' or 'jsonl'")
        format = FORMATS[suffixes.pop()]
    if format not in ("tsv", "jsonl"):
        raise UserError(f"format = {format!r}: use 'tsv' or 'jsonl'")
    defaults = (0, 1) if format == "tsv" else (source_language, target_language)
    fields = (
        defaults[0] if source_field is None else source_field,
        defaults[1] if target_field is None else target_field,
    )
    if format == "tsv" and not all(isinstance(f, int) and f >= 0 for f in fields):
        raise UserError(f"TSV fields {fields}: use 0-based column numbers, e.g. source_field=0, target_field=1")

    def read(split: str) -> list[tuple[str, str]]:
        where = f"translation task {name!r} split {split!r}"
        return read_pairs(files[split], format, fields, where, max_bad_fraction)

    source = PairSource(read, tuple(files), source_language, target_language)
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    return [register(name, source, vocabulary, source_language, target_language, prefix)]


# ------------------------------------------------------------------------ the offline pseudo-French corpus

# Whole words, then suffixes (longest first); everything else is copied. ASCII only: the shipped vocabulary
# was trained on English and has no accented letters.
# fmt: off
_WORDS = {
    "the": "le", "a": "un", "an": "un", "of": "de", "and": "et", "to": "a", "in": "dans", "is": "est",
    "are": "sont", "was": "etait", "were": "etaient", "be": "etre", "been": "ete", "have": "avoir", "has": "a",
    "had": "avait", "that": "que", "this": "ce", "these": "ces", "those": "ces", "for": "pour", "on": "sur",
    "with": "avec", "by": "par", "not": "pas", "it": "il", "he": "il", "they": "ils", "we": "nous", "us": "nous",
    "our": "notre", "i": "je", "my": "mon", "you": "vous", "your": "votre", "their": "leur", "his": "son",
    "its": "son", "will": "va", "would": "serait", "should": "devrait", "must": "doit", "can": "peut",
    "may": "peut", "from": "de", "at": "a", "as": "comme", "but": "mais", "or": "ou", "which": "qui",
    "who": "qui", "so": "donc", "no": "non", "all": "tous", "more": "plus", "most": "plus", "than": "que",
    "also": "aussi", "only": "seulement", "now": "maintenant", "when": "quand", "what": "quoi", "there": "la",
    "people": "peuple", "country": "pays", "world": "monde", "new": "nouveau", "year": "an", "years": "ans",
    "war": "guerre", "peace": "paix", "work": "travail", "time": "temps", "great": "grand", "every": "chaque",
    "other": "autre", "one": "un", "two": "deux", "three": "trois", "first": "premier", "states": "etats",
    "united": "unis", "government": "gouvernement", "congress": "congres", "america": "amerique",
    "american": "americain", "americans": "americains", "law": "loi", "laws": "lois",
}
# fmt: on
_SUFFIXES = (
    ("ary", "aire"),
    ("ous", "eux"),
    ("ity", "ite"),
    ("ism", "isme"),
    ("ist", "iste"),
    ("ic", "ique"),
    ("ly", "ment"),
)
_TOKEN = re.compile(r"[A-Za-z]+|[^A-Za-z]+")


def _pseudo_word(word: str) -> str:
    lower = word.lower()
    if lower in _WORDS:
        out = _WORDS[lower]
    else:
        out = next((lower[: -len(a)] + b for a, b in _SUFFIXES if lower.endswith(a) and len(lower) > len(a) + 2), lower)
    if word.isupper() and len(word) > 1:
        return out.upper()
    return out[:1].upper() + out[1:] if word[:1].isupper() else out


def pseudo_french(text: str) -> str:
    """English → pseudo-French: common words by a fixed table (the → le, we → nous), a few suffixes by rule
    (-ity → -ite, -ous → -eux, -ly → -ment), everything else (punctuation, spacing, other words) copied;
    capitalisation kept. Deterministic, so a model can learn it exactly; it is not French."""
    return "".join(_pseudo_word(t) if t[0].isalpha() else t for t in _TOKEN.findall(text))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
SENTENCE_WORDS = (4, 24)  # sentences of the offline corpus have this many words, inclusive


def sotu_sentences(split: str) -> list[str]:
    """Sentences of the embedded corpus's `split` (paragraphs cut after . ! ?), with 4 to 24 words."""
    documents = corpora.read_documents(corpora.sotu_files(split), corpora.ReadReport())
    low, high = SENTENCE_WORDS
    return [s for doc in documents for s in _SENTENCE_END.split(doc) if low <= len(s.split()) <= high]


def register_offline_tasks(vocabulary_path: str | None = None) -> list[str]:
    """`sotu_en_pseudofr`: sotu sentences and their :func:`pseudo_french`, split by year like the text tasks."""
    read = lambda split: [(s, pseudo_french(s)) for s in sotu_sentences(split)]
    source = PairSource(read, corpora.SPLITS, "en", "fr")
    return [register(OFFLINE_TASK, source, vocab.get_vocabulary(vocabulary_path), "en", "fr")]


register_wmt14_tasks()
register_offline_tasks()
