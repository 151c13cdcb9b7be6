"""T5 and BERT models: parameter trees, logical axes, masks, packing, sparse prediction, scanning."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling import accounting, models, shapes
from scaling.models import layers

VOCAB = 256


def tiny(name: str, **overrides) -> shapes.Shape:
    """A preset family shrunk to test width, keeping every switch of the preset."""
    s = shapes.parse(name)
    small = dict(num_encoder_layers=2, d_model=32, d_ff=64, num_heads=4, d_kv=8, vocab_size=VOCAB, dropout_rate=0.0)
    if s.family == "t5":
        small["num_decoder_layers"] = 2
    return dataclasses.replace(s, **{**small, **overrides})


def t5_batch(rng: np.random.Generator, b: int = 2, li: int = 12, lt: int = 6) -> dict:
    enc = rng.integers(2, VOCAB, (b, li))
    tgt = rng.integers(2, VOCAB, (b, lt))
    dec_in = np.concatenate([np.zeros((b, 1), int), tgt[:, :-1]], axis=1)
    return {
        "encoder_input_tokens": enc,
        "decoder_target_tokens": tgt,
        "decoder_input_tokens": dec_in,
        "decoder_loss_weights": np.ones((b, lt), np.float32),
    }


def mlm_batch(rng: np.random.Generator, b: int = 2, length: int = 16, k: int = 4) -> dict:
    targets = rng.integers(3, VOCAB, (b, length))
    positions = np.stack([np.sort(rng.choice(length, k, replace=False)) for _ in range(b)])
    weights = np.zeros((b, length), np.float32)
    np.put_along_axis(weights, positions, 1.0, axis=1)
    inputs = np.where(weights > 0, 2, targets)
    return {
        "encoder_input_tokens": inputs,
        "encoder_target_tokens": targets,
        "encoder_loss_weights": weights,
        "mlm_positions": positions,
        "mlm_weights": np.ones((b, k), np.float32),
    }


def as_jax(batch: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in batch.items()}


def loss(model, batch: dict, **kwargs):
    """The model's loss under jit (eager dispatch of scanned layers is slow)."""
    return nnx.jit(lambda m, b: m.loss(b, **kwargs))(model, batch)


jit_logits = nnx.jit(lambda model, batch: model.logits(batch))
jit_encode = nnx.jit(lambda model, *args: model.encode(*args))


def n_params(model) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


FAMILIES = ["tiny", "tiny-v1_1", "tiny-sh", "tiny-skv", "tiny-el3-dl1", "bert-base", "crammed-bert", "roberta-l3-h256"]


@pytest.mark.parametrize("name", FAMILIES + ["bert-base@all", "bert-base@attention"])
def test_parameter_tree_matches_accounting_and_forward_runs(name):
    name, _, sharing = name.partition("@")
    shape = tiny(name, **({"layer_sharing": sharing} if sharing else {}))
    model = models.build(shape, rngs=nnx.Rngs(0))
    assert n_params(model) == accounting.param_counts(shape).total
    batch = as_jax(t5_batch(np.random.default_rng(0)) if shape.family == "t5" else mlm_batch(np.random.default_rng(0)))
    objective, aux = loss(model, batch)
    assert np.isfinite(objective) and float(aux["weight_sum"]) > 0
    # Untrained models predict near uniformly (T5's unit-variance embedding makes its logits wider).
    assert 0.5 * np.log(VOCAB) < float(aux["loss_sum"] / aux["weight_sum"]) < 4 * np.log(VOCAB)


def test_full_size_presets_count_exactly_without_allocating():
    for name in ["small", "base-nl36", "small-v1_1", "bert-base", "crammed-bert", "roberta-l24-h1536", "xl-sh-skv"]:
        shape = shapes.parse(name)
        assert n_params(models.abstract(shape)) == accounting.param_counts(shape).total, name


def test_every_parameter_has_logical_axes_of_its_rank():
    allowed = {"embed", "mlp", "heads", "kv", "vocab", "layers", "relpos_buckets", "positions", None}
    for name in ["tiny", "crammed-bert", "bert-base"]:
        state = nnx.state(models.abstract(tiny(name)), nnx.Param)
        specs = nnx.get_partition_spec(state)
        for (path, value), (_, spec) in zip(jax.tree.leaves_with_path(state), jax.tree.leaves_with_path(specs)):
            assert len(spec) == value.ndim, path
            assert set(spec) <= allowed, (path, spec)
        layer_query = (
            specs["layers"]["attention"]["query"] if name != "tiny" else specs["encoder_layers"]["attention"]["query"]
        )
        assert tuple(layer_query.get_value()) == ("layers", "embed", "heads", "kv")


def test_t5_padding_and_future_tokens_change_nothing_they_must_not():
    model = models.build(tiny("tiny"), rngs=nnx.Rngs(0))
    batch = t5_batch(np.random.default_rng(1))
    batch["encoder_input_tokens"][:, -3:] = 0  # padding
    logits = jit_logits(model, as_jax(batch))
    changed = {k: v.copy() for k, v in batch.items()}
    changed["encoder_input_tokens"][:, -3:] = 0  # still padding, nothing to change…
    changed["decoder_input_tokens"][:, 4] = 7  # …but a future decoder token changes only positions >= 4
    new = jit_logits(model, as_jax(changed))
    np.testing.assert_allclose(new[:, :4], logits[:, :4], atol=1e-5)
    assert not np.allclose(new[:, 4:], logits[:, 4:])
    # A padded encoder position holding a different token id is still ignored (mask, not id, decides).
    padded = {k: v.copy() for k, v in batch.items()}
    padded["encoder_segment_ids"] = (batch["encoder_input_tokens"] > 0).astype(np.int32)
    padded["decoder_segment_ids"] = np.ones_like(batch["decoder_target_tokens"])
    alt = {k: v.copy() for k, v in padded.items()}
    alt["encoder_input_tokens"][:, -3:] = 99
    np.testing.assert_allclose(jit_logits(model, as_jax(alt)), jit_logits(model, as_jax(padded)), atol=1e-5)


def test_t5_packed_segments_do_not_attend_across():
    model = models.build(tiny("tiny"), rngs=nnx.Rngs(0))
    rng = np.random.default_rng(2)
    batch = t5_batch(rng, b=1, li=12, lt=6)
    batch["encoder_segment_ids"] = np.array([[1] * 6 + [2] * 6])
    batch["decoder_segment_ids"] = np.array([[1] * 3 + [2] * 3])
    batch["decoder_input_tokens"][0, 3] = 0  # packed targets restart their shift at the segment boundary
    ref = jit_logits(model, as_jax(batch))
    other = {k: v.copy() for k, v in batch.items()}
    other["encoder_input_tokens"][0, 6:] = rng.integers(2, VOCAB, 6)  # segment 2 only
    other["decoder_input_tokens"][0, 4:] = rng.integers(2, VOCAB, 2)
    new = jit_logits(model, as_jax(other))
    np.testing.assert_allclose(new[:, :3], ref[:, :3], atol=1e-5)
    assert not np.allclose(new[:, 3:], ref[:, 3:])


@pytest.mark.parametrize("name", ["bert-base", "crammed-bert"])
def test_bert_segments_and_padding_are_respected(name):
    model = models.build(tiny(name, sparse_prediction=False), rngs=nnx.Rngs(0))
    rng = np.random.default_rng(3)
    tokens = rng.integers(3, VOCAB, (1, 16))
    segments = np.array([[1] * 8 + [2] * 5 + [0] * 3])
    positions = np.array([list(range(8)) + list(range(5)) + [0] * 3])
    hidden = jit_encode(model, jnp.asarray(tokens), jnp.asarray(segments), jnp.asarray(positions))
    tokens2 = tokens.copy()
    tokens2[0, 8:] = rng.integers(3, VOCAB, 8)
    hidden2 = jit_encode(model, jnp.asarray(tokens2), jnp.asarray(segments), jnp.asarray(positions))
    np.testing.assert_allclose(hidden2[:, :8], hidden[:, :8], atol=1e-5)
    assert not np.allclose(hidden2[:, 8:13], hidden[:, 8:13])


def test_sparse_prediction_equals_dense_on_masked_positions():
    sparse = tiny("crammed-bert")
    dense = dataclasses.replace(sparse, sparse_prediction=False)
    m_sparse = models.build(sparse, rngs=nnx.Rngs(0))
    m_dense = models.build(dense, rngs=nnx.Rngs(0))
    batch = as_jax(mlm_batch(np.random.default_rng(4)))
    (a, aux_a), (b, aux_b) = loss(m_sparse, batch), loss(m_dense, batch)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert float(aux_a["weight_sum"]) == float(aux_b["weight_sum"]) == 8


def test_layer_sharing_reuses_one_set_of_weights():
    all_shared = models.build(tiny("bert-base", num_encoder_layers=4, layer_sharing="all"), rngs=nnx.Rngs(0))
    unshared = tiny("bert-base", num_encoder_layers=1)
    assert n_params(all_shared) == accounting.param_counts(unshared).total
    # Four passes through one layer differ from one pass (the layer really is applied four times).
    one = models.build(unshared, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(np.random.default_rng(5).integers(3, VOCAB, (1, 8)))
    assert not np.allclose(jit_encode(all_shared, tokens), jit_encode(one, tokens))


def test_scan_keeps_program_size_flat_in_depth():
    def size(depth: int) -> int:
        model = models.build(tiny("tiny", num_encoder_layers=depth, num_decoder_layers=depth), rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(model)
        batch = as_jax(t5_batch(np.random.default_rng(0)))
        jaxpr = jax.make_jaxpr(lambda st: nnx.merge(graphdef, st).loss(batch)[0])(state)
        return len(str(jaxpr))

    assert size(12) < 1.05 * size(2)


def test_remat_gives_the_same_gradients():
    shape = tiny("tiny")
    batch = as_jax(t5_batch(np.random.default_rng(6)))

    def grads(remat: str):
        graphdef, state = nnx.split(models.build(shape, rngs=nnx.Rngs(0), remat=remat))
        return jax.jit(jax.grad(lambda p: nnx.merge(graphdef, p).loss(batch)[0]))(state)

    for a, b in zip(jax.tree.leaves(grads("none")), jax.tree.leaves(grads("full"))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="remat"):
        loss(models.build(shape, rngs=nnx.Rngs(0), remat="sometimes"), batch)


def test_dropout_is_keyed_and_off_without_a_key():
    model = models.build(tiny("tiny", dropout_rate=0.3), rngs=nnx.Rngs(0))
    batch = as_jax(t5_batch(np.random.default_rng(6)))
    dropped = nnx.jit(lambda m, k: m.loss(batch, dropout_rng=k)[0])
    with_dropout = [float(dropped(model, jax.random.key(i))) for i in (1, 1, 2)]
    assert with_dropout[0] == with_dropout[1] != with_dropout[2]
    assert with_dropout[0] != float(loss(model, batch)[0])


def test_bfloat16_compute_tracks_float32():
    shape = tiny("tiny")
    batch = as_jax(t5_batch(np.random.default_rng(7)))
    f32 = loss(models.build(shape, rngs=nnx.Rngs(0)), batch)[0]
    bf16 = loss(models.build(shape, rngs=nnx.Rngs(0), dtype=jnp.bfloat16), batch)[0]
    assert abs(float(bf16) / float(f32) - 1) < 0.02


def test_relative_position_buckets_match_t5():
    rel = jnp.array([0, -1, 1, -8, 8, -200, 200, -20])
    bidirectional = layers.relative_position_bucket(rel, True, 32, 128)
    # Offsets within +-7 get their own buckets; keys after the query use the upper 16; far ones saturate.
    assert bidirectional.tolist() == [0, 1, 17, 8, 24, 15, 31, 10]  # 20 -> 8 + int(8 ln(20/8) / ln 16)
    causal = layers.relative_position_bucket(jnp.array([0, -5, 3, -127, -1000]), False, 32, 128)
    assert causal.tolist() == [0, 5, 0, 31, 31]


def test_model_rejects_wrong_family_and_too_long_inputs():
    with pytest.raises(ValueError, match="t5-family"):
        models.T5(shapes.parse("bert-base"), rngs=nnx.Rngs(0))
    bert = models.build(tiny("bert-base", max_length=8), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="exceeds max_length"):
        bert.encode(jnp.ones((1, 9), jnp.int32))
