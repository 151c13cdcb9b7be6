"""`python -m scaling.profile NAME [NAME ...] [--config=configs/demo.py] [--steps=10] [--warmup=2]
[--peak_sizes=1024,2048,3072] [--out=profile.csv] [--config.FIELD=VALUE ...]`

Measures each shape's compiled train step on this hardware — steps/s, tokens/s, FLOP/s, MFU, memory — with
synthetic batches, and appends a row per shape to --out; the library is :mod:`scaling.experiments.profile`.
Without --config a T5 shape gets *Scale Efficiently*'s recipe and a BERT shape Cramming's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scaling import cli


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
        default="",
        help="square matmul sizes that measure a CPU's limit for MFU, e.g. 1024,2048 (default: 1024,2048,3072)",
    )
    parser.add_argument("--out", default="profile.csv", help="CSV the rows are appended to (default %(default)s)")
    args = parser.parse_args(argv)
    from scaling.experiments import configfiles, peak, profile

    try:
        peak_sizes = peak.parse_sizes(args.peak_sizes)
    except ValueError as e:
        parser.error(f"argument --peak_sizes: {args.peak_sizes!r}: {e}")
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
                peak_sizes=peak_sizes,
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
