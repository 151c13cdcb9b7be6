"""`python -m scaling.profile NAME [NAME ...] [--config=configs/demo.py] [--steps=10] [--warmup=2]
[--peak_sizes=1024,2048,3072] [--out=profile.csv] [--config.FIELD=VALUE ...]`

Measures each shape's compiled train step on this hardware — steps/s, tokens/s, FLOP/s, MFU, memory — with
synthetic batches, and appends a row per shape to --out; the library is :mod:`scaling.experiments.profile`.
Without --config a T5 shape gets *Scale Efficiently*'s recipe and a BERT shape Cramming's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scaling import cli


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use positive comma-separated sizes, e.g. 1024,2048")
    return sizes


def _profile(argv: list[str]) -> int:
    parser = cli.config_parser(
        "python -m scaling.profile",
        __doc__,
        required=False,
        config_help="config file (configs/NAME.py[:ARG]); default: the paper recipe",
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="shape names, e.g. small-nl24 NL32-XL")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default %(default)s)")
    parser.add_argument(
        "--peak_sizes",
        type=_sizes,
        default=None,
        help="square matmul sizes that measure a CPU's limit for MFU, e.g. 1024,2048 (default: 1024,2048,3072)",
    )
    parser.add_argument("--out", default="profile.csv", help="CSV the rows are appended to (default %(default)s)")
    args = parser.parse_args(argv)
    from scaling.experiments import configfiles, profile

    rows = []
    try:
        for name in args.names:
            config = configfiles.load(args.config) if args.config else profile.default_recipe(name)
            configfiles.apply_overrides(config, args.overrides)
            config.model.name = name
            row = profile.profile(
                config,
                steps=args.steps,
                warmup=args.warmup,
                recipe=args.config or "paper",
                **({"peak_sizes": args.peak_sizes} if args.peak_sizes else {}),
            )
            rows.append(row)
            print(profile.describe(row), flush=True)
    finally:  # the shapes measured before a failure keep their rows
        if rows:
            profile.append_rows(args.out, rows)
    print(f"appended {len(rows)} row(s) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_profile, argv)


if __name__ == "__main__":
    sys.exit(main())
