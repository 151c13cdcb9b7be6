"""`python -m scaling.train --config=configs/small_nl24.py --workdir=DIR [--config.FIELD=VALUE ...]`

Trains the config's shape until its budget is spent, resuming from the latest checkpoint in DIR. Any config
field can be overridden on the command line (`--config.budget.seconds=3600` style: `--config.budget.unit=
seconds --config.budget.amount=3600`, `--config.model.name=base-nl36`, `--config.data.task=sotu_span_corruption`).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tf.data runs on the host only; its device notes are noise

from absl import app, flags
from ml_collections import config_flags

from scaling import cli, trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment file in configs/", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "where checkpoints, metrics.jsonl and summary.json go")


def main(argv: list[str]) -> int:
    cli.start(argv, "give both --config=configs/NAME.py and --workdir=DIR", _CONFIG.value, _WORKDIR.value)
    config = _CONFIG.value
    from scaling import checkpoints, parallel

    parallel.initialize_distributed(config.parallel)
    try:
        trainer.train(config, _WORKDIR.value)
    except (trainer.ConfigError, trainer.NonFiniteLossError, checkpoints.CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
