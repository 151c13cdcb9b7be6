"""One notion of "fraction of the budget spent", whatever the budget is counted in.

A run's budget is an amount of ``steps``, ``tokens``, ``flops`` or wall-clock ``seconds`` (config block
``config.budget``: ``unit`` and ``amount``), written one way on every command line: ``--config.budget=UNIT:AMOUNT``
(:func:`parse`; ``hours:2`` is ``seconds:7200``). The trainer keeps a :class:`Spent` record of all four — so every
log line can be plotted against any of them, whichever unit the run was budgeted in — and asks the
:class:`Budget` for ``progress`` (drives budget-tied schedules and the batch ramp) and ``done``.

Seconds are measured on the host and exclude compilation (the trainer reports compile time separately).
Clocks differ between hosts, so a wall-clock budget must be decided identically everywhere or processes
disagree on the last step and hang in a collective: pass the measured seconds through
:func:`agree_across_processes` (process 0's clock wins) before asking ``done``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from scaling.errors import UserError

UNITS = ("steps", "tokens", "flops", "seconds")
SPELLINGS = {**{unit: (unit, 1.0) for unit in UNITS}, "hours": ("seconds", 3600.0)}  # UNIT of UNIT:AMOUNT


def default_config() -> ml_collections.ConfigDict:
    """The ``config.budget`` block: 10k steps unless the experiment says otherwise."""
    return ml_collections.ConfigDict({"unit": "steps", "amount": 10_000.0})


@dataclasses.dataclass(frozen=True)
class Spent:
    """What a run has used so far, in every unit (also the checkpoint's record of where a run stands)."""

    step: int = 0
    tokens: int = 0
    flops: float = 0.0
    seconds: float = 0.0

    def advance(self, *, steps: int = 1, tokens: int = 0, flops: float = 0.0, seconds: float = 0.0) -> Spent:
        """The record after ``steps`` more updates that used ``tokens``, ``flops`` and ``seconds``."""
        return Spent(self.step + steps, self.tokens + tokens, self.flops + flops, self.seconds + seconds)

    def as_dict(self) -> dict[str, float]:
        """JSON-ready, for checkpoint metadata and log records."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, float]) -> Spent:
        """Inverse of :meth:`as_dict` (resume from checkpoint metadata)."""
        return cls(int(record["step"]), int(record["tokens"]), float(record["flops"]), float(record["seconds"]))


@dataclasses.dataclass(frozen=True)
class Budget:
    """A budget of ``amount`` in ``unit`` (one of :data:`UNITS`)."""

    unit: str
    amount: float

    def __post_init__(self):
        if self.unit not in UNITS:
            raise UserError(f"budget.unit={self.unit!r} is unknown; use one of {UNITS}")
        if not (isinstance(self.amount, (int, float)) and math.isfinite(self.amount) and self.amount > 0):
            raise UserError(f"budget.amount={self.amount!r}: use a positive, finite amount of {self.unit}")

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> Budget:
        """From the ``config.budget`` block (``unit``, ``amount``)."""
        return cls(config.unit, config.amount)

    def used(self, spent: Spent) -> float:
        """How much of this budget's unit ``spent`` represents."""
        return float(spent.step if self.unit == "steps" else getattr(spent, self.unit))

    def progress(self, spent: Spent) -> float:
        """Fraction of the budget spent, clipped to [0, 1]."""
        return min(1.0, max(0.0, self.used(spent) / self.amount))

    def done(self, spent: Spent) -> bool:
        """Whether the budget is exhausted (no further update should start)."""
        return self.used(spent) >= self.amount

    def projected_steps(self, spent: Spent) -> int | None:
        """Total steps the run will take at its current rate (exact for a step budget); None before any."""
        if self.unit == "steps":
            return math.ceil(self.amount)
        p = self.progress(spent)
        return math.ceil(spent.step / p) if p > 0 and spent.step > 0 else None


def parse(text: str) -> tuple[str, float]:
    """``UNIT:AMOUNT`` → ``(unit, amount)``, validated: the one spelling of a budget on every command line.

    UNIT is one of :data:`UNITS` or ``hours`` (stored as seconds): ``steps:1000``, ``tokens:2e9``,
    ``flops:3e15``, ``seconds:600``, ``hours:2`` → ``("seconds", 7200.0)``. The message of the
    :class:`~scaling.errors.UserError` a bad one raises says what to write; callers prefix the field.
    """
    example = "write UNIT:AMOUNT, e.g. steps:1000 or hours:2, with UNIT one of " + ", ".join(SPELLINGS)
    unit, sep, amount = str(text).partition(":")
    unit = unit.strip().lower()
    if not sep:
        raise UserError(example)
    if unit not in SPELLINGS:
        raise UserError(f"unknown unit {unit!r}; {example}")
    try:
        number = float(amount)
    except ValueError:
        raise UserError(f"amount {amount.strip()!r} is not a number; {example}") from None
    if not (math.isfinite(number) and number > 0):
        raise UserError(f"amount {number:g} must be positive and finite; {example}")
    unit, scale = SPELLINGS[unit]
    return unit, number * scale


def agree_across_processes(seconds: float) -> float:
    """Process 0's value of ``seconds`` on every process, so all stop on the same step (identity on one host)."""
    if jax.process_count() == 1:
        return seconds
    return float(multihost_utils.broadcast_one_to_all(np.asarray(seconds, np.float32)))
