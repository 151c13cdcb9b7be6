"""Cramming (Geiping & Goldstein 2023, Section 4.4) data curation over in-memory documents.

Three independent switches, each reporting what it did: exact line-level deduplication, the tokenizer
compression-ratio filter (drop a document when tokens > t * characters), and sorting so that documents made of
short sentences come first (rows are cut from the stream in order, so packed rows follow the same order).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

COMPRESSION_THRESHOLD = 0.25
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


@dataclasses.dataclass(frozen=True)
class Curation:
    """Which curation steps run. `filter_threshold=None` disables the compression filter."""

    dedup: bool = False
    filter_threshold: float | None = None
    sort: bool = False

    @property
    def enabled(self) -> bool:
        return self.dedup or self.filter_threshold is not None or self.sort


NO_CURATION = Curation()  # the default: the corpus as it is


@dataclasses.dataclass
class CurationReport:
    """How much each step removed (documents, lines, characters) and whether the order was changed."""

    documents_in: int = 0
    duplicate_lines_removed: int = 0
    duplicate_chars_removed: int = 0
    documents_emptied_by_dedup: int = 0
    incompressible_documents_removed: int = 0
    incompressible_chars_removed: int = 0
    sorted_by_sentence_length: bool = False
    documents_out: int = 0


def dedup_lines(documents: Sequence[str]) -> tuple[list[str], int, int, int]:
    """Drops every line already seen (exact match after stripping); returns docs, lines, chars, emptied docs."""
    seen: set[str] = set()
    kept, lines_removed, chars_removed, emptied = [], 0, 0, 0
    for doc in documents:
        lines = []
        for line in doc.split("\n"):
            key = line.strip()
            if not key:
                continue
            if key in seen:
                lines_removed += 1
                chars_removed += len(line)
                continue
            seen.add(key)
            lines.append(line)
        if lines:
            kept.append("\n".join(lines))
        else:
            emptied += 1
    return kept, lines_removed, chars_removed, emptied


def compression_filter(
    documents: Sequence[str], count_tokens: Callable[[str], int], threshold: float = COMPRESSION_THRESHOLD
) -> tuple[list[str], int, int]:
    """Keeps documents with tokens <= threshold * characters; returns docs, documents and chars removed."""
    kept, removed, chars = [], 0, 0
    for doc in documents:
        if count_tokens(doc) > threshold * len(doc):
            removed += 1
            chars += len(doc)
        else:
            kept.append(doc)
    return kept, removed, chars


def mean_sentence_length(document: str) -> float:
    """Mean words per sentence, sentences ending in . ! or ?"""
    sentences = [s for s in _SENTENCE_END.split(document) if s.strip()]
    return len(document.split()) / max(len(sentences), 1)


def sort_by_sentence_length(documents: Sequence[str]) -> list[str]:
    """Documents of short sentences first (stable, so ties keep their order)."""
    return sorted(documents, key=mean_sentence_length)


def curate(
    documents: Sequence[str], curation: Curation, count_tokens: Callable[[str], int]
) -> tuple[list[str], CurationReport]:
    """Runs the enabled steps in Cramming's order (dedup, filter, sort) and reports each."""
    report = CurationReport(documents_in=len(documents))
    docs = list(documents)
    if curation.dedup:
        docs, report.duplicate_lines_removed, report.duplicate_chars_removed, report.documents_emptied_by_dedup = (
            dedup_lines(docs)
        )
    if curation.filter_threshold is not None:
        docs, report.incompressible_documents_removed, report.incompressible_chars_removed = compression_filter(
            docs, count_tokens, curation.filter_threshold
        )
    if curation.sort:
        docs = sort_by_sentence_length(docs)
        report.sorted_by_sentence_length = True
    report.documents_out = len(docs)
    return docs, report
