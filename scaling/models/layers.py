"""Building blocks shared by the T5 and BERT models (Flax NNX).

Every parameter is float32 and carries logical axis names (`embed`, `mlp`, `heads`, `kv`, `vocab`, `layers`,
`relpos_buckets`, `positions`) that `scaling.parallel` maps to mesh axes. Computation runs in a configurable
dtype; norms, softmax and logits stay float32. Dropout takes an explicit key (None = deterministic) so the
layer stacks can be run by `jax.lax.scan` as pure functions of their stacked state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
from flax import nnx

from scaling.shapes import Shape

# Logical names are metadata only; `scaling.parallel` turns them into shardings at the jit boundary.
flax.config.update("flax_always_shard_variable", False)

Initializer = Callable[[jax.Array, Sequence[int], jnp.dtype], jax.Array]
NEG_INF = -1e10
# How attention's softmax(q k + bias) v runs: our einsums (fastest on CPU, and the only one with attention dropout),
# or `jax.nn.dot_product_attention` with XLA's implementation or cuDNN's fused kernel (GPU, bfloat16/float16).
ATTENTION_IMPLS = ("einsum", "xla", "cudnn")


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


class KV(NamedTuple):
    """Keys and values [B, T, kv_heads, d_kv], or a stack of them [layers, B, T, kv_heads, d_kv] (a decoder's
    cache). With tied key-values (SKV) both fields hold the one projection."""

    key: jax.Array
    value: jax.Array

    def write(self, new: KV, layer: int, position: jax.Array | int) -> KV:
        """This stack with `new` [B, t, …] written in place into `layer` from time `position` on."""
        return KV(
            *(
                jax.lax.dynamic_update_slice(a, b[None].astype(a.dtype), (layer, 0, position, 0, 0))
                for a, b in zip(self, new)
            )
        )

    def layer(self, i: int) -> KV:
        """Layer i's keys and values [B, T, kv_heads, d_kv] of this stack."""
        return KV(self.key[i], self.value[i])


class Attention(nnx.Module):
    """Multi-head attention whose width (heads × d_kv) is independent of d_model.

    SH (shared heads) gives keys and values one head shared by all query heads; SKV (tied key-values) makes
    keys and values one projection. T5 folds the 1/sqrt(d_kv) logit scale into the query initialisation.
    The projections and the attend step are separate so that cached decoding projects one new position and
    attends to keys and values computed at earlier steps with the same code as a full pass.
    """

    def __init__(self, shape: Shape, rngs: nnx.Rngs, *, bert_init: bool):
        d, h, k, kvh = shape.d_model, shape.num_heads, shape.d_kv, shape.num_kv_heads
        self.num_heads, self.tied_kv, self.dropout_rate = h, shape.tied_kv, shape.dropout_rate
        self.impl = "einsum"  # see `use_attention`
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

    def project_q(self, x: jax.Array) -> jax.Array:
        """Queries [B, L, heads, d_kv] of x [B, L, D], in x's dtype."""
        q = dense(x, self.query[...].astype(x.dtype))
        return q + self.query_bias[...].astype(x.dtype) if self.use_bias else q

    def project_kv(self, x: jax.Array) -> KV:
        """Keys and values [B, L, kv_heads, d_kv] of x [B, L, D], in x's dtype."""
        dtype = x.dtype
        k = dense(x, self.key[...].astype(dtype))
        if self.use_bias:
            k = k + self.key_bias[...].astype(dtype)
        if self.tied_kv:
            return KV(k, k)
        v = dense(x, self.value[...].astype(dtype))
        return KV(k, v + self.value_bias[...].astype(dtype) if self.use_bias else v)

    def attend(self, q: jax.Array, kv: KV, bias: jax.Array, rng: jax.Array | None) -> jax.Array:
        """Output [B, Lq, D] of queries [B, Lq, H, d_kv] over keys and values [B, Lk, kv_heads, d_kv]; `bias`
        [B|1, H|1, Lq, Lk] is additive (masks and position bias) and softmax runs in float32."""
        dtype = q.dtype
        if self.impl == "einsum":
            scores = jnp.einsum("bqhk,bthk->bhqt", q, kv.key, preferred_element_type=jnp.float32) * self.logit_scale
            weights = jax.nn.softmax(scores + bias, axis=-1)
            weights = dropout(weights, self.dropout_rate, rng).astype(dtype)
            ctx = jnp.einsum("bhqt,bthk->bqhk", weights, kv.value)
        else:
            if rng is not None and self.dropout_rate > 0:
                raise ValueError(
                    f"attention dropout (rate {self.dropout_rate}) needs the einsum attention: "
                    f"jax.nn.dot_product_attention has none; set the dropout rate to 0 or use 'einsum'"
                )
            if self.impl == "cudnn":  # cuDNN takes a bias of the inputs' dtype with every head present
                bias = jnp.broadcast_to(bias, (bias.shape[0], self.num_heads, *bias.shape[2:])).astype(dtype)
            ctx = jax.nn.dot_product_attention(
                q,
                kv.key,
                kv.value,
                bias=bias,
                scale=self.logit_scale,
                implementation="cudnn" if self.impl == "cudnn" else "xla",
            )
        y = dense(ctx, self.out[...].astype(dtype), in_dims=2)
        if self.use_bias:
            y = y + self.out_bias[...].astype(dtype)
        return y

    def __call__(self, x_q: jax.Array, x_kv: jax.Array, bias: jax.Array, rng: jax.Array | None) -> jax.Array:
        """x_q [B, Lq, D], x_kv [B, Lk, D], bias [B|1, H|1, Lq, Lk] additive (masks and position bias)."""
        return self.attend(self.project_q(x_q), self.project_kv(x_kv), bias, rng)


def use_attention(model: nnx.Module, impl: str) -> nnx.Module:
    """`model` with every Attention in it computing through `impl` (one of ATTENTION_IMPLS): a compute choice,
    like the dtype, that leaves parameters and results (to float tolerance) unchanged. Returns the model."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention implementation {impl!r}: use one of {ATTENTION_IMPLS}")
    for _, module in nnx.iter_graph(model):
        if isinstance(module, Attention):
            module.impl = impl
    return model


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

    def __call__(self, q_len: int, k_len: int, offset: jax.Array | int = 0) -> jax.Array:
        """Bias [1, H, q_len, k_len], float32, of queries at positions offset … offset + q_len - 1 (cached decoding
        asks for one query at its position) against keys at 0 … k_len - 1."""
        rel = jnp.arange(k_len)[None, :] - (offset + jnp.arange(q_len))[:, None]
        buckets = relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
        return jnp.transpose(self.table[...][buckets], (2, 0, 1))[None]


def attention_bias(
    q_segments: jax.Array, k_segments: jax.Array, causal: bool = False, offset: jax.Array | int = 0
) -> jax.Array:
    """Additive mask [B, 1, Lq, Lk]: attend only within the same non-padding segment (and, causal, to keys at or
    before the query, whose positions start at `offset`)."""
    mask = (q_segments[:, :, None] == k_segments[:, None, :]) & (k_segments[:, None, :] > 0)
    if causal:
        q_len, k_len = q_segments.shape[1], k_segments.shape[1]
        mask = mask & (jnp.arange(k_len)[None, :] <= (offset + jnp.arange(q_len))[:, None])[None]
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


UNROLL_MAX_LAYERS = 12  # on CPU, stacks up to this depth are unrolled (see `scan_layers`)


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

    On CPU a stack of at most `UNROLL_MAX_LAYERS` layers is unrolled: a rolled loop makes XLA:CPU slice each
    layer's weights out of the stack and zero-fill and write back stacked gradient buffers every step, which cost
    T5-small's train step 4–9% in one-process A/B runs (README, Benchmarks). Deeper stacks and accelerators keep the
    rolled loop, whose compile time stays flat in depth (unrolled, small-nl24's 48 layers compile in 16 s, not 6),
    and so does rematerialisation: unrolled, XLA merges the recomputed forward with the original and saves nothing.
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
    unroll = jax.default_backend() == "cpu" and num_layers <= UNROLL_MAX_LAYERS and remat == "none"
    y, _ = jax.lax.scan(_remat(step, remat), x, (stacked_state, keys), length=num_layers, unroll=unroll)
    return y


def unstack(stacked: nnx.Module, num_layers: int) -> tuple[nnx.Module, ...]:
    """The `num_layers` layers of a stacked module, each with its own slice of the parameters."""
    graphdef, state = nnx.split(stacked)
    return tuple(nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state)) for i in range(num_layers))


# Rematerialisation of the scanned layers: what the backward pass keeps of a layer's forward rather than recomputes.
# full keeps only each layer's input; dots keeps the weight matmuls' outputs (no batch dimensions) and recomputes
# attention's batched products, softmax, norms and activations; dots_saveable keeps every matmul's output,
# attention scores included, and recomputes only elementwise work.
REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
}
REMAT = ("none", *REMAT_POLICIES)


def _remat(fn: Callable, policy: str) -> Callable:
    if policy == "none":
        return fn
    if policy not in REMAT_POLICIES:
        raise ValueError(f"remat = {policy!r}; choose one of {', '.join(map(repr, REMAT))}")
    return jax.checkpoint(fn, policy=REMAT_POLICIES[policy], prevent_cse=False)


def shift_right(targets: jax.Array) -> jax.Array:
    """Decoder inputs of teacher forcing: targets moved one position right behind T5's start id, the pad id 0.

    The one shift-right of the project (finetuning features, rank classification, decoding); it accepts numpy
    arrays too and returns a jax array."""
    targets = jnp.asarray(targets)
    return jnp.pad(targets, [(0, 0)] * (targets.ndim - 1) + [(1, 0)])[..., :-1]
