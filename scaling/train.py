"""`python -m scaling.train --config=configs/small_nl24.py --workdir=DIR [--config.FIELD=VALUE ...]`

Trains the config's shape until its budget is spent, resuming from the latest checkpoint in DIR. Any config
field can be overridden on the command line: `--config.budget=seconds:3600` (the budget is UNIT:AMOUNT with UNIT
one of steps, tokens, flops, seconds, hours), `--config.model.name=base-nl36`,
`--config.data.task=sotu_span_corruption`. A mistake (an unknown field, a wrong type, a missing file, an unknown
task or shape, an out-of-range value) is one line on stderr and exit 2, before anything is written to DIR.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scaling import cli


def _train(argv: list[str]) -> int:
    parser = cli.config_parser(
        "python -m scaling.train",
        __doc__,
        config_help="experiment file in configs/, e.g. configs/demo.py or configs/x.py:ARG",
    )
    parser.add_argument("--workdir", required=True, help="where checkpoints, metrics.jsonl and summary.json go")
    args = parser.parse_args(argv)
    from scaling import parallel
    from scaling.experiments import configfiles
    from scaling.training import trainer

    config = configfiles.load_with_overrides(args.config, args.overrides)
    config.lock()
    parallel.initialize_distributed(config.parallel)
    trainer.train(config, args.workdir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_train, argv)


if __name__ == "__main__":
    sys.exit(main())
