"""The device's kernels alone: its matmul peak, and attention forward and backward in each implementation
`model.attention_impl` offers (our einsums; `jax.nn.dot_product_attention` with XLA's or cuDNN's kernel) at a T5
layer's shapes, with its relative-position bias and a padding mask (what `Attention.attend` receives in the step).

    python bench/kernels.py [--shape base] [--batch 32] [--length 512] [--dtype bfloat16] [--matmul-size 8192]
        [--impls einsum xla cudnn] [--repeats 10] [--json]

First a row with the FLOP/s of the best of `--repeats` n × n matmuls in `--dtype` (`peak.measured_peak`: JAX's, and
torch's on a CPU) and the library that set it,
then a row per attention implementation: the best of `--repeats` timed calls of the jitted gradient of
`Attention.attend` (queries, keys, values and bias all differentiated, as training does), its TFLOP/s counting the
two attention products and the output projection forward and twice that backward, and `speedup` against the
first implementation listed. One that cannot run here (cuDNN without a GPU, or a shape it refuses) gives a row with
its `error` instead of stopping the others.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
from common import emit
from flax import nnx

from scaling import shapes
from scaling.experiments import peak
from scaling.models import layers

PEAK_COLUMNS = ("matmul_size", "dtype", "matmul_peak_flops_per_second", "peak_source")
COLUMNS = ("shape", "impl", "batch", "length", "dtype", "seconds", "tflops_per_second", "speedup", "error")


def attention_flops(shape: shapes.Shape, batch: int, length: int) -> int:
    """Forward + backward FLOPs of q·k, weights·v and the output projection (backward = 2 × forward)."""
    h, k = shape.num_heads, shape.d_kv
    forward = 4 * batch * h * length * length * k + 2 * batch * length * h * k * shape.d_model
    return 3 * forward


def time_impl(shape: shapes.Shape, impl: str, *, batch: int, length: int, dtype: Any, repeats: int) -> dict[str, Any]:
    attention = layers.use_attention(layers.Attention(shape, nnx.Rngs(0), bert_init=False), impl)
    keys = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(keys[0], (batch, length, shape.num_heads, shape.d_kv), dtype)
    kv_shape = (batch, length, shape.num_kv_heads, shape.d_kv)
    kv = layers.KV(*(jax.random.normal(key, kv_shape, dtype) for key in keys[1:]))
    relpos = layers.RelativePositionBias(shape, nnx.Rngs(1), bidirectional=True)(length, length)
    valid = length - jnp.arange(batch) * length // (2 * batch)  # rows padded from none to about half
    segments = (jnp.arange(length)[None, :] < valid[:, None]).astype(jnp.int32)
    bias = layers.attention_bias(segments, segments) + relpos  # [B, H, L, L], as the encoder builds it

    graphdef, params = nnx.split(attention)  # weights as arguments, not constants XLA would fold

    @jax.jit
    def grads(params, q, kv, bias):
        def f(*args):
            return nnx.merge(graphdef, params).attend(*args, None).astype(jnp.float32).sum()

        return jax.grad(f, argnums=(0, 1, 2))(q, kv, bias)

    jax.block_until_ready(grads(params, q, kv, bias))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(grads(params, q, kv, bias))
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "tflops_per_second": attention_flops(shape, batch, length) / best / 1e12}


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="base", help="a T5 shape name: its heads, d_kv and d_model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--impls", nargs="+", default=["xla", "cudnn"], choices=layers.ATTENTION_IMPLS)
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    limit = peak.measured_peak(jnp.dtype(args.dtype), sizes=(args.matmul_size,), repeats=args.repeats)
    peak_row = {
        "matmul_size": args.matmul_size,
        "dtype": args.dtype,
        "matmul_peak_flops_per_second": limit.flops_per_second,
        "peak_source": limit.source,
    }
    emit([peak_row], PEAK_COLUMNS, args.json)
    shape = shapes.parse(args.shape)
    rows = []
    for impl in args.impls:
        row = {"shape": shape.name, "impl": impl, "batch": args.batch, "length": args.length, "dtype": args.dtype}
        try:
            row |= time_impl(
                shape, impl, batch=args.batch, length=args.length, dtype=jnp.dtype(args.dtype), repeats=args.repeats
            )
        except Exception as e:  # an implementation this device cannot run is a result, not a crash
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        rows.append(row)
    first = rows[0].get("seconds")
    for row in rows:
        if first and row.get("seconds"):
            row["speedup"] = first / row["seconds"]
    emit(rows, COLUMNS, args.json)
    return rows


if __name__ == "__main__":
    main()
