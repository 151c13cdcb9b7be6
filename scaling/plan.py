"""`python -m scaling.plan --budget=UNIT:AMOUNT --base=small --op=nl --values=8,16,24 [--shapes=NAME,...]
[--config=FILE] [--law=DIR_OR_CSV ...] [--profile=CSV | --measure] [--json] [--plot=PNG] [--emit_config=PATH]`

Which shape to train with a budget: ranks the candidate shapes by the loss a law predicts for what the budget
buys each (steps and tokens from their exact FLOPs per step, or measured steps/s for a time budget), with the
law's bootstrap interval, how far each prediction extrapolates, and the law's compute-optimal point. The law is
fitted to finished runs given with --law (sweep directories, workdirs, study folders, CSVs of params, tokens,
loss); without --law it is Hoffmann et al.'s published one. The library is :mod:`scaling.experiments.plan`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from scaling import cli


def _plan(argv: list[str]) -> int:
    from scaling.experiments import sweep

    parser = cli.config_parser(
        "python -m scaling.plan",
        __doc__,
        required=False,
        config_help="the recipe every candidate trains with (batch, lengths, task), e.g. configs/demo.py; "
        "default: the paper recipe of the first candidate's family",
    )
    parser.add_argument(
        "--budget",
        required=True,
        help="UNIT:AMOUNT, UNIT one of flops, tokens, steps, seconds, hours (e.g. flops:1e19)",
    )
    parser.add_argument("--base", help="base shape of the candidates (itself a candidate), e.g. small")
    parser.add_argument(
        "--op", action="append", default=[], help=f"scaling operator, one of {', '.join(sweep.KNOBS)}; repeatable"
    )
    parser.add_argument("--values", action="append", default=[], help="comma-separated values for the matching --op")
    parser.add_argument("--shapes", action="append", default=[], help="more candidates: comma-separated shape names")
    parser.add_argument(
        "--law",
        action="append",
        default=[],
        help="runs to fit L(N, D) to: sweep directory, workdir, study results folder or CSV (params, tokens, loss); "
        "repeatable; default: Hoffmann et al.'s published law",
    )
    parser.add_argument(
        "--loss", default="loss", choices=("loss", "eval_loss"), help="the column the law fits (default %(default)s)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=50, help="bootstrap refits for the interval; 0: none (default %(default)s)"
    )
    parser.add_argument("--profile", help="a python -m scaling.profile CSV: measured steps/s of this device")
    parser.add_argument("--device", help="the device_kind of --profile's rows to use, when it holds several")
    parser.add_argument(
        "--measure", action="store_true", help="profile candidates with no measured steps/s now (5 steps each)"
    )
    parser.add_argument(
        "--unmeasured",
        default="estimate",
        choices=("estimate", "refuse"),
        help="a time budget and a shape without measured steps/s: estimate them from the best measured FLOP/s, "
        "or refuse the shape (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per candidate, best first")
    parser.add_argument("--plot", help="write the plan's figure to this PNG")
    parser.add_argument("--emit_config", help="write the winner's configs/-style file here")
    args = parser.parse_args(argv)
    if len(args.op) != len(args.values):
        parser.error("give one --values after each --op")
    if args.op and not args.base:
        parser.error("--op needs --base")
    if args.bootstrap < 0:
        parser.error(f"--bootstrap={args.bootstrap}: use 0 (no interval) or more refits")
    for field, _ in args.overrides:
        if field.partition(".")[0] == "budget" or field == "model.name":
            parser.error(f"--config.{field}: the plan sets it per candidate; use --budget and --base/--shapes")

    from scaling import budget as budget_lib
    from scaling.analysis import planning
    from scaling.errors import UserError
    from scaling.experiments import configfiles, plan, profile

    try:
        budget = budget_lib.parse(args.budget)
    except UserError as e:
        raise UserError(f"--budget={args.budget}: {e}") from None
    names = [n.strip() for text in args.shapes for n in text.split(",") if n.strip()]
    first = args.base or (names[0] if names else None)
    if first is None:
        parser.error("give --base (with --op/--values for a grid) and/or --shapes=NAME,...")
    if args.config:
        recipe, recipe_name = configfiles.load(args.config), args.config
    else:
        try:
            recipe = profile.default_recipe(first)
        except UserError as e:
            raise UserError(f"--base/--shapes: {e}") from None
        recipe_name = f"the paper recipe of {first}"
    axes = [
        (op.lower(), [v.strip().lower() for v in values.split(",") if v.strip()])
        for op, values in zip(args.op, args.values)
    ]
    cands = plan.candidates(recipe, budget, base=args.base, axes=axes, names=names, overrides=args.overrides)
    recipe_name += f" (batch {cands[0].batch_size} × {cands[0].sequence.tokens} tokens)"

    if args.law:
        table = planning.points(args.law, loss=args.loss)
        law = planning.fit(table, samples=args.bootstrap, source=", ".join(args.law))
    else:
        law = planning.PUBLISHED
    rows = None
    if args.profile and Path(args.profile).exists():
        rows = plan.read_profile(args.profile, args.device)
    elif args.profile and not args.measure:
        raise UserError(
            f"--profile={args.profile}: no such file; write it with python -m scaling.profile NAME ... "
            f"--out={args.profile}, or add --measure to profile the candidates now (and keep the rows there)"
        )

    def measure(c: plan.Candidate) -> dict:
        row = profile.profile(c.config, steps=5, warmup=1, recipe=args.config or "paper")
        if args.profile:
            profile.append_rows(args.profile, [row])
        print(profile.describe(row), file=sys.stderr, flush=True)
        return row

    result = plan.plan(
        cands, budget, law, profile=rows, measure=measure if args.measure else None, unmeasured=args.unmeasured
    )
    if args.json:
        print("\n".join(plan.json_lines(result)))
    else:
        print(plan.text(result, recipe=recipe_name))
    if args.plot:
        print(f"[plan] figure: {plan.draw(result, args.plot)}", file=sys.stderr if args.json else sys.stdout)
    if args.emit_config:
        winner = next(c for c in cands if c.name == result.table["shape"].iloc[0])
        command = shlex.join(["python", "-m", "scaling.plan", *argv])
        path = plan.emit_config(result, winner, args.emit_config, command=command)
        print(f"[plan] config: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_plan, argv)


if __name__ == "__main__":
    sys.exit(main())
