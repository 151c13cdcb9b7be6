"""Which shape to train with a budget: candidate shapes × a loss law × what each costs → a ranked table.

    python -m scaling.plan --budget=flops:1e19 --base=small --op=nl --values=4,8,12,16,24 \\
        [--shapes=NAME,...] [--config=FILE] [--law=DIR_OR_CSV ...] [--profile=CSV] [--json] [--plot=PNG] \\
        [--emit_config=PATH]

**Candidates** are spelled as :mod:`scaling.experiments.sweep` spells a scan — a base shape and scaling operators
with values (their grid, :func:`scaling.experiments.sweep.expand`), the base itself included — and/or a list of
names. Each is trained with one recipe (``--config``; default: the paper recipe of the base's family,
:func:`scaling.experiments.profile.default_recipe`), which fixes batch size and sequence lengths, so each
candidate's parameters and training FLOPs per step are counted exactly (:mod:`scaling.accounting`, the trainer's
own count).

**The budget** (``flops:``, ``tokens:``, ``steps:``, ``seconds:`` or ``hours:``, :func:`scaling.budget.parse`)
becomes, per candidate, the steps the trainer would run (it stops once the budget is spent: ⌈budget / cost per
step⌉) and the tokens those steps read. A time budget needs steps/s: measured (a ``python -m scaling.profile`` CSV
for this device and recipe, or ``--measure`` to profile now), or — for a shape with none — estimated from its
FLOPs per step at the best FLOP/s measured on the profiled shapes (optimistic), or refused; the table says which.

**The law** predicts each candidate's loss at its (params, tokens) (:mod:`scaling.analysis.planning`), with the
bootstrap interval, and says how far outside the fitted range each prediction and the budget lie.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
import pandas as pd

from scaling import accounting, shapes
from scaling.analysis import planning, runs
from scaling.errors import UserError
from scaling.experiments import configfiles, sweep

PROFILE_COLUMNS = ("shape", "steps_per_second", "achieved_flops_per_second", "batch_size", "inputs_length")
PROFILE_COLUMNS += ("targets_length", "device_kind")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A shape under the recipe: its validated training config and what one step costs."""

    name: str
    config: ml_collections.ConfigDict
    params: int
    sequence: accounting.SequenceLengths
    flops_per_step: float

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.sequence.tokens

    @property
    def flops_per_token(self) -> float:
        return self.flops_per_step / self.tokens_per_step


@dataclasses.dataclass(frozen=True)
class Plan:
    """The ranked table (best first), what it rests on, and what it could not rank."""

    table: pd.DataFrame
    budget: tuple[str, float]
    law: planning.Law
    notes: tuple[str, ...]
    refused: tuple[str, ...] = ()
    optimum: dict[str, float] | None = None  # the law's compute-optimal point at the budget's FLOPs
    optimum_flops: float | None = None


# ------------------------------------------------------------------------------------------- candidates


def sequence_lengths(config: ml_collections.ConfigDict, shape: shapes.Shape) -> accounting.SequenceLengths:
    """The tokens per example the trainer would count for ``shape`` under ``config``'s task (as its build_run)."""
    from scaling.data import tasks

    spec = tasks.task_spec(config.data.task)
    mlm = spec.objective == "mlm"
    if mlm == shape.is_encoder_decoder:
        raise UserError(
            f"{shape.name} ({shape.family}) cannot train on config.data.task = {config.data.task!r} "
            f"({spec.objective}); give a --config whose task fits the family, or candidates of one family"
        )
    if mlm:
        return accounting.SequenceLengths.default_for(shape, config.data.inputs_length, mask_rate=spec.mask_rate)
    return accounting.SequenceLengths(config.data.inputs_length, config.data.targets_length)


def candidate(config: ml_collections.ConfigDict) -> Candidate:
    """A validated config's shape and costs."""
    from scaling.training import trainer

    trainer.validate(config)
    shape = trainer.resolve_shape(config)
    sequence = sequence_lengths(config, shape)
    flops = accounting.flops_per_token(shape, sequence).per_step(config.batch_size)
    return Candidate(shape.name, config, accounting.param_counts(shape).total, sequence, flops)


def candidates(
    recipe: ml_collections.ConfigDict,
    budget: tuple[str, float],
    *,
    base: str | None = None,
    axes: Sequence[tuple[str, Sequence[str]]] = (),
    names: Sequence[str] = (),
    overrides: Sequence[tuple[str, str]] = (),
) -> list[Candidate]:
    """The base, its sweep grid (``axes``: (operator, values) pairs, crossed as ``scaling.sweep`` crosses them)
    and ``names``, each under ``recipe`` with ``overrides`` and the budget; duplicates dropped."""
    budget = (budget[0], float(budget[1]))
    configs: dict[str, ml_collections.ConfigDict] = {}
    if axes:
        spec = sweep.Sweep("", base or "", tuple((op, tuple(values)) for op, values in axes), budget, tuple(overrides))
        configs.update((point.name, point.config) for point in sweep.expand(spec, recipe))
    for name in ([base] if base else []) + list(names):
        try:
            canonical = shapes.parse(name).name
        except shapes.ShapeError as e:
            raise UserError(f"--shapes: {e}") from None
        if canonical in configs:
            continue
        config = ml_collections.ConfigDict(recipe.to_dict())
        configfiles.apply_overrides(config, overrides)
        config.model.name = canonical
        config.budget.unit, config.budget.amount = budget
        configs[canonical] = config
    if not configs:
        raise UserError("no candidate shapes: give --base (with --op/--values for a grid) and/or --shapes=NAME,...")
    return [candidate(config) for config in configs.values()]


# ------------------------------------------------------------------------------------------- throughput


def read_profile(path: str | Path, device: str | None = None) -> pd.DataFrame:
    """The rows of a ``python -m scaling.profile`` CSV for one device kind (``device``; needed when the file holds
    several)."""
    table = runs.read_table(path)
    runs.require_columns(table, PROFILE_COLUMNS, f"--profile={path}")
    kinds = sorted(table["device_kind"].astype(str).unique())
    if device is None:
        if len(kinds) > 1:
            raise UserError(f"--profile={path} holds rows of several devices {kinds}; name one with --device=KIND")
        return table
    picked = table[table["device_kind"].astype(str) == device]
    if picked.empty:
        raise UserError(f"--device={device}: {path} has no rows for it; its devices are {kinds}")
    return picked


def measured(profile: pd.DataFrame, c: Candidate) -> pd.Series | None:
    """The latest profile row of ``c``'s shape at its recipe's batch size and sequence lengths, if any."""
    rows = profile[
        (profile["shape"] == c.name)
        & (profile["batch_size"] == c.batch_size)
        & (profile["inputs_length"] == c.sequence.inputs)
        & (profile["targets_length"] == c.sequence.targets)
    ]
    return None if rows.empty else rows.iloc[-1]


# ---------------------------------------------------------------------------------------------- the plan


def _steps(unit: str, amount: float, c: Candidate, steps_per_second: float | None) -> int:
    per_step = {
        "steps": 1.0,
        "tokens": c.tokens_per_step,
        "flops": c.flops_per_step,
        "seconds": 1.0 / steps_per_second if steps_per_second else None,
    }[unit]
    return max(1, math.ceil(round(amount / per_step, 9)))  # the trainer stops once spent >= budget


def plan(
    cands: Sequence[Candidate],
    budget: tuple[str, float],
    law: planning.Law,
    *,
    profile: pd.DataFrame | None = None,
    measure: Callable[[Candidate], dict[str, Any]] | None = None,
    unmeasured: str = "estimate",
) -> Plan:
    """Ranks ``cands`` by the law's loss at what ``budget`` buys each (see the module docstring).

    ``profile``: measured rows (:func:`read_profile`); ``measure``: profiles a candidate with no row now (returns
    a row like ``scaling.profile``'s). ``unmeasured``: ``estimate`` (from the best measured FLOP/s) or ``refuse``
    a shape without measured steps/s under a time budget. The table's ``throughput`` column says where each
    steps/s came from: ``measured``, ``measured now``, ``estimated``, or empty (none, outside a time budget).
    """
    if unmeasured not in ("estimate", "refuse"):
        raise UserError(f"--unmeasured={unmeasured}: use estimate or refuse")
    unit, amount = budget
    profile = profile if profile is not None else pd.DataFrame(columns=PROFILE_COLUMNS)
    throughput: dict[str, tuple[float, str]] = {}
    for c in cands:
        row = measured(profile, c)
        if row is not None:
            throughput[c.name] = (float(row["steps_per_second"]), "measured")
        elif measure is not None:
            new = measure(c)
            profile = pd.concat([profile, pd.DataFrame([new])], ignore_index=True)
            throughput[c.name] = (float(new["steps_per_second"]), "measured now")
    notes, refused = [], []
    missing = [c for c in cands if c.name not in throughput]
    if unit == "seconds" and missing:
        if unmeasured == "refuse":
            refused = [c.name for c in missing]
        else:
            rates = profile["achieved_flops_per_second"].astype(float)
            if not rates.notna().any():
                raise UserError(
                    f"a time budget needs steps/s, and {[c.name for c in missing]} have none: give --profile=CSV "
                    f"(python -m scaling.profile NAME ... --out=CSV on this device) or --measure to profile them now"
                )
            best = rates.idxmax()
            peak = float(rates[best])
            for c in missing:
                throughput[c.name] = (peak / c.flops_per_step, "estimated")
            notes.append(
                f"estimated steps/s = FLOPs per step ÷ the best measured {peak:.3g} FLOP/s "
                f"({profile.loc[best, 'shape']}): optimistic for {', '.join(c.name for c in missing)}"
            )
    rows = []
    for c in cands:
        if c.name in refused:
            continue
        steps_per_second, source = throughput.get(c.name, (None, ""))
        steps = _steps(unit, amount, c, steps_per_second)
        rows.append(
            {
                "shape": c.name,
                "params": c.params,
                "flops_per_token": c.flops_per_token,
                "steps_per_second": steps_per_second,
                "throughput": source,
                "steps": steps,
                "tokens": steps * c.tokens_per_step,
                "flops": steps * c.flops_per_step,
                "seconds": steps / steps_per_second if steps_per_second else None,
            }
        )
    if not rows:
        raise UserError(f"every candidate was refused (no measured steps/s): {refused}; profile them or --measure")
    table = pd.DataFrame(rows)
    n, d = table["params"].to_numpy(float), table["tokens"].to_numpy(float)
    table["predicted_loss"] = law.predict(n, d)
    table["predicted_loss_low"], table["predicted_loss_high"] = law.interval(n, d)
    table["params_beyond_fit_log10"], table["tokens_beyond_fit_log10"] = law.outside(n, d)
    table = table.sort_values(["predicted_loss", "params"], ignore_index=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    notes += _extrapolation(table, budget, law)
    optimum_flops = amount if unit == "flops" else float(table["flops"].iloc[0])
    return Plan(
        table=table,
        budget=budget,
        law=law,
        notes=tuple(notes),
        refused=tuple(refused),
        optimum=law.compute_optimal(optimum_flops),
        optimum_flops=optimum_flops,
    )


def _extrapolation(table: pd.DataFrame, budget: tuple[str, float], law: planning.Law) -> list[str]:
    """Sentences on how far the budget and the candidates lie outside what the law was fitted on."""
    unit, amount = budget
    notes = []
    if law.compute_range is not None:
        spent = amount if unit == "flops" else float(table["flops"].max())
        beyond = planning.beyond(spent, law.compute_range)
        if beyond != 0:
            side = "beyond the largest" if beyond > 0 else "below the smallest"
            bound = law.compute_range[1] if beyond > 0 else law.compute_range[0]
            what = "the budget is" if unit == "flops" else "the candidates spend up to"
            notes.append(
                f"extrapolation: {what} {planning.factor_text(float(beyond))} {side} fitted compute "
                f"({bound:.3g} FLOPs): every prediction extrapolates"
            )
    for column, what, bounds in (
        ("params_beyond_fit_log10", "parameters", law.params_range),
        ("tokens_beyond_fit_log10", "tokens", law.tokens_range),
    ):
        values = table[column].to_numpy(float)
        if np.any(values != 0):
            worst = float(values[np.argmax(np.abs(values))])
            notes.append(
                f"extrapolation: {np.count_nonzero(values)} of {len(values)} candidates' {what} lie outside the "
                f"fitted {bounds[0]:.3g}–{bounds[1]:.3g}, up to {planning.factor_text(worst)} "
                f"{'above' if worst > 0 else 'below'}"
            )
    return notes


# --------------------------------------------------------------------------------------------- output


def _g(value: float | None, spec: str = ".3g") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _beyond_text(row: pd.Series) -> str:
    parts = [
        f"{what} {planning.factor_text(v)}{'↑' if v > 0 else '↓'}"
        for what, v in (("N", row.params_beyond_fit_log10), ("D", row.tokens_beyond_fit_log10))
        if v != 0
    ]
    return ", ".join(parts) or "inside"


def text(result: Plan, *, recipe: str) -> str:
    """The plan as the command prints it: header, ranked table, notes, the law's compute-optimal point."""
    unit, amount = result.budget
    t = result.table
    header = [
        f"plan: {unit}:{amount:g} over {len(t) + len(result.refused)} shape(s); recipe {recipe}",
        f"law: {result.law.describe()}",
    ]
    interval = f"{planning.LEVEL:.0%} bootstrap interval"
    columns = {
        "rank": t["rank"].astype(str),
        "shape": t["shape"],
        "params": t["params"].map(lambda v: f"{v / 1e6:,.1f}M"),
        "FLOPs/token": t["flops_per_token"].map(_g),
        "steps/s": [
            f"{_g(v)}{' (' + s + ')' if s else ''}" if v is not None and not pd.isna(v) else "–"
            for v, s in zip(t["steps_per_second"], t["throughput"])
        ],
        "steps": t["steps"].map(lambda v: f"{v:,}"),
        "tokens": t["tokens"].map(_g),
        "hours": t["seconds"].map(lambda v: _g(None if v is None or pd.isna(v) else v / 3600)),
        "predicted loss": t["predicted_loss"].map(lambda v: f"{v:.4g}"),
        interval: [
            "–" if pd.isna(lo) else f"[{lo:.4g}, {hi:.4g}]"
            for lo, hi in zip(t["predicted_loss_low"], t["predicted_loss_high"])
        ],
        "outside fit": [_beyond_text(row) for row in t.itertuples()],
    }
    table = pd.DataFrame(columns).to_string(index=False)
    lines = header + [table]
    lines += [f"refused (no measured steps/s under a time budget): {name}" for name in result.refused]
    lines += result.notes
    if result.optimum is not None:
        lines.append(_optimum_line(result, interval))
    lines.append(f"best: {t['shape'].iloc[0]}")
    return "\n".join(lines)


def _optimum_line(result: Plan, interval: str) -> str:
    """The law's compute-optimal point, the cost convention it assumes, and the candidate nearest to it."""
    o, t = result.optimum, result.table
    spread = f"{o['N_opt_low']:.3g}–{o['N_opt_high']:.3g}"
    interval_text = "" if math.isnan(o["N_opt_low"]) else f" ({interval} {spread})"
    ratio = t["flops_per_token"] / t["params"]
    low, high = f"{ratio.min():.2g}", f"{ratio.max():.2g}"
    closest = t.loc[(np.log(t["params"]) - math.log(o["N_opt"])).abs().idxmin()]
    off = math.log10(closest["params"] / o["N_opt"])
    distance = "" if abs(off) < 0.01 else f", {planning.factor_text(off)} {'more' if off > 0 else 'fewer'}"
    at = "the budget" if result.budget[0] == "flops" else f"the best shape's {result.optimum_flops:.3g} FLOPs"
    return (
        f"compute-optimal point of the law at {at} (C = 6·N·D, Hoffmann et al. Appendix D.2): "
        f"N_opt = {o['N_opt']:.3g} parameters{interval_text}, D_opt = {o['D_opt']:.3g} tokens, "
        f"loss {o['loss']:.4g}; the candidates cost {low if low == high else f'{low}–{high}'}·N FLOPs per token "
        f"(not 6·N); closest candidate: {closest['shape']} ({closest['params']:.3g} parameters{distance})"
    )


def json_lines(result: Plan) -> list[str]:
    """One JSON object per candidate, best first (NaN and missing values as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return None if math.isnan(value) or math.isinf(value) else float(value)
        return value

    rows = result.table.replace({np.nan: None}).to_dict("records")
    return [json.dumps({key: clean(value) for key, value in row.items()}) for row in rows]


def draw(result: Plan, path: str | Path) -> Path:
    """The plan's picture as a PNG (predicted loss against parameters, the law along the budget)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    unit, amount = result.budget
    t = result.table
    curve = None
    if unit in ("flops", "tokens"):
        n = np.geomspace(t["params"].min() / 2, t["params"].max() * 2, 100)
        if unit == "flops":  # along this family's own cost: tokens = C / (FLOPs per token per parameter · N)
            d = amount / (float(np.median(t["flops_per_token"] / t["params"])) * n)
        else:
            d = np.full_like(n, amount)
        curve = (n, result.law.predict(n, d))
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    planning.plot(t, result.law, title=f"plan at {unit}:{amount:g}", curve=curve, optimum=result.optimum, ax=ax)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


# ----------------------------------------------------------------------------------------- config file


def _leaves(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _literal(value: Any) -> str:
    """``value`` as Python source in the style ruff formats (double-quoted strings)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        items = ", ".join(map(_literal, value)) + ("," if isinstance(value, tuple) and len(value) == 1 else "")
        return f"({items})" if isinstance(value, tuple) else f"[{items}]"
    if isinstance(value, float):
        return repr(value).replace("e+", "e")  # 1e+19 → 1e19, as ruff formats it
    return repr(value)


def emit_config(result: Plan, winner: Candidate, path: str | Path, *, command: str) -> Path:
    """Writes a ``configs/``-style file whose ``get_config()`` is the winner's training config (the trainer's
    defaults, then every field the plan's recipe set), and checks that it loads back to the same config."""
    from scaling.training import trainer

    default, wanted = _leaves(trainer.default_config().to_dict()), _leaves(winner.config.to_dict())
    unknown = sorted(set(wanted) - set(default))
    if unknown:
        raise UserError(f"--emit_config: the recipe has fields the trainer does not know: {unknown}")
    row = result.table[result.table["shape"] == winner.name].iloc[0]
    unit, amount = result.budget
    interval = (
        ""
        if pd.isna(row.predicted_loss_low)
        else f" ({planning.LEVEL:.0%} interval {row.predicted_loss_low:.4g}–{row.predicted_loss_high:.4g})"
    )
    doc = [
        f"{winner.name} for {unit}:{amount:g}: rank 1 of {len(result.table)} by predicted loss "
        f"{row.predicted_loss:.4g}{interval}.",
        "",
        f"Written {datetime.date.today().isoformat()} by: {command}",
        f"Law: {result.law.source}.",
        f"Budget buys {row.steps:,} steps, {row.tokens:.3g} tokens, {row.flops:.3g} FLOPs.",
    ]
    wrapped = [textwrap.fill(line, 116, break_long_words=False, break_on_hyphens=False) for line in doc]
    escaped = "\n".join(wrapped).replace("\\", "\\\\").replace('"""', '\\"""')
    lines = [
        f'"""{escaped}',
        '"""',
        "",
        "from scaling.training import trainer",
        "",
        "",
        "def get_config():",
        "    config = trainer.default_config()",
    ]
    lines += [f"    config.{field} = {_literal(value)}" for field, value in wanted.items() if default[field] != value]
    lines += ["    return config", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    loaded = configfiles.load(str(path), where="--emit_config")
    if loaded.to_dict() != winner.config.to_dict():  # a value repr() cannot round-trip
        raise UserError(f"--emit_config={path}: the written file does not load back to the planned config")
    return path
