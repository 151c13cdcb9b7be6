"""Studies: one paper's headline experiment in miniature, end to end with the project's own stages.

    python -m scaling.study --config=configs/study_cramming.py[:smoke] --out=DIR [--results=DIR]
        [--config.FIELD=VALUE ...]

A study file (``configs/study_*.py``) names pretraining runs — a recipe, overrides shared by every run, one
budget, and each run's own overrides — and the stages that follow each run:

1. **pretrain** with :func:`scaling.training.trainer.train` into ``DIR/pretrain/RUN`` (skipped when finished, resumed
   from its checkpoint when interrupted, as in :mod:`scaling.experiments.sweep`);
2. **profile** its train step with :func:`scaling.experiments.profile.profile` into ``DIR/profile/RUN.csv`` (measured
   throughput, when ``profile.steps`` is set);
3. **finetune** it with :func:`scaling.downstream.finetune.run` into ``DIR/finetune/RUN`` (a finished task/seed is
   kept);
4. **compress** its first task's seed-0 model with :func:`scaling.downstream.compress.sweep` into ``DIR/compress/RUN``.

Stages go one at a time over all runs: every pretraining (the budgeted, timed part, which nothing else should
share the machine with) before any profiling, and both before the untimed finetuning and compression.

Then the tables go to ``--results`` (default ``OUT/results``: the checkout is written only when told, e.g.
``--results=notebooks/results/NAME`` to regenerate what the repository ships):
``runs.csv``, ``curves.csv``, ``profile.csv``, ``downstream.csv``, ``baselines.csv`` (the best constant
answer's score per task), ``compression.csv``, ``errors.csv``, ``study.json`` (command, date, hardware, software,
seeds, stage seconds) and ``report.md``, whose tables and
findings :mod:`scaling.analysis.studies` computes from those files — nothing is typed in by hand.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from scaling import budget as budget_lib
from scaling import csvfile
from scaling.errors import UserError
from scaling.experiments import configfiles, sweep

STAGES = ("pretrain", "profile", "finetune", "compress")
CURVE_COLUMNS = (
    "run",
    "step",
    "seconds",
    "tokens",
    "flops",
    "learning_rate",
    "loss",
    "accuracy",
    "eval_loss",
    "eval_accuracy",
)
RUN_SETTINGS = {
    "task": "data.task",
    "switches": "model.switches",
    "dropout_rate": "model.dropout_rate",
    "optimizer": "optimizer.name",
    "schedule": "optimizer.schedule",
    "learning_rate": "optimizer.learning_rate",
    "micro_batch_size": "micro_batch_size",
    "batch_ramp_fraction": "optimizer.batch_ramp_fraction",
    "seed": "seed",
}


class StudyError(UserError):
    """A study file that cannot run: the message names the field and the fix."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a study file sets; ``configs/study_*.py`` start from it."""
    return ml_collections.ConfigDict(
        {
            "name": "",  # the study's name (its folder under notebooks/results/ in the repository)
            "kind": "",  # which report: scaling.analysis.studies.REPORTS
            "recipe": "",  # pretraining config file every run starts from (configs/NAME.py[:ARG])
            "budget": "",  # UNIT:AMOUNT, the same for every run (scaling.budget units)
            "common": {},  # nested overrides applied to every run, e.g. {"batch_size": 16}
            "runs": {},  # RUN: nested overrides of that run; RUN names its folders and rows
            "order": "",  # comma-separated RUN names: the order runs go in and are reported
            "profile": {"steps": 0, "warmup": 2},  # steps 0: no profile stage
            "finetune": {"recipe": "", "tasks": "", "overrides": {}},  # recipe "": no finetuning
            "compress": {
                "enabled": False,
                "bits": "8,6,4",
                "sparsities": "0.15,0.3,0.45,0.6,0.75,0.9",
                "combined_bits": "4",
                "recovery_epochs": 1.0,
                "max_eval_examples": 0,
                "max_train_examples": 0,
            },
        }
    )


# ------------------------------------------------------------------------------------------ expansion


def run_names(study: ml_collections.ConfigDict) -> list[str]:
    """The runs in ``order`` (every run must be listed once), or sorted when no order is given."""
    names = list(study.runs.keys())
    if not names:
        raise StudyError("config.runs is empty: a study needs at least one run")
    if not study.order:
        return sorted(names)
    order = [n.strip() for n in study.order.split(",") if n.strip()]
    if sorted(order) != sorted(names):
        raise StudyError(f"config.order {order} must list every run of config.runs {sorted(names)} once")
    return order


def pretrain_configs(study: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
    """Each run's full training config: the recipe, ``common``, the run's overrides, the shared budget."""
    from scaling.training import trainer

    for field in ("name", "kind", "recipe", "budget"):
        if not study[field]:
            raise StudyError(f"config.{field} is not set")
    try:
        budget_lib.parse(study.budget)
    except UserError as e:
        raise StudyError(f"config.budget={study.budget}: {e}") from None
    recipe = configfiles.load(study.recipe, where="config.recipe")
    configs = {}
    for name in run_names(study):
        config = ml_collections.ConfigDict(recipe.to_dict())
        configfiles.apply_mapping(config, study.common.to_dict(), "config.common.")
        configfiles.apply_mapping(config, study.runs[name].to_dict(), f"config.runs.{name}.")
        configfiles.set_value(config, configfiles.BUDGET, study.budget)  # UNIT:AMOUNT, as --config.budget
        try:
            trainer.validate(config)
        except trainer.ConfigError as e:
            raise StudyError(f"run {name}: {e}") from None
        configs[name] = config
    return configs


def finetune_config(study: ml_collections.ConfigDict, pretrain_dir: Path) -> ml_collections.ConfigDict:
    """The finetuning recipe with the study's overrides, starting from ``pretrain_dir``."""
    config = configfiles.load(study.finetune.recipe, where="config.finetune.recipe")
    configfiles.apply_mapping(config, study.finetune.overrides.to_dict(), "config.finetune.overrides.")
    if study.finetune.tasks:
        config.tasks = study.finetune.tasks
    config.init_from = str(pretrain_dir)
    return config


def compress_settings(study: ml_collections.ConfigDict) -> Any:
    """The study's ``compress`` block as :class:`scaling.downstream.compress.SweepSettings`, validated."""
    from scaling.downstream import compress

    c = study.compress
    try:
        settings = compress.SweepSettings(
            bits=compress.parse_numbers(str(c.bits), int, "config.compress.bits"),
            sparsities=compress.parse_numbers(str(c.sparsities), float, "config.compress.sparsities"),
            combined_bits=compress.parse_numbers(str(c.combined_bits), int, "config.compress.combined_bits"),
            recovery_epochs=float(c.recovery_epochs),
        )
        settings.validate()
    except ValueError as e:
        raise StudyError(f"config.compress: {e}") from None
    return settings


# ------------------------------------------------------------------------------------------ the stages


class _Clock:
    """Seconds each stage of each run took, kept in ``DIR/stage_seconds.json`` across resumptions."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.is_file() else {}

    def record(self, run: str, stage: str, seconds: float) -> None:
        self.seconds.setdefault(run, {})[stage] = round(self.seconds.get(run, {}).get(stage, 0.0) + seconds, 1)
        self.path.write_text(json.dumps(self.seconds, indent=2) + "\n")


def plan(study: ml_collections.ConfigDict, out: str | Path) -> list[str]:
    """What :func:`run_study` would do, one line a stage, after validating every run's config, the finetuning
    recipe and the compression settings — `python -m scaling.study --dry_run` prints it."""
    configs = pretrain_configs(study)
    settings = compress_settings(study) if study.compress.enabled else None
    if settings is not None and not study.finetune.recipe:
        raise StudyError("config.compress.enabled needs a finetuning stage: set config.finetune.recipe")
    out = Path(out)
    lines = []
    for name, config in configs.items():
        lines.append(
            f"pretrain {name}: {config.model.name} on {config.data.task}, budget "
            f"{config.budget.amount:g} {config.budget.unit} → {out / 'pretrain' / name}"
        )
        if study.profile.steps:
            lines.append(f"profile {name}: {study.profile.steps} steps → {out / 'profile' / f'{name}.csv'}")
        if study.finetune.recipe:
            ft_config = finetune_config(study, out / "pretrain" / name)
            lines.append(f"finetune {name}: {ft_config.tasks} (seeds {ft_config.seeds}) → {out / 'finetune' / name}")
            if settings is not None:
                lines.append(
                    f"compress {name}: bits {settings.bits}, sparsities {settings.sparsities} → "
                    f"{out / 'compress' / name}"
                )
    return lines


def run_study(
    study: ml_collections.ConfigDict,
    out: str | Path,
    results: str | Path | None = None,
    *,
    command: str = "",
    print_fn: Callable[[str], None] = print,
) -> Path:
    """Runs every unfinished stage of every run, then writes the tables and report; returns the results dir."""
    from scaling.downstream import compress, finetune
    from scaling.experiments import profile
    from scaling.training import trainer

    out = Path(out)
    configs = pretrain_configs(study)
    settings = compress_settings(study) if study.compress.enabled else None
    if settings is not None and not study.finetune.recipe:
        raise StudyError("config.compress.enabled needs a finetuning stage: set config.finetune.recipe")
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock(out / "stage_seconds.json")

    def timed(name: str, stage: str, work: Callable[[], Any]) -> None:
        start = time.perf_counter()
        work()
        clock.record(name, stage, time.perf_counter() - start)

    # Stage by stage, so that every budgeted (timed) stage runs before the untimed downstream work.
    for name, config in configs.items():
        workdir = out / "pretrain" / name
        if not sweep.is_finished(workdir):
            print_fn(f"[study] {name}: pretraining {config.model.name} in {workdir}")
            timed(name, "pretrain", lambda: trainer.train(config, workdir, print_fn=print_fn))
    for name, config in configs.items() if study.profile.steps else ():
        path = out / "profile" / f"{name}.csv"
        if not path.is_file():
            print_fn(f"[study] {name}: profiling the train step")
            timed(
                name,
                "profile",
                lambda: profile.append_rows(
                    path,
                    [
                        profile.profile(
                            config, steps=study.profile.steps, warmup=study.profile.warmup, recipe=study.recipe
                        )
                    ],
                ),
            )
    for name in configs if study.finetune.recipe else ():
        ft_config, ft_dir = finetune_config(study, out / "pretrain" / name), out / "finetune" / name
        print_fn(f"[study] {name}: finetuning on {ft_config.tasks}")
        timed(name, "finetune", lambda: finetune.run(ft_config, ft_dir, print_fn=print_fn))
        if settings is not None:
            task, seed = finetune.parse_list(ft_config.tasks)[0], finetune.parse_seeds(ft_config.seeds)[0]
            print_fn(f"[study] {name}: compressing its {task} model (seed {seed})")
            timed(
                name,
                "compress",
                lambda: compress.sweep(
                    ft_dir / task / f"seed_{seed}",
                    out / "compress" / name,
                    settings,
                    max_eval_examples=study.compress.max_eval_examples or None,
                    max_train_examples=study.compress.max_train_examples or None,
                    print_fn=print_fn,
                ),
            )
    return collect(study, configs, out, Path(results) if results else Path(out) / "results", command=command)


# ------------------------------------------------------------------------------------------ collection


def constant_baselines(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """Per finetuning task, the best score of a constant answer on the very examples the runs were scored on."""
    from scaling.downstream import datasets, finetune, scores

    rows = []
    for name in finetune.parse_list(config.tasks):
        examples = datasets.load(name, config.eval_split, data_dir=config.data_dir)
        if config.max_eval_examples:
            examples = examples.subset(config.max_eval_examples)
        result = scores.constant_baseline(datasets.get_task(name), examples.labels)
        rows.append(
            {"task": name, "split": config.eval_split, "eval_examples": len(examples.labels), "score": result["score"]}
        )
    return rows


def collect(
    study: ml_collections.ConfigDict,
    configs: Mapping[str, ml_collections.ConfigDict],
    out: Path,
    results: Path,
    *,
    command: str = "",
) -> Path:
    """Gathers every stage's files under ``out`` into the study's tables and report in ``results``."""
    from scaling.analysis import runs, studies
    from scaling.training import metrics

    results.mkdir(parents=True, exist_ok=True)
    names = list(configs)
    table = runs.load_runs(*(out / "pretrain" / n for n in names))
    for column, dotted in RUN_SETTINGS.items():
        table[column] = [configfiles.get(configs[n], dotted) for n in names]
    table["order"] = range(len(names))
    table = table.drop(columns=["workdir"])
    table.to_csv(results / "runs.csv", index=False)
    curves = runs.load_curves(*(out / "pretrain" / n for n in names))
    curves[[c for c in CURVE_COLUMNS if c in curves.columns]].to_csv(results / "curves.csv", index=False)
    downstream, compression, errors, profiles = [], [], [], []
    for name in names:
        if (out / "profile" / f"{name}.csv").is_file():
            profiles += [{"run": name, **row} for row in csvfile.read(out / "profile" / f"{name}.csv")]
        if (out / "finetune" / name / "finetune.csv").is_file():
            downstream += [{"run": name, **row} for row in csvfile.read(out / "finetune" / name / "finetune.csv")]
        for file, rows in (("compression.csv", compression), ("errors.csv", errors)):
            path = out / "compress" / name / file
            if path.is_file():  # `model` becomes the run; the shape name stays in `shape`
                rows += [{**row, "shape": row["model"], "model": name} for row in csvfile.read(path)]
    ft_config = finetune_config(study, out) if study.finetune.recipe else None
    csvfile.write(results / "profile.csv", profiles)
    csvfile.write(results / "baselines.csv", constant_baselines(ft_config) if ft_config else [])
    csvfile.write(results / "downstream.csv", downstream)
    csvfile.write(results / "compression.csv", compression)
    csvfile.write(results / "errors.csv", errors)
    clock = _Clock(out / "stage_seconds.json").seconds
    record = {
        "name": study.name,
        "kind": study.kind,
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hardware": {**metrics.hardware_info(), "cpu_count": os.cpu_count()},
        "software": metrics.software_versions(),
        "pretrain_seeds": sorted({int(c.seed) for c in configs.values()}),
        "finetune_seeds": str(ft_config.seeds) if ft_config else None,
        "stage_seconds": clock,
        "total_seconds": round(sum(sum(s.values()) for s in clock.values()), 1),
        "study": json.loads(study.to_json_best_effort()),
    }
    (results / "study.json").write_text(json.dumps(record, indent=2) + "\n")
    (results / "report.md").write_text(studies.report(results))
    return results
