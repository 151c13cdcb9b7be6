"""Attention through `jax.nn.dot_product_attention` equals our einsum attention: T5 (relative-position bias,
padding, causal decoder, packed segments, shared heads, tied key-values) and BERT, loss and gradients; the cuDNN
choice passes cuDNN what it takes; the trainer's option reaches the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_models import as_jax, mlm_batch, t5_batch, tiny

from scaling import models
from scaling.models import layers


def packed_t5_batch() -> dict:
    """Two packed examples per row, with padding at the end, as seqio's packing writes them."""
    batch = t5_batch(np.random.default_rng(8), b=2, li=12, lt=6)
    batch["encoder_segment_ids"] = np.array([[1] * 5 + [2] * 5 + [0] * 2, [1] * 9 + [0] * 3])
    batch["decoder_segment_ids"] = np.array([[1] * 3 + [2] * 2 + [0], [1] * 6])
    batch["encoder_input_tokens"] = np.where(batch["encoder_segment_ids"] > 0, batch["encoder_input_tokens"], 0)
    batch["decoder_target_tokens"][0, 5] = 0
    batch["decoder_input_tokens"][0, 3] = 0  # packed targets restart their shift at the segment boundary
    batch["decoder_loss_weights"] = (batch["decoder_segment_ids"] > 0).astype(np.float32)
    return as_jax(batch)


def loss_and_grads(model: nnx.Module, batch: dict, **kwargs):
    graphdef, state = nnx.split(model)
    fn = jax.jit(jax.value_and_grad(lambda p: nnx.merge(graphdef, p).loss(batch, **kwargs)[0]))
    return fn(state)


@pytest.mark.parametrize("name", ["tiny", "tiny-sh", "tiny-skv", "bert-base"])
def test_dot_product_attention_equals_einsum(name):
    shape = tiny(name)
    batch = packed_t5_batch() if shape.is_encoder_decoder else as_jax(mlm_batch(np.random.default_rng(9)))
    einsum_loss, einsum_grads = loss_and_grads(models.build(shape, rngs=nnx.Rngs(0)), batch)
    model = layers.use_attention(models.build(shape, rngs=nnx.Rngs(0)), "xla")
    assert {m.impl for _, m in nnx.iter_graph(model) if isinstance(m, layers.Attention)} == {"xla"}
    xla_loss, xla_grads = loss_and_grads(model, batch)
    np.testing.assert_allclose(xla_loss, einsum_loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(xla_grads), jax.tree.leaves(einsum_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_attention_dropout_needs_the_einsum_path():
    model = layers.use_attention(models.build(tiny("tiny", dropout_rate=0.1), rngs=nnx.Rngs(0)), "xla")
    batch = as_jax(t5_batch(np.random.default_rng(1)))
    loss_and_grads(model, batch)  # deterministic (no dropout key): fine
    with pytest.raises(ValueError, match="attention dropout .* needs the einsum attention"):
        loss_and_grads(model, batch, dropout_rng=jax.random.key(0))
    with pytest.raises(ValueError, match="use one of"):
        layers.use_attention(model, "flash")


def test_cudnn_choice_passes_a_full_head_bias_of_the_compute_dtype(monkeypatch):
    """cuDNN runs on GPUs only; here its call is checked and answered by the XLA implementation."""
    calls = []
    real = jax.nn.dot_product_attention

    def fake(q, k, v, *, bias, scale, implementation):
        calls.append((implementation, bias.shape, bias.dtype, q.dtype))
        return real(q, k, v, bias=bias, scale=scale, implementation="xla")

    monkeypatch.setattr(jax.nn, "dot_product_attention", fake)
    shape = tiny("tiny")
    batch = packed_t5_batch()
    loss = nnx.jit(lambda m: m.loss(batch)[0])
    expected = loss(models.build(shape, rngs=nnx.Rngs(0), dtype=jnp.bfloat16))
    got = loss(layers.use_attention(models.build(shape, rngs=nnx.Rngs(0), dtype=jnp.bfloat16), "cudnn"))
    assert {c[0] for c in calls} == {"cudnn"} and all(c[2] == c[3] == jnp.bfloat16 for c in calls)
    assert all(b[1] == shape.num_heads for _, b, _, _ in calls)
    np.testing.assert_allclose(got, expected, rtol=2e-2)


def test_trainer_option_selects_the_attention():
    from test_trainer import tiny_config

    from scaling import accounting
    from scaling.training import trainer

    config = tiny_config(**{"model.attention_impl": "xla"})
    run = trainer.make_run(config, trainer.resolve_shape(config), accounting.SequenceLengths(32, 8), {})
    model = run.build_model(nnx.Rngs(0))
    assert {m.impl for _, m in nnx.iter_graph(model) if isinstance(m, layers.Attention)} == {"xla"}
    with pytest.raises(trainer.ConfigError, match="model.attention_impl"):
        trainer.validate(tiny_config(**{"model.attention_impl": "flash"}), data=False)
