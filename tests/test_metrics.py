"""JSON-lines records, TensorBoard event files, MFU arithmetic, the progress line and summary.json."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from scaling.training import metrics


def test_peak_flops_table_matches_device_kinds():
    assert metrics.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert metrics.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert metrics.peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert metrics.peak_flops("TPU v4") == 275e12
    assert metrics.peak_flops("TPU v5 lite") == 197e12
    assert metrics.peak_flops("TPU v5") == 459e12
    assert metrics.peak_flops("cpu") is None


def test_rates_and_mfu_arithmetic():
    # 2 s for 4096 tokens and 3.956e15 FLOPs on 2 H100s: 1.978e15 FLOP/s of 1.978e15 peak -> MFU 1.0.
    out = metrics.rates(4096, 3.956e15, 2.0, peak_per_device=989e12, num_devices=2)
    assert out == pytest.approx({"tokens_per_second": 2048.0, "mfu": 1.0})
    assert metrics.rates(100, 1e12, 1.0, peak_per_device=None, num_devices=1) == {"tokens_per_second": 100.0}
    assert metrics.rates(100, 1e12, 0.0, peak_per_device=None, num_devices=1) == {}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_and_tensorboard_files(tmp_path):
    writer = metrics.create_writer(tmp_path, hparams=metrics.flatten({"optimizer": {"name": "adamw"}, "seed": 0}))
    writer.write_scalars(1, {"loss": np.float32(2.5), "accuracy": jax.numpy.asarray(0.25), "tokens": 512})
    # Line by line: a crash (or `tail -f`) right after a log sees the record, before any flush or close.
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 2.5, "accuracy": 0.25, "tokens": 512}]
    writer.write_scalars(2, {"loss": float("nan"), "eval_loss": 2.0})
    writer.close()
    assert read_jsonl(tmp_path / "metrics.jsonl") == [
        {"step": 1, "loss": 2.5, "accuracy": 0.25, "tokens": 512},
        {"step": 2, "loss": None, "eval_loss": 2.0},
    ]
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0

    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"train/loss", "train/accuracy", "eval/loss"} <= tags and "loss" not in tags  # grouped by stage
    loss = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors("train/loss")]
    assert loss[0] == (1, 2.5)
    assert "_hparams_/session_start_info" in tags  # the config, as TensorBoard hparams


def test_flatten_config_for_hparams():
    assert metrics.flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2], "f": "x"}) == {
        "a.b": 1,
        "a.c.d": "None",
        "e": "[1, 2]",
        "f": "x",
    }


def test_resume_drops_records_past_the_checkpoint(tmp_path):
    writer = metrics.JsonlWriter(tmp_path / "metrics.jsonl")
    for step in (10, 20, 30):
        writer.write_scalars(step, {"loss": float(step)})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "lo')  # a line cut short by kill -9
    writer = metrics.JsonlWriter(tmp_path / "metrics.jsonl", resume_step=20)
    writer.write_scalars(25, {"loss": 0.0})
    writer.close()
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [10, 20, 25]


def test_progress_line_has_eta():
    line = metrics.progress_line(100, 0.25, 60.0, {"loss": 3.14159, "learning_rate": 1e-3, "mfu": None})
    assert line == "step 100 |  25.0% | loss 3.1416 | lr 1.00e-03 | elapsed 0:01:00 | eta 0:03:00"


def test_summary_names_hardware_software_and_config(tmp_path):
    config = ml_collections.ConfigDict({"model": {"name": "small_nl24"}, "seed": 0})
    path = metrics.write_summary(
        tmp_path, config=config, final_metrics={"loss": np.float32(1.5)}, extra={"params": 123}
    )
    summary = json.loads(path.read_text())
    assert summary["hardware"]["device_count"] == jax.device_count()
    assert summary["hardware"]["platform"] == "cpu" and summary["hardware"]["peak_flops_per_device"] is None
    assert summary["software"]["jax"] == jax.__version__ and "python" in summary["software"]
    assert summary["config"] == {"model": {"name": "small_nl24"}, "seed": 0}
    assert summary["final_metrics"] == {"loss": 1.5} and summary["params"] == 123
