"""Where a train step's time goes: forward, backward and optimizer against the matmul peak, the slowest ops, and
what the step's matmuls cost when each runs alone.

    python bench/step_profile.py [--shape small] [--batch 8] [--optimizer adamw] [--top 15] [--json]
                                 [--repeats 3] [--matmul-repeats 10]

Parts are timed as separate jitted programs (best of `--repeats`): the forward loss, the gradient (forward +
backward), the optimizer update alone (the program a step with accumulated micro-batches runs last) and the whole
compiled step as the trainer runs it. Then one step is traced with `jax.profiler` and
each op's time is joined to the optimized HLO of the step (`Compiled.executables`), so a row names the op's
output shape and, for matmuls, its contracting dimensions. Op times can overlap (XLA:CPU runs independent ops
on both cores at once), so they rank ops; they do not add up to the step.

Last, every matmul of the traced step is replayed alone: the same operand shapes and dimension numbers as one
jitted `lax.dot_general`, timed (best of `--matmul-repeats`) and multiplied by how often the step ran it. The sum is
the step's matmul floor on this machine: the time its matmuls take with XLA's kernels even if every other op
were free. Each row names the matmul's form (NN, NT, TN: which operand is read transposed), because the
kernels' speed depends on it: XLA:CPU hands YNNPACK only matmuls whose left operand is not transposed, so the TN
weight gradients run on Eigen, which the runtime dispatches asynchronously; their `in_step_ms` reads near zero
while they share the cores with the ops after them.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
from common import emit, t5_config

from scaling.experiments import profile
from scaling.experiments.peak import measured_peak
from scaling.training import trainer


def best_seconds(fn: Any, *args: Any, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def part_rows(
    run: trainer.Run, state: dict, batch: dict, compiled: trainer.Compiled, peak: float, repeats: int
) -> list[dict[str, Any]]:
    """Forward, forward + backward, the optimizer update alone (the separate program of a step that accumulates
    micro-batches) and the full step: seconds and FLOP/s against the peak."""
    loss = trainer._loss_fn(run.graphdef, 0.0)
    forward = jax.jit(lambda p, b: loss(p, b, None)[0])
    grad = jax.jit(jax.grad(lambda p, b: loss(p, b, None)[0]))
    train_flops = run.flops_per_example * run.config.batch_size
    key = jax.random.key(0)

    def step(s):
        return compiled.step(s, [batch] * run.full_microbatches, key, 1e-3)[0]

    grads, aux = trainer._grad_fn(run)(state["params"], batch, None)
    update_program = jax.jit(trainer.update_fn(run), donate_argnums=(0, 1))  # donated as `compile_steps` does

    def update(s):
        params, opt_state, _ = update_program(s["params"], s["opt_state"], grads, aux, 1e-3)
        return {"params": params, "opt_state": opt_state}

    rows = []
    for part, fn, args, flops in (
        ("forward", forward, (state["params"], batch), train_flops / 3),
        ("forward+backward", grad, (state["params"], batch), train_flops),
    ):
        seconds = best_seconds(fn, *args, repeats=repeats)
        rows.append(
            {
                "part": part,
                "seconds": seconds,
                "flops_per_second": flops / seconds,
                "fraction_of_peak": flops / seconds / peak,
            }
        )
    times, state = profile.chained_seconds(update, state, steps=repeats, warmup=1)  # the first call compiles
    rows.append({"part": "optimizer update alone", "seconds": min(times)})
    times, state = profile.chained_seconds(step, state, steps=repeats, warmup=1)
    seconds = min(times)
    rows.append(
        {
            "part": "full step (+ optimizer)",
            "seconds": seconds,
            "flops_per_second": train_flops / seconds,
            "fraction_of_peak": train_flops / seconds / peak,
        }
    )
    return rows


@dataclasses.dataclass(frozen=True)
class Matmul:
    """One `dot` of the optimized HLO: operand shapes and dimension numbers, enough to replay it alone."""

    lhs: tuple[int, ...]
    rhs: tuple[int, ...]
    lhs_contracting: tuple[int, ...]
    rhs_contracting: tuple[int, ...]
    lhs_batch: tuple[int, ...] = ()
    rhs_batch: tuple[int, ...] = ()

    @property
    def dimension_numbers(self) -> tuple:
        return (self.lhs_contracting, self.rhs_contracting), (self.lhs_batch, self.rhs_batch)

    @property
    def flops(self) -> int:
        """2·(output elements)·(contracted size)."""
        k = math.prod(self.lhs[d] for d in self.lhs_contracting)
        kept = [n for d, n in enumerate(self.lhs) if d not in self.lhs_contracting]
        free_rhs = [n for d, n in enumerate(self.rhs) if d not in self.rhs_contracting + self.rhs_batch]
        return 2 * math.prod(kept) * math.prod(free_rhs) * k

    @property
    def form(self) -> str:
        """NN, NT, TN or TT for a 2-D matmul (T: the operand is read transposed); `batched` otherwise."""
        if self.lhs_batch or len(self.lhs) != 2 or len(self.rhs) != 2 or len(self.lhs_contracting) != 1:
            return "batched"
        return ("N" if self.lhs_contracting == (1,) else "T") + ("N" if self.rhs_contracting == (0,) else "T")

    @property
    def label(self) -> str:
        lhs, rhs = (",".join(map(str, shape)) for shape in (self.lhs, self.rhs))
        return f"[{lhs}]·[{rhs}] contract {list(self.lhs_contracting)}·{list(self.rhs_contracting)}"


def _dims(text: str, name: str) -> tuple[int, ...]:
    found = re.search(name + r"=\{([\d,]*)\}", text)
    return tuple(int(d) for d in found.group(1).split(",") if d) if found else ()


def parse_matmul(body: str, hlo: str) -> Matmul | None:
    """The `dot` in `body` (an instruction, or the computation a fusion calls), its operand shapes looked up in
    `body` first and then the whole module; None when `body` holds no dot."""
    dot = re.search(r"= \S+ dot\(%([^,\s)]+), %([^,\s)]+)\)(.*)$", body, re.M)
    if dot is None:
        return None

    def shape(name: str) -> tuple[int, ...]:
        pattern = r"%" + re.escape(name) + r" = \w+\[([\d,]*)\]"
        found = re.search(pattern, body) or re.search(pattern, hlo)
        if found is None:
            raise ValueError(f"the optimized HLO defines no operand %{name} of a dot")
        return tuple(int(d) for d in found.group(1).split(",") if d)

    attrs = dot.group(3)
    return Matmul(
        shape(dot.group(1)),
        shape(dot.group(2)),
        _dims(attrs, "lhs_contracting_dims"),
        _dims(attrs, "rhs_contracting_dims"),
        _dims(attrs, "lhs_batch_dims"),
        _dims(attrs, "rhs_batch_dims"),
    )


def traced_ops(run: trainer.Run, state: dict, batch: dict, compiled: trainer.Compiled) -> list[dict[str, Any]]:
    """Every op of one traced step by total time, with its HLO output shape and, for a matmul, its `Matmul`."""
    hlo = "\n".join(e.as_text() for e in compiled.executables)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            jax.block_until_ready(compiled.step(state, [batch] * run.full_microbatches, jax.random.key(0), 1e-3))
        (trace_file,) = Path(trace_dir).glob("**/*.trace.json.gz")
        with gzip.open(trace_file) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    total, calls = collections.Counter(), collections.Counter()
    for e in events:
        total[e["name"]] += e["dur"]
        calls[e["name"]] += 1
    computations = {m.group(1): m.group(2) for m in re.finditer(r"^(%\S+) .*?\{\n(.*?)\n\}", hlo, re.S | re.M)}
    ops = []
    for name, micros in total.most_common():
        line = re.search(r"^\s+(?:ROOT )?%" + re.escape(name) + r" = (\S+) (.*)$", hlo, re.M)
        if line is None:  # runtime bookkeeping (executor waits, thread pools), not an op of the program
            continue
        body = line.group(0)
        called = re.search(r"calls=(%[^,\s]+)", line.group(2))
        if called and called.group(1) in computations:
            body = computations[called.group(1)]
        ops.append(
            {
                "op": name,
                "milliseconds": micros / 1e3,
                "calls": calls[name],
                "output": line.group(1),
                "matmul": parse_matmul(body, hlo),
            }
        )
    return ops


def op_rows(ops: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """The `top` ops by total time, a matmul named by its contracting dimensions."""
    return [{**op, "matmul": f"{op['matmul'].form} {op['matmul'].label}" if op["matmul"] else ""} for op in ops[:top]]


def matmul_rows(ops: list[dict[str, Any]], peak: float, repeats: int) -> list[dict[str, Any]]:
    """Each distinct matmul of the step timed alone, then sums per form, then the sum of all: the step's matmul
    floor."""
    runs: dict[Matmul, dict[str, float]] = {}
    for op in ops:
        if op["matmul"] is not None:
            seen = runs.setdefault(op["matmul"], {"calls": 0, "in_step_ms": 0.0})
            seen["calls"] += op["calls"]
            seen["in_step_ms"] += op["milliseconds"]
    rows = []
    for i, (matmul, seen) in enumerate(runs.items()):
        keys = jax.random.split(jax.random.key(i))
        lhs = jax.random.normal(keys[0], matmul.lhs, jnp.float32)
        rhs = jax.random.normal(keys[1], matmul.rhs, jnp.float32)
        dot = jax.jit(lambda a, b, dims=matmul.dimension_numbers: jax.lax.dot_general(a, b, dims))
        alone = best_seconds(dot, lhs, rhs, repeats=repeats)
        rows.append(
            {
                "matmul": matmul.label,
                "form": matmul.form,
                "calls": seen["calls"],
                "gflop": seen["calls"] * matmul.flops / 1e9,
                "alone_ms": seen["calls"] * alone * 1e3,
                "alone_fraction_of_peak": matmul.flops / alone / peak,
                "in_step_ms": seen["in_step_ms"],
            }
        )
    rows.sort(key=lambda r: -r["alone_ms"])
    forms = sorted({r["form"] for r in rows})
    return (
        rows
        + [_total(f"all {form}", form, [r for r in rows if r["form"] == form], peak) for form in forms]
        + [_total("all matmuls", "", rows, peak)]
    )


def _total(name: str, form: str, rows: list[dict[str, Any]], peak: float) -> dict[str, Any]:
    gflop, alone_ms = sum(r["gflop"] for r in rows), sum(r["alone_ms"] for r in rows)
    return {
        "matmul": name,
        "form": form,
        "calls": sum(r["calls"] for r in rows),
        "gflop": gflop,
        "alone_ms": alone_ms,
        "alone_fraction_of_peak": gflop * 1e9 / (alone_ms / 1e3) / peak,
        "in_step_ms": sum(r["in_step_ms"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "adafactor"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--matmul-repeats",
        type=int,
        default=10,
        help="timings per replayed matmul; the best counts (a few ms each, so more is cheap)",
    )
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    peak = measured_peak().flops_per_second
    run = trainer.build_run(t5_config(args.shape, batch=args.batch, optimizer=args.optimizer))
    state = trainer.init_state(run)
    batch = profile.synthetic_batch(run)
    compiled = trainer.compile_steps(run, state, batch)
    parts = part_rows(run, state, batch, compiled, peak, args.repeats)
    state = trainer.init_state(run)  # the timed steps donated the first one
    emit(parts, ["part", "seconds", "flops_per_second", "fraction_of_peak"], args.json)
    print(end="" if args.json else "\n")  # JSON output stays one object per line
    ops = traced_ops(run, state, batch, compiled)
    emit(op_rows(ops, args.top), ["op", "milliseconds", "calls", "output", "matmul"], args.json)
    print(end="" if args.json else "\n")
    # the machine's speed drifts; the replay is judged against its best moment
    peak = max(peak, measured_peak().flops_per_second)
    matmuls = matmul_rows(ops, peak, args.matmul_repeats)
    emit(matmuls, ["matmul", "form", "calls", "gflop", "alone_ms", "alone_fraction_of_peak", "in_step_ms"], args.json)
    if not args.json:
        step = next(p for p in parts if p["part"].startswith("full step"))["seconds"]
        print(
            f"\nthe step's matmuls alone take {matmuls[-1]['alone_ms'] / 1e3:.3g} s, "
            f"{matmuls[-1]['alone_ms'] / 1e3 / step:.0%} of the {step:.3g} s step"
        )


if __name__ == "__main__":
    main()
