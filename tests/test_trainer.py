"""The training loop end to end on the embedded corpus: budgets, resume, accumulation, NaNs, preemption."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scaling.training import trainer

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**overrides):
    """A model small enough that a step takes milliseconds; the vocabulary dominates its size."""
    config = trainer.default_config()
    config.model.name = "tiny-nl1-dm32-ff64-nh2-kv16"
    config.model.dropout_rate = 0.0
    config.model.dtype = "float32"
    config.data.task = "sotu_span_corruption"
    config.data.inputs_length = 32
    config.data.targets_length = 8
    config.data.eval_batches = 2
    config.batch_size = 4
    config.optimizer.warmup_steps = 10
    config.budget.amount = 6
    config.log_every_steps = 1
    config.eval_every_steps = 0
    config.checkpoint.save_interval_steps = 2
    config.checkpoint.async_save = False
    for key, value in overrides.items():
        target = config
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return config


def records(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def losses(workdir: Path) -> list[float]:
    return [r["loss"] for r in records(workdir) if "loss" in r]


def quiet(_: str) -> None:
    pass


def test_loss_falls_and_every_output_is_written(tmp_path):
    config = tiny_config(
        **{"budget.amount": 40, "optimizer.learning_rate": 0.03, "log_every_steps": 10, "eval_every_steps": 20}
    )
    final = trainer.train(config, tmp_path, print_fn=quiet)
    rows = records(tmp_path)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
    required = {
        "step",
        "loss",
        "accuracy",
        "learning_rate",
        "tokens",
        "flops",
        "seconds",
        "compile_seconds",
        "tokens_per_second",
    }
    assert all(required <= r.keys() for r in rows)
    assert "eval_loss" in rows[1] and "eval_accuracy" in rows[3] and "eval_loss" not in rows[0]
    assert rows[-1]["tokens"] == 40 * 4 * (32 + 8)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_metrics"]["completed"] and summary["final_metrics"]["step"] == 40 == final["step"]
    assert summary["params"] > 0 and summary["hardware"]["device_count"] >= 1
    assert summary["flops_per_step_train"] == pytest.approx(rows[-1]["flops"] / 40)
    assert any((tmp_path / "tensorboard").iterdir())


def test_resume_is_exact(tmp_path):
    trainer.train(tiny_config(), tmp_path / "straight", print_fn=quiet)
    trainer.train(tiny_config(), tmp_path / "split", print_fn=quiet, stop_after_steps=3)
    assert len(losses(tmp_path / "split")) == 3
    trainer.train(tiny_config(), tmp_path / "split", print_fn=quiet)
    assert losses(tmp_path / "split") == losses(tmp_path / "straight")  # bit for bit


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    trainer.train(tiny_config(), tmp_path / "one", print_fn=quiet)
    trainer.train(tiny_config(micro_batch_size=1), tmp_path / "four", print_fn=quiet)
    np.testing.assert_allclose(losses(tmp_path / "four"), losses(tmp_path / "one"), rtol=2e-5)


@pytest.mark.parametrize(
    "unit,amount,steps", [("steps", 3, 3), ("tokens", 3 * 4 * 40, 3), ("tokens", 3 * 4 * 40 + 1, 4), ("flops", None, 2)]
)
def test_budget_stops_in_every_unit(tmp_path, unit, amount, steps):
    if unit == "flops":
        run = trainer.build_run(tiny_config())
        amount = 2 * run.flops_per_example * 4
    final = trainer.train(tiny_config(**{"budget.unit": unit, "budget.amount": amount}), tmp_path, print_fn=quiet)
    assert final["step"] == steps and final["completed"]


def test_wall_clock_budget_and_triangle_schedule(tmp_path):
    config = tiny_config(
        **{
            "budget.unit": "seconds",
            "budget.amount": 2.0,
            "optimizer.name": "adamw",
            "optimizer.schedule": "triangle",
            "optimizer.learning_rate": 1e-3,
        }
    )
    final = trainer.train(config, tmp_path, print_fn=quiet)
    rows = records(tmp_path)
    assert final["completed"] and rows[-1]["seconds"] >= 2.0 and final["step"] >= 2
    assert rows[-2]["seconds"] < 2.0  # it stopped at the first step past the budget
    lrs = [r["learning_rate"] for r in rows]
    peak = int(np.argmax(lrs))
    assert 0 < peak < len(lrs) - 1 and lrs[0] == pytest.approx(0.25e-3) and lrs[-1] < lrs[peak]  # starts at 25%


def test_nan_stops_with_the_last_good_checkpoint(tmp_path):
    config = tiny_config(
        **{
            "optimizer.name": "adamw",
            "optimizer.schedule": "constant",
            "optimizer.learning_rate": 1e30,
            "checkpoint.save_interval_steps": 1,
        }
    )
    with pytest.raises(trainer.NonFiniteLossError, match="not finite at step 2.*last good checkpoint is step 1"):
        trainer.train(config, tmp_path, print_fn=quiet)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1]


def test_nan_skip_policy_keeps_going(tmp_path):
    config = tiny_config(
        **{
            "optimizer.name": "adamw",
            "optimizer.schedule": "constant",
            "optimizer.learning_rate": 1e30,
            "nan_policy": "skip",
        }
    )
    final = trainer.train(config, tmp_path, print_fn=quiet)
    assert final["completed"] and final["skipped_steps"] >= 1
    rows = records(tmp_path)
    assert rows[0]["skipped_steps"] == 0 and np.isfinite(rows[0]["loss"])
    for before, after in zip(rows, rows[1:]):  # logged every step: a skipped step has no loss
        assert (after["loss"] is None) == (after["skipped_steps"] > before["skipped_steps"])


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor"])
def test_update_applies_the_optimizer_to_mean_gradients_and_a_non_finite_step_changes_nothing(optimizer):
    import jax
    import jax.numpy as jnp
    import optax

    from scaling import optim

    run = trainer.build_run(tiny_config(**{"optimizer.name": optimizer}))
    state = trainer.init_state(run)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), state["params"])
    aux = {
        "loss_sum": jnp.float32(12.0),
        "z_loss_sum": jnp.float32(0.0),
        "weight_sum": jnp.float32(4.0),
        "correct_sum": jnp.float32(1.0),
    }
    update = jax.jit(trainer.update_fn(run))
    params, opt_state, metrics_ = update(state["params"], state["opt_state"], grads, aux, 1e-2)

    expected_opt = optim.set_learning_rate(state["opt_state"], 1e-2)
    mean_grads = jax.tree.map(lambda g: g / 4.0, grads)
    updates, expected_opt = run.tx.update(mean_grads, expected_opt, state["params"])
    expected = optax.apply_updates(state["params"], updates)
    assert bool(metrics_["ok"]) and float(metrics_["loss"]) == pytest.approx(3.0)
    assert float(metrics_["grad_norm"]) == pytest.approx(float(optax.tree.norm(mean_grads)), rel=1e-5)
    for got, want in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves((expected, expected_opt))):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state["params"])))

    poisoned = jax.tree.map(lambda g: g.at[(0,) * g.ndim].set(jnp.nan), grads)
    params, opt_state, metrics_ = update(state["params"], state["opt_state"], poisoned, aux, 1e-2)
    assert not bool(metrics_["ok"])
    kept = optim.set_learning_rate(state["opt_state"], 1e-2)
    for got, want in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves((state["params"], kept))):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "override,message",
    [
        ({"micro_batch_size": 3}, "micro_batch_size = 3 must divide batch_size = 4"),
        ({"model.name": "small-zz"}, "model.name is not a valid shape"),
        ({"data.task": "sotu_mlm"}, "does not fit"),
        ({"nan_policy": "ignore"}, "nan_policy"),
        ({"model.remat": "some"}, "model.remat"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_config_errors_name_the_field(tmp_path, override, message):
    with pytest.raises(trainer.ConfigError, match=message):
        trainer.train(tiny_config(**override), tmp_path, print_fn=quiet)
    assert not (tmp_path / "checkpoints").exists()


def _cli(workdir: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "scaling.train",
        "--config=tests/tiny_config.py",
        f"--workdir={workdir}",
        *overrides,
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_rejects_unknown_fields_and_bad_types(tmp_path):
    for bad in ("--config.budget.secondz=3", "--config.batch_size=many"):
        proc = _cli(tmp_path, bad)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0 and ("secondz" in out or "many" in out), out[-2000:]


def test_sigterm_saves_a_checkpoint_then_resume_finishes(tmp_path):
    proc = _cli(tmp_path, "--config.budget.amount=100000", "--config.checkpoint.save_interval_steps=100000")
    metrics_file = tmp_path / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if metrics_file.exists() and len(metrics_file.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "preempted at step" in out, out[-3000:]  # a scheduler requeues on 75
    saved = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert max(saved) >= 3  # orbax also keeps its first save (step 1)
    saved = [max(saved)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not summary["final_metrics"]["completed"] and summary["final_metrics"]["step"] == saved[0]
    # The same command with a reachable budget resumes from the saved step.
    proc = _cli(tmp_path, f"--config.budget.amount={saved[0] + 2}")
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0 and f"resumed from step {saved[0]}" in out, out[-3000:]
    assert records(tmp_path)[-1]["step"] == saved[0] + 2


def test_resuming_with_a_different_model_fails_clearly(tmp_path):
    trainer.train(tiny_config(**{"budget.amount": 2}), tmp_path, print_fn=quiet)
    other = tiny_config(**{"budget.amount": 4, "model.name": "tiny-nl1-dm64-ff64-nh2-kv16"})
    with pytest.raises(trainer.ConfigError, match="model.name: 'tiny-nl1-dm32-ff64-nh2-kv16' → 'tiny-nl1-dm64") as e:
        trainer.train(other, tmp_path, print_fn=quiet)
    assert len(str(e.value).splitlines()) <= 4  # a few lines, not pages of TensorStore specs
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]


def test_resume_refuses_a_changed_batch_unless_allowed_and_records_it(tmp_path):
    trainer.train(tiny_config(**{"budget.amount": 2}), tmp_path, print_fn=quiet)
    changed = tiny_config(**{"budget.amount": 4, "batch_size": 8})
    with pytest.raises(trainer.ConfigError, match=r"batch_size: 4 → 8[\s\S]*allow_changes=batch_size"):
        trainer.train(changed, tmp_path, print_fn=quiet)
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 4  # nothing was overwritten
    changed.resume.allow_changes = "batch_size"
    final = trainer.train(changed, tmp_path, print_fn=quiet)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert final["step"] == 4 and summary["resume_changes"] == [{"step": 2, "field": "batch_size", "old": 4, "new": 8}]


def test_a_second_live_run_in_the_workdir_is_refused_and_a_stale_lock_taken_over(tmp_path):
    import socket

    from scaling.training import lock

    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": "now"}
    (tmp_path / ".lock").write_text(json.dumps(holder))
    with pytest.raises(lock.WorkdirBusyError, match=f"in use by PID {os.getpid()} on {socket.gethostname()}"):
        trainer.train(tiny_config(), tmp_path, print_fn=quiet)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "config.json").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".lock").write_text(json.dumps({**holder, "pid": int(dead.stdout)}))  # a PID that has exited
    assert trainer.train(tiny_config(), tmp_path, print_fn=quiet)["completed"]
    assert not (tmp_path / ".lock").exists()  # released at the end


def test_a_failed_save_stops_at_once_naming_the_path_and_cause(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    from scaling.training import checkpoints

    real_save = ocp.CheckpointManager.save

    def full_disk(self, step, *args, **kwargs):
        if step >= 4:
            raise OSError(28, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    lines = []
    with pytest.raises(checkpoints.CheckpointError, match="No space left on device.*resume from step 2") as e:
        trainer.train(tiny_config(), tmp_path, print_fn=lines.append)
    assert str(tmp_path / "checkpoints") in str(e.value) and len(str(e.value).splitlines()) == 1
    assert max(r["step"] for r in records(tmp_path)) == 4  # it stopped at the failed save, not at the end
    assert not list((tmp_path / "checkpoints").glob("*tmp*"))


def test_a_run_that_does_not_learn_is_flagged(tmp_path):
    config = tiny_config(
        **{
            "budget.amount": 30,
            "optimizer.name": "adamw",
            "optimizer.learning_rate": 1e6,
            "optimizer.schedule": "constant",
        }
    )
    trainer.train(config, tmp_path, print_fn=quiet)
    warnings = json.loads((tmp_path / "summary.json").read_text())["warnings"]
    assert warnings and any("gradient norm has been 0" in w or "has not moved" in w for w in warnings), warnings


def test_nan_skip_stops_after_too_many_skips_in_a_row(tmp_path):
    config = tiny_config(
        **{
            "optimizer.name": "adamw",
            "optimizer.schedule": "constant",
            "budget.amount": 40,
            "optimizer.learning_rate": 1e30,
            "nan_policy": "skip",
            "max_consecutive_skips": 3,
        }
    )
    with pytest.raises(trainer.NonFiniteLossError, match="3 steps in a row"):
        trainer.train(config, tmp_path, print_fn=quiet)


def test_start_and_end_are_reported_in_a_few_lines(tmp_path):
    lines = []
    trainer.train(tiny_config(), tmp_path, print_fn=lines.append)
    assert not any(line.lstrip().startswith("{") for line in lines)  # the config is in config.json, not printed
    assert "compiling the train step" in lines[1] and lines[2].startswith("compiled in")  # [0]: shape, mesh
    assert lines[-1].startswith("done: step 6") and str(tmp_path) in lines[-1]
