"""Studies: every study file expands into valid runs, each study's smoke form runs end to end through every
stage and resumes without redoing work, the analysis computes its findings from the tables, and the results
the repository ships are complete and are what the reports and README say."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from test_configs import load

from scaling.analysis import studies
from scaling.analysis.runs import RunError
from scaling.errors import UserError
from scaling.experiments import study

ROOT = Path(__file__).resolve().parents[1]
STUDY_FILES = sorted((ROOT / "configs").glob("study_*.py"))
SHIPPED = {
    "train_large_then_compress": "study_train_large.py",
    "scale_efficiently": "study_scale_efficiently.py",
    "cramming": "study_cramming.py",
}


def quiet(*_):
    pass


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", [None, "smoke"])
def test_every_study_file_expands_into_valid_runs(path, variant):
    config = load(path, variant)
    configs = study.pretrain_configs(config)
    assert list(configs) == study.run_names(config)
    budgets = {(c.budget.unit, c.budget.amount) for c in configs.values()}
    assert len(budgets) == 1, "every run of a study gets the same budget"
    assert config.kind in studies.REPORTS


def test_train_large_grid_spans_depth_width_and_8x_params():
    from scaling import accounting
    from scaling.training import trainer

    configs = study.pretrain_configs(load(ROOT / "configs" / "study_train_large.py"))
    params = {n: accounting.param_counts(trainer.resolve_shape(c)).total for n, c in configs.items()}
    assert max(params.values()) >= 8 * min(params.values())
    shapes = [trainer.resolve_shape(c) for c in configs.values()]
    assert len({s.num_encoder_layers for s in shapes}) >= 2 and len({s.d_model for s in shapes}) >= 2
    assert {c.budget.unit for c in configs.values()} == {"seconds"}


def test_cramming_variants_change_what_their_names_say():
    from scaling.training import trainer

    configs = study.pretrain_configs(load(ROOT / "configs" / "study_cramming.py"))
    shape = {n: trainer.resolve_shape(c) for n, c in configs.items()}
    crammed, original = shape["crammed"], shape["original_bert"]
    assert (crammed.norm_position, crammed.linear_bias, crammed.sparse_prediction) == ("pre", False, True)
    assert (original.norm_position, original.linear_bias, original.sparse_prediction) == ("post", True, False)
    assert (shape["minimal_arch"].norm_position, shape["minimal_arch"].norm_eps) == ("pre", 1e-6)
    assert shape["minimal_arch"].linear_bias and shape["minimal_arch"].sparse_prediction
    assert configs["original_data"].data.task == "sotu_mlm" != configs["crammed"].data.task
    assert configs["original_train"].optimizer.learning_rate == 1e-4 != configs["crammed"].optimizer.learning_rate
    assert {configs[n].optimizer.schedule for n in ("crammed", "schedule_constant", "schedule_cosine")} == {
        "triangle",
        "constant",
        "cosine",
    }
    for name in ("crammed", "original_bert", "minimal_arch"):  # same knobs: only switches differ
        assert (shape[name].num_encoder_layers, shape[name].d_model, shape[name].d_ff) == (4, 256, 1024)


def test_bad_study_files_name_the_field():
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.runs.crammed = {"optimizer": {"learning_rat": 1.0}}
    with pytest.raises(
        UserError,
        match=r"config.runs.crammed.optimizer.learning_rat: no such field; did you mean "
        r"config.runs.crammed.optimizer.learning_rate\?",
    ):
        study.pretrain_configs(config)
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.order = "crammed"
    with pytest.raises(study.StudyError, match="must list every run"):
        study.pretrain_configs(config)
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.runs.crammed = {"model": {"switches": "norm_position=middle"}}
    with pytest.raises(study.StudyError, match="run crammed: config.model.switches"):
        study.pretrain_configs(config)
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.budget = "minutes:3"
    with pytest.raises(study.StudyError, match="config.budget=minutes:3: unknown unit"):
        study.pretrain_configs(config)
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.budget = "hours:0.01"  # the same spelling as --config.budget: hours are seconds
    assert {(c.budget.unit, c.budget.amount) for c in study.pretrain_configs(config).values()} == {("seconds", 36)}


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.stem)
def test_smoke_study_runs_every_stage_and_resumes(path, tmp_path):
    config = load(path, "smoke")
    results = study.run_study(config, tmp_path / "out", tmp_path / "results", command="smoke", print_fn=quiet)
    record = json.loads((results / "study.json").read_text())
    assert record["command"] == "smoke" and record["hardware"]["cpu_count"] >= 1 and record["date"]
    runs = pd.read_csv(results / "runs.csv")
    assert list(runs["run"]) == study.run_names(config) and runs["completed"].all()
    assert set(pd.read_csv(results / "curves.csv")["run"]) == set(runs["run"])
    assert set(pd.read_csv(results / "downstream.csv")["run"]) == set(runs["run"])
    baselines = pd.read_csv(results / "baselines.csv")
    assert list(baselines["task"]) == config.finetune.tasks.split(",") and baselines["score"].between(-1, 1).all()
    if config.profile.steps:
        assert set(pd.read_csv(results / "profile.csv")["run"]) == set(runs["run"])
    if config.compress.enabled:
        compression = pd.read_csv(results / "compression.csv")
        assert set(compression["model"]) == set(runs["run"])
        assert {"none", "quantize", "prune", "prune+quantize"} <= set(compression["method"])
    report = (results / "report.md").read_text()
    assert report == studies.report(results) and "## findings" in report and "Command: `smoke`" in report
    seconds = json.loads((tmp_path / "out" / "stage_seconds.json").read_text())
    again = study.run_study(config, tmp_path / "out", None, command="smoke", print_fn=quiet)
    assert again == tmp_path / "out" / "results"  # the checkout is never the default destination
    resumed = json.loads((tmp_path / "out" / "stage_seconds.json").read_text())
    for run, stages in seconds.items():  # nothing was trained or profiled a second time
        assert resumed[run]["pretrain"] == stages["pretrain"]
        assert resumed[run].get("profile") == stages.get("profile")
    assert (again / "runs.csv").read_text() == (results / "runs.csv").read_text()


# ---------------------------------------------------------------------------------- the analysis alone


def test_changed_knobs_and_knob_gains_from_a_table():
    runs = pd.DataFrame(
        {
            "run": ["base", "nl4", "dm512"],
            "order": [0, 1, 2],
            "num_encoder_layers": [2, 4, 2],
            "d_model": [256, 256, 512],
            "d_ff": [1024] * 3,
            "num_heads": [4] * 3,
            "d_kv": [64] * 3,
            "params": [1e6, 2e6, 4e6],
            "flops_per_step": [1e9, 2e9, 4e9],
            "seconds_per_step": [1.0, 2.0, 1.5],
            "eval_loss": [5.0, 4.5, 4.5],
        }
    )
    assert list(studies.changed_knobs(runs.set_index("run"))) == ["base", "NL 2→4", "DM 256→512"]
    data = {"runs": runs, "profile": pd.DataFrame(), "downstream": pd.DataFrame(), "baselines": pd.DataFrame()}
    analysis = studies.scale_efficiently(data)
    gains = analysis["tables"]["knob gains"].set_index("run")
    # 0.5 nats for one doubling of params (NL) against 0.5 for two doublings (DM): 0.5 and 0.25 per doubling.
    assert gains.at["nl4", "loss_drop_per_2x_params"] == pytest.approx(0.5)
    assert gains.at["dm512", "loss_drop_per_2x_params"] == pytest.approx(0.25)
    assert gains.at["dm512", "loss_drop_per_2x_time"] == pytest.approx(0.5 / math.log2(1.5))
    assert any("not the best knob on every cost axis" in f for f in analysis["findings"])
    with pytest.raises(RunError, match="named 'base'"):
        studies.changed_knobs(runs.set_index("run").drop("base"))


def test_equal_budget_reads_every_run_where_all_reached():
    curves = pd.DataFrame({"run": ["a"] * 3 + ["b"] * 2, "seconds": [1, 2, 3, 1, 2], "loss": [3, 2, 1, 4, 2]})
    reach, at = studies.equal_budget(curves, "seconds")
    assert reach == 2 and at["a"] == 2 and at["b"] == 2
    assert pd.isna(studies.spearman(pd.Series({"a": 1.0, "b": 2.0}), at))  # two runs: no rank correlation
    params = pd.Series({"s": 1.0, "m": 2.0, "l": 4.0})
    assert studies.spearman(params, pd.Series({"s": 3.0, "m": 2.0, "l": 1.0})) == pytest.approx(-1.0)
    assert studies.spearman(params, pd.Series({"s": 1.0, "m": 1.0, "l": 1.0})) != studies.spearman(
        params, pd.Series({"s": 1.0, "m": 2.0, "l": 3.0})
    )  # constant values: NaN, not a correlation


def test_markdown_table_formats_and_marks_missing():
    text = studies.markdown(
        pd.DataFrame({"run": ["a"], "params": [1234567], "loss": [float("nan")]}), {"params": ",.0f", "loss": ".3f"}
    )
    assert text.splitlines() == ["| run | params | loss |", "|---|---|---|", "| a | 1,234,567 | – |"]


# ---------------------------------------------------------------------------------- what the repo ships


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_results_are_complete_and_reproduce_their_report(name):
    results = ROOT / "notebooks" / "results" / name
    record = json.loads((results / "study.json").read_text())
    expected = load(ROOT / "configs" / SHIPPED[name])
    assert record["command"].startswith(f"python -m scaling.study --config=configs/{SHIPPED[name]} ")
    assert record["study"]["budget"] == expected.budget and record["kind"] == expected.kind
    runs = pd.read_csv(results / "runs.csv")
    assert list(runs["run"]) == study.run_names(expected) and runs["completed"].all()
    assert (results / "report.md").read_text() == studies.report(results)
    assert not any(p.is_dir() for p in results.iterdir()), "no checkpoints are shipped"


def test_readme_quotes_the_reports():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Studies") : readme.index("## Benchmarks")]
    reports = {name: (ROOT / "notebooks" / "results" / name / "report.md").read_text() for name in SHIPPED}
    for name, report in reports.items():
        findings = [line for line in report.splitlines() if line.startswith("- ")]
        assert any(line in section for line in findings), f"the README quotes none of {name}'s findings"
        assert f"notebooks/results/{name}/report.md" in section
    bullets = [line for line in section.splitlines() if line.startswith("- ")]
    stale = [line for line in bullets if not any(line in report.splitlines() for report in reports.values())]
    assert not stale, f"README findings that no report says (rerun the study or requote): {stale}"


def test_runs_no_better_than_a_constant_answer_are_named():
    downstream = pd.DataFrame(
        {"run": ["a", "b"], "task": ["t", "t"], "score": [0.80, 0.62], "eval_examples": [1000, 1000]}
    )
    data = {"downstream": downstream, "baselines": pd.DataFrame({"task": ["t"], "score": [0.60]})}
    # standard error sqrt(0.71 * 0.29 / 1000) = 0.0143: b (0.62) is within two of 0.60, a is not.
    assert studies.baseline_findings(data, ["a", "b"]) == [
        "On t the best constant answer scores 0.600; b score within two standard errors of it (no better than a "
        "constant)."
    ]


def test_report_cli_names_a_folder_that_is_not_a_study(tmp_path, capsys):
    assert studies.main([str(tmp_path)]) == 1
    assert "no study.json" in capsys.readouterr().err


def test_bad_compress_levels_name_the_field():
    config = load(ROOT / "configs" / "study_train_large.py", "smoke")
    config.compress.bits = "8,six"
    with pytest.raises(study.StudyError, match=r"--config.compress.bits='8,six': use comma-separated int"):
        study.compress_settings(config)
