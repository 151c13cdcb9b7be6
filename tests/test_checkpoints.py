"""Checkpoint round trip, keep-N, partial and corrupt checkpoints, kill -9 mid-save, resharding, SIGTERM."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from processes import cpu_env

from scaling.training import checkpoints
from scaling.training.checkpoints import Checkpointer, CheckpointError

flax.config.update("flax_always_shard_variable", False)


def run_python(code: str, devices: int = 1) -> subprocess.CompletedProcess:
    env = cpu_env(devices=devices)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )


class Tiny(nnx.Module):
    def __init__(self, seed: int = 0):
        key = jax.random.key(seed)
        self.kernel = nnx.Param(jax.random.normal(key, (4, 8)), out_sharding=("embed", "mlp"))
        self.scale = nnx.Param(jnp.ones((4,)), out_sharding=("embed",))


def train_state(seed: int = 0):
    params = nnx.state(Tiny(seed), nnx.Param)
    tx = optax.adamw(1e-3)
    opt_state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = tx.update(grads, opt_state, params)  # non-trivial moments
    return {
        "params": params,
        "opt_state": opt_state,
        "step": jnp.asarray(seed, jnp.int32),
        "rng": jax.random.key(seed + 1),
    }


def assert_trees_equal(a, b):
    a = jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, a)
    b = jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_round_trip_is_exact_with_metadata(tmp_path):
    state = train_state(3)
    meta = {"step": 3, "spent": {"step": 3, "tokens": 96, "flops": 1e9, "seconds": 1.5}, "config": {"x": [1, 2]}}
    with Checkpointer(tmp_path, save_interval_steps=1) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.save(3, state, meta)
        ckpt.wait()
        assert ckpt.latest_step() == 3
        restored = ckpt.restore(checkpoints.abstract_like(state))
    assert restored.step == 3 and restored.metadata == meta
    assert_trees_equal(restored.state, state)
    assert restored.state["rng"].dtype == state["rng"].dtype  # typed PRNG keys survive


def test_interval_keep_n_and_forced_final_save(tmp_path):
    with Checkpointer(tmp_path, save_interval_steps=2, max_to_keep=2, async_save=False) as ckpt:
        saved = [step for step in range(7) if ckpt.save(step, {"x": jnp.full((2,), step)}, {"step": step})]
        assert saved == [0, 2, 4, 6]
        assert ckpt.all_steps() == [4, 6]
        assert ckpt.save(7, {"x": jnp.full((2,), 7)}, {"step": 7}, force=True)
        assert ckpt.all_steps() == [6, 7]
        assert not ckpt.save(7, {"x": jnp.full((2,), 7)}, {"step": 7}, force=True)  # already saved: no-op


def save_steps(directory, steps):
    with Checkpointer(directory, save_interval_steps=1, max_to_keep=None, async_save=False) as ckpt:
        for step in steps:
            ckpt.save(step, {"x": jnp.full((64,), float(step))}, {"step": step})


def test_step_without_commit_marker_is_moved_aside(tmp_path):
    save_steps(tmp_path, [1, 2])
    (tmp_path / "2" / "commit_success.txt").unlink()
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 1
        assert [p.name.split("-")[1] for p in ckpt.quarantined] == ["2"]
        assert ckpt.quarantined[0].exists() and not (tmp_path / "2").exists()  # moved, not deleted
        restored = ckpt.restore({"x": jax.ShapeDtypeStruct((64,), jnp.float32)})
    assert restored.step == 1 and float(restored.state["x"][0]) == 1.0


def truncate_arrays(step_dir: Path) -> None:
    for path in (step_dir / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(path.read_bytes()[:8])


def test_truncated_files_fall_back_to_previous_good_step(tmp_path):
    save_steps(tmp_path, [1, 2])
    truncate_arrays(tmp_path / "2")
    abstract = {"x": jax.ShapeDtypeStruct((64,), jnp.float32)}
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 2  # looks complete until read
        with pytest.raises(CheckpointError, match="2"):
            ckpt.restore(abstract, step=2)  # an explicit step is never skipped
        restored = ckpt.restore(abstract)
        assert restored.step == 1 and float(restored.state["x"][0]) == 1.0
        assert ckpt.latest_step() == 1 and len(ckpt.quarantined) == 1
        assert ckpt.save(2, {"x": jnp.full((64,), 2.5)}, {"step": 2}, force=True)  # writable again
        ckpt.wait()
        assert float(ckpt.restore(abstract).state["x"][0]) == 2.5


def test_mismatched_target_raises_and_moves_nothing(tmp_path):
    save_steps(tmp_path, [1, 2])
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match="no usable checkpoint"):
            ckpt.restore({"x": jax.ShapeDtypeStruct((65,), jnp.float32)})
        assert ckpt.quarantined == [] and ckpt.all_steps() == [1, 2]


def test_leftover_temp_dir_is_ignored_and_cleaned(tmp_path):
    save_steps(tmp_path, [1])
    tmp_dir = tmp_path / "2.orbax-checkpoint-tmp-1234567890"
    (tmp_dir / "state").mkdir(parents=True)
    (tmp_dir / "state" / "junk").write_bytes(b"\0" * 10)
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 1 and ckpt.all_steps() == [1]
        ckpt.save(3, {"x": jnp.zeros((64,))}, {"step": 3}, force=True)  # orbax finishes its cleanup first
        ckpt.wait()
        assert not tmp_dir.exists() and ckpt.all_steps() == [1, 3]


def test_kill_9_during_save_keeps_previous_checkpoint(tmp_path):
    # The child finishes step 1, starts an async save of step 2 and SIGKILLs itself before it can commit.
    proc = run_python(f"""
        import os, signal, jax.numpy as jnp
        from scaling.training.checkpoints import Checkpointer
        ckpt = Checkpointer({str(tmp_path)!r}, save_interval_steps=1)
        ckpt.save(1, {{"x": jnp.ones((256,))}}, {{"step": 1}})
        ckpt.wait()
        ckpt.save(2, {{f"x{{i}}": jnp.full((256, 256), float(i)) for i in range(64)}}, {{"step": 2}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (tmp_path / "2").exists()
    assert any(p.name.startswith("2.orbax-checkpoint-tmp") for p in tmp_path.iterdir())  # killed mid-save
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 1
        restored = ckpt.restore({"x": jax.ShapeDtypeStruct((256,), jnp.float32)})
        assert restored.metadata == {"step": 1}


def test_restore_onto_a_different_mesh(tmp_path):
    # Saved from 8 devices sharded (data 4 x model 2), restored both onto (fsdp 8) there and onto 1 device here.
    proc = run_python(
        f"""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from scaling import parallel
        from scaling.training import checkpoints
        def mesh(data, fsdp, model):
            cfg = parallel.default_config(); cfg.data, cfg.fsdp, cfg.model = data, fsdp, model
            return parallel.make_mesh(cfg)
        a, b = mesh(4, 1, 2), mesh(1, 8, 1)
        x = jax.device_put(jnp.arange(64.0).reshape(8, 8), NamedSharding(a, P("data", "model")))
        with checkpoints.Checkpointer({str(tmp_path)!r}) as ckpt:
            ckpt.save(5, {{"x": x}}, {{"step": 5}}, force=True)
            ckpt.wait()
            target = {{"x": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=NamedSharding(b, P(None, "fsdp")))}}
            y = ckpt.restore(target).state["x"]
        assert y.sharding.spec == P(None, "fsdp") and y.addressable_shards[0].data.shape == (8, 1)
        np.testing.assert_array_equal(y, np.arange(64.0).reshape(8, 8))
    """,
        devices=8,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    device = jax.devices()[0]
    with Checkpointer(tmp_path) as ckpt:
        target = {"x": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=jax.sharding.SingleDeviceSharding(device))}
        y = ckpt.restore(target).state["x"]
    np.testing.assert_array_equal(y, np.arange(64.0).reshape(8, 8))


def test_sigterm_sets_the_flag_and_handler_is_restored():
    previous = signal.getsignal(signal.SIGTERM)
    with checkpoints.PreemptionHandler() as handler:
        assert not handler.should_stop(0)
        os.kill(os.getpid(), signal.SIGTERM)
        assert handler.should_stop(1)
    assert signal.getsignal(signal.SIGTERM) is previous


def test_bad_options_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="checkpoint.max_to_keep"):
        Checkpointer(tmp_path, max_to_keep=0)
    with pytest.raises(ValueError, match="checkpoint.save_interval_steps"):
        Checkpointer(tmp_path, save_interval_steps=0)
