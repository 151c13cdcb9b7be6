"""Seeds, standard errors and verdicts: how a study decides whether it reproduced a paper's claim.

A finding rests on a difference between two runs (or a run and a baseline) measured over pretraining seeds.
:func:`across_seeds` gives each run's mean and standard error; :func:`difference` gives the difference of two
runs with its own error — paired by seed when both ran the same seeds (the same seed means the same data order,
so pairing removes that shared noise), Welch's otherwise — and a 95% Student-t interval. :func:`verdict` reads
the interval against the direction the paper claims: *reproduced* when it excludes zero on the claimed side,
*contradicted* when it excludes zero on the other side, *inconclusive* otherwise, and always inconclusive with
fewer than two seeds a side, since one run has no error to decide with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean over seeds, its standard error (NaN with one seed) and the number of seeds."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f}" if math.isnan(self.se) else f"{self.mean:.3f} ± {self.se:.3f}"


@dataclasses.dataclass(frozen=True)
class Difference:
    """``a − b``: mean, standard error, degrees of freedom, the 95% interval, and whether it was paired."""

    mean: float
    se: float
    df: float
    low: float
    high: float
    paired: bool
    n_a: int
    n_b: int

    def __str__(self) -> str:
        if math.isnan(self.se):
            return f"{self.mean:+.3f} (one seed: no error)"
        how = "paired by seed" if self.paired else "Welch"
        return f"{self.mean:+.3f} ± {self.se:.3f} (95% CI {self.low:+.3f} to {self.high:+.3f}, {how})"


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and standard error of the mean of finite ``values``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return Estimate(math.nan, math.nan, 0)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return Estimate(float(v.mean()), se, int(v.size))


def across_seeds(table: pd.DataFrame, column: str, by: str = "run", seed: str = "seed") -> pd.DataFrame:
    """Per ``by`` value: ``mean``, ``se`` and ``n`` of ``column`` over seeds (order kept)."""
    rows = {}
    for key, group in table.groupby(by, sort=False):
        e = estimate(group[column].tolist())
        rows[key] = {"mean": e.mean, "se": e.se, "n": e.n}
    return pd.DataFrame.from_dict(rows, orient="index")


def _by_seed(table: pd.DataFrame, run: str, column: str, by: str, seed: str) -> pd.Series:
    rows = table[table[by] == run]
    return rows.set_index(seed)[column].astype(float).dropna() if seed in rows else rows[column].astype(float)


def difference(table: pd.DataFrame, a: str, b: str, column: str, by: str = "run", seed: str = "seed") -> Difference:
    """``column`` of run ``a`` minus run ``b`` over seeds, paired when both have the same seeds."""
    va, vb = _by_seed(table, a, column, by, seed), _by_seed(table, b, column, by, seed)
    if va.empty or vb.empty:
        raise KeyError(f"no {column} for {a if va.empty else b}")
    paired = seed in table and len(va) > 1 and sorted(va.index) == sorted(vb.index)
    if paired:
        d = estimate((va - vb.loc[va.index]).tolist())
        mean, se, df = d.mean, d.se, d.n - 1
    else:
        ea, eb = estimate(va.tolist()), estimate(vb.tolist())
        mean, se = ea.mean - eb.mean, math.hypot(ea.se, eb.se)
        df = _welch_df(ea, eb)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se if np.isfinite(se) and df > 0 else math.nan
    return Difference(mean, se, df, mean - half, mean + half, paired, len(va), len(vb))


def against(values: Sequence[float], reference: float) -> Difference:
    """Mean of ``values`` minus a fixed ``reference`` (a baseline without noise), with the one-sample interval."""
    e = estimate(values)
    df = e.n - 1
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * e.se if e.n > 1 else math.nan
    d = e.mean - reference
    return Difference(d, e.se, df, d - half, d + half, False, e.n, 0)


def _welch_df(a: Estimate, b: Estimate) -> float:
    if a.n < 2 or b.n < 2:
        return math.nan
    va, vb = a.se**2, b.se**2
    if va + vb == 0:
        return float(a.n + b.n - 2)
    return (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))


def verdict(d: Difference, claimed_sign: int) -> str:
    """Reproduced / contradicted / inconclusive for a claim that the difference is ``claimed_sign`` (+1 or −1)."""
    if claimed_sign not in (1, -1):
        raise ValueError(f"claimed_sign = {claimed_sign}: use +1 (a − b > 0) or −1 (a − b < 0)")
    if not np.isfinite(d.low) or not np.isfinite(d.high):
        return INCONCLUSIVE
    if d.low > 0 or d.high < 0:
        return REPRODUCED if (d.low > 0) == (claimed_sign > 0) else CONTRADICTED
    return INCONCLUSIVE
