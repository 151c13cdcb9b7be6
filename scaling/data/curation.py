"""Cramming's data curation (Geiping & Goldstein 2023, §4.4 and Table 7), as the authors' code runs it.

Three independent switches (the crammed recipe, `CRAMMING`, filters and sorts; dedup is Table 2's ablation), in the
authors' order (JonasGeiping/cramming, cramming/data/pretraining_preparation.py
`raw_dataset_preprocessing`, lines 395-426: the filter, then deduplication; sorting comes after tokenization,
`_huggingface_preprocessing` lines 259-273), each reporting what it did:

1. **Compression filter** (§4.4: "drop all entries from the dataset where the number of tokens in the entry is
   larger than t times the number of raw characters", t = 0.25 as in Table 7 and
   config/data/c4-subset-processed.yaml:30; the code's default 0.3, config/data/bert-default.yaml:30, is not what
   the C4 and Pile runs used). The code keeps
   a document when tokens < t × characters (pretraining_preparation.py:410). Tokens are counted with the corpus's
   own tokenizer, as the paper says ("we use the tokenizer itself"); the code with `remove_trash: True` counts
   with ALBERT's (`albert-base-v2`, pretraining_preparation.py:399-405), which we cannot download offline.
2. **Exact substring deduplication** (§4.4: "as described in Lee et al. (2022) via exact substring deduplication (of
   substrings of length 75)"; config/data/c4-subset-processed.yaml:31-32, cramming/data/deduplicate.py, which runs
   google-research/deduplicate-text-datasets): every byte inside any 75-byte substring that occurs at least twice
   in the corpus is struck, in every occurrence (`self-similar` then `collect`), and the documents are cut out of the
   rest. Lee et al. separate documents by unique markers (their scripts/load_dataset.py), so no duplicate spans two
   documents; Cramming's glue code joins documents with a constant "<EOT>" (deduplicate.py:65) so that a struck span
   may merge two documents: we keep documents apart, as Lee et al. do, and drop documents left empty.
3. **Sorting** (§4.4: "re-order all tokenized sequences by some metric ... sentence length ... so that sequences
   containing short sentences come first"; Table 7: "sorting by number of sentences per sequence"): the code
   (`ordering: sentence-length-curriculum`, c4-subset-processed.yaml:35; curriculum_sorting.py:57-93) concatenates the
   tokenized documents (each followed by a separator) into rows of `seq_length` = 128 tokens and orders the rows by
   their count of the "." token, most first. Our sentencepiece pieces may hold several characters ("." merged into
   `."` or `3.5`), so a row's count is the number of "." characters in its pieces — the number of "." tokens the
   authors' WordPiece, which splits every punctuation character, would produce. Ties keep corpus order (a stable
   sort; the code's numpy quicksort leaves them in no defined order).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from scaling.data import vocab

COMPRESSION_THRESHOLD = 0.25  # §4.4 and Table 7; config/data/c4-subset-processed.yaml:30
DEDUP_LENGTH = 75  # bytes; §4.4, Table 7 and config/data/c4-subset-processed.yaml:32
SORT_LENGTH = 128  # tokens per sorted row: the authors' seq_length (c4-subset-processed.yaml:18)
_HASH_BASE = np.uint64(0x100000001B3)  # FNV's 64-bit prime: the window hash's base (arithmetic mod 2^64)


@dataclasses.dataclass(frozen=True)
class Curation:
    """Which curation steps run. `filter_threshold=None` disables the compression filter.

    Sorting orders rows of `sort_length` tokens; a task over a sorted corpus re-cuts the sorted token stream into rows
    of its own `inputs_length`, which are the sorted rows exactly when the two lengths are equal (Cramming: 128).
    """

    dedup: bool = False
    filter_threshold: float | None = None
    sort: bool = False
    dedup_length: int = DEDUP_LENGTH
    sort_length: int = SORT_LENGTH

    @property
    def enabled(self) -> bool:
        return self.dedup or self.filter_threshold is not None or self.sort


NO_CURATION = Curation()  # the default: the corpus as it is
# The recipe of the crammed BERT: filtered and sorted, not deduplicated. §4.4: dedup does "not reliably help ... we
# choose The Pile with both filtering and sorting"; the final runs pass `data.remove_trash=True
# data.ordering=sentence-length-curriculum data.deduplicate_entries=False` (scripts/final_story_cb_o4_a6000.sh:15),
# and Table 7's C4 rows are never deduplicated. `dedup=True` gives Table 2's "Dedup." rows.
CRAMMING = Curation(filter_threshold=COMPRESSION_THRESHOLD, sort=True)


@dataclasses.dataclass
class CurationReport:
    """How much each step removed (documents, characters, bytes) and how many rows were sorted."""

    documents_in: int = 0
    incompressible_documents_removed: int = 0
    incompressible_chars_removed: int = 0
    duplicate_spans_removed: int = 0
    duplicate_bytes_removed: int = 0
    documents_emptied_by_dedup: int = 0
    documents_out: int = 0
    rows_sorted: int = 0  # 0: the order was not changed

    def __str__(self) -> str:
        return (
            f"curation kept {self.documents_out} of {self.documents_in} documents: compression filter removed "
            f"{self.incompressible_documents_removed} ({self.incompressible_chars_removed} characters), dedup "
            f"struck {self.duplicate_spans_removed} duplicate spans ({self.duplicate_bytes_removed} bytes, "
            f"{self.documents_emptied_by_dedup} documents emptied); {self.rows_sorted} rows sorted"
        )


def compression_filter(
    documents: Sequence[str], count_tokens: Callable[[str], int], threshold: float = COMPRESSION_THRESHOLD
) -> tuple[list[str], int, int]:
    """Keeps documents with tokens < threshold × characters (the authors' test, pretraining_preparation.py:410);
    returns the kept documents and the number and characters of those removed."""
    kept, removed, chars = [], 0, 0
    for doc in documents:
        if count_tokens(doc) < threshold * len(doc):
            kept.append(doc)
        else:
            removed += 1
            chars += len(doc)
    return kept, removed, chars


def _window_hashes(data: np.ndarray, length: int) -> np.ndarray:
    """Polynomial hash (mod 2^64) of every `length`-byte window of `data`, by doubling: ~2·log2(length) passes.

    H(ab) = H(a)·B^|b| + H(b), so windows of 2^k bytes come from two of 2^(k-1), and `length`'s binary parts combine.
    """
    parts = [1 << k for k in range(length.bit_length()) if length >> k & 1]  # 75 → 1, 2, 8, 64
    count = len(data) - length + 1
    kept: dict[int, tuple[np.ndarray, np.uint64]] = {}
    with np.errstate(over="ignore"):
        h, power, span = data.astype(np.uint64), _HASH_BASE, 1
        while True:
            if span in parts:
                kept[span] = (h, power)
            if span * 2 > length:
                break
            h, power, span = h[:-span] * power + h[span:], power * power, span * 2
        result, covered = np.zeros(count, np.uint64), 0
        for part in sorted(parts, reverse=True):
            h, power = kept.pop(part)
            result = result * power + h[covered : covered + count]
            covered += part
    return result


def duplicate_starts(data: bytes, allowed: np.ndarray, length: int) -> np.ndarray:
    """Starts of the `length`-byte windows (among those `allowed`) whose bytes occur at another allowed start."""
    if len(data) < length:
        return np.zeros(0, np.int64)
    hashes = _window_hashes(np.frombuffer(data, np.uint8), length)
    starts = np.flatnonzero(allowed[: len(hashes)])
    order = starts[np.argsort(hashes[starts], kind="stable")]
    sorted_hashes = hashes[order]
    same = sorted_hashes[1:] == sorted_hashes[:-1]
    in_group = np.zeros(len(order), bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    found = []
    groups = defaultdict(list)  # a hash's windows, by their bytes: hash collisions never count as duplicates
    candidates = order[in_group]
    for start, h in zip(candidates.tolist(), hashes[candidates].tolist(), strict=True):
        groups[(h, data[start : start + length])].append(start)
    for members in groups.values():
        if len(members) > 1:
            found.extend(members)
    return np.array(sorted(found), np.int64)


def dedup_substrings(documents: Sequence[str], length: int = DEDUP_LENGTH) -> tuple[list[str], int, int, int]:
    """Lee et al.'s exact substring deduplication: strikes, in every occurrence, each byte covered by a `length`-byte
    substring that occurs twice or more (within or across documents, never spanning two); returns the documents
    left (UTF-8 cut mid-character is dropped, as Cramming's deduplicate.py:158 does), spans and bytes struck and the
    documents emptied."""
    encoded = [doc.encode("utf-8") for doc in documents]
    sizes = np.array([len(e) for e in encoded], np.int64)
    ends = np.cumsum(sizes)
    data = b"".join(encoded)
    allowed = np.ones(len(data), bool)  # a window may start where it stays inside its document
    for end in ends.tolist():
        allowed[max(end - length + 1, 0) : end] = False
    starts = duplicate_starts(data, allowed, length)
    cover = np.zeros(len(data) + 1, np.int32)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + length, -1)
    struck = np.cumsum(cover[:-1]) > 0
    begins = (ends - sizes)[sizes > 0]
    run_starts = struck.copy()  # a struck span starts after a kept byte or at its document's start
    run_starts[1:] &= ~struck[:-1]
    run_starts[begins] = struck[begins]
    spans = int(np.count_nonzero(run_starts))
    kept, emptied = [], 0
    raw = np.frombuffer(data, np.uint8)
    for begin, end in zip((ends - sizes).tolist(), ends.tolist(), strict=True):
        text = raw[begin:end][~struck[begin:end]].tobytes().decode("utf-8", errors="ignore")
        if text.strip():
            kept.append(text)
        else:
            emptied += 1
    return kept, spans, int(struck.sum()), emptied


def curate(
    documents: Sequence[str], curation: Curation, count_tokens: Callable[[str], int]
) -> tuple[list[str], CurationReport]:
    """The document steps in the authors' order (filter, then dedup), each reported; sorting, which orders token
    rows, is :func:`sorted_rows`."""
    report = CurationReport(documents_in=len(documents))
    docs = list(documents)
    if curation.filter_threshold is not None:
        docs, report.incompressible_documents_removed, report.incompressible_chars_removed = compression_filter(
            docs, count_tokens, curation.filter_threshold
        )
    if curation.dedup:
        docs, report.duplicate_spans_removed, report.duplicate_bytes_removed, report.documents_emptied_by_dedup = (
            dedup_substrings(docs, curation.dedup_length)
        )
    report.documents_out = len(docs)
    return docs, report


def token_rows(tokenized: Sequence[Sequence[int]], length: int, separator: int = vocab.EOS_ID) -> np.ndarray:
    """Documents joined (each followed by `separator`, as `preprocessors.mlm_rows` joins them) and cut into rows of
    `length` tokens; the last partial row is dropped. int32 [rows, length]."""
    stream = np.fromiter(
        (t for doc in tokenized for t in (*doc, separator)), np.int32, count=sum(len(d) + 1 for d in tokenized)
    )
    rows = len(stream) // length
    return stream[: rows * length].reshape(rows, length)


def sentence_ends(vocabulary) -> np.ndarray:
    """Per id, the "." characters of its piece: a row's sum is the number of "." tokens WordPiece would give it."""
    tokenizer = vocabulary.tokenizer
    ends = np.zeros(vocabulary.vocab_size, np.int32)
    for i in range(tokenizer.get_piece_size()):
        ends[i] = tokenizer.id_to_piece(i).count(".")
    return ends


def sort_rows(rows: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Rows with the most sentence ends ("." tokens) first, i.e. short sentences first; ties keep their order."""
    counts = ends[rows].sum(axis=1)
    return rows[np.argsort(-counts, kind="stable")]
