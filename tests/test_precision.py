"""bfloat16 compute with float32 parameters, logits and loss: the trainer passes the dtype through, and a few
steps of the demo track float32's losses."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_models import as_jax, t5_batch, tiny
from test_trainer import losses, quiet

from scaling import models
from scaling.training import trainer

ROOT = Path(__file__).resolve().parents[1]


def demo_config(dtype: str, steps: int):
    spec = importlib.util.spec_from_file_location("demo", ROOT / "configs/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.model.dtype = dtype
    config.budget.amount, config.log_every_steps, config.eval_every_steps = steps, 1, 0
    config.checkpoint.save_interval_steps, config.checkpoint.async_save = steps, False
    return config


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_parameters_logits_and_loss():
    model = models.build(tiny("tiny"), rngs=nnx.Rngs(0), dtype=jnp.bfloat16)
    batch = as_jax(t5_batch(np.random.default_rng(0)))
    assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
    graphdef, state = nnx.split(model)
    jaxpr = str(jax.make_jaxpr(lambda s: nnx.merge(graphdef, s).loss(batch))(state))
    assert "dot_general" in jaxpr and "bf16[" in jaxpr  # the matmuls run in bfloat16
    logits = nnx.jit(lambda m: m.logits(batch))(model)
    loss, aux = nnx.jit(lambda m: m.loss(batch))(model)
    assert logits.dtype == loss.dtype == aux["loss_sum"].dtype == jnp.float32


@pytest.mark.slow
def test_demo_losses_in_bfloat16_track_float32(tmp_path):
    steps = 4
    runs = {}
    for dtype in ("float32", "bfloat16"):
        config = demo_config(dtype, steps)
        assert trainer.build_run(config).dtype == jnp.dtype(dtype)  # the trainer passes the dtype to the model
        trainer.train(config, tmp_path / dtype, print_fn=quiet)
        runs[dtype] = np.asarray(losses(tmp_path / dtype))
    f32, bf16 = runs["float32"], runs["bfloat16"]
    assert len(f32) == len(bf16) == steps
    np.testing.assert_allclose(bf16, f32, rtol=5e-3)  # measured: within 1e-4 of each other over six steps
