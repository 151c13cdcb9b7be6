"""`python -m scaling.sweep --config=configs/demo.py --base=tiny --op=nl --values=1,2,3
--config.budget=seconds:20 --out=DIR [--config.FIELD=VALUE ...] [--emit_launch]`

Trains the base shape with each knob value (`--op`/`--values` pairs span a grid), every run on the same budget,
and collects the finished runs into DIR/results.csv; the library is :mod:`scaling.experiments.sweep`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from scaling import cli


def _sweep(argv: list[str]) -> int:
    from scaling.experiments import configfiles, sweep

    parser = cli.config_parser(
        "python -m scaling.sweep",
        __doc__,
        config_help="the recipe every run starts from, "
        "e.g. configs/demo.py or configs/x.py:ARG (--config.FIELD=VALUE applies to every run)",
    )
    parser.add_argument("--base", required=True, help="base shape, e.g. tiny, small, base-dm512")
    parser.add_argument(
        "--op", action="append", default=[], help=f"scaling operator, one of {', '.join(sweep.KNOBS)}; repeatable"
    )
    parser.add_argument("--values", action="append", default=[], help="comma-separated values for the matching --op")
    parser.add_argument("--out", required=True, help="sweep directory: one workdir per run, and results.csv")
    parser.add_argument(
        "--emit_launch",
        action="store_true",
        help="print one python -m scaling.train line per unfinished run instead of training",
    )
    args = parser.parse_args(argv)
    if len(args.op) != len(args.values):
        parser.error("give one --values after each --op")
    # Every run's budget: the config file's, or --config.budget=UNIT:AMOUNT (or its budget.unit/amount fields).
    budget_overrides = [(f, v) for f, v in args.overrides if f.partition(".")[0] == configfiles.BUDGET]
    recipe = configfiles.load(args.config)
    configfiles.apply_overrides(recipe, budget_overrides)
    axes = tuple(
        (op.lower(), tuple(v.strip().lower() for v in values.split(",") if v.strip()))
        for op, values in zip(args.op, args.values)
    )
    spec = sweep.Sweep(
        recipe=args.config,
        base=args.base,
        axes=axes,
        budget=(recipe.budget.unit, float(recipe.budget.amount)),
        overrides=tuple(o for o in args.overrides if o not in budget_overrides),
    )
    path = sweep.run(
        spec, Path(args.out), recipe=recipe, emit_launch=args.emit_launch, print_fn=lambda line: print(line, flush=True)
    )
    if path is not None:
        print(f"[sweep] results: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_sweep, argv)


if __name__ == "__main__":
    sys.exit(main())
