"""The figures a scaling study reads: frontier scatters, training curves per shape, the compression frontier,
downstream bars and per-run estimates against their baselines.

Every function draws on a given matplotlib ``Axes`` (or a new figure's) and returns it; nothing calls
``show()`` or picks a backend, so the same code works under Agg in tests and inline in a notebook. A study's
tables hold means over pretraining seeds beside a ``COLUMN_se`` standard error (:mod:`scaling.analysis.studies`):
where that column is there, it is drawn as an error bar (none with one seed, whose error is NaN).
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
    error: str | None = None,
) -> Axes:
    """Scatter of quality against cost with the Pareto step line; efficient points filled, every point labelled.
    ``error`` names a column of standard errors of ``quality``, drawn as vertical bars (the frontier itself is
    read on the means)."""
    require_columns(table, (cost, quality, label, *([error] if error else [])), f"frontier of {quality} on {cost}")
    ax = _axes(ax)
    c, q = table[cost].to_numpy(float), table[quality].to_numpy(float)
    if error:
        ax.errorbar(c, q, yerr=table[error].to_numpy(float), fmt="none", ecolor=color, alpha=0.6, capsize=3)
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
    seed: str = "seed",
    ax: Axes | None = None,
    logx: bool = False,
) -> Axes:
    """One line per ``by`` value of ``y`` against ``x`` (``seconds``, ``flops``, ``tokens`` or ``step``).

    Where a ``by`` value has several seeds (a ``seed`` column), each seed is a thin line in that run's colour and
    the labelled line is their mean (:func:`mean_curve`), so the spread between seeds stays visible."""
    require_columns(curves, (by, x, y), f"{y} against {x}")
    ax = _axes(ax)
    for i, (name, curve) in enumerate(curves.groupby(by, sort=False)):
        color = f"C{i % 10}"
        n = curve[seed].nunique() if seed in curve else 1
        if n > 1:
            for _, one in curve.groupby(seed, sort=True):
                one = one[[x, y]].dropna().sort_values(x)
                ax.plot(one[x], one[y], color=color, linewidth=0.7, alpha=0.35)
        line = mean_curve(curve, x, y, seed=seed) if n > 1 else curve[[x, y]].dropna().sort_values(x)
        ax.plot(line[x], line[y], marker=".", color=color, label=f"{name} (mean of {n} seeds)" if n > 1 else str(name))
    ax.set_xscale("log" if logx else "linear")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    return ax


def mean_curve(curve: pd.DataFrame, x: str, y: str, *, seed: str = "seed", step: str = "step") -> pd.DataFrame:
    """``x`` and ``y`` averaged over seeds at each ``step`` every seed logged (at each ``x`` where there is no
    ``step`` column): the mean time or FLOPs at which step k was reached, against the mean loss there. Steps only
    some seeds reached (a wall-clock budget ends each seed at a different step) are left out."""
    key = step if step in curve else x
    rows = curve[list(dict.fromkeys([key, x, y, seed]))].dropna(subset=[x, y])
    complete = rows.groupby(key)[seed].nunique() == rows[seed].nunique()
    rows = rows[rows[key].isin(complete[complete].index)]
    if key == x:
        return rows.groupby(x, as_index=False)[y].mean()
    return rows.groupby(key, as_index=False)[[x, y]].mean().sort_values(x)


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
    metrics: list[str],
    *,
    label: str = "run",
    constant: str = "constant answer",
    ax: Axes | None = None,
) -> Axes:
    """Grouped bars of a downstream table (``studies.downstream_tables``: a row per run, columns ``METRIC`` and
    ``METRIC_se``): one group per run, one bar per metric with its standard error over pretraining seeds, and a
    dashed line in the metric's colour at the row labelled ``constant`` (that metric's best constant answer): a bar
    at its line learned nothing a one-class answer would not."""
    require_columns(table, (label, *metrics), "downstream scores")
    ax = _axes(ax)
    is_constant = table[label].astype(str) == constant
    bars, best = table[~is_constant], table[is_constant]
    x = np.arange(len(bars))
    width = 0.8 / max(len(metrics), 1)
    for i, metric in enumerate(metrics):
        offset = (i - (len(metrics) - 1) / 2) * width
        error = bars[f"{metric}_se"].to_numpy(float) if f"{metric}_se" in bars else None
        values = bars[metric].to_numpy(float)
        ax.bar(x + offset, values, width, yerr=error, capsize=3, label=metric, color=f"C{i}", alpha=0.75)
        if not best.empty and np.isfinite(best[metric].iloc[0]):
            value = float(best[metric].iloc[0])
            ax.axhline(value, color=f"C{i}", linestyle="--", linewidth=1.2, label=f"{metric}: best constant answer")
    ax.set_xticks(x, bars[label].astype(str), rotation=30, ha="right")
    ax.set_ylabel("downstream score")
    ax.legend(fontsize=8)
    return ax


def estimates(
    table: pd.DataFrame,
    column: str,
    *,
    label: str = "run",
    error: str | None = None,
    references: pd.DataFrame | None = None,
    ax: Axes | None = None,
    color: str = "C0",
) -> Axes:
    """One point per row of ``table`` (a mean over seeds) with its standard-error bar (``error``; by default
    ``COLUMN_se`` where the table has it), and, from ``references`` (columns ``label``, ``reference``, ``value``),
    a dashed tick across each row's slot at each value of its own, one colour per reference — e.g. each run's final
    eval loss against the trivial baselines of the task it trained on (runs of one task share a line)."""
    require_columns(table, (label, column), f"{column} per {label}")
    ax = _axes(ax)
    error = error or (f"{column}_se" if f"{column}_se" in table else None)
    x = np.arange(len(table))
    yerr = table[error].to_numpy(float) if error else None
    ax.errorbar(x, table[column].to_numpy(float), yerr=yerr, fmt="o", color=color, capsize=4, label=column)
    if references is not None and not references.empty:
        require_columns(references, (label, "reference", "value"), f"references of {column}")
        slot = dict(zip(table[label], x))
        for j, (name, rows) in enumerate(references.groupby("reference", sort=False)):
            rows = rows[rows[label].isin(slot)]
            at = np.array([slot[r] for r in rows[label]], dtype=float)
            ax.hlines(rows["value"], at - 0.45, at + 0.45, colors=f"C{j + 1}", linestyles="--", label=str(name))
    ax.set_xticks(x, table[label].astype(str), rotation=30, ha="right")
    ax.set_xlim(-0.6, len(table) - 0.4)
    ax.set_ylabel(column)
    ax.legend(fontsize=8)
    return ax
