"""Where a train step's time goes: forward, backward and optimizer against the matmul peak, then the slowest ops.

    python bench/step_profile.py [--shape small] [--batch 8] [--optimizer adamw] [--top 15] [--json]

Parts are timed as separate jitted programs (best of `--repeats`): the forward loss, the gradient (forward +
backward) and the whole compiled step as the trainer runs it. Then one step is traced with `jax.profiler` and
each op's time is joined to the optimized HLO of the step (`Compiled.executables`), so a row names the op's
output shape and, for matmuls, its contracting dimensions. Op times can overlap (XLA:CPU runs independent ops
on both cores at once), so they rank ops; they do not add up to the step.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax  # noqa: E402
from common import emit, matmul_peak, t5_config  # noqa: E402

from scaling import profile, trainer  # noqa: E402


def best_seconds(fn: Any, *args: Any, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def part_rows(run: trainer.Run, state: dict, batch: dict, compiled: trainer.Compiled, peak: float,
              repeats: int) -> list[dict[str, Any]]:
    """Forward, forward + backward, and the full step: seconds and FLOP/s against the peak."""
    loss = trainer._loss_fn(run.graphdef, 0.0)
    forward = jax.jit(lambda p, b: loss(p, b, None)[0])
    grad = jax.jit(jax.grad(lambda p, b: loss(p, b, None)[0]))
    train_flops = run.flops_per_example * run.config.batch_size
    key = jax.random.key(0)

    def step(s):
        return compiled.step(s, [batch] * run.full_microbatches, key, 1e-3)[0]

    state = step(state)
    rows = []
    for part, fn, args, flops in (("forward", forward, (state["params"], batch), train_flops / 3),
                                  ("forward+backward", grad, (state["params"], batch), train_flops)):
        seconds = best_seconds(fn, *args, repeats=repeats)
        rows.append({"part": part, "seconds": seconds, "flops_per_second": flops / seconds,
                     "fraction_of_peak": flops / seconds / peak})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(step(state))
        times.append(time.perf_counter() - start)
    seconds = min(times)
    rows.append({"part": "full step (+ optimizer)", "seconds": seconds, "flops_per_second": train_flops / seconds,
                 "fraction_of_peak": train_flops / seconds / peak})
    return rows


def op_rows(run: trainer.Run, state: dict, batch: dict, compiled: trainer.Compiled, top: int) -> list[dict]:
    """The `top` ops of one traced step by total time, with their HLO output shape and matmul dimensions."""
    hlo = "\n".join(e.as_text() for e in compiled.executables)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            jax.block_until_ready(compiled.step(state, [batch] * run.full_microbatches, jax.random.key(0), 1e-3))
        (trace_file,) = Path(trace_dir).glob("**/*.trace.json.gz")
        events = [e for e in json.load(gzip.open(trace_file))["traceEvents"] if e.get("ph") == "X"]
    total, calls = collections.Counter(), collections.Counter()
    for e in events:
        total[e["name"]] += e["dur"]
        calls[e["name"]] += 1
    computations = {m.group(1): m.group(2) for m in re.finditer(r"^(%\S+) .*?\{\n(.*?)\n\}", hlo, re.S | re.M)}
    rows = []
    for name, micros in total.most_common():
        line = re.search(r"^\s+(?:ROOT )?%" + re.escape(name) + r" = (\S+) (.*)$", hlo, re.M)
        if line is None:  # runtime bookkeeping (executor waits, thread pools), not an op of the program
            continue
        body = line.group(2)
        called = re.search(r"calls=(%[^,\s]+)", body)
        if called and called.group(1) in computations:
            body = computations[called.group(1)]
        dims = re.search(r" dot\(.*?\), (lhs_batch_dims=\{[\d,]*\}, )?lhs_contracting_dims=(\{[\d,]*\}), "
                         r"(?:rhs_batch_dims=\{[\d,]*\}, )?rhs_contracting_dims=(\{[\d,]*\})", body)
        rows.append({"op": name, "milliseconds": micros / 1e3, "calls": calls[name], "output": line.group(1),
                     "matmul": f"contract lhs {dims.group(2)} rhs {dims.group(3)}" if dims else ""})
        if len(rows) == top:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "adafactor"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    peak = matmul_peak()
    run = trainer.build_run(t5_config(args.shape, batch=args.batch, optimizer=args.optimizer))
    state = trainer.init_state(run)
    batch = profile.synthetic_batch(run)
    compiled = trainer.compile_steps(run, state, batch)
    parts = part_rows(run, state, batch, compiled, peak, args.repeats)
    state = trainer.init_state(run)  # the timed steps donated the first one
    emit(parts, ["part", "seconds", "flops_per_second", "fraction_of_peak"], args.json)
    print()
    emit(op_rows(run, state, batch, compiled, args.top), ["op", "milliseconds", "calls", "output", "matmul"],
         args.json)


if __name__ == "__main__":
    main()
