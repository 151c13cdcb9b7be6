"""The registry of live runs and the load verdict that decides whether a run's time axis can be trusted."""

import json
import os
import subprocess
import sys
import time

from scaling.training import machine


def test_registered_runs_are_seen_by_other_processes_and_removed_on_exit():
    code = (
        "from scaling.training import machine; import time\n"
        "with machine.registered('train', '/w'):\n"
        "    print('in', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert child.stdout.readline().strip() == "in"
        seen = machine.others()
        assert [(r["kind"], r["what"], r["pid"]) for r in seen] == [("train", "/w", child.pid)]
    finally:
        child.kill()
        child.wait()
    assert machine.others() == []  # a registration whose process died is ignored


def test_own_registration_is_not_another_run():
    with machine.registered("study", "/s"):
        assert machine.others() == []
        assert len(list(machine.jobs_dir().glob("*.json"))) == 1
    assert list(machine.jobs_dir().glob("*.json")) == []


def test_verdict_flags_other_runs_and_load(tmp_path):
    with machine.Monitor(interval=0.01) as monitor:
        time.sleep(0.05)
    record = monitor.record(first_step=0, last_step=5)
    assert record["seconds"] > 0 and 0 <= record["cpu_share"] <= 1.5 and record["last_step"] == 5
    clean = {**record, "load_mean": 1.0, "cpu_count": 2, "other_runs": []}
    machine.append(tmp_path, clean)
    assert machine.verdict(machine.read(tmp_path))["time_usable"]
    machine.append(tmp_path, {**clean, "load_mean": 4.5})
    v = machine.verdict(machine.read(tmp_path))
    assert not v["time_usable"] and "load average 4.5 on 2 cores" in v["why"]
    shared = {**clean, "other_runs": ["train /x (PID 7)"]}
    assert "other runs on the machine: train /x (PID 7)" in machine.verdict([shared])["why"]
    assert machine.verdict([]) == {"time_usable": False, "why": "no machine.jsonl: the run's load was not recorded"}
    assert json.loads((tmp_path / machine.MACHINE_FILE).read_text().splitlines()[0])["load_mean"] == 1.0
