"""Metric writers (TensorBoard + JSON lines), throughput and MFU, the console progress line, summary.json.

Only process 0 writes files. ``WORKDIR/metrics.jsonl`` holds one JSON object per ``write_scalars`` call
(the trainer makes one call per logged step, with all of that step's values). Keys:

=====================  =====================================================================================
``step``               optimizer updates completed (int)
``loss``               mean token cross-entropy over the logged interval
``accuracy``           token accuracy over the logged interval
``learning_rate``      the rate the last update used
``progress``           fraction of the budget spent, in [0, 1] (see :mod:`scaling.budget`)
``tokens``             tokens consumed since the start of the run (cumulative, across resumes)
``flops``              training FLOPs since the start (cumulative; the analytic count per step)
``seconds``            host wall-clock seconds of training since the start, excluding compilation
``compile_seconds``    seconds spent compiling, reported separately (cumulative)
``tokens_per_second``  over the logged interval
``mfu``                model FLOPs utilisation over the interval; omitted where the device peak is unknown
``eval_loss``          (evaluation records) mean token cross-entropy on the evaluation split
``eval_accuracy``      (evaluation records) token accuracy on the evaluation split
=====================  =====================================================================================

Values are numbers; non-finite ones (a diverged loss) are written as ``null``. The same scalars go to
TensorBoard event files under ``WORKDIR/tensorboard``. ``WORKDIR/summary.json`` (:func:`write_summary`)
records hardware, software versions, config and final metrics, so each result row names where it came from.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from clu import metric_writers

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
TENSORBOARD_DIR = "tensorboard"

# Dense bf16 peak FLOP/s per device (per chip for TPUs), matched as a lowercase substring of
# ``jax.Device.device_kind``, first match wins (so more specific names come first). Vendor datasheets.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("h200", 989e12),
    ("h100 pcie", 756e12),
    ("h100", 989e12),
    ("a100", 312e12),
    ("a10g", 70e12),
    ("l4", 121e12),
    ("v100", 125e12),
    ("tpu v3", 123e12),
    ("tpu v4", 275e12),
    ("tpu v5 lite", 197e12),
    ("tpu v5e", 197e12),
    ("tpu v5p", 459e12),
    ("tpu v5", 459e12),  # jax names v5p chips "TPU v5".
    ("tpu v6 lite", 918e12),
    ("tpu v6e", 918e12),
)

SOFTWARE = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "clu", "ml-collections")


def peak_flops(device_kind: str) -> float | None:
    """Peak dense bf16 FLOP/s of one device of this kind, or None when unknown (CPUs)."""
    kind = device_kind.lower()
    return next((flops for name, flops in PEAK_FLOPS if name in kind), None)


def rates(
    tokens: float, flops: float, seconds: float, *, peak_per_device: float | None, num_devices: int
) -> dict[str, float]:
    """``tokens_per_second`` and (when the peak is known) ``mfu`` over an interval of ``seconds``.

    MFU = achieved model FLOP/s / (peak FLOP/s per device x devices), with the analytic model FLOPs.
    """
    if seconds <= 0:
        return {}
    out = {"tokens_per_second": tokens / seconds}
    if peak_per_device:
        out["mfu"] = flops / seconds / (peak_per_device * num_devices)
    return out


def _clean(value: Any) -> float | int | None:
    value = np.asarray(value).item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _step_of(line: str) -> int | None:
    """The step of a JSON-lines record, or None for a blank or truncated line."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class JsonlWriter(metric_writers.MetricWriter):
    """A clu MetricWriter appending one JSON object per ``write_scalars`` call (scalars only)."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        """Append to ``path``; with ``resume_step``, first drop records after it (written past the checkpoint
        a run resumed from) and any line cut short by a crash, so the file describes the run that continues."""
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self._path.exists():
            kept = [
                line
                for line in self._path.read_text().splitlines()
                if _step_of(line) is not None and _step_of(line) <= resume_step
            ]
            tmp = self._path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self._path)
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115  open for the writer's lifetime

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Writes the record and flushes it at once: `tail -f`, a notebook or a crash sees every line written."""
        record = {"step": int(step), **{k: _clean(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    # JSON lines carry scalars only; images, audio and the rest go to TensorBoard.
    def write_summaries(self, step, values, metadata=None) -> None:
        pass

    def write_images(self, step, images) -> None:
        pass

    def write_videos(self, step, videos) -> None:
        pass

    def write_audios(self, step, audios, *, sample_rate) -> None:
        pass

    def write_texts(self, step, texts) -> None:
        pass

    def write_histograms(self, step, arrays, num_buckets=None) -> None:
        pass

    def write_hparams(self, hparams) -> None:
        pass

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _TensorBoard(metric_writers.SummaryWriter):
    """TensorBoard with tags grouped as `train/…` and `eval/…` (`eval_loss` → `eval/loss`)."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        tagged = {(f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}"): v for k, v in scalars.items()}
        super().write_scalars(step, tagged)


def create_writer(
    workdir: str | os.PathLike, *, resume_step: int | None = None, hparams: Mapping[str, Any] | None = None
) -> metric_writers.MetricWriter:
    """TensorBoard + ``metrics.jsonl`` writer on process 0, a no-op writer elsewhere.

    ``metrics.jsonl`` is written synchronously, a line per record, so nothing logged before a crash is lost;
    TensorBoard in the background. ``hparams`` (the flattened config) go to TensorBoard's hparams plugin.
    ``resume_step``: see :class:`JsonlWriter`. Call ``close()`` at the end.
    """
    if jax.process_index() != 0:
        return metric_writers.MultiWriter([])
    workdir = Path(workdir)
    tensorboard = _TensorBoard(os.fspath(workdir / TENSORBOARD_DIR))
    if hparams:
        tensorboard.write_hparams(dict(hparams))
    return metric_writers.MultiWriter(
        [metric_writers.AsyncWriter(tensorboard), JsonlWriter(workdir / METRICS_FILE, resume_step=resume_step)]
    )


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"optimizer": {"name": "adamw"}}` → `{"optimizer.name": "adamw"}`; values TensorBoard cannot hold as
    hparams (None, lists) become strings."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def progress_line(step: int, progress: float, seconds: float, metrics: Mapping[str, float]) -> str:
    """One console line: step, budget %, the usual metrics that are present, elapsed and ETA."""
    parts = [f"step {step}", f"{100 * progress:5.1f}%"]
    formats = {
        "loss": "loss {:.4f}",
        "accuracy": "acc {:.3f}",
        "learning_rate": "lr {:.2e}",
        "tokens_per_second": "{:,.0f} tok/s",
        "mfu": "mfu {:.1%}",
        "eval_loss": "eval_loss {:.4f}",
    }
    parts += [fmt.format(metrics[key]) for key, fmt in formats.items() if metrics.get(key) is not None]
    parts.append(f"elapsed {_duration(seconds)}")
    if 0 < progress < 1:
        parts.append(f"eta {_duration(seconds * (1 - progress) / progress)}")
    return " | ".join(parts)


def hardware_info() -> dict[str, Any]:
    """The devices this run used (every figure in a summary is tied to them)."""
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "peak_flops_per_device": peak_flops(device.device_kind),
        "host": platform.node(),
    }


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in SOFTWARE:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_summary(
    workdir: str | os.PathLike, *, config: Any, final_metrics: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> Path | None:
    """Write ``WORKDIR/summary.json`` atomically (process 0 only; returns its path there, else None).

    ``config`` may be an ``ml_collections.ConfigDict`` or a dict; values JSON cannot hold are written with
    ``str``. ``extra`` adds top-level entries (e.g. parameter counts, budget).
    """
    if jax.process_index() != 0:
        return None
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    summary = {
        "written_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "hardware": hardware_info(),
        "software": software_versions(),
        "config": config,
        "final_metrics": {k: _clean(v) for k, v in final_metrics.items()},
        **(extra or {}),
    }
    path = Path(workdir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path
