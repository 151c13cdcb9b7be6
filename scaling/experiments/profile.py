"""Measured throughput, memory and MFU of shapes on this hardware, without training or a dataset.

    python -m scaling.profile NAME [NAME ...] [--config=configs/demo.py] [--steps=10] [--warmup=2]
        [--out=profile.csv] [--config.FIELD=VALUE ...]

For each shape the recipe's train step (every micro-batch of gradient accumulation, then the update) is
compiled for the current devices exactly as the trainer compiles it (``build_run``, ``init_state``,
``compile_steps``), fed synthetic batches of the task's shapes, and timed after ``--warmup`` steps with
``block_until_ready``. A row per shape reports steps/s, tokens/s, achieved FLOP/s (analytic matmul FLOPs),
MFU against the device's limit (:func:`scaling.experiments.peak.device_peak`: the published peak of a GPU or
TPU; on a CPU the best matmul FLOP/s of JAX and torch, measured in the same process once per dtype, with the
`peak_source` that set it), and memory: what XLA's ``memory_analysis()`` of the compiled executables says a step
needs, and the device's own peak where it reports one (GPUs, TPUs).
Rows are appended to ``--out`` (read by ``scaling.analysis.runs.read_table``) and name the device and
software versions, so a throughput axis measured here is never mistaken for one measured elsewhere.

Without ``--config`` a T5 shape gets *Scale Efficiently*'s recipe (batch 128, 512/114 tokens) and a BERT
shape Cramming's (batch 8192 in micro-batches of 128, length 128): the papers' own step.
"""

from __future__ import annotations

import datetime
import functools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from scaling import accounting, csvfile, shapes
from scaling.data import tasks
from scaling.errors import UserError
from scaling.experiments import peak, recipes
from scaling.training import metrics, trainer

COLUMNS = (
    "timestamp",
    "shape",
    "params",
    "batch_size",
    "micro_batch_size",
    "inputs_length",
    "targets_length",
    "dtype",
    "remat",
    "steps_timed",
    "seconds_per_step",
    "seconds_per_step_std",
    "steps_per_second",
    "tokens_per_second",
    "flops_per_step",
    "achieved_flops_per_second",
    "mfu",
    "peak_flops_per_second",
    "peak_source",
    "compile_seconds",
    "compiled_memory_bytes",
    "device_peak_bytes",
    "device_kind",
    "device_count",
    "platform",
    "python",
    "jax",
    "jaxlib",
    "flax",
    "recipe",
)


def default_recipe(name: str) -> ml_collections.ConfigDict:
    """The paper recipe of the shape's family (see the module docstring)."""
    shape = shapes.parse(name)
    if shape.is_encoder_decoder:
        return recipes.scale_efficiently(name)
    config = recipes.cramming()
    config.model.name = name
    return config


def synthetic_batch(run: trainer.Run, seed: int = 0) -> dict[str, jax.Array]:
    """One global micro-batch with the keys, dtypes and shapes the task's pipeline yields (see
    :mod:`scaling.data.pipeline`): random non-special tokens, one segment per row, full loss weights."""
    from scaling.data import pipeline

    rng = np.random.default_rng(seed)
    rows, vocab = run.micro_batch_size // jax.process_count(), run.shape.vocab_size
    spec = tasks.task_spec(run.config.data.task)

    def tokens(length: int) -> np.ndarray:
        return rng.integers(2, vocab, (rows, length), dtype=np.int32)

    def layout(length: int) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((rows, length), np.int32), np.broadcast_to(np.arange(length, dtype=np.int32), (rows, length))

    inputs = run.feature_lengths["inputs"]
    enc_segments, enc_positions = layout(inputs)
    batch = {
        "encoder_input_tokens": tokens(inputs),
        "encoder_segment_ids": enc_segments,
        "encoder_positions": enc_positions.copy(),
    }
    if spec.objective == "mlm":
        masked = math.ceil(spec.mask_rate * inputs)
        positions = np.sort(np.stack([rng.choice(inputs, masked, replace=False) for _ in range(rows)]), axis=1)
        weights = np.zeros((rows, inputs), np.float32)
        np.put_along_axis(weights, positions, 1.0, axis=1)
        batch.update(
            encoder_target_tokens=tokens(inputs),
            encoder_loss_weights=weights,
            mlm_positions=positions.astype(np.int32),
            mlm_weights=np.ones((rows, masked), np.float32),
        )
    else:
        targets = run.feature_lengths["targets"]
        dec_segments, dec_positions = layout(targets)
        target_tokens = tokens(targets)
        decoder_inputs = np.concatenate([np.zeros((rows, 1), np.int32), target_tokens[:, :-1]], axis=1)
        batch.update(
            decoder_target_tokens=target_tokens,
            decoder_input_tokens=decoder_inputs,
            decoder_segment_ids=dec_segments,
            decoder_positions=dec_positions.copy(),
            decoder_loss_weights=np.ones((rows, targets), np.float32),
        )
    return pipeline.make_global_batch(batch, run.mesh)


def _compiled_bytes(executable: Any) -> int | None:
    """Arguments + outputs + temporaries − aliased (donated) buffers of one executable, where XLA reports them."""
    try:
        m = executable.memory_analysis()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _device_peak_bytes() -> int | None:
    stats = jax.local_devices()[0].memory_stats()
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def chained_seconds(fn: Callable[[Any], Any], state: Any, *, steps: int, warmup: int) -> tuple[list[float], Any]:
    """Wall seconds of `steps` calls of `state = fn(state)` after `warmup` untimed ones; each call takes the last
    one's output, as programs that donate their state need."""
    for _ in range(warmup):
        state = jax.block_until_ready(fn(state))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state = jax.block_until_ready(fn(state))
        times.append(time.perf_counter() - start)
    return times, state


@functools.cache
def _device_peak(dtype: str, sizes: tuple[int, ...]) -> peak.Peak:
    """Measured once per process, dtype and sizes: a sweep's rows share one limit, and a CPU's takes seconds."""
    return peak.device_peak(jax.numpy.dtype(dtype), sizes=sizes)


def profile(
    config: ml_collections.ConfigDict,
    *,
    steps: int = 10,
    warmup: int = 2,
    recipe: str = "",
    limit: peak.Peak | None = None,
    peak_sizes: Sequence[int] = peak.SIZES,
) -> dict[str, Any]:
    """Compiles and times ``config``'s train step; returns one row of :data:`COLUMNS`, whose MFU is against
    `limit` (default: :func:`peak.device_peak`, measured once per process on a CPU with `peak_sizes` square
    matmuls)."""
    if steps < 1 or warmup < 0:
        raise UserError(f"--steps={steps} --warmup={warmup}: use steps >= 1 and warmup >= 0")
    run = trainer.build_run(config)
    state = trainer.init_state(run)
    batch = synthetic_batch(run)
    compiled = trainer.compile_steps(run, state, batch)
    key = jax.random.key(0)
    lr = jax.numpy.float32(run.schedule(0.0, 0))  # the rate's value does not change the step's cost

    def step(state: dict[str, Any]) -> dict[str, Any]:
        return compiled.step(state, [batch] * run.full_microbatches, key, lr)[0]

    times, state = chained_seconds(step, state, steps=steps, warmup=warmup)
    per_step = float(np.mean(times))
    flops = run.flops_per_example * config.batch_size
    device = jax.devices()[0]
    limit = limit or _device_peak(np.dtype(run.dtype).name, tuple(peak_sizes))
    memory = [_compiled_bytes(e) for e in compiled.executables]
    software = metrics.software_versions()
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "shape": run.shape.name,
        "params": accounting.param_counts(run.shape).total,
        "batch_size": config.batch_size,
        "micro_batch_size": run.micro_batch_size,
        "inputs_length": run.sequence.inputs,
        "targets_length": run.sequence.targets,
        "dtype": np.dtype(run.dtype).name,
        "remat": config.model.remat,
        "steps_timed": steps,
        "seconds_per_step": per_step,
        "seconds_per_step_std": float(np.std(times)),
        "steps_per_second": 1.0 / per_step,
        "tokens_per_second": config.batch_size * run.sequence.tokens / per_step,
        "flops_per_step": flops,
        "achieved_flops_per_second": flops / per_step,
        "mfu": flops / per_step / (limit.flops_per_second * jax.device_count()),
        "peak_flops_per_second": limit.flops_per_second,
        "peak_source": limit.source,
        "compile_seconds": compiled.seconds,
        "compiled_memory_bytes": max(memory) if all(m is not None for m in memory) else None,
        "device_peak_bytes": _device_peak_bytes(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "platform": device.platform,
        "python": software["python"],
        "jax": software["jax"],
        "jaxlib": software["jaxlib"],
        "flax": software["flax"],
        "recipe": recipe,
    }


def describe(row: dict[str, Any]) -> str:
    """One console line for a profile row."""
    mfu = f", MFU {row['mfu']:.1%}" if row["mfu"] is not None else ""
    memory = row["device_peak_bytes"] or row["compiled_memory_bytes"]
    memory_text = f", memory {memory / 2**20:,.0f} MiB" if memory else ""
    return (
        f"{row['shape']}: {row['steps_per_second']:.3g} steps/s, {row['tokens_per_second']:,.0f} tokens/s, "
        f"{row['achieved_flops_per_second']:.3g} FLOP/s{mfu}{memory_text} "
        f"({row['device_kind']} x{row['device_count']})"
    )


def append_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Appends rows to a CSV with :data:`COLUMNS`, writing the header first for a new file."""
    csvfile.append(path, rows, COLUMNS)
