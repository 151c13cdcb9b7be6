"""The loader: workdirs, sweep directories and results CSVs into tidy tables; clear errors for bad input."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scaling.analysis import runs

REPO = Path(__file__).resolve().parents[1]


def write_run(workdir: Path, name: str = "tiny-nl2", layers: int = 2, steps: int = 20, completed: bool = True) -> Path:
    """A workdir as the trainer writes it (the fields of scaling.training.metrics and trainer.train's summary)."""
    workdir.mkdir(parents=True)
    records = [
        {
            "step": s,
            "loss": 6.0 - 0.1 * s,
            "accuracy": 0.01 * s,
            "tokens": 100 * s,
            "flops": 1e9 * s,
            "seconds": 0.5 * s,
            "compile_seconds": 3.0,
            "tokens_per_second": 200.0,
        }
        for s in range(5, steps + 1, 5)
    ]
    records[-1].update(eval_loss=4.5, eval_accuracy=0.2)
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (workdir / "config.json").write_text(json.dumps({"model": {"name": name}, "batch_size": 4}))
    summary = {
        "hardware": {"platform": "cpu", "device_kind": "cpu", "device_count": 1},
        "software": {"python": "3.11", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8"},
        "config": {"model": {"name": name}, "batch_size": 4, "data": {"task": "sotu_span_corruption"}},
        "final_metrics": {**records[-1], "completed": completed},
        "shape": {
            "name": name,
            "preset": "tiny",
            "family": "t5",
            "num_encoder_layers": layers,
            "num_decoder_layers": layers,
            "d_model": 256,
            "d_ff": 1024,
            "num_heads": 4,
            "d_kv": 64,
            "vocab_size": 8192,
        },
        "params": 1_000_000 * layers,
        "params_non_embedding": 500_000 * layers,
        "flops_per_step_train": 1e9,
        "sequence": {"inputs": 20, "targets": 5},
        "budget": {
            "unit": "seconds",
            "amount": 0.5 * steps,
            "spent": {"step": steps, "tokens": 100 * steps, "flops": 1e9 * steps, "seconds": 0.5 * steps},
        },
    }
    (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def test_one_row_per_run_with_costs_speed_and_quality(tmp_path):
    write_run(tmp_path / "sweep" / "tiny-nl1", "tiny-nl1", layers=1)
    write_run(tmp_path / "sweep" / "tiny-nl2", "tiny-nl2", layers=2, steps=10)
    table = runs.load_runs(tmp_path / "sweep")
    assert table["run"].tolist() == ["tiny-nl1", "tiny-nl2"]
    row = table.iloc[1]
    assert (row.num_encoder_layers, row.params, row.steps) == (2, 2_000_000, 10)
    assert row.steps_per_second == pytest.approx(2.0) and row.seconds_per_step == pytest.approx(0.5)
    assert row.tokens_per_second == pytest.approx(200.0)
    assert row.perplexity == pytest.approx(math.exp(4.5)) and row.memory_bits == 32 * 2_000_000
    assert (row.device_kind, row.jax_version, row.completed) == ("cpu", "0.10.2", True)
    # One workdir alone, and a workdir mixed with a CSV: the columns are the union.
    assert len(runs.load_runs(tmp_path / "sweep" / "tiny-nl1")) == 1
    csv = tmp_path / "scores.csv"
    csv.write_text("# downstream scores (hand-written for this test)\nrun,glue\ntiny-nl1,61.0\n")
    mixed = runs.load_runs(tmp_path / "sweep" / "tiny-nl1", csv)
    assert len(mixed) == 2 and mixed["glue"].iloc[1] == 61.0 and pd.isna(mixed["glue"].iloc[0])


def test_a_collected_csv_reads_back_the_same(tmp_path):
    write_run(tmp_path / "sweep" / "tiny-nl1", "tiny-nl1", layers=1)
    table = runs.load_runs(tmp_path / "sweep")
    table.to_csv(tmp_path / "results.csv", index=False)
    back = runs.load_runs(tmp_path / "results.csv")
    pd.testing.assert_frame_equal(back[["run", "params", "eval_loss"]], table[["run", "params", "eval_loss"]])


def test_curves_are_long_tables_per_step(tmp_path):
    write_run(tmp_path / "sweep" / "tiny-nl1", "tiny-nl1", layers=1)
    write_run(tmp_path / "sweep" / "tiny-nl2", "tiny-nl2", layers=2, steps=10)
    curves = runs.load_curves(tmp_path / "sweep")
    assert curves.groupby("run").size().to_dict() == {"tiny-nl1": 4, "tiny-nl2": 2}
    assert curves["shape"].iloc[0] == "tiny-nl1" and curves["steps_per_second"].iloc[0] == pytest.approx(2.0)
    assert curves["eval_loss"].notna().sum() == 2


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(runs.RunError, match="no such workdir"):
        runs.load_runs(tmp_path / "nowhere")
    with pytest.raises(runs.RunError, match="at least one"):
        runs.load_runs()
    (tmp_path / "empty").mkdir()
    with pytest.raises(runs.RunError, match="neither a run workdir"):
        runs.load_runs(tmp_path / "empty")
    with pytest.raises(runs.RunError, match="summary.json: missing"):
        runs.read_summary(tmp_path / "empty")
    bad = write_run(tmp_path / "bad")
    with (bad / "metrics.jsonl").open("a") as f:
        f.write('{"step": 25, "loss": "oops"}\n')
    with pytest.raises(runs.RunError, match=r"metrics.jsonl:5: malformed metrics line .*non-numeric"):
        runs.read_metrics(bad)
    (bad / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    with pytest.raises(runs.RunError, match=r"metrics.jsonl:2: malformed"):
        runs.read_metrics(bad)
    (tmp_path / "empty.csv").write_text("# nothing yet\nmodel,method,level,memory_bits,score\n")
    with pytest.raises(runs.RunError, match="no rows"):
        runs.load_runs(tmp_path / "empty.csv")


def test_compression_results_plug_in_by_columns(tmp_path):
    good = tmp_path / "compression.csv"
    good.write_text(
        "model,method,level,memory_bits,score\nl12-h768,quantize,4,1e8,80.1\nl24-h1536,prune,0.6,3e8,82.0\n"
    )
    assert runs.load_compression(good)["method"].tolist() == ["quantize", "prune"]
    bad = tmp_path / "bad.csv"
    bad.write_text("model,score\nx,1\n")
    with pytest.raises(runs.RunError, match=r"missing column\(s\) \['method', 'level', 'memory_bits'\]"):
        runs.load_compression(bad)


def test_analysis_never_imports_jax_or_tensorflow():
    code = (
        "import sys, scaling.analysis, scaling.analysis.plots; "
        "bad = [m for m in ('jax', 'jaxlib', 'flax', 'tensorflow', 'scaling.training.trainer') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
