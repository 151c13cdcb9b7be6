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
