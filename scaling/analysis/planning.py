"""Loss laws for planning a run: L(N, D) fitted from finished runs (or a published one), with its bootstrap
interval, the box of (N, D) it was fitted on, and how far a prediction lies outside that box.

A law here is Hoffmann et al.'s ``L(N, D) = E + A/N^α + B/D^β`` (:mod:`scaling.analysis.fits`, approach 3),
N the parameters and D the training tokens as the trainer counts them (batch × (inputs + targets) per step). The
points are every logged step of the runs (:func:`points`): training curves give many (N, D, loss) triples per run,
which is what lets a handful of runs pin down both terms. :data:`PUBLISHED` is the law to use when no runs exist:
Hoffmann et al.'s own constants, a decoder-only model on MassiveText — its losses are in *its* units (another
tokenizer and corpus), so use it to rank shapes, not to read off a loss.

This module is what :mod:`scaling.experiments.plan` (which knows shapes, FLOPs and throughput) asks about the
law; like the rest of :mod:`scaling.analysis` it imports numpy, pandas and matplotlib only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from scaling.analysis import fits, runs, studies
from scaling.errors import UserError

LEVEL = 0.9  # the bootstrap interval: 5th to 95th percentile of the resampled fits' predictions
MAX_EXPONENT = float(fits.GRID_EXPONENTS.max())  # steeper than every start of Hoffmann et al.'s grid: not pinned down
POINT_COLUMNS = ("params", "tokens")
LABELLED = 3  # the plot names the best few candidates


@dataclasses.dataclass(frozen=True)
class Law:
    """A fitted (or published) L(N, D) and what it was fitted on.

    ``samples``: bootstrap refits (columns E, A, B, alpha, beta), None without data. ``compute_range``: the
    smallest and largest training FLOPs among the points (the trainer's count; 6·N·D where a table has none),
    None when unknown.
    """

    constants: Mapping[str, float]
    source: str
    params_range: tuple[float, float]
    tokens_range: tuple[float, float]
    compute_range: tuple[float, float] | None = None
    samples: pd.DataFrame | None = None
    points: int = 0

    def predict(self, params: Sequence[float] | float, tokens: Sequence[float] | float) -> np.ndarray:
        """The law's loss at (N, D)."""
        return fits.chinchilla(self.constants, params, tokens)

    def interval(
        self, params: Sequence[float] | float, tokens: Sequence[float] | float, level: float = LEVEL
    ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high): the central ``level`` of the bootstrap fits' predictions; NaN without bootstrap fits.

        A resample whose prediction is not finite (a degenerate refit) counts as +inf, so it widens the upper end
        instead of silently narrowing the interval.
        """
        n, d = np.broadcast_arrays(np.asarray(params, dtype=float), np.asarray(tokens, dtype=float))
        if self.samples is None or self.samples.empty:
            return np.full(n.shape, np.nan), np.full(n.shape, np.nan)
        with np.errstate(all="ignore"):
            predictions = np.stack([fits.chinchilla(row, n, d) for row in self.samples.to_dict("records")])
        predictions = np.where(np.isfinite(predictions), predictions, np.inf)
        tail = (1.0 - level) / 2
        low, high = np.quantile(predictions, [tail, 1.0 - tail], axis=0, method="inverted_cdf")
        return low, high

    def outside(
        self, params: Sequence[float] | float, tokens: Sequence[float] | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """How far (N, D) lie outside the fitted box, as signed log10 factors: 0 inside, +x above the largest
        fitted value by 10^x, −x below the smallest by 10^x."""
        return beyond(params, self.params_range), beyond(tokens, self.tokens_range)

    def compute_optimal(self, flops: float) -> dict[str, float]:
        """Hoffmann et al.'s closed-form optimum at ``flops`` (C = 6·N·D): N_opt, D_opt, its loss, and the
        bootstrap interval of N_opt (NaN without bootstrap fits)."""
        best = fits.compute_optimal(self.constants, flops)
        n_opt, d_opt = float(best["N_opt"]), float(best["D_opt"])
        low = high = math.nan
        if self.samples is not None and not self.samples.empty:
            with np.errstate(all="ignore"):
                found = np.array([fits.compute_optimal(row, flops)["N_opt"] for row in self.samples.to_dict("records")])
            found = np.where(np.isfinite(found), found, np.inf)
            tail = (1.0 - LEVEL) / 2
            low, high = (float(v) for v in np.quantile(found, [tail, 1 - tail], method="inverted_cdf"))
        return {
            "N_opt": n_opt,
            "D_opt": d_opt,
            "loss": float(self.predict(n_opt, d_opt)),
            "N_opt_low": low,
            "N_opt_high": high,
        }

    def describe(self) -> str:
        """One line: the constants, where they came from and the box they were fitted on."""
        c = self.constants
        law = (
            f"L(N, D) = {c['E']:.3g} + {c['A']:.4g}/N^{c['alpha']:.3g} + {c['B']:.4g}/D^{c['beta']:.3g} "
            f"(Hoffmann et al. 2022 form)"
        )
        box = (
            f"N {self.params_range[0]:.3g}–{self.params_range[1]:.3g} parameters, "
            f"D {self.tokens_range[0]:.3g}–{self.tokens_range[1]:.3g} tokens"
        )
        fitted = f"fitted on {self.points} points, {box}" if self.points else f"fitted on {box}"
        if self.compute_range is not None:
            fitted += f", {self.compute_range[0]:.3g}–{self.compute_range[1]:.3g} FLOPs"
        return f"{law}; {self.source}; {fitted}"


PUBLISHED = Law(
    constants=fits.CHINCHILLA_PUBLISHED,
    source=(
        "published constants of Hoffmann et al. (2022), Training Compute-Optimal Large Language Models, Eq. 10 "
        "(decoder-only LMs on MassiveText: losses in its units, not this task's; rank with it, fit your own "
        "with --law for losses)"
    ),
    # The paper's abstract: "over 400 language models ranging from 70 million to over 16 billion parameters
    # on 5 to 500 billion tokens".
    params_range=(7e7, 1.6e10),
    tokens_range=(5e9, 5e11),
)


def beyond(values: Sequence[float] | float, bounds: tuple[float, float]) -> np.ndarray:
    """Signed log10 factor by which ``values`` lie outside ``bounds`` (0 inside; see :meth:`Law.outside`)."""
    v = np.log10(np.asarray(values, dtype=float))
    low, high = np.log10(bounds[0]), np.log10(bounds[1])
    return np.where(v > high, v - high, np.where(v < low, v - low, 0.0))


def factor_text(log10: float) -> str:
    """``10^2.3×`` for a log10 factor (``4.1×`` below 10×, where a power of ten reads worse)."""
    size = abs(log10)
    return f"{10**size:.3g}×" if size < 1 else f"10^{size:.1f}×"


# ---------------------------------------------------------------------------------------------- points


def points(paths: Iterable[str | Path], loss: str = "loss") -> pd.DataFrame:
    """(N, D, loss) points of a law: columns ``source``, ``run``, ``params``, ``tokens``, ``flops``, ``loss``.

    Each path is a study's results folder (``runs.csv`` + ``curves.csv``, from ``python -m scaling.study``), a
    sweep directory or workdir (every logged step of ``metrics.jsonl``; params from ``summary.json``), or a CSV
    with one point per row and columns ``params``, ``tokens`` and the ``loss`` column (``flops`` optional).
    ``loss`` names the column: ``loss`` (training loss, logged every few steps) or ``eval_loss``. Rows whose loss
    is missing or not positive are dropped (a diverged run has no place in a fit).
    """
    frames = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"--law={path}: no such sweep directory, workdir, study folder or .csv table")
        if path.is_dir() and (path / "study.json").is_file():
            data = studies.load(path)
            table = _with_params(data["curves"], data["runs"], path)
        elif path.is_dir():
            table = _with_params(runs.load_curves(path), runs.load_runs(path), path)
        elif path.suffix == ".csv":
            table = runs.read_table(path)
            if "run" not in table:
                table["run"] = [f"row {i + 1}" for i in range(len(table))]
        else:
            raise runs.RunError(f"--law={path}: no such sweep directory, workdir, study folder or .csv table")
        runs.require_columns(table, (*POINT_COLUMNS, loss), f"--law={path}")
        flops = table["flops"] if "flops" in table else pd.Series(np.nan, index=table.index)
        frame = pd.DataFrame(
            {
                "source": str(path),
                "run": table["run"].astype(str),
                "params": table["params"].astype(float),
                "tokens": table["tokens"].astype(float),
                "flops": flops.astype(float),
                "loss": table[loss].astype(float),
            }
        )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    keep = table[["params", "tokens", "loss"]].gt(0).all(axis=1) & np.isfinite(table[["params", "tokens", "loss"]]).all(
        axis=1
    )
    return table[keep].reset_index(drop=True)


def _with_params(curves: pd.DataFrame, table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Curves joined with each run's parameter count (on ``run``, and ``seed`` where both tables have it)."""
    runs.require_columns(table, ("run", "params"), f"--law={path} (runs)")
    runs.require_columns(curves, ("run",), f"--law={path} (curves)")
    keys = ["run"] + (["seed"] if "seed" in curves and "seed" in table else [])
    return curves.merge(table[[*keys, "params"]], on=keys, how="inner")


# ------------------------------------------------------------------------------------------------- fits


def fit(table: pd.DataFrame, *, samples: int = 50, seed: int = 0, source: str = "") -> Law:
    """The law through :func:`points`' table, with ``samples`` bootstrap refits (0: no interval).

    A fit that leaves a term unidentified — an exponent at or below zero or steeper than :data:`MAX_EXPONENT`,
    or an infinite coefficient, which is what points spanning too few sizes or token counts give — is refused
    with the spans that caused it: its predictions would be noise.
    """
    if len(table) < 5:
        raise UserError(
            f"--law: {len(table)} usable point(s) in {source or 'the tables'}; L(N, D) has 5 constants, so give runs "
            f"with at least 5 logged (params, tokens, loss) points, or leave out --law for the published law"
        )
    n, d, y = table["params"].to_numpy(), table["tokens"].to_numpy(), table["loss"].to_numpy()
    with np.errstate(over="ignore"):
        constants = fits.fit_chinchilla(n, d, y)
    check_identified(constants, n, d, source)
    boot = None
    if samples > 0:
        with np.errstate(all="ignore"):
            boot = fits.bootstrap(n, d, y, samples=samples, seed=seed, fit=constants)
    flops = table["flops"].to_numpy(dtype=float)
    compute = np.where(np.isfinite(flops) & (flops > 0), flops, 6.0 * n * d)
    runs_ = table["run"].nunique()
    counted = "" if np.isfinite(flops).all() else " (compute as 6·N·D where the table has no flops)"
    return Law(
        constants=constants,
        source=f"fitted on {source or 'the given runs'} ({runs_} run(s)){counted}",
        params_range=(float(n.min()), float(n.max())),
        tokens_range=(float(d.min()), float(d.max())),
        compute_range=(float(compute.min()), float(compute.max())),
        samples=boot,
        points=len(table),
    )


def check_identified(constants: Mapping[str, float], params: np.ndarray, tokens: np.ndarray, source: str = "") -> None:
    """Refuses a fit whose parameter or data term the points do not pin down (see :func:`fit`)."""
    problems = []
    for term, exponent, coefficient, values, what in (
        ("parameter", "alpha", "A", params, "parameter counts"),
        ("data", "beta", "B", tokens, "token counts"),
    ):
        value, scale = constants[exponent], constants[coefficient]
        if not (math.isfinite(value) and math.isfinite(scale)) or not 0 < value <= MAX_EXPONENT:
            span = float(np.max(values) / np.min(values))
            problems.append(
                f"the {term} term is not pinned down ({exponent} = {value:.3g}, {coefficient} = {scale:.3g}; "
                f"the points' {what} span only {span:.3g}×)"
            )
    if problems:
        raise UserError(
            f"--law: the fit to {source or 'the given runs'} is degenerate: {'; '.join(problems)}. Add runs of "
            f"more sizes and lengths, or leave out --law for the published law"
        )


# ------------------------------------------------------------------------------------------------- plot


def plot(
    table: pd.DataFrame,
    law: Law,
    *,
    title: str,
    curve: tuple[np.ndarray, np.ndarray] | None = None,
    optimum: Mapping[str, float] | None = None,
    ax: Axes,
) -> Axes:
    """Predicted loss against parameters for every candidate (bootstrap interval as error bars, the best one
    starred, the best few named), the law along the budget (``curve``: (N, loss)), its compute-optimal N
    (``optimum``) and the fitted range of N where the picture shows it."""
    x = table["params"].to_numpy(float)
    y = table["predicted_loss"].to_numpy(float)
    low, high = table["predicted_loss_low"].to_numpy(float), table["predicted_loss_high"].to_numpy(float)
    bars = np.vstack([np.nan_to_num(y - low, nan=0.0, posinf=0.0), np.nan_to_num(high - y, nan=0.0, posinf=0.0)])
    ax.set_xscale("log")
    ax.errorbar(x, y, yerr=np.clip(bars, 0, None), fmt="o", color="C0", capsize=3, label="candidates")
    ax.scatter(x[:1], y[:1], marker="*", s=180, color="C3", zorder=3, label=f"best: {table['shape'].iloc[0]}")
    for xi, yi, name in list(zip(x, y, table["shape"]))[:LABELLED]:
        ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if curve is not None:
        ax.plot(curve[0], curve[1], color="C1", alpha=0.7, label="law along the budget")
    left, right = ax.get_xlim()
    if optimum is not None:
        n_opt = optimum["N_opt"]
        shown = left <= n_opt <= right
        ax.axvline(
            n_opt if shown else right,
            color="C2",
            linestyle="--" if shown else ":",
            label=f"law's N_opt {n_opt:.3g} (C = 6ND){'' if shown else ', off the picture'}",
        )
    lo, hi = max(law.params_range[0], left), min(law.params_range[1], right)
    if lo < hi:  # the fitted range, where it overlaps the picture
        ax.axvspan(lo, hi, color="0.9", zorder=0, label="fitted N range")
    ax.set_xlim(left, right)
    ax.set_xlabel("parameters")
    ax.set_ylabel("predicted loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax
