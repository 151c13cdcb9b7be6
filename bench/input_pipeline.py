"""Examples/s of the span-corruption and MLM pipelines against what the demo's train step consumes.

    python bench/input_pipeline.py [--batches 50] [--json]

The pipeline runs on the host (tf.data, here limited to one core by `taskset` if you want the issue's
one-core figure: `taskset -c 0 python bench/input_pipeline.py`); the train step figure comes from the profiler.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit

from scaling.data import pipeline
from scaling.experiments import profile

REPO = Path(__file__).resolve().parents[1]


def demo_config():
    spec = importlib.util.spec_from_file_location("demo", REPO / "configs" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def pipeline_rate(task: str, lengths: dict[str, int], batch: int, batches: int) -> float:
    iterator = pipeline.get_batches(task, split="train", feature_lengths=lengths, batch_size=batch, seed=0)
    next(iterator)  # building the tf.data graph is start-up, not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = demo_config()
    step = profile.profile(config, steps=5, warmup=2)
    consumed = config.batch_size / step["seconds_per_step"]
    lengths = {"inputs": config.data.inputs_length, "targets": config.data.targets_length}
    rows = []
    for task, feature_lengths in (("sotu_span_corruption", lengths), ("sotu_mlm", {"inputs": 128})):
        rate = pipeline_rate(task, feature_lengths, config.batch_size, args.batches)
        rows.append(
            {
                "task": task,
                "pipeline_examples_per_second": rate,
                "train_step_examples_per_second": consumed,
                "ratio": rate / consumed,
            }
        )
    emit(rows, ["task", "pipeline_examples_per_second", "train_step_examples_per_second", "ratio"], args.json)


if __name__ == "__main__":
    main()
