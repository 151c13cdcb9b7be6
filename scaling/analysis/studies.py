"""The three studies' tables and findings, computed from the files ``python -m scaling.study`` writes.

A study's results folder holds ``runs.csv`` (one row per run and pretraining seed), ``curves.csv``,
``objective_baselines.csv``, ``profile.csv``, ``downstream.csv``, ``baselines.csv``, ``compression.csv`` and
``study.json``. :func:`load` reads them; one function per study turns them into tables and *findings* —
sentences whose every number is computed here, so ``report.md``, the README paragraph and the notebook cannot
disagree with the data. Each paper's headline claims are marked **reproduced**, **contradicted** or
**inconclusive** by :mod:`scaling.analysis.evidence` (95% intervals over pretraining seeds), never by one run.

Honesty rules the findings follow (issue 18):
- every pretraining table carries the trivial baselines of its objective, and says which runs beat them;
- each downstream task is reported per metric (accuracy, F1, MCC …) beside that metric's best constant answer
  and, where the study has it, the no-pretraining control — never as an average a one-class answer can game;
- compression claims use only models that beat the constant answer before compression, and name the compressed
  models that collapsed to one class;
- a wall-clock claim uses only runs whose time axis was not shared with another job (``time_usable``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis import evidence, frontier
from scaling.analysis.runs import RunError

FILES = ("runs", "curves", "objective_baselines", "profile", "downstream", "baselines", "compression")
KNOBS = {"NL": "num_encoder_layers", "DM": "d_model", "FF": "d_ff", "NH": "num_heads", "KV": "d_kv"}
CONTROL = "no_pretraining"


def load(results: str | Path) -> dict[str, Any]:
    """The study's tables by name (missing optional ones are empty frames) and ``study`` (its study.json).

    Tables from before seeds were recorded read as seed 0 (one seed: every verdict is inconclusive)."""
    results = Path(results)
    if not (results / "study.json").is_file():
        raise RunError(f"{results}: no study.json; is this a folder written by python -m scaling.study?")
    data: dict[str, Any] = {"study": json.loads((results / "study.json").read_text())}
    for name in FILES:
        path = results / f"{name}.csv"
        data[name] = pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()
    runs = data["runs"]
    if "seed" not in runs:
        runs["seed"] = 0
    data["runs"] = runs.sort_values(["order", "seed"], ignore_index=True)
    down = data["downstream"]
    if not down.empty and "pretrain_seed" not in down:
        down = down.rename(columns={"seed": "finetune_seed"}).assign(pretrain_seed=0)
    data["downstream"] = down
    if not data["compression"].empty and "seed" not in data["compression"]:
        data["compression"]["seed"] = 0
    return data


def order_of(data: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(data["runs"]["run"]))


# ------------------------------------------------------------------------------------------ shared pieces


def markdown(table: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A GitHub markdown table; ``formats`` maps a column to a format spec (e.g. ``".3f"``)."""
    formats = formats or {}

    def cell(column: str, value: Any) -> str:
        if isinstance(value, float) and math.isnan(value):
            return "–"
        if column in formats and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return format(value, formats[column])
        return str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += [
        "| " + " | ".join(cell(c, v) for c, v in zip(table.columns, row)) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


def header(study: dict[str, Any]) -> str:
    """Where every number below comes from: command, commit, when the stages ran, machine, seeds, time spent."""
    hw, sw = study["hardware"], study["software"]
    commit = study.get("commit")
    at = f"commit {commit[:12]}{' (with uncommitted changes)' if study.get('dirty') else ''}" if commit else None
    ran = (
        f"Stages ran {study['ran_from']} to {study['ran_to']}"
        if study.get("ran_from")
        else f"Collected {study.get('date', study.get('collected'))} (when the stages ran was not recorded)"
    )
    lines = [
        f"Command: `{study['command']}`" + (f" at {at}" if at else " (commit not recorded)"),
        "",
        f"{ran} on {hw['device_kind']} ({hw['platform']}, {hw['cpu_count']} cores, {hw['device_count']} "
        f"device(s)); jax {sw.get('jax')}, flax {sw.get('flax')}, Python {sw.get('python')}. Pretraining seed(s) "
        f"{study['pretrain_seeds']}, finetuning seed(s) {study['finetune_seeds']}. All stages took "
        f"{study['total_seconds'] / 60:.1f} minutes.",
    ]
    unusable = study.get("runs_time_unusable")
    if unusable is None:
        lines += [
            "",
            "The machine's load was not recorded: wall-clock figures may include time shared with other jobs.",
        ]
    elif unusable:
        lines += ["", f"Time axis unusable (the machine was shared) for: {', '.join(unusable)}."]
    return "\n".join(lines)


def add_estimate(table: pd.DataFrame, name: str, stats: pd.DataFrame) -> None:
    """Columns ``name`` (the mean over seeds) and ``name_se`` (its standard error; NaN with one seed)."""
    table[name] = stats["mean"].reindex(table.index)
    table[f"{name}_se"] = stats["se"].reindex(table.index)


def claim(mark: str, text: str, because: str) -> str:
    """One finding about a paper's claim: the verdict first, then the claim, then the numbers behind it."""
    return f"**{mark}** — {text} {because}"


def objective_findings(data: dict[str, Any], runs: pd.DataFrame) -> list[str]:
    """Which runs end clearly below the best trivial baseline of their pretraining objective: the eval loss minus
    the baseline on the same seed's eval batches, 95% interval over seeds."""
    base = data["objective_baselines"]
    if base.empty:
        return ["The trivial baselines of the pretraining objective were not measured for these runs."]
    if "seed" not in base:
        base = base.assign(seed=0)
    findings = []
    for task, rows in base.groupby("task", sort=False):
        means = rows.groupby("baseline", sort=False)["eval_loss"].mean()
        best = means.idxmin()
        by_seed = rows[rows["baseline"] == best].set_index("seed")["eval_loss"]
        mine = runs[runs["task"] == task]
        if mine.empty:
            continue
        below, not_below = [], []
        for run, group in mine.groupby("run", sort=False):
            gaps = [r.eval_loss - by_seed.get(r.seed, by_seed.mean()) for r in group.itertuples()]
            d = evidence.against(gaps, 0.0)
            (below if evidence.verdict(d, -1) == evidence.REPRODUCED else not_below).append(f"{run} ({d.mean:+.2f})")
        findings.append(
            f"On {task} the best trivial baseline ({best}) scores eval loss {means[best]:.3f}; "
            + (f"clearly below it (95% interval over seeds): {', '.join(below)}. " if below else "")
            + (f"Not clearly below it: {', '.join(not_below)}." if not_below else "Every run is clearly below it.")
        )
    return findings


def objective_table(data: dict[str, Any]) -> pd.DataFrame:
    base = data["objective_baselines"]
    return (
        base[[c for c in ("task", "baseline", "eval_loss", "eval_accuracy") if c in base]] if not base.empty else base
    )


# --------------------------------------------------------------------------------------------- downstream


def downstream_long(data: dict[str, Any]) -> pd.DataFrame:
    """One row per (run, pretraining seed, task, metric): the median over finetuning seeds."""
    down = data["downstream"]
    if down.empty:
        return pd.DataFrame(columns=["run", "pretrain_seed", "task", "metric", "value"])
    rows = []
    for r in down.itertuples(index=False):
        metrics = json.loads(r.metrics) if isinstance(r.metrics, str) else {}
        for metric, value in metrics.items():
            if metric == "score" or metric.startswith("exact_match") or metric == "predicted_classes":
                continue
            rows.append(
                {"run": r.run, "pretrain_seed": r.pretrain_seed, "task": r.task, "metric": metric, "value": value}
            )
    long = pd.DataFrame(rows)
    return long.groupby(["run", "pretrain_seed", "task", "metric"], sort=False, as_index=False)["value"].median()


def constants(data: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(task, metric) → the best constant answer's value (older tables: the task's score only)."""
    base = data["baselines"]
    if base.empty:
        return {}
    if "metric" in base:
        return {(r.task, r.metric): float(r.value) for r in base.itertuples()}
    return {}


def downstream_tables(data: dict[str, Any], order: Sequence[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Per task, a table of runs × metrics (mean ± se over pretraining seeds) with the constant answer's row, and
    which runs beat the constant answer on every metric (95% interval)."""
    long, const = downstream_long(data), constants(data)
    tables, findings = {}, []
    runs_order = [*order, *([CONTROL] if CONTROL in set(long["run"]) else [])]
    for task, rows in long.groupby("task", sort=False):
        metrics = list(dict.fromkeys(rows["metric"]))
        table = pd.DataFrame(index=runs_order)
        for metric in metrics:
            add_estimate(table, metric, evidence.across_seeds(rows[rows["metric"] == metric], "value"))
        table.loc["constant answer"] = math.nan
        for m in metrics:
            table.loc["constant answer", m] = const.get((task, m), math.nan)
        tables[f"downstream: {task}"] = table.dropna(how="all").reset_index(names="run")
        above, flat = [], []
        for run in runs_order:
            mine = rows[rows["run"] == run]
            if mine.empty:
                continue
            beats = all(
                evidence.verdict(evidence.against(mine[mine["metric"] == m]["value"].tolist(), const[task, m]), 1)
                == evidence.REPRODUCED
                for m in metrics
                if (task, m) in const
            )
            (above if beats and const else flat).append(run)
        if const:
            findings.append(
                f"On {task}, clearly above the best constant answer on every metric (95% interval over seeds): "
                f"{', '.join(above) or 'none'}; not clearly above: {', '.join(flat) or 'none'}."
            )
    return tables, findings


def main_metric(data: dict[str, Any], task: str) -> str:
    """The metric a task's claims are read on: accuracy where reported (else the first)."""
    long = downstream_long(data)
    metrics = list(dict.fromkeys(long[long["task"] == task]["metric"]))
    return "accuracy" if "accuracy" in metrics else metrics[0]


def downstream_values(data: dict[str, Any], task: str, metric: str) -> pd.DataFrame:
    """run, seed, value of one task metric (for :func:`evidence.difference`)."""
    long = downstream_long(data)
    rows = long[(long["task"] == task) & (long["metric"] == metric)]
    return rows.rename(columns={"pretrain_seed": "seed"})[["run", "seed", "value"]]


def compare_downstream(
    data: dict[str, Any], a: str, b: str, text: str, source: str, claimed_sign: int = 1
) -> list[str]:
    """One claim per task: run ``a`` scores higher (``claimed_sign`` +1) than ``b`` on the task's main metric."""
    findings = []
    for task in dict.fromkeys(downstream_long(data)["task"]):
        metric = main_metric(data, task)
        values = downstream_values(data, task, metric)
        if not {a, b} <= set(values["run"]):
            continue
        d = evidence.difference(values, a, b, "value")
        findings.append(
            claim(evidence.verdict(d, claimed_sign), f"{text} ({source}) — {task} {metric}:", f"{a} − {b} = {d}.")
        )
    return findings


# ------------------------------------------------------------------------ 1. Train Large, Then Compress


def _size_order(runs: pd.DataFrame) -> list[str]:
    params = runs.groupby("run", sort=False)["params"].first()
    return list(params.sort_values().index)


def train_large_then_compress(data: dict[str, Any]) -> dict[str, Any]:
    """Equal wall-clock pretraining of a depth × width grid, downstream, and compression."""
    runs, order = data["runs"], order_of(data)
    per_run = runs.groupby("run", sort=False)
    table = pd.DataFrame(
        {"params": per_run["params"].first(), "steps": per_run["steps"].mean(), "seconds": per_run["seconds"].mean()}
    ).reindex(order)
    add_estimate(table, "eval_loss", evidence.across_seeds(runs, "eval_loss"))
    add_estimate(table, "eval_accuracy", evidence.across_seeds(runs, "eval_accuracy"))
    table["seeds"] = per_run["seed"].count()
    findings = objective_findings(data, runs)
    small, large = _size_order(runs)[0], _size_order(runs)[-1]
    if "time_usable" in runs:
        unusable = sorted(set(runs.loc[~runs["time_usable"].astype(bool), "run"]))
        why = f"the time axis of {', '.join(unusable)} was shared with other jobs"
    else:
        unusable, why = order, "the machine's load during these runs was not recorded"
    d = evidence.difference(runs, large, small, "eval_loss")
    text = (
        "Larger models reach a lower MLM loss in the same wall-clock time (Li et al. 2020, §3 and Figure 2)"
        f" — {large} ({table.at[large, 'params'] / 1e6:.1f} M) against {small} "
        f"({table.at[small, 'params'] / 1e6:.1f} M), each trained for {runs['budget_amount'].iloc[0]:g} "
        f"{runs['budget_unit'].iloc[0]}:"
    )
    if unusable:
        findings.append(
            claim(
                evidence.INCONCLUSIVE,
                text,
                f"eval loss difference {d}, but {why}, so an equal wall-clock budget may not have been equal work.",
            )
        )
    else:
        findings.append(claim(evidence.verdict(d, -1), text, f"eval loss {large} − {small} = {d}."))
    for a, b, what in _grid_pairs(runs):
        dd = evidence.difference(runs, a, b, "eval_loss")
        findings.append(f"{what}: eval loss {a} − {b} = {dd}.")
    tables, more = downstream_tables(data, order)
    findings += more
    findings += compare_downstream(
        data, large, small, "The larger model finetunes better after the same pretraining time", "Li et al. §3"
    )
    out = {"pretraining": table.reset_index(names="run")}
    if not data["objective_baselines"].empty:
        out["trivial baselines"] = objective_table(data)
    out.update(tables)
    if not data["compression"].empty:
        ctable, cfind = _compression(data, order, large, small)
        out["compression"] = ctable
        findings += cfind
    return {"tables": out, "findings": findings}


def _grid_pairs(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(deeper, shallower, label) at each width and (wider, narrower, label) at each depth of the grid."""
    shape = runs.groupby("run", sort=False)[["num_encoder_layers", "d_model"]].first()
    pairs = []
    for width, rows in shape.groupby("d_model"):
        if len(rows) == 2:
            deep, shallow = rows["num_encoder_layers"].idxmax(), rows["num_encoder_layers"].idxmin()
            pairs.append((deep, shallow, f"Deeper at width {width}"))
    for depth, rows in shape.groupby("num_encoder_layers"):
        if len(rows) == 2:
            wide, narrow = rows["d_model"].idxmax(), rows["d_model"].idxmin()
            pairs.append((wide, narrow, f"Wider at depth {depth}"))
    return pairs


def _compression(data: dict[str, Any], order: Sequence[str], large: str, small: str) -> tuple[pd.DataFrame, list]:
    """Accuracy under each method and level (mean ± se over seeds), collapsed models, and the robustness claim,
    read only on models that beat the constant answer before compression."""
    c = data["compression"].copy()
    c["label"] = c["method"] + " " + c["level"].astype(str)
    task = c["task"].iloc[0]
    metric = "accuracy" if "metrics" in c else "score"
    if "metrics" in c:
        c["value"] = [json.loads(m).get("accuracy", math.nan) for m in c["metrics"]]
        c["classes"] = [json.loads(m).get("predicted_classes", math.nan) for m in c["metrics"]]
    else:
        c["value"], c["classes"] = c["score"], math.nan
    labels = list(dict.fromkeys(c["label"]))
    wide = pd.DataFrame(index=list(order))
    for label in labels:
        rows = c[c["label"] == label]
        wide[label] = evidence.across_seeds(rows.rename(columns={"model": "run"}), "value")["mean"]
    findings = [f"Compression is scored by {task} {metric} (the table: means over pretraining seeds)."]
    collapsed = c[c["classes"] == 1]
    if not collapsed.empty:
        findings.append(
            "Collapsed to one class (every prediction the same; their score is a constant answer's): "
            + ", ".join(f"{r.model} seed {r.seed} {r.label}" for r in collapsed.itertuples())
            + "."
        )
    const = constants(data).get((task, "accuracy"))
    uncompressed = c[c["method"] == "none"].rename(columns={"model": "run"})
    eligible = []
    for run in order:
        values = uncompressed[uncompressed["run"] == run]["value"].tolist()
        if const is not None and values:
            d = evidence.against(values, const)
            if evidence.verdict(d, 1) == evidence.REPRODUCED:
                eligible.append(run)
    if const is not None:
        findings.append(
            f"Uncompressed, clearly above the constant answer ({const:.3f}): {', '.join(eligible) or 'none'}; "
            "compression claims below use only these."
        )
    text = "Larger models lose less accuracy when compressed (Li et al. 2020, §4, Figures 6–7)"
    for label, words in (
        ("quantize 4", "4-bit quantization"),
        ("prune 0.5", "50% pruning"),
        ("prune 0.9", "90% pruning"),
    ):
        if label not in labels:
            continue
        drop = (
            c[c["label"] == label].set_index(["model", "seed"])["value"]
            - c[c["method"] == "none"].set_index(["model", "seed"])["value"]
        )
        drops = drop.reset_index().rename(columns={"model": "run", 0: "drop", "value": "drop"})
        if large not in eligible or small not in eligible:
            findings.append(
                claim(
                    evidence.INCONCLUSIVE,
                    f"{text} — {words}:",
                    f"{large} and {small} must both beat the constant answer before compression to be compared.",
                )
            )
            continue
        d = evidence.difference(drops, large, small, "drop")
        findings.append(
            claim(evidence.verdict(d, 1), f"{text} — {words}:", f"accuracy change {large} − {small} = {d}.")
        )
    mask = frontier.pareto(c["memory_bits"], c["value"])
    on = c[mask].sort_values("memory_bits")
    findings.append(
        "The accuracy-versus-memory frontier (single runs) is made of: "
        + "; ".join(
            f"{r.model} seed {r.seed} {r.label} ({r.memory_bits / 8e6:.2f} MB, {r.value:.3f})" for r in on.itertuples()
        )
        + "."
    )
    return wide.reset_index(names="run"), findings


# ------------------------------------------------------------------------------ 2. Scale Efficiently


def changed_knobs(runs: pd.DataFrame, base: str = "base") -> pd.Series:
    """For each run, the knobs (NL/DM/FF/NH/KV) that differ from the ``base`` run, e.g. ``"NL 2→4"``."""
    if base not in runs.index:
        raise RunError(f"a Scale Efficiently study needs a run named {base!r} (the shape the knobs scale from)")
    labels = {}
    for name, row in runs.iterrows():
        diffs = [f"{k} {int(runs.at[base, f])}→{int(row[f])}" for k, f in KNOBS.items() if row[f] != runs.at[base, f]]
        labels[name] = ", ".join(diffs) or "base"
    return pd.Series(labels)


def knob_gains(runs: pd.DataFrame, cost: pd.Series, base: str = "base") -> pd.DataFrame:
    """Per run and seed, the eval-loss drop from the base (same seed) per doubling of ``cost`` (indexed by run)."""
    base_loss = runs[runs["run"] == base].set_index("seed")["eval_loss"]
    rows = []
    for r in runs[runs["run"] != base].itertuples():
        doublings = math.log2(cost[r.run] / cost[base])
        if abs(doublings) > 0.05 and r.seed in base_loss.index:
            rows.append({"run": r.run, "seed": r.seed, "gain": (base_loss[r.seed] - r.eval_loss) / doublings})
    return pd.DataFrame(rows, columns=["run", "seed", "gain"])


def scale_efficiently(data: dict[str, Any]) -> dict[str, Any]:
    """Quality at a fixed step budget against params, FLOPs and measured step time; which knob pays most."""
    runs, order = data["runs"], order_of(data)
    first = runs.groupby("run", sort=False).first()
    knob = changed_knobs(first)
    profile = data["profile"]
    if not profile.empty:
        seconds = profile.drop_duplicates("run", keep="last").set_index("run")["seconds_per_step"]
        time_source = "profile"
    else:
        seconds, time_source = runs.groupby("run", sort=False)["seconds_per_step"].median(), "training"
    costs = {"params": first["params"], "FLOPs": first["flops_per_step"], "time": seconds}
    table = pd.DataFrame(
        {
            "knob": knob,
            "params": first["params"],
            "flops_per_step": first["flops_per_step"],
            "seconds_per_step": seconds,
        }
    ).reindex(order)
    add_estimate(table, "eval_loss", evidence.across_seeds(runs, "eval_loss"))
    table["seeds"] = runs.groupby("run", sort=False)["seed"].count()
    gains = pd.DataFrame(index=[r for r in order if r != "base"])
    gains["knob"] = knob
    per_axis = {}
    for title, cost in costs.items():
        per_axis[title] = knob_gains(runs, cost)
        add_estimate(gains, f"loss_drop_per_2x_{title}", evidence.across_seeds(per_axis[title], "gain"))
    findings = objective_findings(data, runs)
    depth = [r for r in gains.index if knob[r].startswith("NL") and "," not in knob[r]]
    for title in ("params", "FLOPs"):
        g = per_axis[title]
        for d_run in depth:
            for other in [r for r in gains.index if r not in depth and r in set(g["run"])]:
                d = evidence.difference(g, d_run, other, "gain")
                findings.append(
                    claim(
                        evidence.verdict(d, 1),
                        f"Scaling depth lowers upstream loss more per doubling of {title} than {knob[other]} "
                        "(Tay et al. 2022, §3: depth is the knob to scale first) —",
                        f"gain {d_run} − {other} = {d} nats per doubling.",
                    )
                )
    g = per_axis["time"]
    mean_gain = g.groupby("run")["gain"].mean() if not g.empty else pd.Series(dtype=float)
    if not mean_gain.empty:
        best = mean_gain.idxmax()
        findings.append(
            f"Per doubling of measured step time ({time_source}), the largest mean loss drop is {knob[best]}'s "
            f"({mean_gain[best]:.3f} nats); FLOPs and time rank the knobs "
            + ("the same way." if _same_rank(per_axis["FLOPs"], g) else "differently (Tay et al.'s point).")
        )
    tables, more = downstream_tables(data, order)
    findings += more
    for d_run in depth:
        findings += compare_downstream(data, d_run, "base", "Depth improves downstream quality", "Tay et al. §3")
    if CONTROL in set(downstream_long(data)["run"]):
        findings += compare_downstream(data, "base", CONTROL, "Pretraining helps downstream", "control")
    out = {"shapes": table.reset_index(names="run"), "knob gains": gains.reset_index(names="run")}
    if not data["objective_baselines"].empty:
        out["trivial baselines"] = objective_table(data)
    out.update(tables)
    return {"tables": out, "findings": findings}


def _same_rank(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    ra, rb = a.groupby("run")["gain"].mean().rank(), b.groupby("run")["gain"].mean().rank()
    return bool((ra.reindex(rb.index) == rb).all())


# ------------------------------------------------------------------------------------------ 3. Cramming


def cramming(data: dict[str, Any]) -> dict[str, Any]:
    """Every variant under one budget: what it changed, how far it got, MLM loss, downstream; the claims."""
    runs, order = data["runs"], order_of(data)
    reference = data["study"].get("reference") or "crammed"
    if reference not in order:
        raise RunError(
            f"a Cramming study needs a run named {reference!r}, the crammed recipe every row is read against"
        )
    per_run = runs.groupby("run", sort=False)
    settings = ["params", "task", "schedule", "learning_rate", "dropout_rate", "switches"]
    table = per_run[[c for c in settings if c in runs]].first()
    table["steps"] = per_run["steps"].mean()
    add_estimate(table, "eval_loss", evidence.across_seeds(runs, "eval_loss"))
    table["seeds"] = per_run["seed"].count()
    table = table.reindex(order)
    findings = objective_findings(data, runs)
    same_task = [r for r in order if table.at[r, "task"] == table.at[reference, "task"] and r != reference]
    claims = {
        "original_arch": "The crammed architecture beats the original BERT's (Geiping & Goldstein 2023, §4.2, Table 5)",
        "original_train": "The crammed training recipe beats the original (§4.3, Table 5)",
        "schedule_constant": "The budget-tied one-cycle schedule beats a constant one (§4.3)",
        "schedule_cosine": "The budget-tied one-cycle schedule beats cosine decay (§4.3)",
    }
    for other in same_task:
        d = evidence.difference(runs, reference, other, "eval_loss")
        text = claims.get(other, f"{reference} against {other}")
        findings.append(claim(evidence.verdict(d, -1), f"{text} — MLM eval loss:", f"{reference} − {other} = {d}."))
    other_task = [r for r in order if r not in same_task and r != reference]
    if other_task:
        findings.append(
            f"{', '.join(other_task)} train another task than {reference} ({table.at[reference, 'task']}), so their "
            "MLM losses are not comparable; their claims are read downstream."
        )
    tables, more = downstream_tables(data, order)
    findings += more
    for other, text in (
        ("original_bert", "The crammed recipe finetunes better than the original BERT recipe under the same budget"),
        ("original_train", "The crammed training recipe finetunes better than the original"),
        ("original_data", "The curated data beats the uncurated corpus"),
        (CONTROL, "Pretraining helps: the crammed model beats the same shape without pretraining"),
    ):
        findings += compare_downstream(data, reference, other, text, "Geiping & Goldstein 2023, Tables 3 and 5")
    out = {"variants": table.reset_index(names="run")}
    if not data["objective_baselines"].empty:
        out["trivial baselines"] = objective_table(data)
    out.update(tables)
    return {"tables": out, "findings": findings}


REPORTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train_large_then_compress": train_large_then_compress,
    "scale_efficiently": scale_efficiently,
    "cramming": cramming,
}
FORMATS = {
    "params": ",.0f",
    "steps": ".0f",
    "seeds": ".0f",
    "seconds": ".0f",
    "flops": ".3g",
    "flops_per_step": ".3g",
    "tokens": ",.0f",
    "seconds_per_step": ".3f",
    "learning_rate": "g",
    "dropout_rate": "g",
}


def analyse(results: str | Path) -> dict[str, Any]:
    """The study's tables and findings (its kind, from study.json, picks the analysis)."""
    data = load(results)
    kind = data["study"]["kind"]
    if kind not in REPORTS:
        raise RunError(f"study kind {kind!r}: no analysis; known kinds are {sorted(REPORTS)}")
    return REPORTS[kind](data)


def report(results: str | Path) -> str:
    """``report.md``: the header (command, commit, when, machine, seeds), the tables, the findings."""
    data = load(results)
    analysis = analyse(results)
    parts = [f"# Study: {data['study']['name']}", "", header(data["study"]), ""]
    for title, table in analysis["tables"].items():
        formats = {**FORMATS, **{c: ".3f" for c in table.columns if c not in FORMATS}}
        parts += [f"## {title}", "", markdown(table, formats), ""]
    parts += ["## findings", ""] + [f"- {f}" for f in analysis["findings"]] + [""]
    return "\n".join(parts)


def _rewrite_reports(argv: list[str]) -> int:
    from scaling import cli

    parser = cli.parser(
        "python -m scaling.analysis.studies",
        "Rewrites each study's report.md from the tables in its results folder, and prints it.",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        metavar="RESULTS_DIR",
        help="a study's results folder (python -m scaling.study --results), e.g. notebooks/results/cramming",
    )
    for folder in parser.parse_args(argv).folders:
        text = report(folder)
        (Path(folder) / "report.md").write_text(text)
        print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scaling.analysis.studies DIR [DIR ...]``: rewrite each study's report.md from its tables."""
    from scaling import cli

    return cli.run(_rewrite_reports, argv, tensorflow=False)


if __name__ == "__main__":
    raise SystemExit(main())
