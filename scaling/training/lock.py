"""One live run per workdir: a lock file naming the host and process that holds it.

Two runs in one workdir would interleave their metrics and fight over checkpoint steps. :class:`WorkdirLock`
creates ``WORKDIR/.lock`` atomically (``O_CREAT | O_EXCL``) holding the host, PID and start time, and refuses a
second run while the holder lives. A lock whose holder is gone is stale and taken over with a warning: on the
same host a dead PID, on another host (a shared filesystem) a lock not refreshed for :data:`STALE_SECONDS`
(the holder refreshes it at every logged step through :meth:`WorkdirLock.refresh`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import time
from pathlib import Path

from scaling.errors import UserError

LOCK_FILE = ".lock"
STALE_SECONDS = 15 * 60


class WorkdirBusyError(UserError):
    """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkdirLock:
    """``with WorkdirLock(workdir):`` — held for the run's lifetime, released (deleted) on exit."""

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / LOCK_FILE
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _stale(self, holder: dict) -> bool:
        if holder.get("host") == self.record["host"]:
            return not _alive(int(holder.get("pid", -1)))
        try:
            return time.time() - self.path.stat().st_mtime > STALE_SECONDS
        except FileNotFoundError:
            return True

    def acquire(self) -> WorkdirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a lost race with another starter, or a stale lock removed, tries again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # half-written by a starter that died, or removed meanwhile
                    with contextlib.suppress(FileNotFoundError):
                        if time.time() - self.path.stat().st_mtime > 5:
                            self.path.unlink()
                    time.sleep(0.1)
                    continue
                if not self._stale(holder):
                    raise WorkdirBusyError(
                        f"{self.path.parent} is in use by PID {holder.get('pid')} on {holder.get('host')} "
                        f"(since {holder.get('started')}); wait for that run to end, stop it, or choose another "
                        f"--workdir"
                    ) from None
                logging.warning(
                    "taking over the stale lock %s of PID %s on %s", self.path, holder.get("pid"), holder.get("host")
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.record, f)
            return self
        raise WorkdirBusyError(f"could not take {self.path}: another run keeps creating it; choose another --workdir")

    def refresh(self) -> None:
        """Marks the holder alive for other hosts sharing the filesystem."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)

    def release(self) -> None:
        if self._holder() == self.record:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
