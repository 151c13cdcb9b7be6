"""The three studies' tables and findings, computed from the files ``python -m scaling.study`` writes.

A study's results folder holds ``runs.csv``, ``curves.csv``, ``profile.csv``, ``downstream.csv``,
``compression.csv`` and ``study.json``. :func:`load` reads them; one function per study turns them into the
tables a reader needs and *findings* — sentences whose every number is computed here, so ``report.md``, the
README paragraph and the notebook cannot disagree with the data. Where the miniature disagrees with the paper,
the finding says so; that is a result too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from scaling.analysis import frontier
from scaling.analysis.runs import RunError

FILES = ("runs", "curves", "profile", "downstream", "baselines", "compression")
KNOBS = {"NL": "num_encoder_layers", "DM": "d_model", "FF": "d_ff", "NH": "num_heads", "KV": "d_kv"}


def load(results: str | Path) -> dict[str, Any]:
    """The study's tables by name (missing optional ones are empty frames) and ``study`` (its study.json)."""
    results = Path(results)
    if not (results / "study.json").is_file():
        raise RunError(f"{results}: no study.json; is this a folder written by python -m scaling.study?")
    data: dict[str, Any] = {"study": json.loads((results / "study.json").read_text())}
    for name in FILES:
        path = results / f"{name}.csv"
        data[name] = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    data["runs"] = data["runs"].sort_values("order", ignore_index=True)
    return data


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
    """Where every number below comes from: command, date, hardware, software, seeds, time spent."""
    hw, sw = study["hardware"], study["software"]
    return "\n".join(
        [
            f"Command: `{study['command']}`",
            "",
            f"Ran {study['date']} on {hw['device_kind']} ({hw['platform']}, {hw['cpu_count']} cores, "
            f"{hw['device_count']} device(s)); jax {sw.get('jax')}, flax {sw.get('flax')}, "
            f"Python {sw.get('python')}. Pretraining seed(s) {study['pretrain_seeds']}, finetuning seed(s) "
            f"{study['finetune_seeds']}. All stages took {study['total_seconds'] / 60:.1f} minutes.",
        ]
    )


def downstream_scores(downstream: pd.DataFrame) -> pd.DataFrame:
    """Median score over seeds, one row per (run, task)."""
    if downstream.empty:
        return pd.DataFrame(columns=["run", "task", "score"])
    return downstream.groupby(["run", "task"], sort=False, as_index=False)["score"].median()


def baseline_findings(data: dict[str, Any], order: Sequence[str]) -> list[str]:
    """Which runs score no better than the best constant answer (plus two standard errors): they learned nothing
    downstream, whatever their pretraining loss."""
    if data["baselines"].empty or data["downstream"].empty:
        return []
    scores, findings = downstream_scores(data["downstream"]), []
    for row in data["baselines"].itertuples():
        noise = standard_error(data["downstream"][data["downstream"]["task"] == row.task])
        mine = scores[scores["task"] == row.task].set_index("run")["score"]
        flat = [r for r in order if r in mine.index and mine[r] <= row.score + 2 * noise]
        findings.append(
            f"On {row.task} the best constant answer scores {row.score:.3f}; "
            + (
                f"{', '.join(flat)} score within two standard errors of it (no better than a constant)."
                if flat
                else "every run scores above it by more than two standard errors."
            )
        )
    return findings


def _task_scores(data: dict[str, Any]) -> pd.DataFrame:
    """One column per task (``score_TASK``) indexed by run."""
    scores = downstream_scores(data["downstream"])
    return scores.pivot(index="run", columns="task", values="score").add_prefix("score_")


def equal_budget(curves: pd.DataFrame, x: str, y: str = "loss") -> tuple[float, pd.Series]:
    """Each run's ``y`` at the largest ``x`` every run reached (interpolated between logged points)."""
    reach = curves.groupby("run")[x].max().min()
    at = frontier.at_budget(curves, reach, x=x, y=y)
    return float(reach), at.set_index("run")[y]


def spearman(params: pd.Series, values: pd.Series) -> float:
    """Rank correlation of parameter count with ``values`` over the runs that have a value (NaN if undefined)."""
    values = values.dropna()
    if len(values) < 3 or values.nunique() < 2:
        return float("nan")
    return float(stats.spearmanr(params.loc[values.index], values).statistic)


def _trend(rho: float, larger: str, smaller: str) -> str:
    if math.isnan(rho):
        return "too few distinct values to rank."
    if abs(rho) < 0.5:
        return "no clear trend (|ρ| < 0.5)."
    return larger if rho < 0 else smaller


def standard_error(downstream: pd.DataFrame) -> float:
    """Binomial standard error of an accuracy-like score on the evaluation set, sqrt(p(1-p)/n): the size of a
    difference that evaluation noise alone makes."""
    p, n = downstream["score"].mean(), downstream["eval_examples"].min()
    return float(math.sqrt(p * (1 - p) / n))


# ------------------------------------------------------------------------ 1. Train Large, Then Compress


def train_large_then_compress(data: dict[str, Any]) -> dict[str, Any]:
    """Tables: pretraining at equal step / second / FLOP budgets; downstream; compression. And findings."""
    runs, curves = data["runs"].set_index("run"), data["curves"]
    order = list(runs.index)
    table = runs[["params", "steps", "seconds", "flops", "loss", "eval_loss"]].copy()
    findings = []
    for x, unit, per in (("step", "steps", "step"), ("seconds", "seconds", "second"), ("flops", "FLOPs", "FLOP")):
        reach, at = equal_budget(curves, x)
        table[f"loss@{x}"] = at
        best, rho = at.idxmin(), spearman(runs["params"], at)
        findings.append(
            f"At an equal budget of {reach:.3g} {unit} (the most every run reached; a run whose first "
            f"log comes later has no value) the lowest training loss is {best}'s ({at[best]:.3f}); "
            f"Spearman ρ(params, loss) = {rho:+.2f}: "
            + _trend(rho, f"larger models converge faster per {per}.", f"smaller models converge faster per {per}.")
        )
    best_eval = runs["eval_loss"].idxmin()
    findings.append(
        f"After the full {runs['budget_amount'].iloc[0]:g}-second budget the lowest MLM eval loss is "
        f"{best_eval}'s ({runs['eval_loss'][best_eval]:.3f}), with "
        f"{runs['params'][best_eval] / 1e6:.1f} M parameters in {int(runs['steps'][best_eval])} steps."
    )
    findings += baseline_findings(data, order)
    table = table.join(_task_scores(data))
    tables = {"pretraining": table.reindex(order).reset_index()}
    compression = data["compression"]
    if not compression.empty:
        tables["compression"], more = _compression(
            compression, order, runs["params"], standard_error(data["downstream"])
        )
        findings += more
    return {"tables": tables, "findings": findings}


def _compression(
    compression: pd.DataFrame, order: Sequence[str], params: pd.Series, noise: float
) -> tuple[pd.DataFrame, list]:
    """Score of every run under each method and level, its change from the uncompressed score, and the frontier.

    ``noise`` is the evaluation's standard error: a change within two of it is reported as noise. Pruned scores
    include the recovery finetuning after each pruning step, which can also *improve* an under-finetuned model;
    when a pruned model beats its own uncompressed score by more than the noise, the finding says so.
    """
    c = compression.assign(label=compression["method"] + " " + compression["level"].astype(str))
    wide = c.pivot_table(index="model", columns="label", values="score", sort=False).reindex(order)
    base = wide["none 32"]
    findings = [f"The evaluation's standard error is {noise:.3f}: score changes within ±{2 * noise:.3f} are noise."]
    for label, words in (
        ("quantize 4", "4-bit quantization"),
        ("prune 0.7", "70% pruning"),
        ("prune 0.9", "90% pruning"),
    ):
        if label in wide:
            change = wide[label] - base
            rho = spearman(params, -change)
            verdict = (
                "every change is within noise."
                if change.abs().max() <= 2 * noise
                else _trend(
                    rho,
                    "larger models lose less, so they compress better.",
                    "larger models lose more here, so they do not compress better at this scale.",
                )
            )
            findings.append(
                f"{words} changes the score by "
                + ", ".join(f"{r} {d:+.3f}" for r, d in change.items())
                + f"; ρ(params, score lost) = {rho:+.2f}: "
                + verdict
            )
    pruned = c[c["method"] == "prune"]
    gained = sorted({r.model for r in pruned.itertuples() if r.score - base[r.model] > 2 * noise})
    if gained:
        findings.append(
            f"Recovery finetuning confounds pruning for {', '.join(gained)}: a pruned model scores more "
            f"than its uncompressed self, so those runs were under-finetuned and pruning's recovery steps "
            f"trained them further."
        )
    mask = frontier.pareto(c["memory_bits"], c["score"])
    on = c[mask].sort_values("memory_bits")
    findings.append(
        "The accuracy-versus-memory frontier is made of: "
        + "; ".join(f"{r.model} {r.label} ({r.memory_bits / 8e6:.2f} MB, {r.score:.3f})" for r in on.itertuples())
        + "."
    )
    return wide.reset_index().rename(columns={"model": "run"}), findings


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


def scale_efficiently(data: dict[str, Any]) -> dict[str, Any]:
    """Quality at a fixed step budget against params, FLOPs and measured step time; which knob pays most."""
    runs = data["runs"].set_index("run")
    order = list(runs.index)
    table = pd.DataFrame(
        {
            "knob": changed_knobs(runs),
            "params": runs["params"],
            "flops_per_step": runs["flops_per_step"],
            "eval_loss": runs["eval_loss"],
        }
    )
    profile = data["profile"]
    if not profile.empty:
        table["seconds_per_step"] = profile.drop_duplicates("run", keep="last").set_index("run")["seconds_per_step"]
    else:
        table["seconds_per_step"] = runs["seconds_per_step"]
    table = table.join(_task_scores(data)).reindex(order)
    axes = {"params": "params", "FLOPs": "flops_per_step", "time": "seconds_per_step"}
    for title, column in axes.items():
        table[f"efficient_{title}"] = frontier.pareto(table[column], table["eval_loss"], higher_is_better=False)
    base = table.loc["base"]
    gains = pd.DataFrame(index=[r for r in order if r != "base"])
    gains["knob"] = table["knob"]
    for title, column in axes.items():
        doublings = np.log2(table[column] / base[column])
        gains[f"loss_drop_per_2x_{title}"] = ((base["eval_loss"] - table["eval_loss"]) / doublings).where(
            doublings.abs() > 0.05
        )
    findings = []
    for title in axes:
        column = f"loss_drop_per_2x_{title}"
        best = gains[column].idxmax()
        findings.append(
            f"Per doubling of {title}, the knob that lowers eval loss most is {gains.at[best, 'knob']} "
            f"({gains.at[best, column]:.3f} nats per doubling; base eval loss {base['eval_loss']:.3f})."
        )
        efficient = [f"{r} ({table.at[r, 'knob']})" for r in order if table.at[r, f"efficient_{title}"]]
        findings.append(f"Efficient against {title}: {', '.join(efficient)}.")
    findings += baseline_findings(data, order)
    depth = [r for r in gains.index if gains.at[r, "knob"].startswith("NL") and "," not in gains.at[r, "knob"]]
    if depth:
        ranks = gains.drop(columns="knob").rank(ascending=False, method="min")
        verdict = all(ranks.loc[depth].min() <= 1.0)
        findings.append(
            "The paper finds depth (NL) the knob to scale first. Here NL is "
            + (
                "the best knob per doubling on every cost axis, which agrees."
                if verdict
                else "not the best knob on every cost axis, which disagrees at this scale (see the table)."
            )
        )
    return {
        "tables": {"shapes": table.reset_index(names="run"), "knob gains": gains.reset_index(names="run")},
        "findings": findings,
    }


# ------------------------------------------------------------------------------------------ 3. Cramming


def cramming(data: dict[str, Any], reference: str = "crammed") -> dict[str, Any]:
    """Every variant under one wall-clock budget: what it changed, how far it got, MLM loss, downstream score."""
    runs = data["runs"].set_index("run")
    order = list(runs.index)
    if reference not in runs.index:
        raise RunError(
            f"a Cramming study needs a run named {reference!r}, the crammed recipe every row is read against"
        )
    table = runs[
        ["params", "task", "schedule", "learning_rate", "dropout_rate", "switches", "steps", "tokens", "eval_loss"]
    ].copy()
    table = table.join(_task_scores(data)).reindex(order)
    score_columns = [c for c in table.columns if c.startswith("score_")]
    findings = []
    same_task = table["task"] == table.at[reference, "task"]
    comparable = table[same_task]
    findings.append(
        f"Among variants evaluated on the same MLM task ({table.at[reference, 'task']}), the lowest eval "
        f"loss is {comparable['eval_loss'].idxmin()}'s ({comparable['eval_loss'].min():.3f}; "
        f"{reference}: {table.at[reference, 'eval_loss']:.3f}). Variants on another task "
        f"({', '.join(table.index[~same_task]) or 'none'}) mask differently, so their losses are not "
        f"comparable; compare their downstream scores."
    )
    for column in score_columns:
        ranked = table[column].sort_values(ascending=False)
        findings.append(
            f"Downstream {column.removeprefix('score_')}: "
            + ", ".join(f"{r} {s:.3f}" for r, s in ranked.items())
            + f" (best: {ranked.index[0]})."
        )
    findings += baseline_findings(data, order)
    if "original_bert" in table.index:
        findings.append(
            f"Crammed against original BERT under the same budget: {table.at[reference, 'steps']:.0f} vs "
            f"{table.at['original_bert', 'steps']:.0f} steps, "
            + ", ".join(
                f"{c.removeprefix('score_')} {table.at[reference, c]:.3f} vs {table.at['original_bert', c]:.3f}"
                for c in score_columns
            )
            + "."
        )
    schedules = table[same_task & table.index.isin([reference, *[r for r in order if r.startswith("schedule_")]])]
    if len(schedules) > 1:
        findings.append(
            "Schedules on the crammed recipe: "
            + ", ".join(f"{row.schedule} eval loss {row.eval_loss:.3f}" for row in schedules.itertuples())
            + f"; best: {schedules.loc[schedules['eval_loss'].idxmin(), 'schedule']}."
        )
    return {"tables": {"variants": table.reset_index(names="run")}, "findings": findings}


REPORTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train_large_then_compress": train_large_then_compress,
    "scale_efficiently": scale_efficiently,
    "cramming": cramming,
}
FORMATS = {
    "params": ",.0f",
    "steps": ".0f",
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
    """``report.md``: the header (command, hardware, date, seeds), the tables, the findings."""
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
