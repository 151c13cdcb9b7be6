"""Knob scans: a base shape, scaling operators with values, a budget and a recipe → runs → one results table.

    python -m scaling.sweep --recipe=configs/demo.py --base=tiny --op=nl --values=1,2,3 \\
        --budget=seconds:20 --out=DIR [--config.FIELD=VALUE ...] [--emit-launch]

Each ``--op``/``--values`` pair is one axis (``--op=nl --values=4,8,12 --op=dm --values=512,1k`` scans the
grid of both); a value replaces that knob of the base shape, so ``--base=small`` with ``nl24`` is
``small-nl24`` (names are :mod:`scaling.shapes` canonical names, which are also the workdir names under
``--out``). The budget is ``UNIT:AMOUNT`` in any unit of :mod:`scaling.budget` — the same for every run,
which is what makes the runs comparable on one axis. ``--config.FIELD=VALUE`` overrides apply to every run.

Runs go one after another in this process (``scaling.trainer.train``); a run whose ``summary.json`` says
``completed`` is skipped, an interrupted one resumes from its checkpoint. ``--emit-launch`` instead prints one
``python -m scaling.train`` line per run that is not finished, for a cluster scheduler. At the end the finished
runs are collected by :func:`scaling.analysis.runs.load_runs` into ``DIR/results.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as scaling.train: tf.data's device notes are noise

import ml_collections  # noqa: E402

from scaling import budget as budget_lib  # noqa: E402
from scaling import shapes  # noqa: E402

RESULTS_FILE = "results.csv"
_KNOBS = ("nl", "el", "dl", "dm", "ff", "nh", "kv")
_SWEEP_FIELDS = ("model.name", "budget.unit", "budget.amount")


class SweepError(ValueError):
    """A sweep specification that cannot expand into valid runs."""


# ------------------------------------------------------------------------------------------- recipes

def load_recipe(spec: str) -> ml_collections.ConfigDict:
    """``configs/NAME.py`` or ``configs/NAME.py:ARG`` → the file's ``get_config([ARG])``, as `--config` reads it."""
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise SweepError(f"recipe {spec!r}: no file {file}; give a config file such as configs/demo.py")
    module_spec = importlib.util.spec_from_file_location(f"recipe_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise SweepError(f"recipe {spec!r}: {file} has no get_config()")
    return module.get_config(arg) if arg else module.get_config()


def _parse_value(text: str, kind: type) -> object:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{text!r} is not a boolean (true/false)")
        return text.lower() in ("true", "1")
    if kind is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError(f"{text!r} is not an integer")
        return int(number)
    return kind(text)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]) -> None:
    """Sets dotted ``FIELD`` to ``VALUE`` (parsed as the field's declared type), like ``--config.FIELD=VALUE``."""
    for field, text in overrides:
        if field in _SWEEP_FIELDS:
            raise SweepError(f"--config.{field}: the sweep sets it (use --base/--op/--values and --budget)")
        *parents, last = field.split(".")
        target = config
        try:
            for part in parents:
                target = target[part]
            kind = target.get_type(last)
            target[last] = _parse_value(text, kind)
        except (KeyError, AttributeError):
            raise SweepError(f"--config.{field}: the recipe has no such field") from None
        except (TypeError, ValueError) as e:
            raise SweepError(f"--config.{field}={text}: {e}") from None


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


def parse_budget(text: str) -> tuple[str, float]:
    """``seconds:20``, ``steps:200``, ``tokens:1e6``, ``flops:3e15`` → (unit, amount), validated."""
    unit, sep, amount = text.partition(":")
    if not sep:
        raise SweepError(f"--budget={text!r}: write UNIT:AMOUNT, e.g. seconds:20")
    try:
        budget = budget_lib.Budget(unit.strip(), float(amount))
    except ValueError as e:
        raise SweepError(f"--budget={text!r}: {e}; write UNIT:AMOUNT with UNIT one of {budget_lib.UNITS}") from None
    return budget.unit, budget.amount


def shape_name(base: str, knobs: dict[str, str]) -> str:
    """The canonical name of ``base`` with each knob replaced: ("tiny-nl2", {"nl": "3"}) → "tiny-nl3"."""
    try:
        tokens = shapes.parse(base).name.split("-")
    except shapes.ShapeError as e:
        raise SweepError(f"--base: {e}") from None
    for op in knobs:
        if op not in _KNOBS:
            raise SweepError(f"--op={op}: not a scaling operator; use one of {_KNOBS}")
    # NL sets both stacks, so it replaces EL/DL tokens of the base, and EL or DL replaces NL.
    replaced = set(knobs) | ({"el", "dl"} if "nl" in knobs else set())
    replaced |= {"nl"} if {"el", "dl"} & set(knobs) else set()
    kept = [t for t in tokens if not any(t.startswith(op) and t[len(op):][:1].isdigit() for op in replaced)]
    name = "-".join(kept + [f"{op}{value}" for op, value in knobs.items()])
    try:
        return shapes.parse(name).name
    except shapes.ShapeError as e:
        raise SweepError(f"{name}: {e}") from None


def expand(sweep: Sweep, recipe: ml_collections.ConfigDict) -> list[Point]:
    """Every grid point as a validated config (the recipe, the overrides, its shape and the sweep's budget)."""
    from scaling import trainer  # jax is only needed once configs are built

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
        apply_overrides(config, sweep.overrides)
        config.model.name = name
        config.budget.unit, config.budget.amount = sweep.budget
        try:
            trainer.validate(config)
        except trainer.ConfigError as e:
            raise SweepError(f"{name}: {e}") from None
        points.append(Point(name, config))
    return points


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
    args = ["python", "-m", "scaling.train", f"--config={sweep.recipe}", f"--workdir={out / point.name}",
            f"--config.model.name={point.name}", f"--config.budget.unit={unit}", f"--config.budget.amount={amount:g}"]
    args += [f"--config.{field}={value}" for field, value in sweep.overrides]
    return shlex.join(args)


def run(sweep: Sweep, out: str | Path, *, recipe: ml_collections.ConfigDict | None = None,
        print_fn: Callable[[str], None] = print, emit_launch: bool = False) -> Path | None:
    """Trains (or, with ``emit_launch``, prints the launch line of) every unfinished point, then collects.

    Returns the path of ``out/results.csv`` (None when only launch lines were printed or nothing finished).
    A run that stops on a non-finite loss is reported and the sweep goes on; the error is raised at the end.
    """
    from scaling import trainer

    out = Path(out)
    points = expand(sweep, recipe if recipe is not None else load_recipe(sweep.recipe))
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
        raise RuntimeError("some runs failed:\n" + "\n".join(failures))
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


# ------------------------------------------------------------------------------------------------ CLI

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scaling.sweep", description=__doc__.split("\n\n")[0],
                                     epilog="Any --config.FIELD=VALUE is applied to every run, as in scaling.train.")
    parser.add_argument("--recipe", required=True, help="config file, e.g. configs/demo.py or configs/x.py:ARG")
    parser.add_argument("--base", required=True, help="base shape, e.g. tiny, small, base-dm512")
    parser.add_argument("--op", action="append", default=[], help=f"scaling operator, one of {_KNOBS}; repeatable")
    parser.add_argument("--values", action="append", default=[], help="comma-separated values for the matching --op")
    parser.add_argument("--budget", required=True, help="UNIT:AMOUNT per run, e.g. seconds:20 or steps:500")
    parser.add_argument("--out", required=True, help="sweep directory: one workdir per run, and results.csv")
    parser.add_argument("--emit-launch", action="store_true", help="print one scaling.train line per run instead")
    return parser


def config_overrides(parser: argparse.ArgumentParser, rest: Sequence[str]) -> list[tuple[str, str]]:
    """(field, value) pairs from leftover `--config.FIELD=VALUE` arguments; anything else is a usage error."""
    overrides = []
    for item in rest:
        field, sep, value = item.removeprefix("--config.").partition("=")
        if not item.startswith("--config.") or not sep:
            parser.error(f"unrecognised argument {item!r}; overrides are --config.FIELD=VALUE")
        overrides.append((field, value))
    return overrides


def parse_args(argv: Sequence[str]) -> tuple[Sweep, Path, bool]:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    overrides = config_overrides(parser, rest)
    if len(args.op) != len(args.values):
        parser.error("give one --values after each --op")
    axes = tuple((op.lower(), tuple(v.strip().lower() for v in values.split(",") if v.strip()))
                 for op, values in zip(args.op, args.values))
    sweep = Sweep(recipe=args.recipe, base=args.base, axes=axes, budget=parse_budget(args.budget),
                  overrides=tuple(overrides))
    return sweep, Path(args.out), args.emit_launch


def main(argv: Sequence[str] | None = None) -> int:
    try:
        sweep, out, emit = parse_args(sys.argv[1:] if argv is None else argv)
        path = run(sweep, out, emit_launch=emit, print_fn=lambda line: print(line, flush=True))
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if path is not None:
        print(f"[sweep] results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
