"""Shapes and statistics of a task's batches, to check a data configuration before training.

    python -m scaling.data.inspect --task=sotu_span_corruption [--split=validation] [--batches=N] [--json]

Works offline on the embedded corpus. Span corruption reports inputs/targets lengths, noise density (masked
fraction of the original tokens), mean noise span length, padding fraction and sentinel ids; MLM reports the
mask rate and the 80/10/10 replacement split. `--json` prints one JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence

import seqio

from scaling import cli
from scaling.data import objectives, pipeline, stats, tasks, vocab


def inspect_task(task: str, split: str, batches: int, batch_size: int, inputs_length: int | None, seed: int) -> dict:
    """Reads `batches` batches and returns their shapes and statistics."""
    spec = tasks.task_spec(task)
    vocabulary = seqio.get_mixture_or_task(task).output_features["inputs"].vocabulary
    start = time.perf_counter()
    if spec.objective == "span_corruption":
        inputs_length = inputs_length or 512
        _, targets_length = objectives.random_spans_helper(
            inputs_length, spec.noise_density, spec.mean_noise_span_length
        )
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
        measured["expected_noise_density"] = spec.noise_density
        measured["expected_mean_noise_span_length"] = spec.mean_noise_span_length
    else:
        measured = stats.mlm_stats(got, vocab.mask_token_id(vocabulary))
        measured["expected_mask_rate"] = spec.mask_rate
    result = {
        "task": task,
        "split": split,
        "objective": spec.objective,
        "batches": len(got),
        "batch_size": batch_size,
        "vocab_size": vocabulary.vocab_size,
        "shapes": stats.shapes(got[0]),
        **measured,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if spec.corpus is not None:
        read, cured = spec.corpus.reports(split)
        result["read"] = dataclasses.asdict(read)
        if spec.corpus.curation.enabled:
            result["curation"] = dataclasses.asdict(cured)
    return result


def _inspect(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.data.inspect", __doc__)
    parser.add_argument("--task", required=True, help=f"a registered task: {', '.join(tasks.registered_tasks())}")
    parser.add_argument("--split", default="train", choices=("train", "validation"), help="default %(default)s")
    parser.add_argument("--batches", type=int, default=8, help="batches to read (default %(default)s)")
    parser.add_argument("--batch_size", type=int, default=16, help="examples per batch (default %(default)s)")
    parser.add_argument("--inputs_length", type=int, default=None, help="default 512 (span corruption) / 128 (MLM)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle and noise seed (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    tasks.task_spec(args.task)  # an unknown name is one line that suggests the closest
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
