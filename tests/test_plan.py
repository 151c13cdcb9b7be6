"""Planning a run: a law from known constants gives back its optimum, the shipped sweep's held-out run is
predicted (and the prediction printed beside the measurement), time budgets say where steps/s came from, the
budget and the candidates say how far they extrapolate, and the winner's config file loads and trains."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling import plan as plan_command
from scaling.analysis import fits, planning, runs
from scaling.errors import UserError
from scaling.experiments import configfiles, plan, profile

REPO = Path(__file__).resolve().parents[1]
DEMO = "configs/demo.py"
SWEEP = REPO / "notebooks" / "results" / "demo_nl_sweep"
PROFILE = REPO / "notebooks" / "results" / "scale_efficiently" / "profile.csv"  # configs/demo.py's batch, on a CPU
TRUE = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}  # Chinchilla-like known constants
BUDGET = ("flops", 1e18)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """25 (N, D) points of the known law with 0.2% noise, as a results CSV, and the law fitted to them."""
    rng = np.random.default_rng(0)
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 6e8, 5), np.geomspace(2e8, 2e10, 5)))
    loss = fits.chinchilla(TRUE, n, d) * np.exp(rng.normal(0.0, 0.002, n.size))
    path = tmp_path_factory.mktemp("law") / "points.csv"
    pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d, "loss": loss}).to_csv(path, index=False)
    return path, planning.fit(planning.points([path]), samples=10, source=str(path))


@pytest.fixture(scope="module")
def small_family():
    """small with 2, 6, 12 and 32 layers under Scale Efficiently's recipe (no data needed to count costs)."""
    recipe = profile.default_recipe("small")
    return plan.candidates(recipe, BUDGET, base="small", axes=[("nl", ["2", "12", "32"])])


def test_a_law_from_known_constants_recovers_the_known_optimum(synthetic, small_family):
    _, law = synthetic
    for name in ("alpha", "beta", "E"):
        assert law.constants[name] == pytest.approx(TRUE[name], rel=0.1)
    truth = fits.compute_optimal(TRUE, BUDGET[1])
    found = law.compute_optimal(BUDGET[1])
    assert found["N_opt"] == pytest.approx(truth["N_opt"], rel=0.05)
    assert found["D_opt"] == pytest.approx(truth["D_opt"], rel=0.05)
    assert found["N_opt_low"] <= found["N_opt"] <= found["N_opt_high"]

    result = plan.plan(small_family, BUDGET, law)
    table = result.table
    true_loss = fits.chinchilla(TRUE, table["params"], table["tokens"])
    assert table["shape"].iloc[0] == table["shape"].iloc[int(np.argmin(true_loss))] == "small-nl12"
    assert table["predicted_loss"].to_numpy() == pytest.approx(true_loss, rel=0.01)
    assert (table["predicted_loss_low"] <= table["predicted_loss"]).all()
    assert (table["predicted_loss"] <= table["predicted_loss_high"]).all()
    # What the budget buys is the trainer's count: ⌈budget / FLOPs per step⌉ steps of batch × (inputs + targets).
    for c in small_family:
        row = table[table["shape"] == c.name].iloc[0]
        assert row.steps == int(np.ceil(BUDGET[1] / c.flops_per_step))
        assert row.tokens == row.steps * 128 * (512 + 114) and row.flops >= BUDGET[1]


def test_the_shipped_sweeps_held_out_run_is_predicted_and_reported():
    """Fit on tiny-nl1 and tiny-nl2's curves, predict tiny-nl3's final loss at the tokens it read: reported, not
    tuned (the figures are printed; the README quotes them)."""
    measured = runs.load_runs(SWEEP / "results.csv").set_index("run")
    points = planning.points([SWEEP])
    law = planning.fit(points[points["run"] != "tiny-nl3"], samples=0, source="demo_nl_sweep without tiny-nl3")
    recipe = configfiles.load(str(REPO / DEMO))
    held_out = measured.loc["tiny-nl3"]
    (c,) = plan.candidates(recipe, ("tokens", held_out.tokens), names=["tiny-nl3"])
    result = plan.plan([c], ("tokens", float(held_out.tokens)), law)
    row = result.table.iloc[0]
    # The plan counts what the trainer counted for the same shape and recipe.
    assert (c.params, c.flops_per_step) == (held_out.params, held_out.flops_per_step)
    assert (row.steps, row.tokens, row.flops) == (held_out.steps, held_out.tokens, held_out.flops)
    print(
        f"\nheld-out tiny-nl3 ({law.describe()}): predicted training loss {row.predicted_loss:.3f} at "
        f"{row.tokens:,.0f} tokens; measured {held_out.loss:.3f}"
    )
    assert np.isfinite(row.predicted_loss)
    assert row.params_beyond_fit_log10 > 0  # tiny-nl3 is larger than anything the law saw
    assert any("parameters lie outside" in note for note in result.notes)


def test_a_time_budget_says_which_steps_per_second_are_measured_and_which_estimated(capsys):
    argv = [f"--config={REPO / DEMO}", "--budget=seconds:600", "--base=tiny-nl2", "--op=nl", "--values=3,4"]
    assert plan_command.main([*argv, f"--profile={PROFILE}", "--json"]) == 0
    rows = {r["shape"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    profiled = runs.read_table(PROFILE).set_index("shape")
    assert rows["tiny-nl2"]["throughput"] == rows["tiny"]["throughput"] == "measured"
    assert rows["tiny-nl2"]["steps_per_second"] == pytest.approx(profiled.loc["tiny-nl2", "steps_per_second"])
    assert rows["tiny-nl2"]["steps"] == int(np.ceil(600 * profiled.loc["tiny-nl2", "steps_per_second"]))
    # tiny-nl3 was not profiled: estimated at the best FLOP/s measured on this device, and said so
    assert rows["tiny-nl3"]["throughput"] == "estimated"
    peak = profiled["achieved_flops_per_second"].max()
    per_step = rows["tiny-nl3"]["flops_per_token"] * 16 * (128 + 29)
    assert rows["tiny-nl3"]["steps_per_second"] == pytest.approx(peak / per_step)

    assert plan_command.main([*argv, f"--profile={PROFILE}", "--unmeasured=refuse"]) == 0
    out = capsys.readouterr().out
    assert "refused (no measured steps/s under a time budget): tiny-nl3" in out
    assert "(measured)" in out and "estimated" not in out

    assert plan_command.main(argv) == 2  # no throughput at all
    assert "--profile=CSV" in capsys.readouterr().err


def test_extrapolation_is_stated_with_its_size():
    law = planning.Law(
        constants=TRUE, source="test", params_range=(1e6, 1e7), tokens_range=(1e8, 1e9), compute_range=(1e15, 1e16)
    )
    recipe = configfiles.load(str(REPO / DEMO))
    cands = plan.candidates(recipe, ("flops", 2e18), names=["tiny-nl2"])
    result = plan.plan(cands, ("flops", 2e18), law)
    assert "the budget is 10^2.3× beyond the largest fitted compute (1e+16 FLOPs)" in result.notes[0]
    assert result.table["tokens_beyond_fit_log10"].iloc[0] > 0
    text = plan.text(result, recipe=DEMO)
    assert "compute-optimal point of the law at the budget" in text and "D 10^2.2×↑" in text
    assert "closest candidate: tiny-nl2 (5.77e+06 parameters, 10^1.3× fewer)" in text
    assert text.endswith("best: tiny-nl2")
    assert planning.factor_text(np.log10(4.1)) == "4.1×" and planning.factor_text(-2.34) == "10^2.3×"


def test_a_degenerate_fit_is_refused_with_the_reason():
    with pytest.raises(UserError, match=r"parameter term is not pinned down \(alpha = 79.*span only 2×"):
        planning.check_identified(
            {"E": 5.0, "A": float("inf"), "B": 7e4, "alpha": 79.0, "beta": 1.0},
            np.array([5e6, 1e7]),
            np.array([1e4, 3e5]),
        )
    with pytest.raises(UserError, match="at least 5"):
        planning.fit(pd.DataFrame({"run": ["a"], "params": [1.0], "tokens": [1.0], "loss": [1.0]}))


def test_the_command_writes_json_a_plot_and_the_winners_config(tmp_path, synthetic, capsys):
    law_csv, _ = synthetic
    png, config = tmp_path / "plan.png", tmp_path / "planned.py"
    argv = ["--budget=flops:1e18", "--base=small", "--op=nl", "--values=2,12,32", f"--law={law_csv}", "--bootstrap=0"]
    assert plan_command.main([*argv, "--json", f"--plot={png}", f"--emit_config={config}"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and rows[0]["shape"] == "small-nl12"
    for key in ("shape", "params", "tokens", "steps", "flops_per_token", "predicted_loss", "predicted_loss_low"):
        assert key in rows[0]
    assert rows[0]["predicted_loss_high"] is None  # --bootstrap=0: no interval, said as null
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = configfiles.load(str(config))
    assert loaded.model.name == "small-nl12" and (loaded.budget.unit, loaded.budget.amount) == BUDGET
    expected = profile.default_recipe("small-nl12").to_dict() | {"budget": {"unit": "flops", "amount": 1e18}}
    assert loaded.to_dict() == expected


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--budget=flops", "--base=small"], "--budget=flops: write UNIT:AMOUNT"),
        (["--budget=flops:1e18"], "give --base"),
        (["--budget=flops:1e18", "--base=small", "--op=nl"], "one --values after each --op"),
        (["--budget=flops:1e18", "--base=small", "--config.budget=steps:3"], "the plan sets it"),
        (["--budget=flops:1e18", "--shapes=gigantic"], "gigantic"),
        (["--budget=flops:1e18", "--base=small", f"--law={REPO / 'nope'}"], "no such"),
        (["--budget=hours:1", "--base=small", f"--profile={REPO / 'nope.csv'}"], "or add --measure"),
    ],
)
def test_bad_command_lines_are_one_line_errors(argv, says, capsys):
    assert plan_command.main(argv) == 2
    assert says in capsys.readouterr().err


@pytest.mark.slow
def test_the_emitted_config_trains(tmp_path):
    """The winner's file runs as written with python -m scaling.train (one step)."""
    config = tmp_path / "planned.py"
    argv = [f"--config={REPO / DEMO}", "--budget=tokens:1e5", "--shapes=tiny-nl1,tiny-nl2", f"--emit_config={config}"]
    assert plan_command.main(argv) == 0
    command = [sys.executable, "-m", "scaling.train", f"--config={config}", f"--workdir={tmp_path / 'run'}"]
    done = subprocess.run([*command, "--config.budget=steps:1"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["shape"]["name"] == "tiny-nl2"


def test_measure_profiles_the_shapes_a_time_budget_lacks(tmp_path, capsys):
    out = tmp_path / "profile.csv"
    tiny = str(REPO / "tests" / "tiny_config.py")
    argv = [f"--config={tiny}", "--budget=seconds:60", "--shapes=tiny-nl1-dm32-ff64-nh2-kv16", "--measure"]
    assert plan_command.main([*argv, f"--profile={out}", "--json"]) == 0
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert row["throughput"] == "measured now" and row["steps_per_second"] > 0
    profiled = runs.read_table(out)  # the measurement is kept for the next plan
    assert list(profiled["shape"]) == ["tiny-nl1-dm32-ff64-nh2-kv16"]
    assert row["steps_per_second"] == pytest.approx(profiled["steps_per_second"].iloc[0])
