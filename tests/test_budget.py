"""Budget progress in every unit, validation, and the cross-process clock agreement."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from scaling import budget
from scaling.budget import Budget, Spent


def test_progress_and_done_in_each_unit():
    spent = Spent(step=25, tokens=1_000, flops=3e12, seconds=90.0)
    cases = {"steps": (100, 0.25), "tokens": (4_000, 0.25), "flops": (6e12, 0.5), "seconds": (60.0, 1.0)}
    for unit, (amount, expected) in cases.items():
        b = Budget(unit, amount)
        assert b.progress(spent) == pytest.approx(expected), unit
        assert b.done(spent) == (expected >= 1.0), unit


def test_progress_is_clipped_and_done_at_exact_amount():
    b = Budget("steps", 10)
    assert b.progress(Spent(step=15)) == 1.0
    assert not b.done(Spent(step=9)) and b.done(Spent(step=10))


def test_advance_accumulates_all_units_and_round_trips():
    spent = Spent().advance(tokens=512, flops=1e9, seconds=0.5).advance(tokens=512, flops=1e9, seconds=0.25)
    assert spent == Spent(step=2, tokens=1024, flops=2e9, seconds=0.75)
    assert Spent.from_dict(spent.as_dict()) == spent


def test_projected_steps():
    assert Budget("steps", 100).projected_steps(Spent()) == 100
    assert Budget("seconds", 100.0).projected_steps(Spent(step=30, seconds=25.0)) == 120
    assert Budget("tokens", 100).projected_steps(Spent()) is None


@pytest.mark.parametrize(
    "unit, amount, field",
    [
        ("hours", 1, "budget.unit"),
        ("steps", 0, "budget.amount"),
        ("seconds", -5.0, "budget.amount"),
        ("flops", float("inf"), "budget.amount"),
    ],
)
def test_bad_budgets_name_the_field(unit, amount, field):
    with pytest.raises(ValueError, match=field):
        Budget(unit, amount)


def test_from_config_and_single_process_agreement():
    b = Budget.from_config(budget.default_config())
    assert (b.unit, b.amount) == ("steps", 10_000.0)
    assert budget.agree_across_processes(12.5) == 12.5


def test_two_processes_agree_on_process_0_clock():
    """Two jax processes on localhost with different clocks both see process 0's seconds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = textwrap.dedent(f"""
        import sys, jax
        from scaling import budget, parallel
        from scaling.training import checkpoints
        pid = int(sys.argv[1])
        cfg = parallel.default_config()
        cfg.coordinator_address, cfg.num_processes, cfg.process_id = "127.0.0.1:{port}", 2, pid
        assert parallel.initialize_distributed(cfg)
        assert jax.process_count() == 2
        seconds = budget.agree_across_processes(100.0 + 7.0 * pid)
        stop = checkpoints.PreemptionHandler().install().should_stop(0)
        print(seconds, stop)
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split()[-2:] == ["100.0", "False"], out
