"""Who else uses this machine while a run is timed: a registry of live runs and a load monitor.

A wall-clock figure means something only if the run had the machine to itself. Every run of the trainer
(:func:`scaling.training.trainer.fit`) and every study registers itself in :func:`jobs_dir` (one JSON file per
process, removed on exit; a file whose process is gone is ignored) so that a study can refuse to start beside
another, and samples the 1-minute load average while it runs. Each call of ``fit`` appends one line to
``WORKDIR/machine.jsonl`` — when it ran, the load it saw, the CPU share its process got, the other registered
runs it saw — and :func:`verdict` turns those lines into ``time_usable``: False when another registered run was
seen, or when the load exceeded what this run alone makes (:data:`LOAD_SLACK` above the core count).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MACHINE_FILE = "machine.jsonl"
LOAD_SLACK = 1.0  # a run alone keeps the load near the core count; a second busy process adds about one per core
SAMPLE_SECONDS = 5.0


def jobs_dir() -> Path:
    """Where live runs register: ``$SCALING_JOBS_DIR``, else one folder per user under the system temp dir."""
    default = Path(tempfile.gettempdir()) / f"scaling-jobs-{os.getuid()}"
    return Path(os.environ.get("SCALING_JOBS_DIR", default))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _related() -> set[int]:
    """This process and its ancestors: a study's own training runs are not 'others'."""
    pids, pid = {os.getpid()}, os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _prune(directory: Path, host: str) -> None:
    """Removes registrations of this host's processes that died without unregistering (killed)."""
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.read_text())
            if record.get("host") == host and not _alive(int(record.get("pid", -1))):
                path.unlink()


def others() -> list[dict[str, Any]]:
    """Live registered runs on this host other than this process and its ancestors."""
    found, mine, host = [], _related(), socket.gethostname()
    for path in sorted(jobs_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = int(record.get("pid", -1))
        if record.get("host") == host and pid not in mine and _alive(pid):
            found.append(record)
    return found


@contextlib.contextmanager
def registered(kind: str, what: str) -> Iterator[dict[str, Any]]:
    """Registers this process as a live ``kind`` run ("train", "study") of ``what`` while the block runs."""
    record = {
        "kind": kind,
        "what": str(what),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    directory = jobs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    _prune(directory, record["host"])
    path = directory / f"{os.getpid()}-{kind}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(record))
    try:
        yield record
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def load_average() -> float:
    return os.getloadavg()[0]


class Monitor:
    """Samples the load average and the other registered runs every few seconds on a daemon thread."""

    def __init__(self, interval: float = SAMPLE_SECONDS):
        self.interval, self.loads, self.seen = interval, [load_average()], {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _look(self) -> None:
        for record in others():
            self.seen.setdefault((record["pid"], record["kind"]), record)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.loads.append(load_average())
            self._look()

    def __enter__(self) -> Monitor:
        self.start, self.cpu_start, self.started_at = time.perf_counter(), time.process_time(), _now()
        self._look()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def record(self, **extra: Any) -> dict[str, Any]:
        """One ``machine.jsonl`` line so far: when, how loaded, who else, and ``extra`` (e.g. the steps)."""
        cores, seconds = os.cpu_count() or 1, time.perf_counter() - self.start
        loads = [*self.loads, load_average()]
        return {
            "started": self.started_at,
            "ended": _now(),
            "seconds": round(seconds, 2),
            "cpu_count": cores,
            "load_mean": round(sum(loads) / len(loads), 2),
            "load_max": round(max(loads), 2),
            "cpu_share": round((time.process_time() - self.cpu_start) / max(seconds, 1e-9) / cores, 3),
            "other_runs": [f"{r['kind']} {r['what']} (PID {r['pid']})" for r in self.seen.values()],
            **extra,
        }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def append(workdir: str | os.PathLike, record: dict[str, Any]) -> None:
    with open(Path(workdir) / MACHINE_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def read(workdir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(workdir) / MACHINE_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def verdict(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whether a run's time axis can be trusted, and why not: every segment alone on the machine and unloaded."""
    if not records:
        return {"time_usable": False, "why": "no machine.jsonl: the run's load was not recorded"}
    reasons = []
    others_seen = sorted({o for r in records for o in r.get("other_runs", [])})
    if others_seen:
        reasons.append(f"other runs on the machine: {', '.join(others_seen)}")
    loaded = [r for r in records if r["load_mean"] > r["cpu_count"] + LOAD_SLACK]
    if loaded:
        worst = max(r["load_mean"] for r in loaded)
        reasons.append(f"load average {worst:.1f} on {loaded[0]['cpu_count']} cores (other processes)")
    return {
        "time_usable": not reasons,
        "why": "; ".join(reasons),
        "load_mean": round(sum(r["load_mean"] * r["seconds"] for r in records) / sum(r["seconds"] for r in records), 2),
        "segments": len(records),
    }
