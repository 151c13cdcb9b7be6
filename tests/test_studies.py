"""Studies: every study file expands into valid runs, each study's smoke form runs end to end through every
stage and resumes without redoing work, the analysis computes its findings from the tables, and the results
the repository ships are complete and are what the reports and README say."""

import json
import re
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
    assert list(configs) == [(n, s) for n in study.run_names(config) for s in study.seeds(config)]
    assert all(c.seed == s for (_, s), c in configs.items())
    budgets = {(c.budget.unit, c.budget.amount) for c in configs.values()}
    assert len(budgets) == 1, "every run of a study gets the same budget"
    assert config.kind in studies.REPORTS


def test_train_large_grid_spans_depth_width_and_4x_params():
    from scaling import accounting
    from scaling.training import trainer

    configs = study.pretrain_configs(load(ROOT / "configs" / "study_train_large.py"))
    params = {n: accounting.param_counts(trainer.resolve_shape(c)).total for (n, _), c in configs.items()}
    assert max(params.values()) >= 4 * min(params.values())
    shapes = [trainer.resolve_shape(c) for c in configs.values()]
    assert len({s.num_encoder_layers for s in shapes}) >= 2 and len({s.d_model for s in shapes}) >= 2
    assert {c.budget.unit for c in configs.values()} == {"seconds"}


def test_cramming_variants_change_what_their_names_say():
    from scaling.training import trainer

    configs = {n: c for (n, seed), c in study.pretrain_configs(load(ROOT / "configs" / "study_cramming.py")).items()}
    shape = {n: trainer.resolve_shape(c) for n, c in configs.items()}
    crammed, original = shape["crammed"], shape["original_bert"]
    assert (crammed.norm_position, crammed.linear_bias, crammed.sparse_prediction) == ("pre", False, True)
    assert (original.norm_position, original.linear_bias, original.sparse_prediction) == ("post", True, False)
    from scaling.data import tasks

    spec = {n: tasks.task_spec(c.data.task) for n, c in configs.items()}
    # Table 5 as §4.2–4.4 group it: masking goes with training, curation with data.
    assert [spec[n].mask_rate for n in ("crammed", "original_data", "original_train", "original_bert")] == [
        0.25,
        0.25,
        0.15,
        0.15,
    ]
    curated = {
        n: spec[n].corpus.curation.enabled for n in ("crammed", "original_data", "original_train", "original_bert")
    }
    assert curated == {"crammed": True, "original_data": False, "original_train": True, "original_bert": False}
    assert (shape["original_arch"].norm_position, shape["original_arch"].linear_bias) == ("post", True)
    assert configs["original_arch"].data.task == configs["crammed"].data.task
    assert configs["original_train"].optimizer.learning_rate == 1e-4 != configs["crammed"].optimizer.learning_rate
    assert {configs[n].optimizer.schedule for n in ("crammed", "schedule_constant", "schedule_cosine")} == {
        "triangle",
        "constant",
        "cosine",
    }
    for name in ("crammed", "original_bert", "original_arch"):  # same knobs: only switches differ
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
    config.baseline_train_rows = -1
    with pytest.raises(study.StudyError, match="config.baseline_train_rows = -1: give 0"):
        study.pretrain_configs(config)
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.profile.peak_sizes = "1024,0"
    with pytest.raises(study.StudyError, match="config.profile.peak_sizes = '1024,0': use positive"):
        study.pretrain_configs(config)
    config.profile.peak_sizes = " 512, 1024 "
    assert study.peak_sizes(config) == (512, 1024)
    config = load(ROOT / "configs" / "study_cramming.py", "smoke")
    config.budget = "hours:0.01"  # the same spelling as --config.budget: hours are seconds
    assert {(c.budget.unit, c.budget.amount) for c in study.pretrain_configs(config).values()} == {("seconds", 36)}


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.stem)
def test_smoke_study_runs_every_stage_and_resumes(path, tmp_path):
    config = load(path, "smoke")
    results = study.run_study(config, tmp_path / "out", tmp_path / "results", command="smoke", print_fn=quiet)
    record = json.loads((results / "study.json").read_text())
    assert record["command"] == "smoke" and record["hardware"]["cpu_count"] >= 1
    assert len(record["commit"]) == 40 and isinstance(record["dirty"], bool)
    assert record["ran_from"] <= record["ran_to"] and {s["stage"] for s in record["stages"]} >= {"pretrain"}
    runs = pd.read_csv(results / "runs.csv")
    pairs = [(n, s) for n in study.run_names(config) for s in study.seeds(config)]
    assert list(zip(runs["run"], runs["seed"])) == pairs and runs["completed"].all()
    assert runs["time_usable"].dtype == bool  # decided from each run's machine.jsonl
    for name, seed in pairs:  # each run's own files ship with the tables
        for file in ("metrics.jsonl", "summary.json", "machine.jsonl"):
            assert (results / "runs" / name / f"seed_{seed}" / file).is_file()
    assert set(zip(*[pd.read_csv(results / "curves.csv")[c] for c in ("run", "seed")])) == set(pairs)
    objective = pd.read_csv(results / "objective_baselines.csv")
    assert set(objective["task"]) == set(runs["task"]) and "unigram" in set(objective["baseline"])
    downstream = pd.read_csv(results / "downstream.csv")
    control = {"no_pretraining"} if config.controls.no_pretraining else set()
    assert set(downstream["run"]) == set(runs["run"]) | control
    baselines = pd.read_csv(results / "baselines.csv")
    assert set(baselines["task"]) == set(config.finetune.tasks.split(",")) and "accuracy" in set(baselines["metric"])
    if config.profile.steps:
        profiles = pd.read_csv(results / "profile.csv")
        assert set(profiles["run"]) == set(runs["run"])
        assert profiles["peak_source"].str.contains("|".join(f" {n}² " for n in study.peak_sizes(config))).all()
    if config.compress.enabled:
        compression = pd.read_csv(results / "compression.csv")
        assert set(compression["model"]) == set(runs["run"])
        assert {"none", "quantize", "prune", "prune+quantize"} <= set(compression["method"])
        assert all("predicted_classes" in json.loads(m) for m in compression["metrics"])
    report = (results / "report.md").read_text()
    assert report == studies.report(results) and "## findings" in report and "Command: `smoke` at commit" in report
    stages = (tmp_path / "out" / "stages.jsonl").read_text()
    again = study.run_study(config, tmp_path / "out", None, command="smoke", print_fn=quiet)
    assert again == tmp_path / "out" / "results"  # the checkout is never the default destination
    redone = (tmp_path / "out" / "stages.jsonl").read_text()[len(stages) :]
    assert '"pretrain"' not in redone and '"profile"' not in redone  # nothing trained or profiled again
    assert (again / "runs.csv").read_text() == (results / "runs.csv").read_text()


def test_a_study_refuses_to_start_beside_another_registered_run(tmp_path):
    import subprocess
    import sys

    code = (
        "from scaling.training import machine; import time\n"
        "with machine.registered('train', '/w'):\n"
        "    print('in', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "in"
        with pytest.raises(study.StudyError, match=r"another run is using this machine: train /w .*--share_machine"):
            study.run_study(load(STUDY_FILES[0], "smoke"), tmp_path / "out", print_fn=quiet)
        assert not (tmp_path / "out").exists()  # nothing started
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------------------------- the analysis alone


def _knob_runs() -> pd.DataFrame:
    """Three seeds of base, nl4 and dm512 whose losses differ by known amounts."""
    shapes = {"base": (2, 256, 1e6, 1e9, 1.0), "nl4": (4, 256, 2e6, 2e9, 2.0), "dm512": (2, 512, 4e6, 4e9, 1.5)}
    losses = {"base": [5.0, 5.1, 4.9], "nl4": [4.5, 4.58, 4.42], "dm512": [4.6, 4.8, 4.4]}
    rows = []
    for order, (run, (nl, dm, params, flops, seconds)) in enumerate(shapes.items()):
        for seed, loss in enumerate(losses[run]):
            rows.append(
                {
                    "run": run,
                    "seed": seed,
                    "order": order,
                    "task": "t",
                    "num_encoder_layers": nl,
                    "d_model": dm,
                    "d_ff": 1024,
                    "num_heads": 4,
                    "d_kv": 64,
                    "params": params,
                    "flops_per_step": flops,
                    "seconds_per_step": seconds,
                    "eval_loss": loss,
                }
            )
    return pd.DataFrame(rows)


def _data(runs: pd.DataFrame, **tables) -> dict:
    empty = {name: pd.DataFrame() for name in studies.FILES}
    return {**empty, "runs": runs, "study": {"reference": ""}, **tables}


def test_knob_gains_per_doubling_with_errors_and_the_depth_verdict():
    runs = _knob_runs()
    assert list(studies.changed_knobs(runs.groupby("run", sort=False).first())) == ["base", "NL 2→4", "DM 256→512"]
    analysis = studies.scale_efficiently(_data(runs))
    gains = analysis["tables"]["knob gains"].set_index("run")
    # nl4: 0.5, 0.52, 0.48 nats for one doubling of params; dm512: 0.4, 0.3, 0.5 for two doublings.
    assert gains.at["nl4", "loss_drop_per_2x_params"] == pytest.approx(0.5)
    assert gains.at["nl4", "loss_drop_per_2x_params_se"] == pytest.approx(0.02 / 3**0.5)
    assert gains.at["dm512", "loss_drop_per_2x_params"] == pytest.approx(0.2)
    # per seed, NL's gain minus DM's: 0.3, 0.37, 0.23 — a 95% interval above zero.
    depth = [f for f in analysis["findings"] if "per doubling of params than DM" in f]
    assert depth and depth[0].startswith("**reproduced**") and "paired by seed" in depth[0]
    with pytest.raises(RunError, match="named 'base'"):
        studies.changed_knobs(runs.groupby("run").first().drop("base"))


def test_runs_must_beat_the_trivial_baselines_of_their_objective():
    runs = _knob_runs()
    objective = pd.DataFrame(
        {"task": ["t", "t"], "baseline": ["unigram", "sentinels_right_content_unigram"], "eval_loss": [6.5, 4.7]}
    )
    findings = studies.objective_findings(_data(runs, objective_baselines=objective), runs)
    assert findings[0].startswith(
        "On t the best trivial baseline (sentinels_right_content_unigram) scores eval loss 4.700"
    )
    assert "clearly below it (95% interval over seeds): nl4 (-0.20)" in findings[0]
    assert "Not clearly below it: base" in findings[0]


def test_objective_baselines_count_the_rows_the_study_asks_for():
    config = load(ROOT / "configs" / "study_scale_efficiently.py", "smoke")
    configs = dict(list(study.pretrain_configs(config).items())[:1])
    (first, *_), length = study.objective_baselines(configs, 256), configs[next(iter(configs))].data.targets_length
    assert 0 < first["train_tokens_counted"] <= 256 * length  # one read batch, not the default whole epoch


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
    ran = record["study"]  # the study file as it ran
    assert record["command"].startswith(f"python -m scaling.study --config=configs/{SHIPPED[name]} ")
    assert record["kind"] == name
    runs = pd.read_csv(results / "runs.csv")
    seeds = [int(s) for s in str(ran.get("seeds", "0")).split(",")]
    pairs = [(n, s) for n in ran["order"].split(",") for s in seeds]
    assert list(zip(runs["run"], runs.get("seed", pd.Series([0] * len(runs))))) == pairs and runs["completed"].all()
    assert (results / "report.md").read_text() == studies.report(results)
    assert all(p.name == "runs" for p in results.iterdir() if p.is_dir()), "no checkpoints are shipped"
    current = json.loads(load(ROOT / "configs" / SHIPPED[name]).to_json_best_effort())
    if current != ran:  # results of an older study file must say so where the README quotes them
        readme = " ".join((ROOT / "README.md").read_text().split())
        assert f"`notebooks/results/{name}/` predates the current `configs/{SHIPPED[name]}`" in readme


def test_readme_quotes_the_reports():
    """Every verdict the README's studies section quotes is a line of a report, and each report is quoted."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Studies") : readme.index("## Benchmarks")]
    reports = {name: (ROOT / "notebooks" / "results" / name / "report.md").read_text() for name in SHIPPED}
    verdict = re.compile(r"^- \*\*(reproduced|contradicted|inconclusive)\*\*")
    for name, report in reports.items():
        findings = [line for line in report.splitlines() if verdict.match(line)]
        assert any(line in section for line in findings), f"the README quotes none of {name}'s findings"
    quoted = [line for line in section.splitlines() if verdict.match(line)]
    stale = [line for line in quoted if not any(line in report.splitlines() for report in reports.values())]
    assert not stale, f"README findings that no report says (rerun the study or requote): {stale}"


def test_each_task_metric_is_read_against_its_own_constant_answer():
    metrics = lambda acc, f1: json.dumps({"accuracy": acc, "f1": f1, "score": (acc + f1) / 2})
    downstream = pd.DataFrame(
        {
            "run": ["a"] * 3 + ["no_pretraining"] * 3,
            "pretrain_seed": [0, 1, 2] * 2,
            "finetune_seed": [0] * 6,
            "task": ["t"] * 6,
            "metrics": [metrics(0.80, 0.7), metrics(0.82, 0.72), metrics(0.81, 0.71)] + [metrics(0.6, 0.75)] * 3,
        }
    )
    baselines = pd.DataFrame({"task": ["t", "t"], "metric": ["accuracy", "f1"], "value": [0.6, 0.75]})
    tables, findings = studies.downstream_tables(
        _data(pd.DataFrame(), downstream=downstream, baselines=baselines), ["a"]
    )
    table = tables["downstream: t"].set_index("run")
    assert table.at["a", "accuracy"] == pytest.approx(0.81) and table.at["a", "accuracy_se"] == pytest.approx(
        0.01 / 3**0.5
    )
    assert table.at["constant answer", "f1"] == 0.75
    # a beats the majority class on accuracy but not the always-positive answer on F1: not above on every metric.
    assert findings == [
        "On t, clearly above the best constant answer on every metric (95% interval over seeds): none; "
        "not clearly above: a, no_pretraining."
    ]


def test_report_cli_names_a_folder_that_is_not_a_study(tmp_path, capsys):
    assert studies.main([str(tmp_path)]) == 1
    assert "no study.json" in capsys.readouterr().err


def test_bad_compress_levels_name_the_field():
    config = load(ROOT / "configs" / "study_train_large.py", "smoke")
    config.compress.bits = "8,six"
    with pytest.raises(study.StudyError, match=r"--config.compress.bits='8,six': use comma-separated int"):
        study.compress_settings(config)
