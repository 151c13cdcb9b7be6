"""`python -m scaling.compress WORKDIR/TASK/seed_S --out=DIR [--bits=8,6,4] [--sparsities=...] ...`

Compresses a model finetuned by `python -m scaling.finetune` as *Train Large, Then Compress* does: quantization
at every bit width, iterative magnitude pruning with recovery finetuning, pruning then quantization, and the
error statistics of each, into DIR/compression.csv and DIR/errors.csv. The library is
:mod:`scaling.downstream.compress`; `from scaling.compress import quantize, magnitude_prune` keeps working.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scaling import cli
from scaling.downstream.compress import (  # noqa: F401  the documented API: scaling.compress.quantize, …
    DEFAULT_BITS,
    DEFAULT_COMBINED_BITS,
    DEFAULT_SPARSITIES,
    GRANULARITIES,
    SCOPES,
    magnitude_prune,
    quantize,
)
from scaling.errors import UserError


def _compress(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.compress", __doc__)
    parser.add_argument("finetuned", help="a finetuned model: WORKDIR/TASK/seed_S of python -m scaling.finetune")
    parser.add_argument("--out", required=True, help="where compression.csv, errors.csv and pruned/ go")
    parser.add_argument(
        "--bits",
        default=",".join(map(str, DEFAULT_BITS)),
        help="quantization bit widths, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--sparsities",
        default=",".join(map(str, DEFAULT_SPARSITIES)),
        help="pruning levels in increasing order, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--combined_bits",
        default=",".join(map(str, DEFAULT_COMBINED_BITS)),
        help="bit widths to quantize each pruned model at (default %(default)s)",
    )
    parser.add_argument(
        "--granularity",
        default="tensor",
        choices=GRANULARITIES,
        help="one quantization range per tensor or per output channel (default %(default)s)",
    )
    parser.add_argument(
        "--scope",
        default="global",
        choices=SCOPES,
        help="prune to the sparsity over the whole model or per tensor (default %(default)s)",
    )
    parser.add_argument("--exclude", default="", help="comma-separated regexes of parameter paths to leave alone")
    parser.add_argument(
        "--recovery_target",
        type=float,
        default=0.995,
        help="recovery finetuning stops at this fraction of the original score (default %(default)s)",
    )
    parser.add_argument(
        "--recovery_epochs",
        type=float,
        default=1.0,
        help="at most this many epochs of recovery finetuning per level (default %(default)s)",
    )
    parser.add_argument(
        "--max_eval_examples",
        type=int,
        default=None,
        help="score on at most this many evaluation examples (default: all)",
    )
    parser.add_argument(
        "--max_train_examples",
        type=int,
        default=None,
        help="recovery-finetune on at most this many training examples (default: all)",
    )
    args = parser.parse_args(argv)
    from scaling.downstream import compress

    try:  # the levels are flags: a bad one is a usage mistake, named by its flag
        settings = compress.SweepSettings(
            bits=compress.parse_numbers(args.bits, int, "bits"),
            sparsities=compress.parse_numbers(args.sparsities, float, "sparsities"),
            combined_bits=compress.parse_numbers(args.combined_bits, int, "combined_bits"),
            granularity=args.granularity,
            scope=args.scope,
            exclude=compress.parse_numbers(args.exclude, str, "exclude"),
            recovery_target=args.recovery_target,
            recovery_epochs=args.recovery_epochs,
        )
        settings.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    path = compress.sweep(
        args.finetuned,
        args.out,
        settings,
        max_eval_examples=args.max_eval_examples,
        max_train_examples=args.max_train_examples,
    )
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_compress, argv)


if __name__ == "__main__":
    sys.exit(main())
