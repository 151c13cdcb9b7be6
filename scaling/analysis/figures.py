"""The README's pictures: a fixed set of PNGs drawn from the shipped result tables, byte-stable.

    python -m scaling.analysis.figures [--results notebooks/results] [--out notebooks/figures]

reads the demo sweep (``demo_nl_sweep/``) and the three studies' tables under ``--results`` and writes one PNG
per entry of :data:`FIGURES` to ``--out`` (those the tables can draw: ``objective_baselines.png`` needs a study's
``objective_baselines.csv``). Every figure is drawn with :mod:`scaling.analysis.plots` on a bare
``Figure`` with the Agg canvas, matplotlib's default style, a fixed size and DPI and no ``Software`` stamp, so
the same tables and library versions give the same bytes, whatever backend or matplotlibrc the caller has.
``tests/test_figures.py`` redraws them and compares the pixels with the shipped ones: rerun this command after
changing a table. Imports numpy, pandas and matplotlib only (no jax), like the rest of :mod:`scaling.analysis`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.style
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scaling import cli
from scaling.analysis import evidence, plots, runs, studies
from scaling.errors import UserError

DPI = 80
STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8}
STUDIES = ("train_large_then_compress", "scale_efficiently", "cramming")  # their folders under --results
SAVE = {"format": "png", "dpi": DPI, "metadata": {"Software": None}, "pil_kwargs": {"optimize": True}}


def _figure(width: float, height: float, ncols: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, ncols, squeeze=False)[0])


def demo_sweep_frontier(results: Path) -> Figure:
    """The demo T5 depth scan (20 s each on a CPU): eval loss against parameters, FLOPs per step and step time."""
    sweep = runs.load_runs(results / "demo_nl_sweep" / "results.csv")
    figure, axes = _figure(13, 3.8, 3)
    for ax, (title, column) in zip(
        axes, {"parameters": "params", "FLOPs per step": "flops_per_step", "time per step": "seconds_per_step"}.items()
    ):
        plots.frontier(sweep, column, "eval_loss", higher_is_better=False, ax=ax, name="eval loss", color="C2")
        ax.margins(0.12)  # room for the labels at the edges
        ax.set_title(f"demo sweep: eval loss after 20 s against {title}")
    figure.tight_layout()
    return figure


def train_large_curves(results: Path) -> Figure:
    """*Train Large, Then Compress* (Figures 2–3): MLM training loss against steps, seconds and FLOPs."""
    data = studies.load(results / "train_large_then_compress")
    figure, axes = _figure(13, 3.6, 3)
    for ax, x in zip(axes, ("step", "seconds", "flops")):
        plots.curves(data["curves"], x=x, y="loss", by="run", ax=ax, logx=(x != "seconds"))
        ax.set_title(f"MLM training loss against {x}")
    figure.tight_layout()
    return figure


def compression_values(data: dict[str, Any]) -> tuple[pd.DataFrame, str, float | None]:
    """The compression table with ``value`` (accuracy from ``metrics`` where a row has it, else the older tables'
    ``score``) and ``collapsed`` (the model predicted one class), what ``value`` is, and the constant answer's
    value in the same units (None where the tables do not say)."""
    c = data["compression"].copy()
    task = str(c["task"].iloc[0])
    metrics = [json.loads(m) if isinstance(m, str) else {} for m in c.get("metrics", [None] * len(c))]
    scores = c["score"] if "score" in c else pd.Series(math.nan, index=c.index)
    c["value"] = [m.get("accuracy", score) for m, score in zip(metrics, scores)]
    c["collapsed"] = [m.get("predicted_classes") == 1 for m in metrics]
    if any("accuracy" in m for m in metrics):
        return c, f"{task} accuracy", studies.constants(data).get((task, "accuracy"))
    base = data["baselines"]
    old = base[base["task"] == task]["score"] if "score" in base else pd.Series(dtype=float)
    return c, f"{task} score", float(old.iloc[0]) if len(old) else None


def train_large_compression(results: Path) -> Figure:
    """*Train Large, Then Compress* (Figures 6–7): accuracy against test-time memory (every seed; crosses: the
    model collapsed to one class), and against sparsity (mean over seeds with its standard error)."""
    data = studies.load(results / "train_large_then_compress")
    compression, what, constant = compression_values(data)
    figure, (memory, sparsity) = _figure(12, 3.8, 2)
    plots.compression(compression, score="value", ax=memory)
    collapsed = compression[compression["collapsed"]]
    if not collapsed.empty:
        memory.scatter(collapsed["memory_bits"], collapsed["value"], marker="x", color="black", label="one class")
    if constant is not None:
        memory.axhline(constant, color="black", linestyle="--", linewidth=1, label="best constant answer")
    memory.set_ylabel(what)
    memory.legend(fontsize=8)
    memory.set_title(f"{what} against test-time memory")
    pruned = compression[compression["method"].isin(["none", "prune"])]
    for name, group in pruned.groupby("model", sort=False):
        mean = group.groupby("sparsity")["value"].agg(["mean", "sem"])
        sparsity.errorbar(mean.index, mean["mean"], yerr=mean["sem"], marker="o", capsize=3, label=str(name))
    if constant is not None:
        sparsity.axhline(constant, color="black", linestyle="--", linewidth=1, label="best constant answer")
    sparsity.set_xlabel("sparsity (pruned fraction, recovery finetuning after each step)")
    sparsity.set_ylabel(what)
    sparsity.set_title(f"{what} against pruning")
    sparsity.legend(fontsize=8)
    figure.tight_layout()
    return figure


def scale_efficiently_frontier(results: Path) -> Figure:
    """*Scale Efficiently*: the base and its one-knob doublings, eval loss (mean over seeds, standard-error bars)
    against params, FLOPs and step time."""
    shapes = studies.analyse(results / "scale_efficiently")["tables"]["shapes"]
    figure, axes = _figure(13, 3.8, 3)
    costs = {"parameters": "params", "FLOPs per step": "flops_per_step", "measured s / step": "seconds_per_step"}
    for ax, (title, column) in zip(axes, costs.items()):
        plots.frontier(
            shapes,
            column,
            "eval_loss",
            higher_is_better=False,
            ax=ax,
            name="eval loss",
            error="eval_loss_se",
        )
        ax.margins(0.12)
        ax.set_title(f"span-corruption eval loss against {title}")
    figure.tight_layout()
    return figure


def objective_references(data: dict[str, Any]) -> pd.DataFrame:
    """Per run, the trivial baselines of the task it pretrained on: columns ``run``, ``reference``, ``value`` (eval
    loss), the ``references`` of :func:`scaling.analysis.plots.estimates`."""
    base = data["objective_baselines"]
    if base.empty:
        return pd.DataFrame(columns=["run", "reference", "value"])
    tasks = data["runs"][["run", "task"]].drop_duplicates("run")
    rows = tasks.merge(base[["task", "baseline", "eval_loss"]], on="task")
    return rows.rename(columns={"baseline": "reference", "eval_loss": "value"})[["run", "reference", "value"]]


def cramming_variants(results: Path) -> Figure:
    """*Cramming* (Table 5): each variant's downstream accuracy (and the no-pretraining control's) against the best
    constant answer, and the MLM eval loss of the variants trained on the reference's task."""
    folder = results / "cramming"
    data = studies.load(folder)
    tables = studies.analyse(folder)["tables"]
    variants = tables["variants"]
    task, down = next((name.split(": ", 1)[1], t) for name, t in tables.items() if name.startswith("downstream: "))
    figure, (bars, losses) = _figure(13, 4.2, 2)
    plots.scores(down, ["accuracy"], label="run", ax=bars)
    low = down[["accuracy"]].min().min()
    bars.set_ylim(bottom=max(0.0, round(low - 0.1, 1)))
    has_constant = "constant answer" in set(down["run"])
    bars.set_title(
        f"{task} validation accuracy (mean ± se over pretraining seeds)"
        + ("" if has_constant else "\nthese tables do not record the constant answer's accuracy")
    )
    reference = data["study"].get("reference") or "crammed"
    reference_task = variants.set_index("run").at[reference, "task"]
    same = variants[variants["task"] == reference_task]
    references = objective_references(data)
    plots.estimates(same, "eval_loss", references=references[references["run"].isin(same["run"])], ax=losses)
    losses.set_ylabel("MLM eval loss")
    losses.set_title(f"MLM eval loss of the variants on {reference_task} (the {reference} run's task)")
    figure.tight_layout()
    return figure


def objective_baselines(results: Path) -> Figure | None:
    """Each study's pretraining runs: final eval loss (mean ± se over seeds) against the trivial baselines of the
    task each trained on (dashed); None when no study's tables have them (results from before they were measured)."""
    panels = {}
    for study in STUDIES:
        data = studies.load(results / study)
        references = objective_references(data)
        if not references.empty:
            table = evidence.across_seeds(data["runs"], "eval_loss").reindex(studies.order_of(data))
            table = table.rename(columns={"mean": "eval_loss", "se": "eval_loss_se"}).reset_index(names="run")
            panels[study] = (table, references)
    if not panels:
        return None
    figure, axes = _figure(4.6 * len(panels), 4.2, len(panels))
    for ax, (study, (table, references)) in zip(axes, panels.items()):
        plots.estimates(table, "eval_loss", references=references, ax=ax)
        ax.set_ylabel("final eval loss")
        ax.set_title(f"{study}: eval loss against trivial baselines")
    figure.tight_layout()
    return figure


# File name → what draws it (None: the tables lack what it shows). The README and the notebooks link each file
# drawn from the shipped tables by name.
FIGURES: dict[str, Callable[[Path], Figure | None]] = {
    "demo_sweep_frontier.png": demo_sweep_frontier,
    "train_large_curves.png": train_large_curves,
    "train_large_compression.png": train_large_compression,
    "scale_efficiently_frontier.png": scale_efficiently_frontier,
    "cramming_variants.png": cramming_variants,
    "objective_baselines.png": objective_baselines,
}


def render(results: str | Path, name: str) -> Figure | None:
    """One figure of :data:`FIGURES`, drawn from the tables under ``results`` in the fixed style (None when the
    tables lack what it shows)."""
    with matplotlib.style.context(["default", STYLE]):
        return FIGURES[name](Path(results))


def write(results: str | Path, out: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Every figure of :data:`FIGURES` (or those ``names``) the tables can draw, as ``out/NAME`` (the folder is
    created; a figure they cannot draw is removed from it, not left stale); the paths written."""
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise UserError(f"--results {results}: no such folder (run from the repository root or name the folder)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or FIGURES:
        figure = render(results, name)
        if figure is None:
            (out / name).unlink(missing_ok=True)
            continue
        with matplotlib.style.context(["default", STYLE]):
            figure.savefig(out / name, **SAVE)
        written.append(out / name)
    return written


def _command(argv: list[str]) -> int:
    parser = cli.parser("python -m scaling.analysis.figures", __doc__)
    parser.add_argument(
        "--results",
        default="notebooks/results",
        metavar="DIR",
        help="the folder holding demo_nl_sweep/ and the studies' folders (default: notebooks/results)",
    )
    parser.add_argument(
        "--out", default="notebooks/figures", metavar="DIR", help="where the PNGs go (default: notebooks/figures)"
    )
    args = parser.parse_args(argv)
    for path in write(args.results, args.out):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scaling.analysis.figures``: draw every figure of :data:`FIGURES` from the shipped tables."""
    return cli.run(_command, argv, tensorflow=False)


if __name__ == "__main__":
    raise SystemExit(main())
