"""`python -m scaling.study --config=configs/study_cramming.py[:smoke] --out=DIR [--results=DIR]
[--config.FIELD=VALUE ...]`

Runs one paper's headline experiment in miniature — pretraining, profiling, finetuning and compression of every
run the study file names, all resumable under DIR — then writes its tables and report.md; the library is
:mod:`scaling.experiments.study`. `--config.budget=UNIT:AMOUNT` changes every run's budget.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from scaling import cli


def _study(argv: list[str]) -> int:
    parser = cli.config_parser(
        "python -m scaling.study", __doc__, config_help="study file, e.g. configs/study_cramming.py or its :smoke form"
    )
    parser.add_argument("--out", required=True, help="where checkpoints and every stage's outputs go (resumable)")
    parser.add_argument(
        "--results",
        default=None,
        help="where the tables and report go (default OUT/results; the shipped ones are notebooks/results/NAME, "
        "written only when named here)",
    )
    parser.add_argument(
        "--share_machine",
        action="store_true",
        help="run even while another study or training run is registered on this machine; every run whose time "
        "it shared is marked unusable for wall-clock findings",
    )
    parser.add_argument("--dry_run", action="store_true", help="validate everything and print the stages; run none")
    args = parser.parse_args(argv)
    from scaling.experiments import configfiles, study

    config = configfiles.load_with_overrides(args.config, args.overrides)
    if args.dry_run:
        print("\n".join(study.plan(config, args.out)))
        return 0
    results = study.run_study(
        config,
        args.out,
        args.results,
        command=shlex.join(["python", "-m", "scaling.study", *argv]),
        share_machine=args.share_machine,
        print_fn=lambda line: print(line, flush=True),
    )
    print((results / "report.md").read_text())
    print(f"[study] tables and report in {results}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_study, argv)


if __name__ == "__main__":
    sys.exit(main())
