"""The figures a scaling study reads: frontier scatters, training curves per shape, the compression frontier.

Every function draws on a given matplotlib ``Axes`` (or a new figure's) and returns it; nothing calls
``show()`` or picks a backend, so the same code works under Agg in tests and inline in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from scaling.analysis import fits
from scaling.analysis.frontier import pareto, staircase
from scaling.analysis.runs import require_columns


def _axes(ax: Axes | None) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=(6, 4))[1]


def frontier(
    table: pd.DataFrame,
    cost: str,
    quality: str,
    *,
    higher_is_better: bool = True,
    label: str = "run",
    ax: Axes | None = None,
    logx: bool = True,
    logy: bool = False,
    color: str = "C0",
    name: str | None = None,
) -> Axes:
    """Scatter of quality against cost with the Pareto step line; efficient points filled, every point labelled."""
    require_columns(table, (cost, quality, label), f"frontier plot of {quality} against {cost}")
    ax = _axes(ax)
    c, q = table[cost].to_numpy(float), table[quality].to_numpy(float)
    mask = pareto(c, q, higher_is_better)
    ax.scatter(c[~mask], q[~mask], facecolors="none", edgecolors=color)
    ax.scatter(c[mask], q[mask], color=color, label=f"{name or quality} (efficient filled)")
    xs, ys = staircase(c, q, higher_is_better)
    ax.step(xs, ys, where="post", color=color, alpha=0.6)
    for x, y, text in zip(c, q, table[label].astype(str)):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(cost)
    ax.set_ylabel(quality)
    ax.legend(fontsize=8)
    return ax


def curves(
    curves: pd.DataFrame,
    x: str = "seconds",
    y: str = "loss",
    *,
    by: str = "shape",
    ax: Axes | None = None,
    logx: bool = False,
) -> Axes:
    """One line per ``by`` value of ``y`` against ``x`` (``seconds``, ``flops``, ``tokens`` or ``step``)."""
    require_columns(curves, (by, x, y), f"{y} against {x}")
    ax = _axes(ax)
    for name, curve in curves.groupby(by, sort=False):
        curve = curve[[x, y]].dropna().sort_values(x)
        ax.plot(curve[x], curve[y], marker=".", label=str(name))
    ax.set_xscale("log" if logx else "linear")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    return ax


def compression(
    table: pd.DataFrame, *, memory: str = "memory_bits", score: str = "score", by: str = "model", ax: Axes | None = None
) -> Axes:
    """Score against test-time memory, one colour per ``by`` (model size), with the frontier over all of them
    (*Train Large, Then Compress* Figures 6–7 and 12: large models compressed hard sit on it)."""
    require_columns(table, (memory, score, by), "compression frontier")
    ax = _axes(ax)
    for name, group in table.groupby(by, sort=False):
        ax.scatter(group[memory], group[score], label=str(name), s=18)
    xs, ys = staircase(table[memory], table[score], higher_is_better=True)
    ax.step(xs, ys, where="post", color="black", alpha=0.6, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel(f"{memory} (test-time memory)")
    ax.set_ylabel(score)
    ax.legend(fontsize=8)
    return ax


def power_law_fit(
    x: np.ndarray,
    y: np.ndarray,
    fit: Mapping[str, float],
    *,
    ax: Axes | None = None,
    xlabel: str = "x",
    ylabel: str = "loss",
) -> Axes:
    """Points and the fitted E + A·x^-α, on log x, with the constants in the legend."""
    ax = _axes(ax)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    grid = np.geomspace(x.min(), x.max(), 100)
    ax.scatter(x, y, color="C0")
    ax.plot(grid, fits.power_law(fit, grid), color="C1", label=f"{fit['E']:.3g} + {fit['A']:.3g}·x^-{fit['alpha']:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def scores(
    table: pd.DataFrame,
    columns: list[str],
    *,
    label: str = "run",
    baselines: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Grouped bars of downstream scores (one group per ``label``, one bar per column), with a dashed line at
    each task's best constant answer (``baselines``: columns ``task``, ``score``): a bar at its line learned
    nothing."""
    require_columns(table, (label, *columns), "downstream scores")
    ax = _axes(ax)
    x = np.arange(len(table))
    width = 0.8 / max(len(columns), 1)
    for i, column in enumerate(columns):
        offset = (i - (len(columns) - 1) / 2) * width
        ax.bar(x + offset, table[column].to_numpy(float), width, label=column, color=f"C{i}")
    if baselines is not None:
        for row in baselines.itertuples():
            ax.axhline(row.score, color="black", linestyle="--", linewidth=1, label=f"constant answer ({row.task})")
    ax.set_xticks(x, table[label].astype(str), rotation=30, ha="right")
    ax.set_ylabel("downstream score")
    ax.legend(fontsize=8)
    return ax
