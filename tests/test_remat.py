"""Rematerialisation policies: the same loss and gradients as keeping everything, in less compiled memory."""

import jax
import numpy as np
from flax import nnx
from test_models import as_jax, t5_batch, tiny

from scaling import models
from scaling.models import layers


def test_remat_policies_keep_gradients_and_shrink_compiled_memory():
    # Long enough sequences that activations, not parameters, fill the step's temporary memory.
    shape = tiny("tiny", num_encoder_layers=3, num_decoder_layers=3, d_model=64, d_ff=256)
    batch = as_jax(t5_batch(np.random.default_rng(0), b=8, li=128, lt=32))
    results = {}
    for policy in layers.REMAT:
        graphdef, state = nnx.split(models.build(shape, rngs=nnx.Rngs(0), remat=policy))
        compiled = jax.jit(jax.value_and_grad(lambda p: nnx.merge(graphdef, p).loss(batch)[0])).lower(state).compile()
        results[policy] = compiled(state), compiled.memory_analysis().temp_size_in_bytes
    (loss, grads), memory = results["none"]
    for policy, ((other_loss, other_grads), _) in results.items():
        np.testing.assert_allclose(other_loss, loss, rtol=1e-6, err_msg=policy)
        for a, b in zip(jax.tree.leaves(other_grads), jax.tree.leaves(grads)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=policy)
    temp = {policy: m for policy, (_, m) in results.items()}
    # Each policy keeps less than the one before: everything > every matmul > weight matmuls only > layer inputs.
    assert temp["none"] > temp["dots_saveable"] > temp["dots"] > temp["full"], temp
    assert temp["full"] < 0.5 * temp["none"], temp


def test_unrolled_layers_equal_the_rolled_scan(monkeypatch):
    # On CPU shallow stacks are unrolled (a speed choice); the loss and gradients must not notice.
    shape = tiny("tiny", num_encoder_layers=3, num_decoder_layers=2, d_model=32, d_ff=64)
    batch = as_jax(t5_batch(np.random.default_rng(1), b=2, li=16, lt=8))
    graphdef, state = nnx.split(models.build(shape, rngs=nnx.Rngs(0)))

    def loss_and_grads():
        return jax.jit(jax.value_and_grad(lambda p: nnx.merge(graphdef, p).loss(batch)[0]))(state)

    def has_loop() -> bool:
        return "while" in jax.jit(lambda p: nnx.merge(graphdef, p).loss(batch)[0]).lower(state).as_text()

    unrolled, unrolled_loop = loss_and_grads(), has_loop()
    monkeypatch.setattr(layers, "UNROLL_MAX_LAYERS", 0)
    rolled, rolled_loop = loss_and_grads(), has_loop()
    assert (unrolled_loop, rolled_loop) == (False, True)
    np.testing.assert_allclose(unrolled[0], rolled[0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(unrolled[1]), jax.tree.leaves(rolled[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
