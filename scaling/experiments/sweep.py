"""Knob scans: a base shape, scaling operators with values, a budget and a recipe → runs → one results table.

    python -m scaling.sweep --config=configs/demo.py --base=tiny --op=nl --values=1,2,3 \\
        --config.budget=seconds:20 --out=DIR [--config.FIELD=VALUE ...] [--emit_launch]

Each ``--op``/``--values`` pair is one axis (``--op=nl --values=4,8,12 --op=dm --values=512,1k`` scans the
grid of both); a value replaces that knob of the base shape, so ``--base=small`` with ``nl24`` is
``small-nl24`` (names are :mod:`scaling.shapes` canonical names, which are also the workdir names under
``--out``). The budget is ``--config.budget=UNIT:AMOUNT`` in any unit of :mod:`scaling.budget` (the config
file's own when not given) — the same for every run, which is what makes the runs comparable on one axis.
``--config.FIELD=VALUE`` overrides apply to every run.

Runs go one after another in this process (``scaling.training.trainer.train``); a run whose ``summary.json`` says
``completed`` is skipped, an interrupted one resumes from its checkpoint. ``--emit_launch`` instead prints one
``python -m scaling.train`` line per run that is not finished, for a cluster scheduler. At the end the finished
runs are collected by :func:`scaling.analysis.runs.load_runs` into ``DIR/results.csv``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import ml_collections

from scaling import shapes
from scaling.errors import ScalingError, UserError
from scaling.experiments import configfiles

RESULTS_FILE = "results.csv"
KNOBS = ("nl", "el", "dl", "dm", "ff", "nh", "kv")  # the scaling operators a sweep scans
_SWEEP_FIELDS = ("model.name", "budget", "budget.unit", "budget.amount")


class SweepError(UserError):
    """A sweep specification that cannot expand into valid runs."""


# ------------------------------------------------------------------------------------------- the sweep


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What to scan. ``recipe`` is the config file spec (launch lines name it); ``axes`` pair a knob with values."""

    recipe: str
    base: str
    axes: tuple[tuple[str, tuple[str, ...]], ...]
    budget: tuple[str, float]
    overrides: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep: its canonical shape name (also its workdir name) and full config."""

    name: str
    config: ml_collections.ConfigDict


def shape_name(base: str, knobs: dict[str, str]) -> str:
    """The canonical name of ``base`` with each knob replaced: ("tiny-nl2", {"nl": "3"}) → "tiny-nl3"."""
    try:
        tokens = shapes.parse(base).name.split("-")
    except shapes.ShapeError as e:
        raise SweepError(f"--base: {e}") from None
    for op in knobs:
        if op not in KNOBS:
            raise SweepError(f"--op={op}: not a scaling operator; use one of {KNOBS}")
    # NL sets both stacks, so it replaces EL/DL tokens of the base, and EL or DL replaces NL.
    replaced = set(knobs) | ({"el", "dl"} if "nl" in knobs else set())
    replaced |= {"nl"} if {"el", "dl"} & set(knobs) else set()
    kept = [t for t in tokens if not any(t.startswith(op) and t[len(op) :][:1].isdigit() for op in replaced)]
    name = "-".join(kept + [f"{op}{value}" for op, value in knobs.items()])
    try:
        return shapes.parse(name).name
    except shapes.ShapeError as e:
        raise SweepError(f"{name}: {e}") from None


def expand(sweep: Sweep, recipe: ml_collections.ConfigDict) -> list[Point]:
    """Every grid point as a validated config (the recipe, the overrides, its shape and the sweep's budget)."""
    from scaling.training import trainer  # jax is only needed once configs are built

    if not sweep.axes:
        raise SweepError("a sweep needs at least one --op with --values")
    ops = [op for op, _ in sweep.axes]
    if len(set(ops)) != len(ops):
        raise SweepError(f"--op given twice in {ops}; give each operator once with all its values")
    points, seen = [], set()
    for combo in itertools.product(*(values for _, values in sweep.axes)):
        name = shape_name(sweep.base, dict(zip(ops, combo)))
        if name in seen:
            continue
        seen.add(name)
        config = ml_collections.ConfigDict(recipe.to_dict())
        _apply_overrides(config, sweep.overrides)
        config.model.name = name
        config.budget.unit, config.budget.amount = sweep.budget
        try:
            trainer.validate(config)
        except trainer.ConfigError as e:
            raise SweepError(f"{name}: {e}") from None
        points.append(Point(name, config))
    return points


def _apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]) -> None:
    """Every ``(FIELD, TEXT)`` override but those the sweep itself sets (its shape names and its budget)."""
    for field, _ in overrides:
        if field in _SWEEP_FIELDS:
            raise SweepError(
                f"--config.{field}: the sweep sets it per run (use --base/--op/--values for the "
                f"shape, and --config.budget=UNIT:AMOUNT for every run's budget)"
            )
    configfiles.apply_overrides(config, overrides)


def is_finished(workdir: Path) -> bool:
    """Whether ``workdir/summary.json`` records a completed budget (a crashed or preempted run does not)."""
    path = workdir / "summary.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text())["final_metrics"]["completed"])
    except (ValueError, KeyError, TypeError):
        return False


def launch_command(sweep: Sweep, point: Point, out: Path) -> str:
    """The ``python -m scaling.train`` line that trains ``point`` on its own (the cluster form of a run)."""
    unit, amount = sweep.budget
    short = f"{amount:g}"
    args = [
        "python",
        "-m",
        "scaling.train",
        f"--config={sweep.recipe}",
        f"--workdir={out / point.name}",
        f"--config.model.name={point.name}",
        f"--config.budget={unit}:{short if float(short) == amount else repr(float(amount))}",
    ]
    args += [f"--config.{field}={value}" for field, value in sweep.overrides]
    return shlex.join(args)


def run(
    sweep: Sweep,
    out: str | Path,
    *,
    recipe: ml_collections.ConfigDict | None = None,
    print_fn: Callable[[str], None] = print,
    emit_launch: bool = False,
) -> Path | None:
    """Trains (or, with ``emit_launch``, prints the launch line of) every unfinished point, then collects.

    Returns the path of ``out/results.csv`` (None when only launch lines were printed or nothing finished).
    A run that stops on a non-finite loss is reported and the sweep goes on; the error is raised at the end.
    """
    from scaling.training import trainer

    out = Path(out)
    points = expand(sweep, recipe if recipe is not None else configfiles.load(sweep.recipe))
    failures: list[str] = []
    for point in points:
        workdir = out / point.name
        if is_finished(workdir):
            print_fn(f"[sweep] {point.name}: finished, skipped")
        elif emit_launch:
            print_fn(launch_command(sweep, point, out))
        else:
            print_fn(f"[sweep] {point.name}: training in {workdir}")
            try:
                trainer.train(point.config, workdir, print_fn=print_fn)
            except trainer.NonFiniteLossError as e:
                failures.append(f"{point.name}: {e}")
                print_fn(f"[sweep] {point.name} failed: {e}")
    if emit_launch:
        return None
    path = collect(out, [p.name for p in points])
    if failures:
        raise ScalingError(f"{len(failures)} run(s) failed: " + "; ".join(failures))
    return path


def collect(out: Path, names: Sequence[str]) -> Path | None:
    """Writes the finished runs among ``names`` under ``out`` to ``out/results.csv`` (the analysis loader's table)."""
    from scaling.analysis import runs

    finished = [out / name for name in names if is_finished(out / name)]
    if not finished:
        return None
    path = out / RESULTS_FILE
    table = runs.load_runs(*finished)
    table["workdir"] = [w.name for w in finished]  # relative to results.csv, so the folder can move
    table.to_csv(path, index=False)
    return path
