"""Checkpoints through orbax: periodic and final saves, keep-N, exact resume, resharding, preemption.

A checkpoint of step N holds two items: ``state`` — the train state, any pytree of ``jax.Array``s (nnx
parameter state, optimizer state, step, RNG keys) — and ``meta``, a JSON dict (the input-pipeline position,
the config, the budget spent so far, ...). The layout on disk is orbax's: ``DIR/<step>/{state,meta}``.

Safety, and what is relied on:
- orbax writes each save into ``<step>.orbax-checkpoint-tmp-*`` and renames it when complete (then writes
  ``commit_success.txt``), so a ``kill -9`` mid-save leaves the previous checkpoints intact; the leftover temp
  directory is deleted when the next :class:`Checkpointer` opens the directory.
- A step directory without orbax's commit marker, or one whose files fail to read, is moved aside to
  ``corrupt-<step>-<unix time>`` (never deleted), a warning names it, and restore falls back to the previous
  good step; :attr:`Checkpointer.quarantined` lists what was moved. Restoring an explicitly requested step
  that is bad raises :class:`CheckpointError` instead.
- Restore takes an abstract tree of ``jax.ShapeDtypeStruct`` with target shardings (see
  :func:`abstract_like`), so a checkpoint written on one mesh restores onto another.

Preemption: :class:`PreemptionHandler` turns SIGTERM (single process) or jax's multi-host preemption sync
point into one flag the training loop checks at step boundaries; the loop then saves with ``force=True`` and
exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from scaling.errors import ScalingError

COMMIT_MARKER = "commit_success.txt"
ITEMS = ("state", "meta")


class CheckpointError(ScalingError, RuntimeError):
    """A checkpoint that cannot be used, with its path and the reason."""

    def __init__(self, message: str, step_dir: Path | None = None):
        super().__init__(message)
        self.step_dir = step_dir


class Restored(NamedTuple):
    step: int
    state: Any
    metadata: dict[str, Any]


def default_config() -> ml_collections.ConfigDict:
    """The ``config.checkpoint`` block."""
    return ml_collections.ConfigDict({"save_interval_steps": 1000, "max_to_keep": 3, "async_save": True})


def abstract_like(tree: Any, shardings: Any = None) -> Any:
    """``jax.ShapeDtypeStruct``s of ``tree`` (arrays or abstract), carrying ``shardings`` (or each leaf's own)."""
    if shardings is None:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def incomplete_reason(step_dir: Path) -> str | None:
    """Why ``step_dir`` is not a complete orbax checkpoint of our two items, or None if it looks complete."""
    missing = [
        str(p.relative_to(step_dir))
        for p in [step_dir / COMMIT_MARKER, *(step_dir / item / COMMIT_MARKER for item in ITEMS)]
        if not p.exists()
    ]
    return f"missing commit marker(s) {missing}" if missing else None


class Checkpointer:
    """Saves and restores train states under ``directory`` (one per run; safe to reopen after a crash)."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        save_interval_steps: int = 1000,
        max_to_keep: int | None = 3,
        async_save: bool = True,
    ):
        if not (isinstance(save_interval_steps, int) and save_interval_steps > 0):
            raise ValueError(f"checkpoint.save_interval_steps={save_interval_steps!r}: use a positive integer")
        if max_to_keep is not None and not (isinstance(max_to_keep, int) and max_to_keep > 0):
            raise ValueError(f"checkpoint.max_to_keep={max_to_keep!r}: use a positive integer, or None to keep all")
        self.directory = Path(directory).absolute()
        self.quarantined: list[Path] = []
        self._options = ocp.CheckpointManagerOptions(
            save_interval_steps=save_interval_steps,
            max_to_keep=max_to_keep,
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=async_save,
        )
        if self.directory.exists():
            for step_dir in sorted(self._step_dirs()):
                reason = incomplete_reason(step_dir)
                if reason:
                    self._quarantine(step_dir, reason)
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)

    @classmethod
    def from_config(cls, directory: str | os.PathLike, config: ml_collections.ConfigDict) -> Checkpointer:
        """From the ``config.checkpoint`` block."""
        return cls(
            directory,
            save_interval_steps=config.save_interval_steps,
            max_to_keep=config.max_to_keep,
            async_save=config.async_save,
        )

    def _step_dirs(self) -> Iterable[Path]:
        return (p for p in self.directory.iterdir() if p.is_dir() and p.name.isdigit())

    def _quarantine(self, step_dir: Path, reason: str) -> None:
        """Move a bad step directory aside (process 0 only) so that orbax no longer counts it as a step."""
        target = step_dir.with_name(f"corrupt-{step_dir.name}-{int(time.time())}")
        logging.warning(
            "checkpoint %s is unusable (%s); moving it to %s and using the previous one", step_dir, reason, target
        )
        if jax.process_index() == 0:
            step_dir.rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"quarantine {step_dir}")
        self.quarantined.append(target)

    def save(self, step: int, state: Any, metadata: dict[str, Any], *, force: bool = False) -> bool:
        """Save if ``step`` is on the save interval (or ``force``, for final and preemption saves).

        Returns whether a save started; a step that is already saved is not saved again (so a final forced
        save after a periodic one is harmless). With async saves the write finishes in the background; the
        next save, :meth:`wait` or :meth:`close` waits for it. ``metadata`` must be JSON-serialisable.
        """
        if step in self._manager.all_steps():
            return False
        try:
            return self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(metadata)),
                force=force,
            )
        except Exception as error:  # a failed earlier async save surfaces here too
            self._save_failed(error)

    def _save_failed(self, error: Exception) -> None:
        """A save that failed (a full disk, a lost mount) stops the run: the half-written step is removed and
        the message names the directory, the cause and the last complete step, which a rerun resumes from."""
        for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            self._manager.reload()
        raise CheckpointError(
            f"saving a checkpoint to {self.directory} failed: {_first_line(error)}; free space or fix the "
            f"directory, then rerun to resume from step {self.latest_step()}"
        ) from error

    def latest_step(self) -> int | None:
        """The newest complete step, or None for a fresh run."""
        return self._manager.latest_step()

    def metadata(self, step: int | None = None) -> dict[str, Any] | None:
        """The JSON metadata of `step` (default: the newest), read without the state, or None when it does not
        read: what a resume compares with the new config before it restores anything."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        try:
            return dict(self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)
        except Exception:  # an unreadable step is dealt with by restore, which falls back and quarantines
            return None

    def all_steps(self) -> list[int]:
        """Complete steps on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def restore(self, abstract_state: Any, step: int | None = None) -> Restored:
        """Restore ``step`` (default: the newest readable one) onto ``abstract_state``'s shapes and shardings.

        Without ``step``, older checkpoints are tried in turn when the newest fail to read; once one succeeds,
        the failed newer ones are quarantined (see the module docstring). :class:`CheckpointError` if none is
        usable (nothing is moved then). An explicit ``step`` is never skipped.
        """
        self.wait()
        if step is not None:
            return self._restore_step(step, abstract_state)
        failures: list[CheckpointError] = []
        for candidate in reversed(self.all_steps()):
            try:
                restored = self._restore_step(candidate, abstract_state)
            except CheckpointError as error:
                failures.append(error)
                continue
            # An older step read fine with the same target, so the newer failures are bad files, not a
            # mismatched target: move them aside so that orbax neither lists nor refuses to overwrite them.
            for error in failures:
                self._quarantine(error.step_dir, str(error))
            if failures:
                self._manager.reload()
            return restored
        raise CheckpointError(
            f"no usable checkpoint in {self.directory}"
            + (
                f"; every step failed (a model/optimizer config that differs from the saved one fails the "
                f"same way): {[str(e) for e in failures]}"
                if failures
                else ""
            )
        )

    def _restore_step(self, step: int, abstract_state: Any) -> Restored:
        step_dir = self.directory / str(step)
        if not step_dir.is_dir():
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory} (have {self.all_steps()})")
        reason = incomplete_reason(step_dir)
        if reason:
            raise CheckpointError(f"checkpoint {step_dir} is incomplete: {reason}", step_dir)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()),
            )
        except Exception as error:  # orbax/tensorstore raise many types for truncated or mismatched files.
            raise CheckpointError(
                f"checkpoint {step_dir} could not be restored: {_first_line(error)}", step_dir
            ) from error
        return Restored(step, restored.state, dict(restored.meta))

    def wait(self) -> None:
        """Block until pending async saves are on disk; a failed one raises :class:`CheckpointError`."""
        try:
            self._manager.wait_until_finished()
        except Exception as error:
            self._save_failed(error)

    def close(self) -> None:
        """Wait for pending saves and release orbax's threads. A save failure was already raised by :meth:`wait`
        or :meth:`save`; here, on the way out of an error, it must not hide the error that is leaving."""
        with contextlib.suppress(Exception):
            self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(error: Exception, limit: int = 300) -> str:
    """`Type: message` cut to its first line and `limit` characters: tensorstore messages run to pages."""
    text = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PreemptionHandler:
    """A flag for "save and exit now", set by SIGTERM or by jax's multi-host preemption sync point.

    Single process: installs a SIGTERM handler (restored on :meth:`uninstall`) that only sets the flag, so
    the current step finishes and the loop saves cleanly. Multi-process: jax's coordination service already
    catches SIGTERM on every host and agrees on a common step; :meth:`should_stop` must then be called by all
    processes at every step (it is collective).
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
        self._signals = signals
        self._previous: dict[int, Any] = {}
        self.requested = False

    def install(self) -> PreemptionHandler:
        if jax.process_count() == 1:
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        del frame
        logging.warning("received signal %d: will save a checkpoint and stop after this step", signum)
        self.requested = True

    def should_stop(self, step: int) -> bool:
        """Whether the loop should save and exit after ``step``."""
        if jax.process_count() > 1 and multihost_utils.reached_preemption_sync_point(step):
            self.requested = True
        return self.requested

    def __enter__(self) -> PreemptionHandler:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()
