"""Shapes and statistics of a task's batches, to check a data configuration before training.

    python -m scaling.data.inspect --task=sotu_span_corruption [--split=validation] [--batches=N] [--json]
    python -m scaling.data.inspect --text_glob='data/*.jsonl' --task=mydata_mlm      # your own files
    python -m scaling.data.inspect --module=my_tasks --task=my_seqio_mixture        # tasks a module registers

`--task` is any registered seqio task or mixture. `--text_glob` (with `--validation_glob`, `--text_key`,
`--max_bad_fraction`) first registers your `.txt`/`.jsonl` files with `tasks.register_text_tasks` under the
prefix of `--task` (`NAME_span_corruption` or `NAME_mlm`); `--module` imports a module that registers seqio
tasks. Works offline on the embedded corpus. Span corruption reports inputs/targets lengths, noise density
(masked fraction of the original tokens), mean noise span length, padding fraction and sentinel ids; MLM reports
the mask rate and the 80/10/10 replacement split; a task over files reports what reading skipped. `--json`
prints one JSON object.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import time
from collections.abc import Sequence

import seqio

from scaling import cli
from scaling.data import corpora, objectives, pipeline, stats, tasks, vocab
from scaling.errors import UserError

TEXT_TASK_SUFFIXES = ("_span_corruption", "_mlm")


def inspect_task(task: str, split: str, batches: int, batch_size: int, inputs_length: int | None, seed: int) -> dict:
    """Reads `batches` batches and returns their shapes and statistics."""
    spec = tasks.task_spec(task)
    tasks.check_splits(task, (split,))
    vocabulary = seqio.get_mixture_or_task(task).output_features["inputs"].vocabulary
    start = time.perf_counter()
    noise_density = spec.noise_density or objectives.NOISE_DENSITY
    mean_span = spec.mean_noise_span_length or objectives.MEAN_NOISE_SPAN_LENGTH
    if spec.objective == "span_corruption":
        inputs_length = inputs_length or 512
        _, targets_length = objectives.random_spans_helper(inputs_length, noise_density, mean_span)
        lengths = {"inputs": inputs_length, "targets": targets_length}
    else:
        lengths = {"inputs": inputs_length or 128}
    iterator = pipeline.get_batches(
        task,
        split=split,
        feature_lengths=lengths,
        batch_size=batch_size,
        seed=seed,
        shard_index=0,
        num_shards=1,
        repeat=False,
    )
    got = [batch for _, batch in zip(range(batches), iterator)]
    if spec.objective == "span_corruption":
        measured = stats.span_corruption_stats(got, vocabulary.vocab_size, vocabulary.extra_ids)
        if spec.noise_density is not None:  # unknown for encoder-decoder tasks without our span corruption
            measured["expected_noise_density"] = spec.noise_density
            measured["expected_mean_noise_span_length"] = spec.mean_noise_span_length
    else:
        measured = stats.mlm_stats(got, vocab.mask_token_id(vocabulary))
        measured["expected_mask_rate"] = spec.mask_rate
    result = {
        "task": task,
        "split": split,
        "objective": spec.objective,
        **({"tasks": list(spec.tasks)} if spec.tasks else {}),
        "batches": len(got),
        "batch_size": batch_size,
        "vocab_size": vocabulary.vocab_size,
        "shapes": stats.shapes(got[0]),
        **measured,
        "seconds": round(time.perf_counter() - start, 2),
    }
    corpora_ = {t.name: t.source.corpus for t in tasks.subtasks(task) if isinstance(t.source, tasks.CorpusSource)}
    corpora_ = {name: corpus for name, corpus in corpora_.items() if split in corpus.splits}
    if len(corpora_) == 1 and not spec.tasks:
        read, cured = next(iter(corpora_.values())).reports(split)
        result["read"] = dataclasses.asdict(read)
        if next(iter(corpora_.values())).curation.enabled:
            result["curation"] = dataclasses.asdict(cured)
    elif corpora_:
        result["read"] = {name: dataclasses.asdict(corpus.reports(split)[0]) for name, corpus in corpora_.items()}
    return result


def register_from_flags(task: str, args) -> None:
    """`--module` imports; `--text_glob` registers the user's files under `--task`'s prefix."""
    for module in args.module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UserError(f"--module={module}: cannot import it ({e}); check the name and PYTHONPATH") from None
    if not args.text_glob:
        if args.validation_glob:
            raise UserError("--validation_glob needs --text_glob (the training files of the same corpus)")
        return
    prefix = next((task[: -len(s)] for s in TEXT_TASK_SUFFIXES if task.endswith(s) and len(task) > len(s)), None)
    if prefix is None:
        raise UserError(
            f"--task={task} with --text_glob: name one of the two tasks registered over the files, "
            f"{task}_span_corruption or {task}_mlm"
        )
    tasks.register_text_tasks(
        prefix,
        args.text_glob,
        validation_glob=args.validation_glob or None,
        text_key=args.text_key,
        max_bad_fraction=args.max_bad_fraction,
    )


def _inspect(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.data.inspect", __doc__)
    parser.add_argument("--task", required=True, help="any registered seqio task or mixture, e.g. sotu_mlm")
    parser.add_argument("--split", default="train", help="default %(default)s")
    parser.add_argument("--batches", type=int, default=8, help="batches to read (default %(default)s)")
    parser.add_argument("--batch_size", type=int, default=16, help="examples per batch (default %(default)s)")
    parser.add_argument("--inputs_length", type=int, default=None, help="default 512 (span corruption) / 128 (MLM)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle and noise seed (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--text_glob",
        action="append",
        default=[],
        help="your .txt/.jsonl files (repeatable): registers NAME_span_corruption and NAME_mlm for --task=NAME_…",
    )
    parser.add_argument("--validation_glob", action="append", default=[], help="their validation split's files")
    parser.add_argument("--text_key", default="text", help=".jsonl field holding the text (default %(default)s)")
    parser.add_argument(
        "--max_bad_fraction",
        type=float,
        default=corpora.MAX_BAD_FRACTION,
        help="fraction of unreadable lines that fails the read (default %(default)s; 1.0 accepts any)",
    )
    parser.add_argument(
        "--module", action="append", default=[], help="a module to import first, which registers seqio tasks"
    )
    args = parser.parse_args(argv)
    register_from_flags(args.task, args)
    tasks.task_spec(args.task)  # an unknown name is one line listing the known ones
    result = inspect_task(args.task, args.split, args.batches, args.batch_size, args.inputs_length, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    for key, value in result.items():
        if key == "shapes":
            for name, (shape, dtype) in value.items():
                print(f"  {name:24s} {str(shape):12s} {dtype}")
        else:
            print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_inspect, argv)


if __name__ == "__main__":
    sys.exit(main())
