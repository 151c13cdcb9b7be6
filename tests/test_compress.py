"""Compression of parameter trees (Li et al. 2020): k-bit quantization, magnitude pruning, memory, error stats."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling import models, shapes
from scaling.downstream import compress

EPS32 = np.finfo(np.float32).eps


@pytest.fixture(scope="module")
def t5() -> nnx.State:
    """The real tiny T5 parameter state (stacked encoder/decoder layers, ~3.8M weights)."""
    return nnx.split(models.build(shapes.parse("tiny-nl2", vocab_size=512), rngs=nnx.Rngs(0)))[1]


def named(tree) -> list[tuple[str, np.ndarray]]:
    return [(compress.path_name(p), np.asarray(x)) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def abstract_names(preset: str) -> list[str]:
    state = nnx.split(models.abstract(shapes.parse(preset, vocab_size=512)))[1]
    return [compress.path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]


def as_ranges(x: np.ndarray, name: str, granularity: str) -> np.ndarray:
    """x as [ranges, values], restating the spec: one range per layer slice (stacked), and per last axis."""
    own = [0] if compress.is_stacked(name) and x.ndim else []
    if granularity == "channel" and x.ndim and x.ndim - 1 not in own:
        own.append(x.ndim - 1)
    moved = np.transpose(x, own + [a for a in range(x.ndim) if a not in own])
    return moved.reshape(int(np.prod([x.shape[a] for a in own])), -1)


def mask_list(masks) -> list[np.ndarray]:
    return [np.asarray(m) for m in jax.tree.leaves(masks)]


def tied_tree() -> dict:
    """Many equal magnitudes and existing zeros, with a stacked leaf: exact counts need deterministic ties."""
    rng = np.random.default_rng(0)
    return {
        "layers": {"w": rng.integers(-2, 3, (3, 50, 7)).astype(np.float32)},
        "emb": np.concatenate([np.zeros(30), np.full(10, 0.5)]).astype(np.float32),
        "head": np.ones((4, 4), np.float32),
    }


# ---------------------------------------------------------------------------------------------------------------
# Names


def test_path_names_and_stacking(t5):
    names = [name for name, _ in named(t5)]
    assert "encoder_layers/attention/query" in names and "decoder_layers/cross_attention/value" in names
    assert "embedding" in names and not any(name.endswith(".value") for name in names)
    assert compress.is_stacked("encoder_layers/mlp/wi") and compress.is_stacked("layers/attention/out")
    assert not compress.is_stacked("embedding") and not compress.is_stacked("encoder_norm/scale")
    plain = {"attention": {"value": np.zeros(2)}, "blocks": [np.zeros(1)]}
    assert [name for name, _ in named(plain)] == ["attention/value", "blocks/0"]


T5_TYPES = {
    "attention_in": {
        f"{stack}/{attn}/{qkv}"
        for stack, attn in [
            ("encoder_layers", "attention"),
            ("decoder_layers", "self_attention"),
            ("decoder_layers", "cross_attention"),
        ]
        for qkv in ("query", "key", "value")
    },
    "attention_out": {
        "encoder_layers/attention/out",
        "decoder_layers/self_attention/out",
        "decoder_layers/cross_attention/out",
    },
    "ffn_in": {"encoder_layers/mlp/wi", "decoder_layers/mlp/wi"},
    "ffn_out": {"encoder_layers/mlp/wo", "decoder_layers/mlp/wo"},
    "embedding": {"embedding"},
}
BERT_TYPES = {
    "attention_in": {"layers/attention/query", "layers/attention/key", "layers/attention/value"},
    "attention_out": {"layers/attention/out"},
    "ffn_in": {"layers/mlp/wi"},
    "ffn_out": {"layers/mlp/wo"},
    "embedding": {"embedding", "position_embedding", "type_embedding"},
}


@pytest.mark.parametrize(
    "preset,expected,some_other",
    [
        ("tiny-nl2", T5_TYPES, {"decoder_relpos/table", "encoder_layers/mlp_norm/scale", "decoder_norm/scale"}),
        (
            "bert-tiny",
            BERT_TYPES,
            {"layers/mlp/wi_bias", "layers/attention/query_bias", "head_dense", "embedding_norm/bias"},
        ),
    ],
)
def test_module_type_of_every_leaf(preset, expected, some_other):
    names = abstract_names(preset)
    typed = {name for group in expected.values() for name in group}
    assert typed | some_other <= set(names)
    for name in names:
        want = next((t for t, group in expected.items() if name in group), "other")
        assert compress.module_type(name) == want, name


@pytest.mark.parametrize(
    "name,want",
    [
        ("layers/mlp/wi_0", "ffn_in"),
        ("layers/mlp/wi_1", "ffn_in"),
        ("layers/mlp/wi_gate", "ffn_in"),
        ("layers/attention/qkv", "attention_in"),
        ("shared_attention/out", "attention_out"),
        ("layers/attention/query_bias", "other"),
        ("layers/mlp/wo_bias", "other"),
        ("embedding_norm/scale", "other"),
        ("lm_head", "other"),
        ("decoder", "other"),
        ("decoder_bias_value", "other"),
        ("position_scale", "other"),
    ],
)
def test_module_type_variants(name, want):
    assert compress.module_type(name) == want


# ---------------------------------------------------------------------------------------------------------------
# Quantization


@pytest.mark.parametrize("granularity", compress.GRANULARITIES)
@pytest.mark.parametrize("bits", range(1, 9))
def test_quantize_grid_on_tiny_t5(t5, bits, granularity):
    quantized = compress.quantize(t5, bits, granularity)
    assert jax.tree.structure(quantized) == jax.tree.structure(t5)
    for (name, w), (_, q) in zip(named(t5), named(quantized)):
        assert q.dtype == np.float32 and q.shape == w.shape
        w_r, q_r = as_ranges(w, name, granularity), as_ranges(q, name, granularity)
        lo, hi = w_r.min(axis=1), w_r.max(axis=1)
        delta = (hi.astype(np.float64) - lo) / (2**bits - 1)
        slack = 4 * EPS32 * np.maximum(np.abs(lo), np.abs(hi))
        assert np.all(np.abs(w_r.astype(np.float64) - q_r) <= (delta / 2 + slack)[:, None]), name
        ordered = np.sort(q_r, axis=1)
        assert (1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)).max() <= 2**bits, name
        np.testing.assert_array_equal(ordered[:, 0], lo, err_msg=name)  # both ends of each range are exact
        np.testing.assert_array_equal(ordered[:, -1], hi, err_msg=name)
        constant = lo == hi  # e.g. the RMS norm scales, initialised to ones
        np.testing.assert_array_equal(q_r[constant], w_r[constant], err_msg=name)


@pytest.mark.parametrize("granularity", compress.GRANULARITIES)
@pytest.mark.parametrize("bits", [1, 3, 8, 16])
def test_quantize_is_exact_on_its_grid(bits, granularity):
    levels = 2**bits - 1
    idx = np.random.default_rng(bits).integers(0, levels + 1, (3, 16, 8))
    idx[:, 0], idx[:, 1] = 0, levels  # every range (slice, or channel of a slice) spans the whole grid
    grid = (np.arange(3)[:, None, None] - 1.5 + 0.125 * idx).astype(np.float32)  # slices have their own ranges
    tree = {"layers": {"w": grid}, "w": grid[0]}
    quantized = compress.quantize(tree, bits, granularity)
    np.testing.assert_array_equal(quantized["layers"]["w"], grid)
    np.testing.assert_array_equal(quantized["w"], grid[0])


@pytest.mark.parametrize("bits", [2, 5, 16])
def test_quantize_is_idempotent(t5, bits):
    once = compress.quantize(t5, bits, "channel")
    for (name, a), (_, b) in zip(named(once), named(compress.quantize(once, bits, "channel"))):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_quantize_ranges_are_per_layer_slice_and_constant_ranges_stay():
    rng = np.random.default_rng(1)
    w = np.stack([np.full((6, 5), 0.3), rng.normal(size=(6, 5)) * 10]).astype(np.float32)
    quantized = np.asarray(compress.quantize({"layers": w}, 2)["layers"])
    np.testing.assert_array_equal(quantized[0], w[0])  # a whole-tensor range would move the constant slice
    assert len(np.unique(quantized[1])) <= 4 and not np.array_equal(quantized[1], w[1])
    flat = np.asarray(compress.quantize({"w": w}, 2)["w"])  # unstacked: one range, at most 4 values in all
    assert len(np.unique(flat)) <= 4


def test_quantize_32_bits_is_identity_in_float32(t5):
    for (name, w), (_, q) in zip(named(t5), named(compress.quantize(t5, 32))):
        assert q.dtype == np.float32
        np.testing.assert_array_equal(q, w, err_msg=name)
    half = {"w": jnp.asarray([0.1, -2.0, 3.3], jnp.bfloat16)}
    out = compress.quantize(half, 32)["w"]
    assert out.dtype == jnp.float32 and np.array_equal(out, half["w"].astype(jnp.float32))


def test_quantize_exclude_leaves_matches_untouched(t5):
    quantized = compress.quantize(t5, 2, exclude=[r"^embedding$", "norm"])
    for (name, w), (_, q) in zip(named(t5), named(quantized)):
        if name == "embedding" or "norm" in name:
            np.testing.assert_array_equal(q, w, err_msg=name)
        elif name.endswith("mlp/wi"):
            assert not np.array_equal(q, w), name
    single = compress.quantize({"a": np.arange(5.0), "b": np.arange(5.0)}, 1, exclude="a")
    assert np.array_equal(single["a"], np.arange(5.0)) and not np.array_equal(single["b"], np.arange(5.0))


@pytest.mark.parametrize("bits", [0, -1, 17, 31, 33, 64, 8.0, True, "8", None])
def test_quantize_rejects_bad_bits(bits):
    with pytest.raises(ValueError, match=r"1\.\.16.*32"):
        compress.quantize({"w": np.ones(3)}, bits)


def test_quantize_rejects_unknown_granularity():
    with pytest.raises(ValueError, match="'tensor', 'channel'"):
        compress.quantize({"w": np.ones(3)}, 8, "row")


# ---------------------------------------------------------------------------------------------------------------
# Pruning


def stable_order(tree) -> np.ndarray:
    """Flat positions (flatten order) sorted by |W|, ties to the lower index: a brute-force full stable sort."""
    magnitudes = np.concatenate([np.abs(np.asarray(x, np.float32)).ravel() for x in jax.tree.leaves(tree)])
    return np.argsort(magnitudes, kind="stable")


def brute_force_pruned(tree, k: int, order: np.ndarray | None = None) -> np.ndarray:
    """Which flat positions pruning the k smallest |W| removes."""
    order = stable_order(tree) if order is None else order
    pruned = np.zeros(order.size, bool)
    pruned[order[:k]] = True
    return pruned


@pytest.fixture(scope="module")
def t5_order(t5) -> np.ndarray:
    return stable_order(t5)


@pytest.mark.parametrize("sparsity", [0.0, 0.15, 0.5, 0.9])
def test_global_prune_removes_exactly_the_smallest(t5, t5_order, sparsity):
    pruned, masks = compress.magnitude_prune(t5, sparsity)
    n = compress.count_params(t5)
    kept = np.concatenate([m.ravel() for m in mask_list(masks)])
    assert np.count_nonzero(~kept) == round(sparsity * n)
    np.testing.assert_array_equal(~kept, brute_force_pruned(t5, round(sparsity * n), t5_order))
    for (name, w), (_, p), m in zip(named(t5), named(pruned), mask_list(masks)):
        assert p.dtype == w.dtype and m.dtype == bool
        np.testing.assert_array_equal(p, np.where(m, w, 0), err_msg=name)


@pytest.mark.parametrize("sparsity", [0.1, 0.33, 0.5, 0.77, 0.99])
def test_prune_counts_are_exact_with_ties_and_zeros(sparsity):
    tree = tied_tree()
    _, masks = compress.magnitude_prune(tree, sparsity, "global")
    kept = np.concatenate([m.ravel() for m in mask_list(masks)])
    np.testing.assert_array_equal(~kept, brute_force_pruned(tree, round(sparsity * kept.size)))
    _, masks = compress.magnitude_prune(tree, sparsity, "tensor")
    stacked = masks["layers"]["w"]
    for layer, m in zip(tree["layers"]["w"], stacked):
        np.testing.assert_array_equal(~m, brute_force_pruned(layer, round(sparsity * m.size)).reshape(m.shape))
    for name in ("emb", "head"):
        assert np.count_nonzero(~masks[name]) == round(sparsity * masks[name].size)


def test_tensor_prune_hits_each_layer_slice(t5):
    _, masks = compress.magnitude_prune(t5, 0.3, "tensor")
    for (name, _), m in zip(named(t5), mask_list(masks)):
        slices = m.reshape(len(m), -1) if compress.is_stacked(name) else m.reshape(1, -1)
        for row in slices:
            assert np.count_nonzero(~row) == round(0.3 * row.size), name


def test_iterative_prune_keeps_old_zeros_and_is_monotone(t5):
    tree, masks, previous = t5, None, None
    for sparsity in (0.15, 0.3, 0.5, 0.8):
        pruned, masks = compress.magnitude_prune(tree, sparsity, masks=masks)
        kept = np.concatenate([m.ravel() for m in mask_list(masks)])
        assert np.count_nonzero(~kept) == round(sparsity * kept.size)
        if previous is not None:
            assert not np.any(kept & ~previous)  # nothing pruned comes back
        previous = kept
        # A fake update that makes every pruned weight large: only the masks keep them pruned next round.
        tree = jax.tree.map(lambda w, m: w + 10.0 * ~m, pruned, masks)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_apply_masks_keeps_pruned_weights_at_zero(dtype):
    tree = {"layers": {"w": jnp.asarray(tied_tree()["layers"]["w"], dtype)}, "b": jnp.linspace(-1, 1, 9, dtype=dtype)}
    pruned, masks = compress.magnitude_prune(tree, 0.4, "tensor")
    updated = jax.tree.map(lambda w: w + jnp.asarray(0.25, dtype), pruned)  # an optimizer step moves everything
    restored = compress.apply_masks(updated, masks)
    for (name, u), (_, r), m in zip(named(updated), named(restored), mask_list(masks)):
        assert r.dtype == u.dtype
        np.testing.assert_array_equal(r, np.where(m, u, 0), err_msg=name)
    assert compress.nonzero_params(restored) <= compress.count_params(tree) - round(0.4 * 9) - 3 * round(0.4 * 350)


def test_prune_exclude_keeps_leaves_and_counts_only_included(t5):
    pruned, masks = compress.magnitude_prune(t5, 0.5, exclude=["embedding", "norm"])
    included = 0
    for (name, w), (_, p), m in zip(named(t5), named(pruned), mask_list(masks)):
        if name == "embedding" or "norm" in name:
            assert m.all() and np.array_equal(p, w), name
        else:
            included += w.size
    assert compress.count_params(t5) - sum(int(m.sum()) for m in mask_list(masks)) == round(0.5 * included)


@pytest.mark.parametrize("sparsity", [1.0, 1, 1.5, -0.1, float("nan"), True, "0.5"])
def test_prune_rejects_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        compress.magnitude_prune(tied_tree(), sparsity)


def test_prune_errors_name_the_problem():
    with pytest.raises(ValueError, match="sparsity 1.0 would remove every weight"):
        compress.magnitude_prune(tied_tree(), 1.0)
    with pytest.raises(ValueError, match="'global', 'tensor'"):
        compress.magnitude_prune(tied_tree(), 0.5, scope="row")
    _, masks = compress.magnitude_prune(tied_tree(), 0.5)
    with pytest.raises(ValueError, match="already prune"):
        compress.magnitude_prune(tied_tree(), 0.2, masks=masks)
    with pytest.raises(ValueError, match="same structure"):
        compress.magnitude_prune(tied_tree(), 0.6, masks={"emb": masks["emb"]})


# ---------------------------------------------------------------------------------------------------------------
# Counting, memory, error statistics


def test_counts(t5):
    assert compress.count_params(t5) == sum(w.size for _, w in named(t5))
    tree = tied_tree()
    zeros = np.count_nonzero(tree["layers"]["w"] == 0) + 30
    assert compress.count_params(tree) == 1050 + 40 + 16
    assert compress.nonzero_params(tree) == 1106 - zeros
    assert compress.nonzero_params(tree, exclude=["layers"]) == 10 + 16


def test_memory_bits_closed_form(t5):
    tree = {"layers": {"w": np.ones((3, 4, 5))}, "emb": np.ones((6, 7))}  # 102 weights; ranges 3 + 1, or 15 + 7
    assert compress.memory_bits(tree) == 32 * 102
    assert compress.memory_bits(tree, 4) == 4 * 102 + 64 * 4
    assert compress.memory_bits(tree, 4, granularity="channel") == 4 * 102 + 64 * 22
    masks = {"layers": {"w": np.arange(60).reshape(3, 4, 5) < 20}, "emb": np.arange(42).reshape(6, 7) < 30}
    assert compress.memory_bits(tree, 8, masks) == 8 * 50 + 64 * 4
    assert compress.memory_bits(tree, 32, masks) == 32 * 50
    assert compress.memory_bits(tree, 4, exclude="emb") == 4 * 60 + 64 * 3 + 32 * 42
    n, n_ranges = compress.count_params(t5), sum(len(w) if compress.is_stacked(name) else 1 for name, w in named(t5))
    assert compress.memory_bits(t5, 8) == 8 * n + 64 * n_ranges
    with pytest.raises(ValueError, match=r"1\.\.16"):
        compress.memory_bits(tree, 20)


def test_error_stats_identical_tree_is_zero(t5):
    stats = compress.error_stats(t5, t5)
    assert set(stats) == set(compress.MODULE_TYPES)
    assert all(s["mean"] == 0 and s["variance"] == 0 for s in stats.values())
    assert sum(s["count"] for s in stats.values()) == compress.count_params(t5)
    assert stats["embedding"]["count"] == 512 * 256


def test_error_stats_match_numpy(t5):
    quantized = compress.quantize(t5, 3, "channel")
    diffs: dict[str, list[np.ndarray]] = {}
    for (name, w), (_, q) in zip(named(t5), named(quantized)):
        diffs.setdefault(compress.module_type(name), []).append(np.abs(w.astype(np.float64) - q).ravel())
    stats = compress.error_stats(t5, quantized)
    assert set(stats) == set(diffs)
    for group, parts in diffs.items():
        d = np.concatenate(parts)
        assert stats[group]["count"] == d.size
        np.testing.assert_allclose([stats[group]["mean"], stats[group]["variance"]], [d.mean(), d.var()], rtol=1e-9)
        assert stats[group]["mean"] > 0
    with pytest.raises(ValueError, match="same structure"):
        compress.error_stats(t5, {"embedding": t5["embedding"]})
