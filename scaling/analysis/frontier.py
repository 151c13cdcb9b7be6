"""Pareto frontiers of quality against a cost, and "same budget" comparisons along training curves.

A configuration is *efficient* on an axis when no other one is at least as good on both cost and quality and
strictly better on one (*Scale Efficiently* Figures 2–7 and Table 4 read their models this way, against
params, FLOPs and throughput). Lower cost is always better: pass ``1 / steps_per_second`` (seconds per step)
or ``-throughput`` for a throughput axis — any strictly decreasing transform gives the same frontier.

"Same budget" compares runs at equal wall-clock seconds or equal FLOPs along their training curves
(*Train Large, Then Compress* Figures 2–5, 10): :func:`at_budget` reads each run's quality at a given amount
of its cumulative ``seconds``/``flops`` by interpolating between logged steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from scaling.analysis.runs import require_columns


def pareto(costs: Sequence[float], qualities: Sequence[float], higher_is_better: bool = True) -> np.ndarray:
    """Boolean mask of the efficient points: lower cost is better; quality is better higher (or lower).

    Point i is dominated when some j has cost_j <= cost_i and quality_j at least as good, and is strictly
    better on one of them. Exact duplicates do not dominate each other (both stay efficient); of two points with
    equal cost, only the better quality is efficient. A point with a NaN cost or quality is never efficient and
    dominates nothing (a diverged run has no quality to compare).
    """
    c = np.asarray(costs, dtype=float)
    q = np.asarray(qualities, dtype=float)
    if c.ndim != 1 or c.shape != q.shape:
        raise ValueError(f"costs and qualities must be 1-D and of one length, got shapes {c.shape} and {q.shape}")
    if not higher_is_better:
        q = -q
    valid = ~(np.isnan(c) | np.isnan(q))
    cv, qv = c[valid], q[valid]
    # dominated[i] = any j: c_j <= c_i and q_j >= q_i and (c_j < c_i or q_j > q_i); O(n^2), fine for sweeps.
    no_worse = (cv[None, :] <= cv[:, None]) & (qv[None, :] >= qv[:, None])
    better = (cv[None, :] < cv[:, None]) | (qv[None, :] > qv[:, None])
    mask = np.zeros(c.shape, dtype=bool)
    mask[valid] = ~np.any(no_worse & better, axis=1)
    return mask


def staircase(
    costs: Sequence[float], qualities: Sequence[float], higher_is_better: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The frontier as a step line (x, y) through the efficient points, sorted by cost: best quality so far."""
    c = np.asarray(costs, dtype=float)
    q = np.asarray(qualities, dtype=float)
    mask = pareto(c, q, higher_is_better)
    order = np.argsort(c[mask], kind="stable")
    return c[mask][order], q[mask][order]


def frontier_table(table: pd.DataFrame, cost: str, quality: str, higher_is_better: bool = True) -> pd.DataFrame:
    """``table`` sorted by ``cost`` with an ``efficient`` column for that (cost, quality) pair."""
    require_columns(table, (cost, quality), f"frontier of {quality} against {cost}")
    out = table.assign(efficient=pareto(table[cost], table[quality], higher_is_better))
    return out.sort_values(cost, kind="stable", ignore_index=True)


def efficiency(
    table: pd.DataFrame, axes: Mapping[str, str], quality: str, higher_is_better: bool = True, label: str = "run"
) -> pd.DataFrame:
    """Which configuration is efficient on which axis: one boolean column per named cost axis.

    ``axes`` maps a column title to a cost column, e.g. ``{"params": "params", "FLOPs": "flops_per_step",
    "time": "seconds_per_step"}`` — the reading of *Scale Efficiently* Table 4, where a model can be on the
    parameter frontier and off the speed one (DeepNarrow).
    """
    require_columns(table, (label, quality, *axes.values()), "efficiency table")
    out = table[list(dict.fromkeys([label, quality, *axes.values()]))].copy()
    for title, column in axes.items():
        out[f"efficient_{title}"] = pareto(table[column], table[quality], higher_is_better)
    return out


def at_budget(
    curves: pd.DataFrame, budget: float, x: str = "seconds", y: str = "loss", by: str = "run"
) -> pd.DataFrame:
    """Each run's ``y`` at ``x == budget`` (linear interpolation between logged steps), for equal-budget rankings.

    Runs whose curve does not reach ``budget`` get NaN (extrapolating a run past its end would invent data);
    ``reached`` says which. Rows are sorted best first for a loss (ascending ``y``).
    """
    require_columns(curves, (by, x, y), "training curves")
    rows = []
    for name, curve in curves.groupby(by, sort=False):
        curve = curve[[x, y]].dropna().sort_values(x)
        xs, ys = curve[x].to_numpy(), curve[y].to_numpy()
        reached = len(xs) > 0 and xs[0] <= budget <= xs[-1]
        value = float(np.interp(budget, xs, ys)) if reached else np.nan
        rows.append({by: name, x: budget, y: value, "reached": reached})
    return pd.DataFrame(rows).sort_values(y, ignore_index=True)


def same_budget(
    curves: pd.DataFrame, budgets: Sequence[float], x: str = "seconds", y: str = "loss", by: str = "run"
) -> pd.DataFrame:
    """A run × budget table of ``y`` at each budget: which configuration wins at which amount of ``x``."""
    frames = [at_budget(curves, b, x, y, by) for b in budgets]
    return pd.concat(frames, ignore_index=True).pivot(index=by, columns=x, values=y)
