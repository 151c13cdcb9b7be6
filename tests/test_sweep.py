"""Sweeps: expansion into canonical shape names, running and skipping, launch lines, the collected table."""

from pathlib import Path

import pandas as pd
import pytest

from scaling import sweep as sweep_command
from scaling.errors import UserError
from scaling.experiments import configfiles, sweep

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


def test_overrides_are_checked_and_the_sweep_fields_are_its_own():
    recipe = configfiles.load(TINY)
    for field in ("model.name", "budget", "budget.amount"):
        spec = sweep.Sweep(TINY, BASE, (("nl", ("1",)),), ("steps", 3), overrides=((field, "small"),))
        with pytest.raises(sweep.SweepError, match=f"--config.{field}: the sweep sets it"):
            sweep.expand(spec, recipe)
    spec = sweep.Sweep(TINY, BASE, (("nl", ("1",)),), ("steps", 3), overrides=(("optimizer.nope", "1"),))
    with pytest.raises(UserError, match="--config.optimizer.nope: no such field"):
        sweep.expand(spec, recipe)
    with pytest.raises(UserError, match="no file"):
        configfiles.load("configs/nope.py")


def test_expansion_is_a_grid_of_validated_configs():
    spec = sweep.Sweep(
        recipe=TINY,
        base=BASE,
        axes=(("nl", ("1", "2")), ("ff", ("64", "128"))),
        budget=("tokens", 1e4),
        overrides=(("log_every_steps", "2"),),
    )
    points = sweep.expand(spec, configfiles.load(TINY))
    assert [p.name for p in points] == [
        BASE,
        "tiny-nl1-dm32-ff128-nh2-kv16",
        "tiny-nl2-dm32-ff64-nh2-kv16",
        "tiny-nl2-dm32-ff128-nh2-kv16",
    ]
    assert all(p.config.budget.unit == "tokens" and p.config.log_every_steps == 2 for p in points)
    with pytest.raises(sweep.SweepError, match="given twice"):
        sweep.expand(sweep.Sweep(TINY, BASE, (("nl", ("1",)), ("nl", ("2",))), ("steps", 3)), configfiles.load(TINY))
    with pytest.raises(sweep.SweepError, match="nh3"):
        sweep.expand(sweep.Sweep(TINY, "bert-tiny", (("nh", ("3",)),), ("steps", 3)), configfiles.load(TINY))


def test_sweep_runs_skips_finished_and_collects(tmp_path, capsys):
    argv = [
        f"--config={TINY}",
        f"--base={BASE}",
        "--op=nl",
        "--values=1,2",
        "--config.budget=steps:3",
        f"--out={tmp_path}",
        "--config.log_every_steps=1",
        "--config.checkpoint.save_interval_steps=100",
    ]
    assert sweep_command.main(argv + ["--emit_launch"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python -m scaling.train")]
    assert len(lines) == 2 and f"--workdir={tmp_path / BASE}" in lines[0] and "--config.log_every_steps=1" in lines[0]
    assert "--config.budget=steps:3" in lines[0]

    assert sweep_command.main(argv) == 0
    results = pd.read_csv(tmp_path / "results.csv")
    assert results["run"].tolist() == [BASE, "tiny-nl2-dm32-ff64-nh2-kv16"]
    assert results["num_encoder_layers"].tolist() == [1, 2] and results["steps"].tolist() == [3, 3]
    assert results["completed"].all() and (results["params"].diff().iloc[1] > 0)
    assert results["workdir"].tolist() == results["run"].tolist()

    capsys.readouterr()
    assert sweep_command.main(argv) == 0  # everything finished: nothing is retrained
    out = capsys.readouterr().out
    assert out.count("finished, skipped") == 2 and "training in" not in out
    assert sweep_command.main(argv + ["--emit_launch"]) == 0
    assert "python -m scaling.train" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--op=nl", "--values=1", "--config.budget=minutes:1"], "--config.budget=minutes:1: unknown unit 'minutes'"),
        (["--op=nl", "--config.budget=steps:1"], "give one --values after each --op"),
        (["--op=nl", "--values=1", "--lr=3"], "unrecognized arguments: --lr=3"),
        (["--op=xx", "--values=1"], "--op=xx: not a scaling operator"),
        (["--op=nl", "--values=1", "--config.model.name=small"], "--config.model.name: the sweep sets it"),
    ],
)
def test_cli_errors(args, message, tmp_path, capsys):
    assert sweep_command.main([f"--config={TINY}", "--base=tiny", f"--out={tmp_path}", *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not list(tmp_path.iterdir())
