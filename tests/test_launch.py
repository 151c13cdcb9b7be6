"""Launch scripts: both option spellings, --dry-run prints the exact commands (the README's included), missing or
unknown settings are refused in one line, the preemption exit code (75) is acted on, shellcheck is clean."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
PREEMPTED = 75
TPU = ["--project=p", "--zone=europe-west4-a", "--name=slice", "--accelerator=v3-32", "--bucket=gs://b"]

# Every option of every script with a sample value (None: a flag), as --help lists them.
OPTIONS = {
    "tpu_pod.sh": {
        "--project": "p",
        "--zone": "europe-west4-a",
        "--name": "slice",
        "--accelerator": "v3-32",
        "--version": "tpu-vm-v4-base",
        "--bucket": "gs://b",
        "--config": "configs/small_nl24.py",
        "--run": "r24",
        "--model-parallel": "2",
        "--commands": "COMMANDS",
        "--interval": "7",
        "--spot": None,
        "--queued": None,
    },
    "gpu_slurm.sh": {
        "--partition": "gpu",
        "--account": "acct",
        "--nodes": "2",
        "--gpus-per-node": "4",
        "--time": "01:00:00",
        "--config": "configs/base.py",
        "--workdir": "/shared/base",
        "--model-parallel": "2",
        "--commands": "COMMANDS",
        "--venv": "/opt/venv",
    },
    "multinode.sh": {
        "--coordinator": "10.0.0.1:1234",
        "--num-processes": "4",
        "--process-id": "3",
        "--config": "configs/base.py",
        "--workdir": "/shared/base",
        "--model-parallel": "2",
    },
}


def launch(script: str, *args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LAUNCH / script), *args], capture_output=True, text=True, timeout=60, env=env, **kwargs
    )


def spelled(options: dict[str, str | None], equals: bool) -> list[str]:
    """The options as `--name=VALUE` (equals) or `--name VALUE`."""
    args = []
    for name, value in options.items():
        if value is None:
            args.append(name)
        elif equals:
            args.append(f"{name}={value}")
        else:
            args += [name, value]
    return args


def fakes(tmp_path: Path, **scripts: str) -> dict[str, str]:
    """An environment whose PATH starts with fake commands (name -> bash body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")}


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_shellcheck_passes_on_every_script():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    scripts = sorted(str(p) for p in LAUNCH.glob("*.sh"))
    assert len(scripts) >= 4
    proc = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("script", sorted(OPTIONS))
def test_help_lists_every_option_and_the_preemption_code(script):
    proc = launch(script, "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout
    for name in [*OPTIONS[script], "--dry-run", "--help"]:
        assert re.search(rf"^\s+(-h, )?{name}\b", proc.stdout, re.M), name
    assert "75" in proc.stdout and "EX_TEMPFAIL" in proc.stdout
    assert "--name=VALUE or --name VALUE" in proc.stdout


@pytest.mark.parametrize(
    "script,before",
    [
        ("tpu_pod.sh", ["create"]),
        ("tpu_pod.sh", ["setup"]),
        ("tpu_pod.sh", ["train"]),
        ("tpu_pod.sh", ["logs"]),
        ("tpu_pod.sh", ["watch"]),
        ("tpu_pod.sh", ["delete"]),
        ("tpu_pod.sh", ["all"]),
        ("tpu_pod.sh", ["sweep"]),
        ("gpu_slurm.sh", ["single run"]),
        ("gpu_slurm.sh", ["job array"]),
        ("multinode.sh", []),
    ],
)
def test_both_spellings_of_every_option(tmp_path, script, before):
    options = dict(OPTIONS[script])
    commands = tmp_path / "sweep.txt"
    commands.write_text("--config=configs/demo.py --workdir=/mnt/scaling/a\n")
    if "--commands" in options:
        options["--commands"] = str(commands)
    if script == "gpu_slurm.sh":  # --commands (a job array) replaces --config/--workdir
        drop = ["--commands"] if before == ["single run"] else ["--config", "--workdir"]
        options = {name: value for name, value in options.items() if name not in drop}
        before = []
    equals = launch(script, *before, *spelled(options, True), "--dry-run", "--", "--config.seed=3")
    spaced = launch(script, *before, *spelled(options, False), "--dry-run", "--", "--config.seed=3")
    assert equals.returncode == 0, equals.stderr
    assert spaced.returncode == 0, spaced.stderr
    assert equals.stdout == spaced.stdout and equals.stdout.strip()
    # Mixed, in another order, still the same.
    mixed = [*spelled(dict(list(options.items())[::2]), True), *spelled(dict(list(options.items())[1::2]), False)]
    assert launch(script, *before, *mixed, "--dry-run", "--", "--config.seed=3").stdout == equals.stdout


def test_the_values_reach_the_commands():
    tpu = launch("tpu_pod.sh", "create", *spelled(OPTIONS["tpu_pod.sh"], True), "--dry-run").stdout
    assert "queued-resources create slice --project=p --zone=europe-west4-a --node-id=slice" in tpu
    assert "--runtime-version=tpu-vm-v4-base --spot" in tpu
    train = launch("tpu_pod.sh", "train", *spelled(OPTIONS["tpu_pod.sh"], True), "--dry-run").stdout
    assert "/mnt/scaling/r24" in train and "--config.parallel.model=2" in train
    single = {name: value for name, value in OPTIONS["gpu_slurm.sh"].items() if name != "--commands"}
    slurm = launch("gpu_slurm.sh", *spelled(single, True), "--dry-run").stdout
    for part in ("--account=acct", "--nodes=2", "--ntasks-per-node=4", "--time=01:00:00", "source /opt/venv/bin/"):
        assert part in slurm, part


@pytest.mark.parametrize(
    "script,args,message",
    [
        ("gpu_slurm.sh", ["--partition=gpu", "--bogus=1"], "unknown option --bogus "),
        ("gpu_slurm.sh", ["--partition", "gpu", "--nodes"], "option --nodes needs a value"),
        ("gpu_slurm.sh", ["--partition=", "--config=c"], "option --partition needs a value"),
        ("gpu_slurm.sh", ["--partition", "--config=c"], "option --partition needs a value"),
        ("gpu_slurm.sh", ["--partition=gpu", "stray"], "unexpected argument stray"),
        ("tpu_pod.sh", ["create", *TPU, "--zones=z"], "unknown option --zones "),
        ("tpu_pod.sh", ["create", *TPU, "--spot=yes"], "option --spot takes no value"),
        ("tpu_pod.sh", ["create", *TPU, "--dry-run=1"], "option --dry-run takes no value"),
        ("tpu_pod.sh", ["create", *TPU, "--version"], "option --version needs a value"),
        ("tpu_pod.sh", ["--project=p", "create"], "the first argument is the action"),
        ("tpu_pod.sh", ["launch", *TPU], "unknown action launch"),
        ("multinode.sh", ["--coordinator=h:1", "-x"], "unknown option -x "),
        ("multinode.sh", ["--coordinator"], "option --coordinator needs a value"),
    ],
)
def test_unknown_options_and_missing_values_are_one_line(script, args, message):
    proc = launch(script, *args, "--dry-run")
    assert proc.returncode == 2, proc
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr and not proc.stdout


@pytest.mark.parametrize(
    "script,args,missing",
    [
        ("tpu_pod.sh", ["create", "--zone=z"], "--project"),
        ("tpu_pod.sh", ["train", *TPU], "--config"),
        ("gpu_slurm.sh", ["--partition=gpu"], "--config"),
        ("multinode.sh", ["--coordinator=h:1234", "--num-processes", "2"], "--process-id"),
    ],
)
def test_missing_settings_are_refused(script, args, missing):
    proc = launch(script, *args, "--dry-run")
    assert proc.returncode == 2 and missing in proc.stderr


def readme_launch_commands() -> list[str]:
    """The command blocks of the README's launch section, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Launching on TPU pods and GPU clusters", 1)[1].split("\n## ", 1)[0]
    commands, current = [], ""
    for line in section.splitlines():
        if current or line.startswith("    launch/"):
            current += line.strip().removesuffix("\\")
            if not line.endswith("\\"):
                commands.append(current)
                current = ""
    return commands


def test_readme_commands_run_as_written_with_dry_run():
    commands = readme_launch_commands()
    scripts = {shlex.split(c)[0] for c in commands}
    assert scripts == {"launch/tpu_pod.sh", "launch/gpu_slurm.sh", "launch/multinode.sh"}, commands
    for command in commands:
        argv = shlex.split(command)
        proc = subprocess.run(["bash", *argv, "--dry-run"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode == 0, (command, proc.stderr)
        out = proc.stdout
        if argv[0].endswith("tpu_pod.sh"):  # all = create, setup, train, watch
            assert "tpu-vm --project=P --zone=europe-west4-a create s24 --accelerator-type=v3-32" in out
            assert "--spot" in out and "gcsfuse" in out and "scaling.train" in out and "train.exit" in out
        elif argv[0].endswith("gpu_slurm.sh"):
            assert "#SBATCH --nodes=2" in out and "sbatch /tmp/scaling-slurm.sbatch" in out
            assert "scontrol requeue" in out and "--config.parallel.model=2" in out
        else:
            assert out.startswith("python -m scaling.train --config=configs/base.py --workdir=/shared/base ")
            assert "--config.parallel.coordinator_address=HOST:1234" in out


def test_tpu_pod_runs_the_same_command_on_every_worker(tmp_path):
    proc = launch(
        "tpu_pod.sh",
        "train",
        *TPU,
        "--config",
        "configs/small_nl24.py",
        "--model-parallel=2",
        "--dry-run",
        "--",
        "--config.budget.amount=1000",
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    argv = shlex.split(line)  # the dry run prints a command that can be pasted into a shell
    assert argv[:9] == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "--project=p",
        "--zone=europe-west4-a",
        "ssh",
        "slice",
        "--worker=all",
    ]
    remote = argv[9].removeprefix("--command=")
    words = shlex.split(remote)
    assert words[:12] == ["rm", "-f", "~/train.exit;", "cd", "~/scaling", "&&", ".", ".venv/bin/activate", "&&"] + [
        "nohup",
        "bash",
        "-c",
    ]
    inner = shlex.split(words[12])
    assert inner[:3] == ["trap", ":", "TERM;"] and inner[-4:] == ["echo", "$?", ">", "~/train.exit"]
    train = [word.removesuffix(";") for word in inner[3:-4]]
    assert train[:5] == [
        "python",
        "-m",
        "scaling.train",
        "--config=configs/small_nl24.py",
        "--workdir=/mnt/scaling/small_nl24",
    ]
    assert {"--config.parallel.model=2", "--config.budget.amount=1000"} <= set(train)

    # Run the remote command here, on a fake worker: the trainer's exit code lands in ~/train.exit.
    home = tmp_path / "home"
    (home / "scaling" / ".venv" / "bin").mkdir(parents=True)
    (home / "scaling" / ".venv" / "bin" / "activate").write_text("")
    env = fakes(tmp_path, python=f'echo "$@" > "$CALLS"; exit {PREEMPTED}')
    subprocess.run(["bash", "-c", remote], env={**env, "HOME": str(home)}, check=True, timeout=60)
    deadline = time.monotonic() + 30
    while not (home / "train.exit").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (home / "train.exit").read_text().strip() == str(PREEMPTED)
    assert calls(tmp_path)[0].split() == train[1:]  # python's own arguments
    assert (home / "train.pid").read_text().strip().isdigit()


def test_tpu_pod_create_spot_and_queued():
    plain = launch("tpu_pod.sh", "create", *TPU, "--spot", "--dry-run").stdout
    assert (
        "tpu-vm --project=p --zone=europe-west4-a create slice --accelerator-type=v3-32" in plain and "--spot" in plain
    )
    queued = launch("tpu_pod.sh", "create", *TPU, "--queued", "--dry-run").stdout
    assert "queued-resources create slice" in queued and "--node-id=slice" in queued
    setup = launch("tpu_pod.sh", "setup", *TPU, "--dry-run").stdout
    assert "archive" in setup and "--worker=all" in setup and "gcsfuse" in setup


FAKE_GCLOUD = """
echo "$*" >> "$CALLS"
next() {  # pop the first line of file $1
  local first; first=$(head -n 1 "$1"); sed -i 1d "$1"; echo "${first:-$2}"
}
case "$*" in
  *" describe "*) next "$STATES" READY ;;
  *"--worker=0"*) next "$CODES" running ;;
  "storage cat"*) exit 1 ;;
esac
"""


@pytest.mark.parametrize(
    "states,codes,rc,expect",
    [
        (["READY"] * 3, ["running", str(PREEMPTED), "0"], 0, ["preempted (exit 75", "run complete"]),
        (["READY"] * 2, ["gone", "0"], 0, ["not running and left no exit code", "run complete"]),
        (["PREEMPTED", "READY"], ["0"], 0, ["slice slice is PREEMPTED: recreating it", "run complete"]),
        (["READY"], ["3"], 3, ["failed with exit code 3"]),
    ],
)
def test_tpu_watch_retrains_on_75_and_stops_on_0(tmp_path, states, codes, rc, expect):
    (tmp_path / "states").write_text("".join(f"{s}\n" for s in states))
    (tmp_path / "codes").write_text("".join(f"{c}\n" for c in codes))
    env = fakes(tmp_path, gcloud=FAKE_GCLOUD, git='echo "git $*" >> "$CALLS"')
    env |= {"STATES": str(tmp_path / "states"), "CODES": str(tmp_path / "codes")}
    proc = launch("tpu_pod.sh", "watch", *TPU, "--config=configs/small_nl24.py", "--interval=0", env=env)
    assert proc.returncode == rc, proc.stderr
    for part in expect:
        assert part in proc.stdout + proc.stderr, part
    trains = [c for c in calls(tmp_path) if "--worker=all" in c and "scaling.train" in c]
    recreated = any(" delete slice" in c for c in calls(tmp_path))
    assert len(trains) == (0 if rc else 1) and recreated == ("PREEMPTED" in states)
    if recreated:
        assert any(" create slice" in c for c in calls(tmp_path)) and any(c.startswith("git ") for c in calls(tmp_path))


def test_tpu_watch_dry_run_shows_the_exit_codes():
    out = launch("tpu_pod.sh", "watch", *TPU, "--config=c.py", "--dry-run").stdout
    assert "--worker=0" in out and "train.exit" in out and "75: preempted" in out and "0: done" in out


def slurm_script(tmp_path: Path, *args: str) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "activate").write_text("")
    proc = launch("gpu_slurm.sh", "--partition=gpu", f"--venv={venv}", *args, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout.split("# submit with:")[0]
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    return path


def test_slurm_batch_script_has_one_process_per_gpu():
    proc = launch(
        "gpu_slurm.sh",
        "--partition=gpu",
        "--nodes=2",
        "--gpus-per-node",
        "4",
        "--config=configs/base.py",
        "--workdir",
        "/shared/base",
        "--model-parallel=2",
        "--dry-run",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for part in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --requeue",
        "#SBATCH --signal=TERM@120",
        "srun --kill-on-bad-exit=1",
        "CUDA_VISIBLE_DEVICES=$SLURM_LOCALID",
        "python -m scaling.train --config=configs/base.py --workdir=/shared/base --config.parallel.model=2",
        f"if (( code == {PREEMPTED} )); then",
        'scontrol requeue "$SLURM_JOB_ID"',
    ):
        assert part in out, part
    bad = launch(
        "gpu_slurm.sh",
        "--partition=gpu",
        "--gpus-per-node=4",
        "--model-parallel=3",
        "--config=c.py",
        "--workdir=w",
        "--dry-run",
    )
    assert bad.returncode == 2 and "must divide" in bad.stderr


FAKE_SRUN = """
while [[ "$1" == --* ]]; do shift; done
export SLURM_PROCID=${RANK:-0} SLURM_LOCALID=0 SLURM_JOB_ID=4242
exec "$@"
"""


@pytest.mark.parametrize(
    "code,rank,rc,requeued",
    [(PREEMPTED, 0, 0, True), (PREEMPTED, 1, 0, False), (0, 0, 0, False), (1, 0, 1, False)],
)
def test_slurm_job_requeues_itself_when_the_trainer_exits_75(tmp_path, code, rank, rc, requeued):
    script = slurm_script(tmp_path, "--config=configs/base.py", "--workdir=/shared/base")
    env = fakes(
        tmp_path,
        srun=FAKE_SRUN,
        scontrol='echo "scontrol $*" >> "$CALLS"',
        python=f'echo "python $* gpu=$CUDA_VISIBLE_DEVICES" >> "$CALLS"; exit {code}',
    )
    proc = subprocess.run(["bash", str(script)], env={**env, "RANK": str(rank)}, capture_output=True, text=True)
    assert proc.returncode == rc, proc.stderr
    made = calls(tmp_path)
    assert made[0].startswith("python -m scaling.train --config=configs/base.py") and made[0].endswith("gpu=0")
    assert made[1:] == (["scontrol requeue 4242"] if requeued else [])


def test_slurm_job_survives_sigterm_until_the_trainer_has_saved(tmp_path):
    """SLURM signals every process of the job: the shells wait, the trainer saves and exits 75, the job requeues."""
    script = slurm_script(tmp_path, "--config=configs/base.py", "--workdir=/shared/base")
    started = tmp_path / "started"
    env = fakes(
        tmp_path,
        srun=FAKE_SRUN,
        scontrol='echo "scontrol $*" >> "$CALLS"',
        python=f"trap 'sleep 0.5; exit {PREEMPTED}' TERM; touch {started}; while :; do sleep 0.1; done",
    )
    proc = subprocess.Popen(["bash", str(script)], env=env, start_new_session=True, text=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "preempted (exit 75)" in stderr and calls(tmp_path) == ["scontrol requeue 4242"]


def test_slurm_sweep_becomes_a_job_array(tmp_path):
    commands = tmp_path / "sweep.txt"
    commands.write_text("".join(f"--config=configs/demo.py --workdir=/shared/r{i}\n" for i in range(3)))
    out = launch("gpu_slurm.sh", "--partition=gpu", f"--commands={commands}", "--dry-run").stdout
    assert "#SBATCH --array=0-2" in out and "SLURM_ARRAY_TASK_ID" in out and "scontrol requeue" in out

    script = slurm_script(tmp_path, f"--commands={commands}")
    env = fakes(
        tmp_path, srun=FAKE_SRUN, scontrol='echo "scontrol $*" >> "$CALLS"', python='echo "python $*" >> "$CALLS"'
    )
    proc = subprocess.run(
        ["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "1"}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path) == [
        "python -m scaling.train --config=configs/demo.py --workdir=/shared/r1 --config.parallel.model=1"
    ]


def test_multinode_passes_the_coordinator_to_jax_distributed():
    proc = launch(
        "multinode.sh",
        "--coordinator=10.0.0.1:1234",
        "--num-processes",
        "4",
        "--process-id=3",
        "--config",
        "configs/base.py",
        "--workdir=/shared/base",
        "--dry-run",
    )
    assert proc.returncode == 0, proc.stderr
    command, note = proc.stdout.splitlines()
    assert command.split() == [
        "python",
        "-m",
        "scaling.train",
        "--config=configs/base.py",
        "--workdir=/shared/base",
        "--config.parallel.coordinator_address=10.0.0.1:1234",
        "--config.parallel.num_processes=4",
        "--config.parallel.process_id=3",
        "--config.parallel.model=1",
    ]
    assert "75 preempted" in note
    args = ["--coordinator=h:1", "--num-processes=2", "--process-id=2", "--config=c", "--workdir=w"]
    assert launch("multinode.sh", *args).returncode == 2


@pytest.mark.parametrize("code", [0, PREEMPTED, 1])
def test_multinode_exits_with_the_trainers_code(tmp_path, code):
    env = fakes(tmp_path, python=f'echo "$*" >> "$CALLS"; exit {code}')
    args = ["--coordinator=h:1", "--num-processes=2", "--process-id=1", "--config=c.py", "--workdir=w"]
    proc = launch("multinode.sh", *args, "--", "--config.seed=1", env=env)
    assert proc.returncode == code, proc.stderr
    assert calls(tmp_path)[0].startswith("-m scaling.train --config=c.py --workdir=w --config.seed=1 ")


def test_tpu_sweep_makes_one_slice_per_run(tmp_path):
    commands = tmp_path / "sweep.txt"
    commands.write_text(
        "--config=configs/demo.py --workdir=/mnt/scaling/a\n\n--config=configs/demo.py --workdir=/mnt/scaling/b\n"
    )
    out = launch("tpu_pod.sh", "sweep", *TPU, f"--commands={commands}", "--dry-run").stdout
    assert "create slice-0 " in out and "create slice-1 " in out and "slice-2" not in out
    assert out.count("--worker=all --command=rm") == 2 and "/mnt/scaling/b" in out
