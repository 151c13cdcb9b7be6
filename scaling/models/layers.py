"""Building blocks shared by the T5 and BERT models (Flax NNX).

Every parameter is float32 and carries logical axis names (`embed`, `mlp`, `heads`, `kv`, `vocab`, `layers`,
`relpos_buckets`, `positions`) that `scaling.parallel` maps to mesh axes. Computation runs in a configurable
dtype; norms, softmax and logits stay float32. Dropout takes an explicit key (None = deterministic) so the
layer stacks can be run by `jax.lax.scan` as pure functions of their stacked state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax
import jax
import jax.numpy as jnp
from flax import nnx

from scaling.shapes import Shape

# Logical names are metadata only; `scaling.parallel` turns them into shardings at the jit boundary.
flax.config.update("flax_always_shard_variable", False)

Initializer = Callable[[jax.Array, Sequence[int], jnp.dtype], jax.Array]
NEG_INF = -1e10


def param(rngs: nnx.Rngs, init: Initializer, shape: Sequence[int], axes: Sequence[str | None]) -> nnx.Param:
    """A float32 parameter with logical axis names."""
    if len(shape) != len(axes):
        raise ValueError(f"parameter shape {tuple(shape)} and axes {tuple(axes)} differ in rank")
    return nnx.Param(init(rngs.params(), tuple(shape), jnp.float32), out_sharding=tuple(axes))


def dense(x: jax.Array, w: jax.Array, in_dims: int = 1, preferred_element_type: jnp.dtype | None = None) -> jax.Array:
    """`x [..., *w.shape[:in_dims]]` times `w`, giving `[..., *w.shape[in_dims:]]`, as one 2-D matmul.

    Flattening (batch, length) into one row dimension makes the weight gradient a plain GEMM with a single
    contracting dimension; XLA:CPU runs the 3-D form, whose weight gradient contracts over two dimensions,
    ~1.4× slower (T5-small's train step: see README, Benchmarks). On accelerators the reshapes are free.
    """
    lead = x.shape[: x.ndim - in_dims]
    k = math.prod(w.shape[:in_dims])
    y = jnp.dot(x.reshape(-1, k), w.reshape(k, -1), preferred_element_type=preferred_element_type)
    return y.reshape(*lead, *w.shape[in_dims:])


def normal(stddev: float) -> Initializer:
    return jax.nn.initializers.normal(stddev)


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def fold(rng: jax.Array | None, i: int) -> jax.Array | None:
    return None if rng is None else jax.random.fold_in(rng, i)


class Norm(nnx.Module):
    """T5's RMS norm (scale only) or a LayerNorm (scale and bias), computed in float32."""

    def __init__(self, shape: Shape, rngs: nnx.Rngs):
        self.kind, self.eps = shape.norm_kind, shape.norm_eps
        self.scale = param(rngs, jax.nn.initializers.ones, (shape.d_model,), ("embed",))
        if self.kind == "layer":
            self.bias = param(rngs, jax.nn.initializers.zeros, (shape.d_model,), ("embed",))

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype, x = x.dtype, x.astype(jnp.float32)
        if self.kind == "layer":
            x = x - jnp.mean(x, axis=-1, keepdims=True)
        y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps) * self.scale[...]
        if self.kind == "layer":
            y = y + self.bias[...]
        return y.astype(dtype)


class Attention(nnx.Module):
    """Multi-head attention whose width (heads × d_kv) is independent of d_model.

    SH (shared heads) gives keys and values one head shared by all query heads; SKV (tied key-values) makes
    keys and values one projection. T5 folds the 1/sqrt(d_kv) logit scale into the query initialisation.
    """

    def __init__(self, shape: Shape, rngs: nnx.Rngs, *, bert_init: bool):
        d, h, k, kvh = shape.d_model, shape.num_heads, shape.d_kv, shape.num_kv_heads
        self.num_heads, self.tied_kv, self.dropout_rate = h, shape.tied_kv, shape.dropout_rate
        self.logit_scale = k**-0.5 if bert_init else 1.0
        kv_axis = None if shape.shared_heads else "heads"
        if bert_init:
            q_init = kv_init = o_init = normal(0.02)
        else:  # Mesh TF / t5x initialisation
            q_init, kv_init, o_init = normal((d * k) ** -0.5), normal(d**-0.5), normal((h * k) ** -0.5)
        self.query = param(rngs, q_init, (d, h, k), ("embed", "heads", "kv"))
        self.key = param(rngs, kv_init, (d, kvh, k), ("embed", kv_axis, "kv"))
        if not shape.tied_kv:
            self.value = param(rngs, kv_init, (d, kvh, k), ("embed", kv_axis, "kv"))
        self.out = param(rngs, o_init, (h, k, d), ("heads", "kv", "embed"))
        self.use_bias = shape.attention_bias
        if self.use_bias:
            zeros = jax.nn.initializers.zeros
            self.query_bias = param(rngs, zeros, (h, k), ("heads", "kv"))
            self.key_bias = param(rngs, zeros, (kvh, k), (kv_axis, "kv"))
            if not shape.tied_kv:
                self.value_bias = param(rngs, zeros, (kvh, k), (kv_axis, "kv"))
            self.out_bias = param(rngs, zeros, (d,), ("embed",))

    def __call__(self, x_q: jax.Array, x_kv: jax.Array, bias: jax.Array, rng: jax.Array | None) -> jax.Array:
        """x_q [B, Lq, D], x_kv [B, Lk, D], bias [B|1, H|1, Lq, Lk] additive (masks and position bias)."""
        dtype = x_q.dtype
        q = dense(x_q, self.query[...].astype(dtype))
        k = dense(x_kv, self.key[...].astype(dtype))
        v = k if self.tied_kv else dense(x_kv, self.value[...].astype(dtype))
        if self.use_bias:
            q = q + self.query_bias[...].astype(dtype)
            k = k + self.key_bias[...].astype(dtype)
            v = k if self.tied_kv else v + self.value_bias[...].astype(dtype)
        scores = jnp.einsum("bqhk,bthk->bhqt", q, k, preferred_element_type=jnp.float32) * self.logit_scale
        weights = jax.nn.softmax(scores + bias, axis=-1)
        weights = dropout(weights, self.dropout_rate, rng).astype(dtype)
        ctx = jnp.einsum("bhqt,bthk->bqhk", weights, v)
        y = dense(ctx, self.out[...].astype(dtype), in_dims=2)
        if self.use_bias:
            y = y + self.out_bias[...].astype(dtype)
        return y


class MLP(nnx.Module):
    """Feed-forward block: plain, T5 v1.1 gated (wi_0 ⊙ wi_1), or Cramming's split GLU (one wi, halved)."""

    def __init__(self, shape: Shape, rngs: nnx.Rngs, *, bert_init: bool):
        d, f = shape.d_model, shape.d_ff
        self.gating, self.dropout_rate = shape.ffn_gating, shape.dropout_rate
        self.act = {"relu": jax.nn.relu, "gelu": lambda x: jax.nn.gelu(x, approximate=True)}[shape.ffn_activation]
        in_init = normal(0.02) if bert_init else normal(d**-0.5)
        out_init = normal(0.02) if bert_init else normal(shape.ffn_hidden**-0.5)
        self.wi = param(rngs, in_init, (d, f), ("embed", "mlp"))
        if self.gating == "gated":
            self.wi_gate = param(rngs, in_init, (d, f), ("embed", "mlp"))
        self.wo = param(rngs, out_init, (shape.ffn_hidden, d), ("mlp", "embed"))
        self.use_bias = shape.linear_bias
        if self.use_bias:
            self.wi_bias = param(rngs, jax.nn.initializers.zeros, (f,), ("mlp",))
            self.wo_bias = param(rngs, jax.nn.initializers.zeros, (d,), ("embed",))

    def __call__(self, x: jax.Array, rng: jax.Array | None) -> jax.Array:
        dtype = x.dtype
        h = dense(x, self.wi[...].astype(dtype))
        if self.use_bias:
            h = h + self.wi_bias[...].astype(dtype)
        if self.gating == "gated":  # T5 v1.1: act(x W0) * (x W1)
            h = self.act(h) * dense(x, self.wi_gate[...].astype(dtype))
        elif self.gating == "split":  # Cramming GLU: act(first half) * second half
            gate, lin = jnp.split(h, 2, axis=-1)
            h = self.act(gate) * lin
        else:
            h = self.act(h)
        h = dropout(h, self.dropout_rate, rng)
        y = dense(h, self.wo[...].astype(dtype))
        if self.use_bias:
            y = y + self.wo_bias[...].astype(dtype)
        return y


def relative_position_bucket(
    relative_position: jax.Array, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """T5's bucketing: exact buckets for small offsets, log-spaced up to max_distance (Raffel et al. 2019)."""
    n = -relative_position
    ret = jnp.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (n < 0).astype(jnp.int32) * num_buckets
        n = jnp.abs(n)
    else:
        n = jnp.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).astype(jnp.int32)
    val_if_large = jnp.minimum(val_if_large, num_buckets - 1)
    return ret + jnp.where(is_small, n, val_if_large)


class RelativePositionBias(nnx.Module):
    """One bucketed bias table per stack, shared by all its layers (T5)."""

    def __init__(self, shape: Shape, rngs: nnx.Rngs, *, bidirectional: bool):
        self.bidirectional = bidirectional
        self.num_buckets, self.max_distance = shape.relpos_buckets, shape.relpos_max_distance
        self.table = param(rngs, normal(1.0), (shape.relpos_buckets, shape.num_heads), ("relpos_buckets", "heads"))

    def __call__(self, q_len: int, k_len: int) -> jax.Array:
        """Bias [1, H, q_len, k_len], float32."""
        rel = jnp.arange(k_len)[None, :] - jnp.arange(q_len)[:, None]
        buckets = relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
        return jnp.transpose(self.table[...][buckets], (2, 0, 1))[None]


def attention_bias(q_segments: jax.Array, k_segments: jax.Array, causal: bool = False) -> jax.Array:
    """Additive mask [B, 1, Lq, Lk]: attend only within the same non-padding segment (and to the past)."""
    mask = (q_segments[:, :, None] == k_segments[:, None, :]) & (k_segments[:, None, :] > 0)
    if causal:
        q_len, k_len = q_segments.shape[1], k_segments.shape[1]
        mask = mask & (jnp.arange(k_len)[None, :] <= jnp.arange(q_len)[:, None])[None]
    return jnp.where(mask, 0.0, NEG_INF).astype(jnp.float32)[:, None]


def segments_of(tokens: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
    """Segment ids for packed batches, or 1 for every non-padding token of an unpacked one."""
    return segment_ids if segment_ids is not None else (tokens > 0).astype(jnp.int32)


def sinusoidal(positions: jax.Array, d_model: int) -> jax.Array:
    """Fixed sine/cosine position encodings (Vaswani et al. 2017) at integer positions, [..., d_model]."""
    half = d_model // 2
    freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[..., None] * freqs
    enc = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return jnp.pad(enc, [(0, 0)] * (enc.ndim - 1) + [(0, d_model - 2 * half)])


def cross_entropy(
    logits: jax.Array, targets: jax.Array, weights: jax.Array, z_loss: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Summed weighted cross-entropy (+ z-loss), with sums the trainer divides by the global weight."""
    logits = logits.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    ce = (lse - target_logit) * weights
    z = z_loss * jnp.square(lse) * weights
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32) * weights
    aux = {"loss_sum": ce.sum(), "z_loss_sum": z.sum(), "weight_sum": weights.sum(), "correct_sum": correct.sum()}
    return ce.sum() + z.sum(), aux


def stack(make_layer: Callable[[nnx.Rngs], nnx.Module], num_layers: int, rngs: nnx.Rngs) -> nnx.Module:
    """`num_layers` copies of a layer with their parameters stacked on a leading `layers` axis."""

    @nnx.split_rngs(splits=num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def create(r: nnx.Rngs) -> nnx.Module:
        return make_layer(r)

    return create(rngs)


def scan_layers(
    body: Callable,
    x: jax.Array,
    rng: jax.Array | None,
    num_layers: int,
    *,
    stacked: nnx.Module | None = None,
    shared: nnx.Module | None = None,
    remat: str = "none",
) -> jax.Array:
    """Runs `body(layer, shared, x, key)` `num_layers` times with `jax.lax.scan`, so compile time is flat in
    depth. `layer` is step i's slice of the `stacked` module; `shared` is reused at every step (ALBERT-style
    sharing); `key` is step i's dropout key, or None when `rng` is None.
    """
    deterministic = rng is None
    stacked_graph, stacked_state = nnx.split(stacked) if stacked is not None else (None, None)
    shared_graph, shared_state = nnx.split(shared) if shared is not None else (None, None)

    def step(carry: jax.Array, xs) -> tuple[jax.Array, None]:
        layer_state, key = xs
        layer = nnx.merge(stacked_graph, layer_state) if stacked is not None else None
        common = nnx.merge(shared_graph, shared_state) if shared is not None else None
        return body(layer, common, carry, None if deterministic else key), None

    keys = jnp.zeros((num_layers, 2), jnp.uint32) if deterministic else jax.random.split(rng, num_layers)
    y, _ = jax.lax.scan(_remat(step, remat), x, (stacked_state, keys), length=num_layers)
    return y


def _remat(fn: Callable, policy: str) -> Callable:
    if policy == "none":
        return fn
    policies = {
        "full": jax.checkpoint_policies.nothing_saveable,
        "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    }
    if policy not in policies:
        raise ValueError(f"remat = {policy!r}; choose one of 'none', {', '.join(map(repr, policies))}")
    return jax.checkpoint(fn, policy=policies[policy], prevent_cse=False)


def shift_right(targets: jax.Array) -> jax.Array:
    """Decoder inputs of teacher forcing: targets moved one position right behind T5's start id, the pad id 0.

    The one shift-right of the project (finetuning features, rank classification, decoding); it accepts numpy
    arrays too and returns a jax array."""
    targets = jnp.asarray(targets)
    return jnp.pad(targets, [(0, 0)] * (targets.ndim - 1) + [(1, 0)])[..., :-1]
