"""Runs → tidy tables: what training wrote (``summary.json``, ``metrics.jsonl``) and results CSVs.

:func:`load_runs` gives one row per run — shape knobs, cost (params, FLOPs), measured throughput and wall-clock,
hardware, final quality — from any mix of workdirs, sweep directories (folders of workdirs) and CSV tables
(a sweep's ``results.csv``, or later finetune / compression results with columns such as ``method``,
``level``, ``memory_bits``, ``score``: their columns are kept as they are). :func:`load_curves` gives one row per
logged step of every run, for "same budget" comparisons along the training curves.

Derived columns say what they are derived from: ``steps_per_second`` = steps / training seconds (compilation
excluded), ``seconds_per_step`` its inverse (the speed axis as a cost), ``perplexity`` = exp(``eval_loss``),
``memory_bits`` = 32 × params (float32 parameters, the uncompressed test-time memory). Measured columns come
from the run's own clock and devices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from scaling.errors import ScalingError

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"

# Shape fields copied from summary.json's "shape" block (the knobs of scaling.shapes).
SHAPE_FIELDS = (
    "preset",
    "family",
    "num_encoder_layers",
    "num_decoder_layers",
    "d_model",
    "d_ff",
    "num_heads",
    "d_kv",
    "vocab_size",
)
FINAL_FIELDS = ("loss", "accuracy", "eval_loss", "eval_accuracy", "compile_seconds")
SOFTWARE_FIELDS = ("jax", "jaxlib", "flax")


class RunError(ScalingError, ValueError):
    """A run directory or results file that cannot be read into a table."""


def read_summary(workdir: str | Path) -> dict[str, Any]:
    """The parsed ``summary.json`` of a workdir (written by the trainer when a run stops)."""
    path = Path(workdir) / SUMMARY_FILE
    if not Path(workdir).is_dir():
        raise RunError(f"{workdir}: no such run directory")
    if not path.is_file():
        raise RunError(f"{path}: missing; the run has not finished or stopped (summary.json is written at the end)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: not valid JSON ({e})") from None


def read_metrics(workdir: str | Path) -> pd.DataFrame:
    """``metrics.jsonl`` as a table, one row per logged step (schema: :mod:`scaling.training.metrics`'s docstring).

    ``null`` (a non-finite value) becomes NaN. A line that is not a JSON object with an integer ``step`` is an
    error naming the file and line: analysis should not silently drop part of a curve.
    """
    path = Path(workdir) / METRICS_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing; is {workdir} a training workdir?")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("expected an object with an integer 'step'")
            bad = [k for k, v in record.items() if v is not None and not isinstance(v, (int, float))]
            if bad:
                raise ValueError(f"non-numeric value(s) for {bad}")
        except ValueError as e:
            raise RunError(f"{path}:{number}: malformed metrics line ({e}): {line[:80]!r}") from None
        rows.append(record)
    if not rows:
        raise RunError(f"{path}: no records")
    return pd.DataFrame(rows).astype(float).astype({"step": int}).sort_values("step", ignore_index=True)


def run_row(workdir: str | Path) -> dict[str, Any]:
    """One run as a flat record: identity, knobs, costs, measured speed, hardware and final quality."""
    workdir = Path(workdir)
    summary = read_summary(workdir)
    final = summary.get("final_metrics", {})
    config = summary.get("config", {})
    shape = summary.get("shape", {})
    spent = summary.get("budget", {}).get("spent", {})
    hardware, software = summary.get("hardware", {}), summary.get("software", {})
    steps, seconds = spent.get("step", final.get("step")), spent.get("seconds")
    row: dict[str, Any] = {
        "run": workdir.name,
        "shape": shape.get("name", config.get("model", {}).get("name")),
        **{field: shape.get(field) for field in SHAPE_FIELDS},
        "params": summary.get("params"),
        "params_non_embedding": summary.get("params_non_embedding"),
        "memory_bits": 32 * summary["params"] if summary.get("params") else None,
        "batch_size": config.get("batch_size"),
        "inputs_length": summary.get("sequence", {}).get("inputs"),
        "targets_length": summary.get("sequence", {}).get("targets"),
        "task": config.get("data", {}).get("task"),
        "flops_per_step": summary.get("flops_per_step_train"),
        "budget_unit": summary.get("budget", {}).get("unit"),
        "budget_amount": summary.get("budget", {}).get("amount"),
        "completed": final.get("completed"),
        "steps": steps,
        "tokens": spent.get("tokens"),
        "flops": spent.get("flops"),
        "seconds": seconds,
        "steps_per_second": steps / seconds if steps and seconds else None,
        "seconds_per_step": seconds / steps if steps and seconds else None,
        "tokens_per_second": spent["tokens"] / seconds if spent.get("tokens") and seconds else None,
        **{field: final.get(field) for field in FINAL_FIELDS},
        "device_kind": hardware.get("device_kind"),
        "device_count": hardware.get("device_count"),
        "platform": hardware.get("platform"),
        **{f"{name}_version": software.get(name) for name in SOFTWARE_FIELDS},
        "workdir": str(workdir),
    }
    eval_loss = row["eval_loss"]
    row["perplexity"] = math.exp(eval_loss) if isinstance(eval_loss, (int, float)) else None
    return row


def read_table(path: str | Path) -> pd.DataFrame:
    """A results CSV (``#`` lines are comments, e.g. the source); every column is kept."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such results file")
    table = pd.read_csv(path, comment="#")
    if table.empty:
        raise RunError(f"{path}: the table has no rows")
    return table


def _workdirs(path: Path) -> list[Path]:
    """A workdir itself, or the workdirs inside a sweep directory (folders holding summary.json)."""
    if (path / SUMMARY_FILE).is_file() or (path / METRICS_FILE).is_file():
        return [path]
    found = sorted(p.parent for p in path.glob(f"*/{SUMMARY_FILE}"))
    if not found:
        raise RunError(f"{path}: neither a run workdir nor a directory of them (no {SUMMARY_FILE} found)")
    return found


def load_runs(*paths: str | Path) -> pd.DataFrame:
    """One tidy table from workdirs, sweep directories and results CSVs (columns are the union)."""
    if not paths:
        raise RunError("load_runs needs at least one workdir, sweep directory or results CSV")
    frames = []
    for path in map(Path, paths):
        if path.suffix == ".csv":
            frames.append(read_table(path))
        elif path.is_dir():
            frames.append(pd.DataFrame([run_row(w) for w in _workdirs(path)]))
        else:
            raise RunError(f"{path}: no such workdir, sweep directory or .csv file")
    return pd.concat(frames, ignore_index=True)


def load_curves(*paths: str | Path) -> pd.DataFrame:
    """Every logged step of every run (workdirs or sweep directories), with ``run`` and ``shape`` columns.

    Adds ``steps_per_second`` over the whole run so far (step / seconds). Use it to compare runs at equal
    wall-clock seconds or FLOPs (:func:`scaling.analysis.frontier.at_budget`).
    """
    if not paths:
        raise RunError("load_curves needs at least one workdir or sweep directory")
    frames = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise RunError(f"{path}: no such run directory")
        for workdir in _workdirs(path):
            curve = read_metrics(workdir)
            shape = _shape_name(workdir)
            curve.insert(0, "run", workdir.name)
            curve.insert(1, "shape", shape)
            curve["steps_per_second"] = curve["step"] / curve["seconds"]
            frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def _shape_name(workdir: Path) -> str:
    """The run's shape from summary.json, or from config.json while the run is still going."""
    for name in (SUMMARY_FILE, "config.json"):
        path = workdir / name
        if path.is_file():
            data = json.loads(path.read_text())
            found = data.get("shape", {}).get("name") or data.get("config", data).get("model", {}).get("name")
            if found:
                return found
    return workdir.name


def require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Fails with the missing column names when ``table`` cannot serve as ``what``."""
    if table.empty:
        raise RunError(f"{what}: the table is empty")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise RunError(f"{what}: missing column(s) {missing}; the table has {list(table.columns)}")


COMPRESSION_COLUMNS = ("model", "method", "level", "memory_bits", "score")


def load_compression(path: str | Path) -> pd.DataFrame:
    """A compression results CSV: one row per (model, method, level) with test-time ``memory_bits`` and ``score``.

    ``method`` is e.g. ``none``, ``quantize``, ``prune``, ``prune+quantize``; ``level`` the bits or sparsity.
    This is the shape the compression experiments (Li et al. Figures 6–7, 12) are written in.
    """
    table = read_table(path)
    require_columns(table, COMPRESSION_COLUMNS, str(path))
    return table
