"""The throughput profiler: synthetic batches shaped like the real ones, a timed step, rows the analysis reads."""

import re
from pathlib import Path

import jax
import pytest

from scaling import profile as profile_command
from scaling.analysis import runs
from scaling.experiments import profile
from scaling.training import trainer

TINY = str(Path(__file__).resolve().parent / "tiny_config.py")


def _layout(batch):
    return {k: (v.shape, v.dtype) for k, v in batch.items()}


@pytest.mark.parametrize(
    "task,shape", [("sotu_span_corruption", "tiny-nl1-dm32-ff64-nh2-kv16"), ("sotu_mlm", "bert-tiny")]
)
def test_synthetic_batches_match_the_pipeline(task, shape):
    from test_trainer import tiny_config

    config = tiny_config(**{"data.task": task, "model.name": shape})
    run = trainer.build_run(config)
    real = next(trainer.batches(run, "train", 0))
    fake = profile.synthetic_batch(run)
    assert _layout(fake) == _layout(real)
    if task == "sotu_mlm":  # the sparse-prediction positions carry the real count of masked tokens
        assert float(fake["mlm_weights"].sum()) == float(fake["encoder_loss_weights"].sum())


def test_cli_appends_a_row_naming_device_and_versions(tmp_path, capsys):
    out = tmp_path / "profile.csv"
    argv = ["tiny-nl1-dm32-ff64-nh2-kv16", f"--config={TINY}", "--steps=2", "--warmup=1", "--peak_sizes=128,256"]
    argv.append(f"--out={out}")
    assert profile_command.main(argv + ["--config.batch_size=8"]) == 0
    assert "steps/s" in capsys.readouterr().out
    table = runs.read_table(out)
    row = table.iloc[0]
    assert (row["shape"], row.batch_size, row.steps_timed) == ("tiny-nl1-dm32-ff64-nh2-kv16", 8, 2)
    assert row.steps_per_second == pytest.approx(1 / row.seconds_per_step)
    assert row.tokens_per_second == pytest.approx(8 * (32 + 8) * row.steps_per_second)
    assert row.achieved_flops_per_second == pytest.approx(row.flops_per_step * row.steps_per_second)
    assert row.compiled_memory_bytes > 0 and row.device_kind == jax.devices()[0].device_kind
    assert row.jax == jax.__version__ and row.recipe == TINY
    # a CPU has no published peak: MFU is against the best matmul measured here, by the library it names
    assert row.peak_source.startswith("measured: ") and "float32" in row.peak_source
    assert re.search(r" (128|256)² ", row.peak_source)  # the sizes asked for
    assert row.mfu == pytest.approx(row.achieved_flops_per_second / row.peak_flops_per_second)
    assert profile_command.main(["not-a-shape", f"--out={out}"]) == 2
    assert capsys.readouterr().err.startswith("error: 'not-a-shape'")
    assert profile_command.main(["tiny", "--peak_sizes=1024,x", f"--out={out}"]) == 2
    assert "--peak_sizes: '1024,x': use positive comma-separated sizes" in capsys.readouterr().err


def test_appending_to_a_foreign_csv_is_refused(tmp_path):
    foreign = tmp_path / "other.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="use another file"):
        profile.append_rows(foreign, [])
