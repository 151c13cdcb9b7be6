"""Achieved FLOP/s of our train step against this machine's true limit, measured in the same run.

    python bench/mfu.py [--shapes small small-nl24] [--batch 8] [--dtype bfloat16] [--inputs-length 512]
        [--targets-length 114] [--attention einsum xla cudnn] [--remat full] [--peak-sizes 1024 2048] [--json]

`fraction_of_peak` = analytic train FLOPs per step / measured step time / the best matmul FLOP/s that any
installed library reaches here in the step's precision (`scaling.experiments.peak.measured_peak`: JAX's and, on a
CPU, torch's, over several sizes); `peak_source` names the library and size that set it. Dividing by JAX's own
matmul alone overstated how close the step is to the machine when torch's MKL matmul is faster. On accelerators
with a known published peak, `mfu` is against that peak too (on a CPU it is empty: the measured limit is the
peak). Each `--attention` implementation gives its own row (an A/B of the same step). `--peak-sizes` sets the
square matmuls of the limit (the accelerator check's dry run passes 64).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax.numpy as jnp
from common import emit, t5_config

from scaling.experiments import peak, profile
from scaling.models import layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["small"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--inputs-length", type=int, default=128)
    parser.add_argument("--targets-length", type=int, default=32)
    parser.add_argument("--attention", nargs="+", default=["einsum"], choices=layers.ATTENTION_IMPLS)
    parser.add_argument("--remat", default="none", choices=layers.REMAT)
    parser.add_argument(
        "--peak-sizes", type=int, nargs="+", default=list(peak.SIZES), help="square matmul sizes for the limit"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    limit = peak.measured_peak(jnp.dtype(args.dtype), sizes=args.peak_sizes)
    device_limit = peak.device_peak(jnp.dtype(args.dtype), measured=limit)  # the published one where known
    rows = []
    for shape, attention in itertools.product(args.shapes, args.attention):
        config = t5_config(
            shape, batch=args.batch, inputs=args.inputs_length, targets=args.targets_length, dtype=args.dtype
        )
        config.model.attention_impl, config.model.remat = attention, args.remat
        row = profile.profile(config, steps=args.steps, warmup=2, limit=device_limit)
        rows.append(
            {
                "shape": row["shape"],
                "batch": args.batch,
                "dtype": args.dtype,
                "attention": attention,
                "seconds_per_step": row["seconds_per_step"],
                "achieved_flops_per_second": row["achieved_flops_per_second"],
                "matmul_peak_flops_per_second": limit.flops_per_second,
                "fraction_of_peak": row["achieved_flops_per_second"] / limit.flops_per_second,
                "peak_source": limit.source,
                "mfu": row["mfu"] if row["peak_source"].startswith("published") else None,
            }
        )
    emit(
        rows,
        [
            "shape",
            "batch",
            "dtype",
            "attention",
            "seconds_per_step",
            "achieved_flops_per_second",
            "matmul_peak_flops_per_second",
            "fraction_of_peak",
            "peak_source",
            "mfu",
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
