"""Shared pieces of the benchmarks: the CPU recipe they time and table/JSON output (the machine's matmul peak is
`scaling.experiments.peak`, which the profiler shares)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

from scaling.experiments import recipes
from scaling.training import metrics


def t5_config(
    shape: str,
    *,
    batch: int = 8,
    inputs: int = 128,
    targets: int = 32,
    optimizer: str = "adafactor",
    dtype: str = "float32",
) -> ml_collections.ConfigDict:
    """Scale Efficiently's recipe at a CPU-sized batch; the task only fixes the batch layout (profiles are
    synthetic)."""
    config = recipes.scale_efficiently(shape)
    config.data.task = "sotu_span_corruption"
    config.data.inputs_length, config.data.targets_length = inputs, targets
    config.batch_size = batch
    config.model.dropout_rate, config.model.dtype = 0.0, dtype
    config.optimizer.name = optimizer
    if optimizer == "adamw":
        config.optimizer.schedule = "constant"
    return config


def environment() -> dict[str, Any]:
    device = jax.devices()[0]
    return {
        "device": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        **{k: v for k, v in metrics.software_versions().items() if k in ("python", "jax", "jaxlib", "flax")},
    }


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A table for people, or one JSON object per line (with the environment) for machines."""
    if as_json:
        env = environment()
        for row in rows:
            print(json.dumps({**row, **env}))
        return
    widths = [max([len(c), *(len(_fmt(r.get(c))) for r in rows)]) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths)))
    print(f"# {environment()}", file=sys.stderr)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
