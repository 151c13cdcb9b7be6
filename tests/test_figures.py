"""The shipped figures are what `python -m scaling.analysis.figures` draws from the shipped tables, and they are shown;
the same figures draw from the tables a study writes now (several seeds, per-metric constant answers, objective
baselines), built here from the shipped ones by :func:`new_layout`.

Images are compared as decoded pixels, not bytes: the pinned matplotlib renders them identically, and a small
tolerance absorbs anti-aliasing noise while a moved point or line (a changed table) does not pass.
"""

import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from scaling.analysis import figures, studies

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = NOTEBOOKS / "figures"
REGENERATE = "python -m scaling.analysis.figures"
MAX_KB = 150
# A pixel differs when a channel moves by more than 0.1 (of 1); at most this fraction may. One eval loss moved
# by 0.01 in the demo sweep changes 0.25% of its figure's pixels.
TOLERANCE = 2e-4


def differing_fraction(expected: np.ndarray, actual: np.ndarray) -> float:
    if expected.shape != actual.shape:
        return 1.0
    return float((np.abs(expected - actual).max(axis=-1) > 0.1).mean())


SEEDS = (0, 1, 2)
SHIFT = {seed: 0.02 * (seed - 1) for seed in SEEDS}  # each seed's losses and scores a little apart
CONSTANT = {"accuracy": 0.5, "f1": 2 / 3, "mcc": 0.0}  # what a one-class answer scores on a balanced task
OBJECTIVE = {"uniform": 9.01, "unigram": 6.9}  # trivial baselines' eval loss


def _per_seed(table: pd.DataFrame, change) -> pd.DataFrame:
    """``table`` once per seed, each copy passed through ``change(copy, seed, shift)``."""
    return pd.concat([change(table.copy(), seed, shift) for seed, shift in SHIFT.items()], ignore_index=True)


def _shift_metrics(column: pd.Series, shift: float) -> list[str]:
    return [json.dumps({k: v + shift for k, v in json.loads(m).items()}) for m in column]


def _compression_metrics(c: pd.DataFrame, seed: int, shift: float) -> pd.DataFrame:
    collapsed = (c["score"] - 0.6327).abs() < 1e-3  # the shipped models that answered one class
    accuracy = np.where(collapsed, CONSTANT["accuracy"], c["score"] - 0.02 + shift)
    c["metrics"] = [
        json.dumps({"accuracy": a, "predicted_classes": 1 if o else 2}) for a, o in zip(accuracy, collapsed)
    ]
    return c.assign(seed=seed)


def new_layout(results: Path) -> Path:
    """The shipped (single-seed) studies under ``results`` rewritten in place as a study writes them now: every run
    and curve once per seed, downstream rows per pretraining seed with the no-pretraining control, ``baselines.csv``
    per task and metric, compression ``metrics`` with ``predicted_classes``, and ``objective_baselines.csv``.
    Cramming loses the runs its study file dropped."""
    for name in figures.STUDIES:
        folder = results / name
        record = json.loads((folder / "study.json").read_text())
        (folder / "study.json").write_text(json.dumps({**record, "pretrain_seeds": list(SEEDS)}))
        runs = pd.read_csv(folder / "runs.csv")
        runs = runs[~runs["run"].str.startswith("minimal_")]
        _per_seed(runs, lambda t, seed, d: t.assign(seed=seed, eval_loss=t["eval_loss"] + d)).to_csv(
            folder / "runs.csv", index=False
        )
        curves = pd.read_csv(folder / "curves.csv")
        curves = curves[curves["run"].isin(runs["run"])]
        curves = _per_seed(
            curves, lambda t, seed, d: t.assign(seed=seed, loss=t["loss"] + d, seconds=t["seconds"] * (1 + d))
        )
        curves[["run", "seed", *curves.columns[1:-1]]].to_csv(folder / "curves.csv", index=False)
        down = pd.read_csv(folder / "downstream.csv").rename(columns={"seed": "finetune_seed"})
        down = down[down["run"].isin(runs["run"])]
        if name == "cramming":
            control = down[down["run"] == "crammed"].assign(run="no_pretraining")
            down = pd.concat([down, control.assign(metrics=json.dumps({"accuracy": 0.52, "f1": 0.6}))])
        shifted = _per_seed(
            down, lambda t, seed, d: t.assign(pretrain_seed=seed, metrics=_shift_metrics(t["metrics"], d))
        )
        shifted.to_csv(folder / "downstream.csv", index=False)
        metrics = sorted(
            {(t, m) for t, j in zip(down["task"], down["metrics"]) for m in json.loads(j) if m in CONSTANT}
        )
        constant = [
            {"task": t, "metric": m, "split": "validation", "eval_examples": 500, "value": CONSTANT[m]}
            for t, m in metrics
        ]
        pd.DataFrame(constant).to_csv(folder / "baselines.csv", index=False)
        objective = [
            {"task": task, "baseline": b, "eval_loss": loss, "eval_accuracy": 0.05}
            for task in sorted(set(runs["task"]))
            for b, loss in OBJECTIVE.items()
        ]
        pd.DataFrame(objective).to_csv(folder / "objective_baselines.csv", index=False)
        if (folder / "compression.csv").is_file():
            compression = _per_seed(
                pd.read_csv(folder / "compression.csv"), lambda t, seed, d: _compression_metrics(t, seed, d)
            )
            compression.to_csv(folder / "compression.csv", index=False)
    return results


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert figures.main(["--results", str(NOTEBOOKS / "results"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def new_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("new") / "results"
    shutil.copytree(NOTEBOOKS / "results", results)
    return new_layout(results)


def test_the_shipped_figures_are_exactly_the_set_the_command_draws(regenerated):
    drawn = sorted(p.name for p in regenerated.iterdir())
    assert drawn == sorted(set(figures.FIGURES) - {"objective_baselines.png"}), "no objective baselines shipped yet"
    assert sorted(p.name for p in FIGURES.iterdir()) == drawn
    for name in drawn:
        size = (FIGURES / name).stat().st_size
        assert size < MAX_KB * 1024, f"{name} is {size / 1024:.0f} KB; keep each figure under {MAX_KB} KB"


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_shipped_figure_is_up_to_date(regenerated, name):
    if not (regenerated / name).exists():
        assert not (FIGURES / name).exists(), f"notebooks/figures/{name}: the shipped tables no longer draw it"
        pytest.skip(f"{name}: the shipped tables lack what it shows")
    expected, actual = matplotlib.image.imread(FIGURES / name), matplotlib.image.imread(regenerated / name)
    fraction = differing_fraction(expected, actual)
    assert fraction <= TOLERANCE, (
        f"notebooks/figures/{name} is out of date ({fraction:.2%} of its pixels differ, shape {expected.shape} "
        f"against {actual.shape}): rerun `{REGENERATE}` from the repository root and commit the PNGs"
    )


def test_drawing_is_deterministic(regenerated, tmp_path):
    """Same tables, same bytes (no timestamp or software stamp), whatever figure state the caller left; a figure
    the tables cannot draw is not left behind from an earlier drawing."""
    import matplotlib.pyplot as plt

    (tmp_path / "objective_baselines.png").write_bytes(b"stale")
    with plt.rc_context({"font.size": 20, "lines.linewidth": 5}):  # a caller's style does not leak in
        figures.write(NOTEBOOKS / "results", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in regenerated.iterdir())
    for path in regenerated.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_changed_table_is_caught(regenerated, tmp_path):
    """The comparison sees a one-point change: the shipped images cannot silently go stale."""
    results = tmp_path / "results"
    shutil.copytree(NOTEBOOKS / "results", results)
    table = results / "demo_nl_sweep" / "results.csv"
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[2].split(",")
    column = header.index("eval_loss")
    row[column] = str(float(row[column]) + 0.01)
    table.write_text("\n".join([*lines[:2], ",".join(row), *lines[3:]]) + "\n")
    name = "demo_sweep_frontier.png"
    figures.write(results, tmp_path / "out", [name])
    fraction = differing_fraction(
        matplotlib.image.imread(regenerated / name), matplotlib.image.imread(tmp_path / "out" / name)
    )
    assert fraction > 10 * TOLERANCE


def test_readme_and_notebooks_show_every_figure(regenerated):
    drawn = {p.name for p in regenerated.iterdir()}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Analysis, sweeps") : readme.index("## Studies")]
    assert REGENERATE in section
    shown = set(re.findall(r"!\[[^\]]*\]\(notebooks/figures/([\w.]+)\)", section))
    assert shown == drawn, "the README's Analysis section shows each shipped figure once"
    notebooks = "".join(p.read_text() for p in NOTEBOOKS.glob("*.ipynb"))
    linked = set(re.findall(r"!\[[^\]]*\]\(figures/([\w.]+)\)", notebooks))
    assert linked == drawn, "each shipped figure is linked from the notebook that draws it"


def test_command_convention(tmp_path, capsys):
    assert figures.main(["--help"]) == 0
    assert REGENERATE in capsys.readouterr().out
    assert figures.main(["--results", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --results") and "no such folder" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_every_figure_draws_from_the_tables_a_study_writes_now(new_results):
    """Three seeds: curves per seed with their mean, error bars, each metric's constant answer, trivial baselines."""
    assert figures.render(NOTEBOOKS / "results", "objective_baselines.png") is None  # not measured then
    drawn = {name: figures.render(new_results, name) for name in figures.FIGURES}
    assert all(drawn.values())

    curves = drawn["train_large_curves.png"].axes[0]
    assert len(curves.lines) == 4 * (len(SEEDS) + 1)  # four runs: a thin line per seed and their mean
    assert all("mean of 3 seeds" in t.get_text() for t in curves.get_legend().get_texts())

    bars, losses = drawn["cramming_variants.png"].axes
    runs = list(studies.order_of(studies.load(new_results / "cramming")))
    assert [t.get_text() for t in bars.get_xticklabels()] == [*runs, "no_pretraining"]
    dashed = [line for line in bars.lines if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [CONSTANT["accuracy"]]  # the constant answer's accuracy
    (accuracy,) = [c for c in bars.containers if isinstance(c, BarContainer)]
    assert accuracy.errorbar is not None and len(accuracy) == len(runs) + 1  # standard errors over the seeds
    same_task = [t.get_text() for t in losses.get_xticklabels()]
    assert "crammed" in same_task and "original_bert" not in same_task  # another task: losses not comparable
    assert {t.get_text() for t in losses.get_legend().get_texts()} >= {"uniform", "unigram"}

    objective = drawn["objective_baselines.png"]
    assert [ax.get_title().split(":")[0] for ax in objective.axes] == list(figures.STUDIES)

    memory, sparsity = drawn["train_large_compression.png"].axes
    assert memory.get_ylabel() == "rotten_tomatoes accuracy"
    assert "one class" in [t.get_text() for t in memory.get_legend().get_texts()]
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == 0.5 for line in memory.lines)
