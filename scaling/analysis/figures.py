"""The README's pictures: a fixed set of PNGs drawn from the shipped result tables, byte-stable.

    python -m scaling.analysis.figures [--results notebooks/results] [--out notebooks/figures]

reads the demo sweep (``demo_nl_sweep/``) and the three studies' tables under ``--results`` and writes one PNG
per entry of :data:`FIGURES` to ``--out``. Every figure is drawn with :mod:`scaling.analysis.plots` on a bare
``Figure`` with the Agg canvas, matplotlib's default style, a fixed size and DPI and no ``Software`` stamp, so
the same tables and library versions give the same bytes, whatever backend or matplotlibrc the caller has.
``tests/test_figures.py`` redraws them and compares the pixels with the shipped ones: rerun this command after
changing a table. Imports numpy, pandas and matplotlib only (no jax), like the rest of :mod:`scaling.analysis`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scaling import cli
from scaling.analysis import plots, runs, studies
from scaling.errors import UserError

DPI = 80
STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8}
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


def train_large_compression(results: Path) -> Figure:
    """*Train Large, Then Compress* (Figures 6–7): accuracy against test-time memory, and against sparsity."""
    data = studies.load(results / "train_large_then_compress")
    compression = data["compression"]
    figure, (memory, sparsity) = _figure(12, 3.8, 2)
    plots.compression(compression, ax=memory)
    for row in data["baselines"].itertuples():
        memory.axhline(row.score, color="black", linestyle="--", linewidth=1, label=f"constant answer ({row.task})")
    memory.legend(fontsize=8)
    memory.set_title("rotten_tomatoes score against test-time memory")
    pruned = compression[compression["method"].isin(["none", "prune"])]
    for name, group in pruned.groupby("model", sort=False):
        sparsity.plot(group["sparsity"], group["score"], marker="o", label=str(name))
    sparsity.set_xlabel("sparsity (pruned fraction, recovery finetuning after each step)")
    sparsity.set_ylabel("score")
    sparsity.set_title("rotten_tomatoes score against pruning")
    sparsity.legend(fontsize=8)
    figure.tight_layout()
    return figure


def scale_efficiently_frontier(results: Path) -> Figure:
    """*Scale Efficiently*: the base and its one-knob doublings, eval loss against params, FLOPs and step time."""
    shapes = studies.analyse(results / "scale_efficiently")["tables"]["shapes"]
    figure, axes = _figure(13, 3.8, 3)
    costs = {"parameters": "params", "FLOPs per step": "flops_per_step", "measured s / step": "seconds_per_step"}
    for ax, (title, column) in zip(axes, costs.items()):
        plots.frontier(shapes, column, "eval_loss", higher_is_better=False, label="run", ax=ax, name="eval loss")
        ax.margins(0.12)
        ax.set_title(f"span-corruption eval loss against {title}")
    figure.tight_layout()
    return figure


def cramming_variants(results: Path) -> Figure:
    """*Cramming* (Table 5): each variant's downstream score, and MLM loss against seconds on the crammed data."""
    folder = results / "cramming"
    data = studies.load(folder)
    variants = studies.analyse(folder)["tables"]["variants"]
    figure, (bars, curves) = _figure(13, 4.2, 2)
    columns = [c for c in variants.columns if c.startswith("score_")]
    plots.scores(variants, columns, label="run", baselines=data["baselines"], ax=bars)
    bars.set_ylim(bottom=0.4)
    bars.set_title("downstream score (validation) of each variant")
    same_task = variants.loc[variants["task"] == variants.set_index("run").at["crammed", "task"], "run"]
    plots.curves(data["curves"][data["curves"]["run"].isin(same_task)], x="seconds", y="loss", by="run", ax=curves)
    curves.set_title("MLM loss against seconds (variants on the crammed data)")
    figure.tight_layout()
    return figure


# File name → what draws it. The README and the notebooks link each file by name.
FIGURES: dict[str, Callable[[Path], Figure]] = {
    "demo_sweep_frontier.png": demo_sweep_frontier,
    "train_large_curves.png": train_large_curves,
    "train_large_compression.png": train_large_compression,
    "scale_efficiently_frontier.png": scale_efficiently_frontier,
    "cramming_variants.png": cramming_variants,
}


def render(results: str | Path, name: str) -> Figure:
    """One figure of :data:`FIGURES`, drawn from the tables under ``results`` in the fixed style."""
    with matplotlib.style.context(["default", STYLE]):
        return FIGURES[name](Path(results))


def write(results: str | Path, out: str | Path) -> list[Path]:
    """Every figure of :data:`FIGURES` as ``out/NAME`` (the folder is created); the paths written."""
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise UserError(f"--results {results}: no such folder (run from the repository root or name the folder)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FIGURES:
        figure = render(results, name)
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
