"""Studies: one paper's headline experiment in miniature, end to end with the project's own stages.

    python -m scaling.study --config=configs/study_cramming.py[:smoke] --out=DIR [--results=DIR]
        [--config.FIELD=VALUE ...]

A study file (``configs/study_*.py``) names pretraining runs — a recipe, overrides shared by every run, one
budget, each run's own overrides, and the pretraining seeds every run is repeated with — and the stages that
follow each run and seed:

1. **pretrain** with :func:`scaling.training.trainer.train` into ``DIR/pretrain/RUN/seed_S`` (skipped when finished,
   resumed from its checkpoint when interrupted, as in :mod:`scaling.experiments.sweep`);
2. **profile** each run's train step with :func:`scaling.experiments.profile.profile` into ``DIR/profile/RUN.csv``
   (measured throughput, when ``profile.steps`` is set);
3. **finetune** with :func:`scaling.downstream.finetune.run` into ``DIR/finetune/RUN/seed_S`` (a finished task/seed is
   kept); with ``controls.no_pretraining`` the reference run's shape is also finetuned from a random
   initialisation, once per seed (``DIR/control/no_pretraining/seed_S``): the row that says how much of a
   downstream score pretraining bought (Cramming Table 3 has one);
4. **compress** the first task's model of each pretraining seed with :func:`scaling.downstream.compress.sweep` into
   ``DIR/compress/RUN/seed_S``.

Stages go one at a time over all runs: every pretraining (the budgeted, timed part) before any profiling, and both
before the untimed finetuning and compression. A study refuses to start while another study or training run is
registered on the machine (:mod:`scaling.training.machine`) unless ``share_machine`` is set; every trainer run
records the load it saw in ``machine.jsonl``, and ``runs.csv`` says per run whether its time axis is usable.

Then the tables go to ``--results`` (default ``OUT/results``: the checkout is written only when told, e.g.
``--results=notebooks/results/NAME`` to regenerate what the repository ships):
``runs.csv`` (one row per run and seed), ``curves.csv``, ``objective_baselines.csv`` (what trivial predictors
score on each pretraining task's eval batches), ``profile.csv``, ``downstream.csv``, ``baselines.csv`` (the best
constant answer per task and metric), ``compression.csv``, ``errors.csv``, ``runs/RUN/seed_S/`` (each pretraining
run's ``metrics.jsonl``, ``summary.json`` and ``machine.jsonl``), ``study.json`` (command, commit, whether the
tree was dirty, hardware, software, seeds, when each stage ran and under what load) and ``report.md``, whose
tables and findings :mod:`scaling.analysis.studies` computes from those files — nothing is typed in by hand.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from scaling import budget as budget_lib
from scaling import csvfile
from scaling.errors import UserError
from scaling.experiments import configfiles, sweep
from scaling.training import machine

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
}
RUN_FILES = ("metrics.jsonl", "summary.json", machine.MACHINE_FILE)  # shipped with the tables, per run and seed
CONTROL = "no_pretraining"


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
            "seeds": "0",  # pretraining seeds: every run is trained once per seed (config.seed)
            "reference": "",  # the run findings compare against, whose shape the no-pretraining control uses
            "controls": {"no_pretraining": False},
            "baseline_train_rows": 0,  # rows the objective baselines count; 0: baselines.TRAIN_ROWS
            # steps 0: no profile stage; peak_sizes: the square matmuls that measure a CPU's limit ("": the default)
            "profile": {"steps": 0, "warmup": 2, "peak_sizes": ""},
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


def seeds(study: ml_collections.ConfigDict) -> list[int]:
    """The pretraining seeds, e.g. ``"0,1,2"``."""
    try:
        found = [int(s) for s in str(study.seeds).split(",") if s.strip()]
    except ValueError:
        raise StudyError(f"config.seeds = {study.seeds!r}: use comma-separated integers such as '0,1,2'") from None
    if not found or len(set(found)) != len(found):
        raise StudyError(f"config.seeds = {study.seeds!r}: give one or more distinct seeds")
    return found


def reference(study: ml_collections.ConfigDict) -> str:
    """The run findings are read against (``config.reference``, else the first run)."""
    names = run_names(study)
    if study.reference and study.reference not in names:
        raise StudyError(f"config.reference = {study.reference!r} is not a run; runs are {names}")
    return study.reference or names[0]


def peak_sizes(study: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The profile stage's matmul sizes for a CPU's limit (:func:`scaling.experiments.peak.measured_peak`)."""
    from scaling.experiments import peak

    try:
        return peak.parse_sizes(str(study.profile.peak_sizes))
    except ValueError as e:
        raise StudyError(f"config.profile.peak_sizes = {study.profile.peak_sizes!r}: {e}") from None


def pretrain_configs(study: ml_collections.ConfigDict) -> dict[tuple[str, int], ml_collections.ConfigDict]:
    """Each (run, seed)'s full training config: the recipe, ``common``, the run's overrides, the shared budget,
    the seed."""
    from scaling.training import trainer

    for field in ("name", "kind", "recipe", "budget"):
        if not study[field]:
            raise StudyError(f"config.{field} is not set")
    try:
        budget_lib.parse(study.budget)
    except UserError as e:
        raise StudyError(f"config.budget={study.budget}: {e}") from None
    if study.baseline_train_rows < 0:
        raise StudyError(f"config.baseline_train_rows = {study.baseline_train_rows}: give 0 (the default) or more")
    peak_sizes(study)
    recipe = configfiles.load(study.recipe, where="config.recipe")
    if CONTROL in study.runs:
        raise StudyError(f"config.runs: {CONTROL!r} is the name of the no-pretraining control; rename that run")
    configs = {}
    for name in run_names(study):
        for seed in seeds(study):
            config = ml_collections.ConfigDict(recipe.to_dict())
            configfiles.apply_mapping(config, study.common.to_dict(), "config.common.")
            configfiles.apply_mapping(config, study.runs[name].to_dict(), f"config.runs.{name}.")
            configfiles.set_value(config, configfiles.BUDGET, study.budget)  # UNIT:AMOUNT, as --config.budget
            config.seed = seed
            try:
                trainer.validate(config)
            except trainer.ConfigError as e:
                raise StudyError(f"run {name}: {e}") from None
            configs[name, seed] = config
    return configs


def seed_dir(root: Path, name: str, seed: int) -> Path:
    return root / name / f"seed_{seed}"


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


class StageLog:
    """When each stage of each run and seed ran, for how long and under what load: ``DIR/stages.jsonl``, one line
    per piece of work (a resumed stage adds a line), kept across resumptions."""

    def __init__(self, path: Path):
        self.path = path

    def run(self, run: str, seed: int | None, stage: str, work: Callable[[], Any]) -> None:
        with machine.Monitor() as monitor:
            work()
        with open(self.path, "a") as f:
            f.write(json.dumps({"run": run, "seed": seed, "stage": stage, **monitor.record()}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def plan(study: ml_collections.ConfigDict, out: str | Path) -> list[str]:
    """What :func:`run_study` would do, one line a stage, after validating every run's config, the finetuning
    recipe and the compression settings — `python -m scaling.study --dry_run` prints it."""
    configs = pretrain_configs(study)
    settings = _check_stages(study)
    out = Path(out)
    lines = []
    for (name, seed), config in configs.items():
        lines.append(
            f"pretrain {name} seed {seed}: {config.model.name} on {config.data.task}, budget "
            f"{config.budget.amount:g} {config.budget.unit} → {seed_dir(out / 'pretrain', name, seed)}"
        )
    for name in run_names(study) if study.profile.steps else ():
        lines.append(f"profile {name}: {study.profile.steps} steps → {out / 'profile' / f'{name}.csv'}")
    for name, seed in _finetuned(study):
        ft_config = finetune_config(study, _pretrained(out, name, seed))
        lines.append(
            f"finetune {name} seed {seed}: {ft_config.tasks} (finetuning seeds {ft_config.seeds}) → "
            f"{seed_dir(out / 'finetune', name, seed)}"
        )
        if settings is not None and name != CONTROL:
            lines.append(
                f"compress {name} seed {seed}: bits {settings.bits}, sparsities {settings.sparsities} → "
                f"{seed_dir(out / 'compress', name, seed)}"
            )
    return lines


def _check_stages(study: ml_collections.ConfigDict) -> Any:
    settings = compress_settings(study) if study.compress.enabled else None
    if settings is not None and not study.finetune.recipe:
        raise StudyError("config.compress.enabled needs a finetuning stage: set config.finetune.recipe")
    if study.controls.no_pretraining and not study.finetune.recipe:
        raise StudyError("config.controls.no_pretraining needs a finetuning stage: set config.finetune.recipe")
    reference(study)
    return settings


def _finetuned(study: ml_collections.ConfigDict) -> list[tuple[str, int]]:
    """(run, seed) pairs the finetuning stage covers: every run and seed, then the control's seeds."""
    if not study.finetune.recipe:
        return []
    pairs = [(name, seed) for name in run_names(study) for seed in seeds(study)]
    return pairs + [(CONTROL, seed) for seed in seeds(study)] if study.controls.no_pretraining else pairs


def _pretrained(out: Path, name: str, seed: int) -> Path:
    return seed_dir(out / ("control" if name == CONTROL else "pretrain"), name, seed)


def random_init(config: ml_collections.ConfigDict, directory: Path) -> None:
    """A model artifact of ``config``'s shape, randomly initialised with ``config.seed`` exactly as pretraining
    would start: the no-pretraining control's starting point."""
    import jax
    from flax import nnx

    from scaling.data import tasks
    from scaling.training import artifact, trainer

    if (directory / artifact.MODEL_FILE).is_file():
        return
    run = trainer.build_run(config)
    params = nnx.split(run.build_model(nnx.Rngs(params=jax.random.key(config.seed))))[1]
    artifact.save(
        directory,
        shape=run.shape,
        params=params,
        vocabulary=tasks.vocabulary(config.data.task),
        provenance=artifact.provenance("random_init", "none", seed=int(config.seed)),
        overwrite=True,
    )


def git_state() -> dict[str, Any]:
    """The commit the study ran at and whether tracked files differed from it (None outside a checkout)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def run_study(
    study: ml_collections.ConfigDict,
    out: str | Path,
    results: str | Path | None = None,
    *,
    command: str = "",
    share_machine: bool = False,
    print_fn: Callable[[str], None] = print,
) -> Path:
    """Runs every unfinished stage of every run and seed, then writes the tables and report; returns the results
    dir. Refuses to start beside another registered study or training run unless ``share_machine``."""
    from scaling.downstream import compress, finetune
    from scaling.experiments import profile
    from scaling.training import trainer

    out = Path(out)
    configs = pretrain_configs(study)
    settings = _check_stages(study)
    busy = machine.others()
    if busy and not share_machine:
        listed = "; ".join(f"{r['kind']} {r['what']} (PID {r['pid']}, since {r['started']})" for r in busy)
        raise StudyError(
            f"another run is using this machine: {listed}. Wait for it to end, or pass --share_machine (the "
            f"study then runs beside it and marks every run whose time it shared as unusable for wall-clock)"
        )
    out.mkdir(parents=True, exist_ok=True)
    log = StageLog(out / "stages.jsonl")
    with machine.registered("study", out):
        # Stage by stage, so that every budgeted (timed) stage runs before the untimed downstream work.
        for (name, seed), config in configs.items():
            workdir = seed_dir(out / "pretrain", name, seed)
            if not sweep.is_finished(workdir):
                print_fn(f"[study] {name} seed {seed}: pretraining {config.model.name} in {workdir}")
                log.run(name, seed, "pretrain", lambda: trainer.train(config, workdir, print_fn=print_fn))
        first = {name: config for (name, seed), config in configs.items() if seed == seeds(study)[0]}
        for name, config in first.items() if study.profile.steps else ():
            path = out / "profile" / f"{name}.csv"
            if not path.is_file():
                print_fn(f"[study] {name}: profiling the train step")
                log.run(
                    name,
                    None,
                    "profile",
                    lambda: profile.append_rows(
                        path,
                        [
                            profile.profile(
                                config,
                                steps=study.profile.steps,
                                warmup=study.profile.warmup,
                                recipe=study.recipe,
                                peak_sizes=peak_sizes(study),
                            )
                        ],
                    ),
                )
        for name, seed in _finetuned(study):
            if name == CONTROL:
                control = configs[reference(study), seed]
                random_init(control, _pretrained(out, name, seed))
            ft_config = finetune_config(study, _pretrained(out, name, seed))
            ft_dir = seed_dir(out / "finetune", name, seed)
            print_fn(f"[study] {name} seed {seed}: finetuning on {ft_config.tasks}")
            log.run(name, seed, "finetune", lambda: finetune.run(ft_config, ft_dir, print_fn=print_fn))
            if settings is None or name == CONTROL:
                continue
            task, ft_seed = finetune.parse_list(ft_config.tasks)[0], finetune.parse_seeds(ft_config.seeds)[0]
            print_fn(f"[study] {name} seed {seed}: compressing its {task} model (finetuning seed {ft_seed})")
            log.run(
                name,
                seed,
                "compress",
                lambda: compress.sweep(
                    ft_dir / task / f"seed_{ft_seed}",
                    seed_dir(out / "compress", name, seed),
                    settings,
                    max_eval_examples=study.compress.max_eval_examples or None,
                    max_train_examples=study.compress.max_train_examples or None,
                    print_fn=print_fn,
                ),
            )
    return collect(
        study, configs, out, Path(results) if results else out / "results", command=command, shared=bool(busy)
    )


# ------------------------------------------------------------------------------------------ collection


def constant_baselines(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """Per finetuning task and metric, the best a constant answer scores on the very examples the runs were
    scored on (each metric's own best constant: the majority class for accuracy, the positive class for F1)."""
    from scaling.downstream import datasets, finetune, scores

    rows = []
    for name in finetune.parse_list(config.tasks):
        task = datasets.get_task(name)
        examples = datasets.load(name, config.eval_split, data_dir=config.data_dir)
        if config.max_eval_examples:
            examples = examples.subset(config.max_eval_examples)
        for metric in task.metrics:
            best = scores.constant_baseline(dataclasses.replace(task, main_metrics=(metric,)), examples.labels)
            rows.append(
                {
                    "task": name,
                    "metric": metric,
                    "split": config.eval_split,
                    "eval_examples": len(examples.labels),
                    "value": best[metric],
                }
            )
    return rows


def objective_baselines(
    configs: Mapping[tuple[str, int], ml_collections.ConfigDict], train_rows: int = 0
) -> list[dict[str, Any]]:
    """What trivial predictors score on each pretraining task's eval batches, per seed (the seed draws the eval
    batches): the unigram, and for span corruption sentinels right with a content unigram. A run not below them
    has not learned word frequencies. ``train_rows`` 0 counts the default (`baselines.TRAIN_ROWS`)."""
    from scaling.data import baselines

    train_rows = train_rows or baselines.TRAIN_ROWS
    rows, done = [], set()
    for (_, seed), config in configs.items():
        key = (config.data.task, seed, config.data.inputs_length, config.data.get("targets_length"))
        key += (config.data.eval_batches, config.micro_batch_size or config.batch_size)
        if key not in done:
            done.add(key)
            rows += [{**row, "seed": seed} for row in baselines.objective_baselines(config, train_rows)]
    return rows


def _ship_run_files(out: Path, results: Path, pairs: list[tuple[str, int]]) -> None:
    for name, seed in pairs:
        source, target = seed_dir(out / "pretrain", name, seed), seed_dir(results / "runs", name, seed)
        target.mkdir(parents=True, exist_ok=True)
        for file in RUN_FILES:
            if (source / file).is_file():
                shutil.copyfile(source / file, target / file)


def collect(
    study: ml_collections.ConfigDict,
    configs: Mapping[tuple[str, int], ml_collections.ConfigDict],
    out: Path,
    results: Path,
    *,
    command: str = "",
    shared: bool = False,
) -> Path:
    """Gathers every stage's files under ``out`` into the study's tables and report in ``results``."""
    from scaling.analysis import runs, studies
    from scaling.training import metrics

    results.mkdir(parents=True, exist_ok=True)
    pairs = list(configs)
    rows = []
    for order, (name, seed) in enumerate(pairs):
        workdir = seed_dir(out / "pretrain", name, seed)
        row = {"run": name, "seed": seed}
        row.update((k, v) for k, v in runs.run_row(workdir).items() if k not in row)
        for column, dotted in RUN_SETTINGS.items():
            row[column] = configfiles.get(configs[name, seed], dotted)
        verdict = machine.verdict(machine.read(workdir))
        row.update(time_usable=verdict["time_usable"], time_unusable_why=verdict["why"], order=order)
        rows.append(row)
    import pandas as pd

    table = pd.DataFrame(rows).drop(columns=["workdir"], errors="ignore")
    table.to_csv(results / "runs.csv", index=False)
    curves = []
    for name, seed in pairs:
        curve = runs.read_metrics(seed_dir(out / "pretrain", name, seed))
        curve.insert(0, "run", name)
        curve.insert(1, "seed", seed)
        curves.append(curve[["run", "seed", *[c for c in CURVE_COLUMNS[1:] if c in curve.columns]]])
    pd.concat(curves, ignore_index=True).to_csv(results / "curves.csv", index=False)
    _ship_run_files(out, results, pairs)
    downstream, compression, errors, profiles = [], [], [], []
    for name in run_names(study):
        if (out / "profile" / f"{name}.csv").is_file():
            profiles += [{"run": name, **row} for row in csvfile.read(out / "profile" / f"{name}.csv")]
    for name, seed in _finetuned(study):
        path = seed_dir(out / "finetune", name, seed) / "finetune.csv"
        if path.is_file():
            downstream += [
                {"run": name, "pretrain_seed": seed, **row, "finetune_seed": row["seed"]} for row in csvfile.read(path)
            ]
        for file, found in (("compression.csv", compression), ("errors.csv", errors)):
            path = seed_dir(out / "compress", name, seed) / file
            if path.is_file():  # `model` becomes the run; the shape name stays in `shape`
                found += [{**row, "shape": row["model"], "model": name, "seed": seed} for row in csvfile.read(path)]
    for row in downstream:
        del row["seed"]
    ft_config = finetune_config(study, out) if study.finetune.recipe else None
    csvfile.write(results / "objective_baselines.csv", objective_baselines(configs, study.baseline_train_rows))
    csvfile.write(results / "profile.csv", profiles)
    csvfile.write(results / "baselines.csv", constant_baselines(ft_config) if ft_config else [])
    csvfile.write(results / "downstream.csv", downstream)
    csvfile.write(results / "compression.csv", compression)
    csvfile.write(results / "errors.csv", errors)
    stages = StageLog(out / "stages.jsonl").read()
    record = {
        "name": study.name,
        "kind": study.kind,
        "command": command,
        **git_state(),
        "collected": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "ran_from": min((s["started"] for s in stages), default=None),
        "ran_to": max((s["ended"] for s in stages), default=None),
        "shared_machine": shared or any(s["other_runs"] for s in stages),
        "runs_time_unusable": sorted({f"{r['run']} seed {r['seed']}" for r in rows if not r["time_usable"]}),
        "hardware": {**metrics.hardware_info(), "cpu_count": os.cpu_count()},
        "software": metrics.software_versions(),
        "pretrain_seeds": seeds(study),
        "finetune_seeds": str(ft_config.seeds) if ft_config else None,
        "reference": reference(study),
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages), 1),
        "study": json.loads(study.to_json_best_effort()),
    }
    (results / "study.json").write_text(json.dumps(record, indent=2) + "\n")
    (results / "report.md").write_text(studies.report(results))
    return results
