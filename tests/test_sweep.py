"""Sweeps: expansion into canonical shape names, running and skipping, launch lines, the collected table."""

from pathlib import Path

import pandas as pd
import pytest

from scaling import sweep

TINY = str(Path(__file__).resolve().parent / "tiny_config.py")
BASE = "tiny-nl1-dm32-ff64-nh2-kv16"


def test_shape_names_replace_the_knob_of_the_base():
    assert sweep.shape_name("tiny", {"nl": "2"}) == "tiny-nl2"
    assert sweep.shape_name("tiny-nl2", {"nl": "4"}) == "tiny"  # back to the preset's own depth
    assert sweep.shape_name("small", {"nl": "24"}) == "small-nl24"
    assert sweep.shape_name("base", {"dm": "2k"}) == "base-dm2k"
    assert sweep.shape_name("small-el16-dl4", {"nl": "8"}) == "small-nl8"
    assert sweep.shape_name(BASE, {"nl": "3", "ff": "128"}) == "tiny-nl3-dm32-ff128-nh2-kv16"
    with pytest.raises(sweep.SweepError, match="not a scaling operator"):
        sweep.shape_name("tiny", {"xx": "2"})
    with pytest.raises(sweep.SweepError, match="--base"):
        sweep.shape_name("gigantic", {"nl": "2"})


def test_budgets_and_overrides_are_checked():
    assert sweep.parse_budget("seconds:20") == ("seconds", 20.0)
    assert sweep.parse_budget("flops:3e15") == ("flops", 3e15)
    for bad in ("20", "minutes:3", "steps:-1", "steps:x"):
        with pytest.raises(sweep.SweepError, match="--budget"):
            sweep.parse_budget(bad)
    config = sweep.load_recipe(TINY)
    sweep.apply_overrides(config, [("log_every_steps", "5"), ("optimizer.learning_rate", "0.02"),
                                   ("checkpoint.async_save", "true"), ("micro_batch_size", "2")])
    assert (config.log_every_steps, config.optimizer.learning_rate, config.checkpoint.async_save,
            config.micro_batch_size) == (5, 0.02, True, 2)
    with pytest.raises(sweep.SweepError, match="no such field"):
        sweep.apply_overrides(config, [("optimizer.nope", "1")])
    with pytest.raises(sweep.SweepError, match="not an integer"):
        sweep.apply_overrides(config, [("batch_size", "2.5")])
    with pytest.raises(sweep.SweepError, match="the sweep sets it"):
        sweep.apply_overrides(config, [("model.name", "small")])
    with pytest.raises(sweep.SweepError, match="no file"):
        sweep.load_recipe("configs/nope.py")


def test_expansion_is_a_grid_of_validated_configs():
    spec = sweep.Sweep(recipe=TINY, base=BASE, axes=(("nl", ("1", "2")), ("ff", ("64", "128"))),
                       budget=("tokens", 1e4), overrides=(("log_every_steps", "2"),))
    points = sweep.expand(spec, sweep.load_recipe(TINY))
    assert [p.name for p in points] == [BASE, "tiny-nl1-dm32-ff128-nh2-kv16", "tiny-nl2-dm32-ff64-nh2-kv16",
                                        "tiny-nl2-dm32-ff128-nh2-kv16"]
    assert all(p.config.budget.unit == "tokens" and p.config.log_every_steps == 2 for p in points)
    with pytest.raises(sweep.SweepError, match="given twice"):
        sweep.expand(sweep.Sweep(TINY, BASE, (("nl", ("1",)), ("nl", ("2",))), ("steps", 3)), sweep.load_recipe(TINY))
    with pytest.raises(sweep.SweepError, match="nh3"):
        sweep.expand(sweep.Sweep(TINY, "bert-tiny", (("nh", ("3",)),), ("steps", 3)), sweep.load_recipe(TINY))


def test_sweep_runs_skips_finished_and_collects(tmp_path, capsys):
    argv = [f"--recipe={TINY}", f"--base={BASE}", "--op=nl", "--values=1,2", "--budget=steps:3",
            f"--out={tmp_path}", "--config.log_every_steps=1", "--config.checkpoint.save_interval_steps=100"]
    assert sweep.main(argv + ["--emit-launch"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python -m scaling.train")]
    assert len(lines) == 2 and f"--workdir={tmp_path / BASE}" in lines[0] and "--config.log_every_steps=1" in lines[0]
    assert "--config.budget.unit=steps --config.budget.amount=3" in lines[0]

    assert sweep.main(argv) == 0
    results = pd.read_csv(tmp_path / "results.csv")
    assert results["run"].tolist() == [BASE, "tiny-nl2-dm32-ff64-nh2-kv16"]
    assert results["num_encoder_layers"].tolist() == [1, 2] and results["steps"].tolist() == [3, 3]
    assert results["completed"].all() and (results["params"].diff().iloc[1] > 0)
    assert results["workdir"].tolist() == results["run"].tolist()

    capsys.readouterr()
    assert sweep.main(argv) == 0  # everything finished: nothing is retrained
    out = capsys.readouterr().out
    assert out.count("finished, skipped") == 2 and "training in" not in out
    assert sweep.main(argv + ["--emit-launch"]) == 0
    assert "python -m scaling.train" not in capsys.readouterr().out


def test_cli_errors(capsys):
    assert sweep.main(["--recipe=configs/demo.py", "--base=tiny", "--op=nl", "--values=1", "--budget=hours:1",
                       "--out=/tmp/x"]) == 2
    assert "--budget" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.main(["--recipe=configs/demo.py", "--base=tiny", "--op=nl", "--budget=steps:1", "--out=/tmp/x"])
    with pytest.raises(SystemExit):
        sweep.main(["--recipe=configs/demo.py", "--base=tiny", "--op=nl", "--values=1", "--budget=steps:1",
                    "--out=/tmp/x", "--lr=3"])
