"""bench/accelerator_check.sh: shellcheck is clean, options are checked, and --dry-run runs every step on the CPU."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "accelerator_check.sh"


def check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_shellcheck_passes():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    proc = subprocess.run([shellcheck, "-x", str(SCRIPT)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout


def test_help_and_unknown_options():
    proc = check("--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout
    assert all(option in proc.stdout for option in ("--dry-run", "--no-install", "--help"))
    proc = check("--fast")
    assert proc.returncode == 2 and "unknown option '--fast'" in proc.stderr


@pytest.mark.slow
def test_dry_run_runs_every_step_on_the_cpu():
    proc = check("--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for header in ("== 1. bf16 matmul peak", "== 2. T5 MFU", "== 3. the same step", "== 4. train step"):
        assert header in out, out
    assert "matmul_peak_flops_per_second" in out and "cuDNN is not detected" in out  # cuDNN's row says why
    assert out.count("fraction_of_peak") == 2 and "peer_tokens_per_second" in out
    assert "failed or skipped" not in proc.stderr
