"""`python -m scaling.shapes NAME... [--json] [--inputs_length=512] [--targets_length=114]`: a shape's knobs,
parameter count and FLOPs per token.

Lives apart from :mod:`scaling.shapes` because it reports :mod:`scaling.accounting`'s figures, and accounting
imports shapes: the shape definitions stay free of any upward import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from scaling import accounting, cli
from scaling.shapes import Shape, parse


def describe(s: Shape, inputs_length: int = 512, targets_length: int = 114) -> dict:
    """The JSON record `python -m scaling.shapes --json` prints for one shape."""
    counts = accounting.param_counts(s)
    seq = accounting.SequenceLengths.default_for(s, inputs_length, targets_length)
    flops = accounting.flops_per_token(s, seq)
    return {
        "name": s.name,
        "preset": s.preset,
        "family": s.family,
        "num_encoder_layers": s.num_encoder_layers,
        "num_decoder_layers": s.num_decoder_layers,
        "d_model": s.d_model,
        "d_ff": s.d_ff,
        "num_heads": s.num_heads,
        "d_kv": s.d_kv,
        "vocab_size": s.vocab_size,
        "shared_heads": s.shared_heads,
        "tied_kv": s.tied_kv,
        "params": counts.total,
        "params_embedding": counts.embedding,
        "params_non_embedding": counts.non_embedding,
        "inputs_length": seq.inputs,
        "targets_length": seq.targets,
        "flops_per_token_forward": flops.forward,
        "flops_per_token_train": flops.train,
    }


def _shapes(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.shapes", __doc__)
    parser.add_argument("names", nargs="+", metavar="NAME", help="shape names, e.g. small_nl24 NL32-XL crammed-bert")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument(
        "--inputs_length",
        type=int,
        default=512,
        help="encoder tokens per example the FLOPs are counted at (default %(default)s)",
    )
    parser.add_argument(
        "--targets_length", type=int, default=114, help="decoder tokens per example, T5 shapes (default %(default)s)"
    )
    args = parser.parse_args(argv)
    records = [describe(parse(n), args.inputs_length, args.targets_length) for n in args.names]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for r in records:
        layers = (
            f"{r['num_encoder_layers']}/{r['num_decoder_layers']}"
            if r["family"] == "t5"
            else str(r["num_encoder_layers"])
        )
        print(
            f"{r['name']:<24} layers {layers:<7} d_model {r['d_model']:<6} d_ff {r['d_ff']:<7} heads "
            f"{r['num_heads']:<4} d_kv {r['d_kv']:<4} params {r['params']:>15,} (non-emb {r['params_non_embedding']:,})"
            f"  train FLOPs/token {r['flops_per_token_train']:.4g} at {r['inputs_length']}/{r['targets_length']}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_shapes, argv, tensorflow=False)


if __name__ == "__main__":
    sys.exit(main())
