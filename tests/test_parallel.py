"""Mesh sizes, logical-to-mesh rules (fallbacks, no axis twice), and shardings on 8 faked CPU devices."""

import subprocess
import sys
import textwrap

import pytest
from jax.sharding import AbstractMesh
from jax.sharding import PartitionSpec as P
from processes import cpu_env

from scaling import parallel

MESH_4x1x2 = AbstractMesh((4, 1, 2), parallel.MESH_AXES)


def run_on_8_devices(code: str) -> None:
    """Run ``code`` in a fresh interpreter with 8 faked CPU devices (XLA_FLAGS must precede importing jax)."""
    env = cpu_env(devices=8)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def sizes(data=-1, fsdp=1, model=1):
    return {"data": data, "fsdp": fsdp, "model": model}


def test_mesh_shape_fills_minus_one_and_validates():
    assert parallel.mesh_shape(sizes(), 8) == (8, 1, 1)
    assert parallel.mesh_shape(sizes(data=4, model=-1), 8) == (4, 1, 2)
    assert parallel.mesh_shape(sizes(data=2, fsdp=2, model=2), 8) == (2, 2, 2)
    with pytest.raises(ValueError, match="multiply to 4 but there are 8 devices"):
        parallel.mesh_shape(sizes(data=2, model=2), 8)
    with pytest.raises(ValueError, match="do(es)? not divide the 8 devices"):
        parallel.mesh_shape(sizes(data=-1, model=3), 8)
    with pytest.raises(ValueError, match="at most one axis may be -1"):
        parallel.mesh_shape(sizes(data=-1, model=-1), 8)
    with pytest.raises(ValueError, match="parallel.model=0"):
        parallel.mesh_shape(sizes(model=0), 8)


def test_dense_kernel_and_stacked_layers_map_to_fsdp_and_model():
    spec, notes = parallel.logical_to_mesh_spec(P("embed", "mlp"), (8, 16), MESH_4x1x2)
    assert spec == P("fsdp", "model") and notes == []
    spec, notes = parallel.logical_to_mesh_spec(P("layers", "embed", "heads", "kv"), (6, 8, 4, 64), MESH_4x1x2)
    assert spec == P(None, "fsdp", "model", None) and notes == []
    assert parallel.logical_to_mesh_spec(P(), (), MESH_4x1x2) == (P(), [])


def test_non_divisible_dimension_falls_back_to_replication_and_is_reported():
    spec, notes = parallel.logical_to_mesh_spec(P("embed", "heads", "kv"), (8, 3, 64), MESH_4x1x2)
    assert spec == P("fsdp", None, None)
    assert len(notes) == 1 and "heads=3" in notes[0] and "does not divide" in notes[0]


def test_multi_axis_rule_keeps_the_longest_dividing_prefix():
    mesh = AbstractMesh((2, 4, 1), parallel.MESH_AXES)
    rules = (("batch", ("data", "fsdp")),)
    assert parallel.logical_to_mesh_spec(P("batch"), (16,), mesh, rules)[0] == P(("data", "fsdp"))
    spec, notes = parallel.logical_to_mesh_spec(P("batch"), (6,), mesh, rules)
    assert spec == P("data") and "fsdp" in notes[0]


def test_a_mesh_axis_is_never_used_twice():
    spec, notes = parallel.logical_to_mesh_spec(P("mlp", "heads"), (8, 8), MESH_4x1x2)
    assert spec == P("model", None) and "already used" in notes[0]


def test_rules_are_configurable_and_validated():
    rules = (("embed", None), ("mlp", ("fsdp", "model")))
    assert parallel.logical_to_mesh_spec(P("embed", "mlp"), (8, 8), MESH_4x1x2)[0] == P("fsdp", "model")
    assert parallel.logical_to_mesh_spec(P("embed", "mlp"), (8, 8), MESH_4x1x2, rules)[0] == P(None, ("fsdp", "model"))
    with pytest.raises(ValueError, match="no sharding rule for logical axis 'heads'"):
        parallel.logical_to_mesh_spec(P("heads"), (8,), MESH_4x1x2, rules)
    cfg = parallel.default_config()
    cfg.rules = (("embed", "tensor"),)
    with pytest.raises(ValueError, match=r"parallel.rules\['embed'\] -> 'tensor'"):
        parallel.rules_from_config(cfg)
    assert parallel.rules_from_config(parallel.default_config()) == parallel.DEFAULT_RULES


def test_initialize_distributed_is_a_no_op_on_one_process(monkeypatch):
    for var in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(var, raising=False)
    assert parallel.initialize_distributed(parallel.default_config()) is False
    cfg = parallel.default_config()
    cfg.coordinator_address = "127.0.0.1:1234"
    with pytest.raises(ValueError, match="parallel.num_processes"):
        parallel.initialize_distributed(cfg)
    cfg.distributed = "always"
    with pytest.raises(ValueError, match="parallel.distributed"):
        parallel.initialize_distributed(cfg)


def test_shardings_on_8_faked_devices():
    run_on_8_devices("""
        import flax, jax, jax.numpy as jnp, numpy as np, optax
        from flax import nnx
        from jax.sharding import NamedSharding, PartitionSpec as P
        from scaling import parallel
        flax.config.update("flax_always_shard_variable", False)
        assert jax.device_count() == 8

        class Block(nnx.Module):
            def __init__(self):
                self.wi = nnx.Param(jnp.ones((8, 16)), out_sharding=("embed", "mlp"))
                self.q = nnx.Param(jnp.ones((8, 3, 4)), out_sharding=("embed", "heads", "kv"))  # 3 heads
                self.stack = nnx.Param(jnp.ones((2, 8, 16)), out_sharding=("layers", "embed", "mlp"))
                self.norm_scale = nnx.Param(jnp.ones((8,)), out_sharding=("embed",))

        cfg = parallel.default_config()
        cfg.data, cfg.fsdp, cfg.model = 2, 2, 2
        mesh = parallel.make_mesh(cfg)
        assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "model": 2}
        abstract = nnx.state(nnx.eval_shape(Block), nnx.Param)
        shardings, fallbacks = parallel.param_shardings(abstract, mesh)
        spec = lambda name: shardings[name].get_value().spec
        assert spec("wi") == P("fsdp", "model")
        assert spec("q") == P("fsdp", None, None)
        assert spec("stack") == P(None, "fsdp", "model")
        assert list(fallbacks) == ["q"] and "heads=3" in fallbacks["q"][0], fallbacks

        params = jax.device_put(nnx.state(Block(), nnx.Param), shardings)
        wi = params["wi"].get_value()
        assert wi.addressable_shards[0].data.shape == (4, 8)  # 8/fsdp x 16/model

        # Optimizer state: Adam moments follow their parameter; counters are replicated.
        tx = optax.adamw(1e-3)
        opt_shardings = parallel.derived_shardings(jax.eval_shape(tx.init, params), abstract, shardings, mesh)
        opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
        assert opt_state[0].mu["wi"].get_value().sharding.spec == P("fsdp", "model")
        assert opt_state[0].count.sharding.spec == P()

        @jax.jit
        def step(params, opt_state, batch):
            grads = jax.tree.map(lambda p: jnp.ones_like(p) * batch.mean(), params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        batch = jax.device_put(jnp.arange(16.0).reshape(8, 2), NamedSharding(mesh, P(("data", "fsdp"))))
        assert batch.addressable_shards[0].data.shape == (2, 2)  # batch split 4 ways over data x fsdp
        new_params, _ = step(params, opt_state, batch)
        assert new_params["wi"].get_value().sharding.spec == P("fsdp", "model")

        # Adafactor with scanned layers (per-layer statistics): its state is placed and updates run sharded.
        from scaling import optim
        af = optim.make_optimizer(optim.default_config(), nnx.get_partition_spec(abstract))
        af_shardings = parallel.derived_shardings(jax.eval_shape(af.init, params), abstract, shardings, mesh)
        af_state = jax.jit(af.init, out_shardings=af_shardings)(params)
        grads = jax.tree.map(jnp.ones_like, params)
        updates, _ = jax.jit(af.update)(grads, optim.set_learning_rate(af_state, 0.01), params)
        assert updates["stack"].get_value().shape == (2, 8, 16)
    """)
