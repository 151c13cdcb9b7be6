"""T5 encoder-decoder (Raffel et al. 2019) in Flax NNX, parameter-for-parameter like the released checkpoints.

v1.0 style by default (ReLU FFN, output layer tied to the embedding with logits scaled by d_model**-0.5);
v1.1 style (gated GELU, untied output layer) via the shape's switches. Layers are stacked and scanned.

Decoding (`scaling.downstream.decode`) runs the encoder once (`prepare_decoding`: also every decoder layer's
cross-attention keys and values), then one decoder position per `decode_step`, which attends to a key/value cache
(`init_cache`, [layers, B, T, kv_heads, d_kv]) that it updates in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.models import layers as L
from scaling.shapes import Shape


class EncoderLayer(nnx.Module):
    def __init__(self, shape: Shape, rngs: nnx.Rngs):
        self.dropout_rate = shape.dropout_rate
        self.attention_norm = L.Norm(shape, rngs)
        self.attention = L.Attention(shape, rngs, bert_init=False)
        self.mlp_norm = L.Norm(shape, rngs)
        self.mlp = L.MLP(shape, rngs, bert_init=False)

    def __call__(self, x: jax.Array, bias: jax.Array, rng: jax.Array | None) -> jax.Array:
        h = self.attention_norm(x)
        x = x + L.dropout(self.attention(h, h, bias, L.fold(rng, 0)), self.dropout_rate, L.fold(rng, 1))
        h = self.mlp(self.mlp_norm(x), L.fold(rng, 2))
        return x + L.dropout(h, self.dropout_rate, L.fold(rng, 3))


class DecoderLayer(nnx.Module):
    def __init__(self, shape: Shape, rngs: nnx.Rngs):
        self.dropout_rate = shape.dropout_rate
        self.self_attention_norm = L.Norm(shape, rngs)
        self.self_attention = L.Attention(shape, rngs, bert_init=False)
        self.cross_attention_norm = L.Norm(shape, rngs)
        self.cross_attention = L.Attention(shape, rngs, bert_init=False)
        self.mlp_norm = L.Norm(shape, rngs)
        self.mlp = L.MLP(shape, rngs, bert_init=False)

    def __call__(
        self,
        x: jax.Array,
        cross_kv: L.KV,
        self_bias: jax.Array,
        cross_bias: jax.Array,
        rng: jax.Array | None,
        cache: L.KV | None = None,
        position: jax.Array | int = 0,
        index: int = 0,
    ) -> tuple[jax.Array, L.KV | None]:
        """(new x, cache). x [B, T, D] attends to itself; with a `cache` (the stack of every layer's keys and
        values [layers, B, T_max, kv_heads, d_kv], this layer's at `index`) x is the positions from `position` on,
        whose keys and values are written into the cache before attending to all of this layer's (the bias masks
        what is not yet written)."""
        h = self.self_attention_norm(x)
        kv = self.self_attention.project_kv(h)
        if cache is not None:
            cache = cache.write(kv, index, position)
            kv = cache.layer(index)
        h = self.self_attention.attend(self.self_attention.project_q(h), kv, self_bias, L.fold(rng, 0))
        x = x + L.dropout(h, self.dropout_rate, L.fold(rng, 1))
        q = self.cross_attention.project_q(self.cross_attention_norm(x))
        h = self.cross_attention.attend(q, cross_kv, cross_bias, L.fold(rng, 2))
        x = x + L.dropout(h, self.dropout_rate, L.fold(rng, 3))
        h = self.mlp(self.mlp_norm(x), L.fold(rng, 4))
        return x + L.dropout(h, self.dropout_rate, L.fold(rng, 5)), cache


# Cross-attention keys and values kept as [B, kv_heads, d_kv, S] while decoding: the layout XLA:CPU's attention
# products read, which it would otherwise transpose the loop-invariant arrays into at every step.
_HEADS_MAJOR, _TIME_MAJOR = (0, 2, 3, 1), (0, 3, 1, 2)


class DecodeContext(NamedTuple):
    """What every decoding step reads, prepared once per search by `T5.prepare_decoding`: each decoder layer with
    its own weights, each layer's cross-attention keys and values of the encoder output, and the encoder's segment
    ids [B, S] (0 = padding).

    Both stay outside the loop over positions on purpose. A scan over the stacked layers makes XLA:CPU copy each
    layer's weights out of the stack before its matmuls, at every step, and transpose every cross-attention key and
    value array: together about 30% of a T5-small greedy step (measured). So the layers are sliced once, and the
    cross keys and values are stored transposed (`_HEADS_MAJOR`, behind an optimization barrier so that XLA does
    not fold the transposes back into the loop) and viewed back as [B, S, kv_heads, d_kv] by `cross_kv`.
    """

    layers: tuple[DecoderLayer, ...]
    cross: tuple[L.KV, ...]
    segments: jax.Array

    def cross_kv(self, i: int) -> L.KV:
        """Layer i's cross-attention keys and values [B, S, kv_heads, d_kv]."""
        return L.KV(*(jnp.transpose(a, _TIME_MAJOR) for a in self.cross[i]))

    def repeat(self, n: int) -> DecodeContext:
        """Each row `n` times in a row (beam search's rows: input b's beams are rows b*n … b*n + n - 1)."""
        cross = tuple(L.KV(*(jnp.repeat(a, n, axis=0) for a in kv)) for kv in self.cross)
        return DecodeContext(self.layers, cross, jnp.repeat(self.segments, n, axis=0))


class T5(nnx.Module):
    """Encoder-decoder; `loss` consumes seqio `EncDecFeatureConverter` batches (packed or not)."""

    def __init__(self, shape: Shape, *, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32, remat: str = "none"):
        if shape.family != "t5":
            raise ValueError(f"T5 needs a t5-family shape, got {shape.name!r} ({shape.family})")
        self.shape, self.dtype, self.remat = shape, dtype, remat
        self.embedding = L.param(rngs, L.normal(1.0), (shape.vocab_size, shape.d_model), ("vocab", "embed"))
        self.encoder_relpos = L.RelativePositionBias(shape, rngs, bidirectional=True)
        self.encoder_layers = L.stack(lambda r: EncoderLayer(shape, r), shape.num_encoder_layers, rngs)
        self.encoder_norm = L.Norm(shape, rngs)
        self.decoder_relpos = L.RelativePositionBias(shape, rngs, bidirectional=False)
        self.decoder_layers = L.stack(lambda r: DecoderLayer(shape, r), shape.num_decoder_layers, rngs)
        self.decoder_norm = L.Norm(shape, rngs)
        if not shape.tie_embeddings:
            self.lm_head = L.param(
                rngs, L.normal(shape.d_model**-0.5), (shape.d_model, shape.vocab_size), ("embed", "vocab")
            )

    def _embed(self, tokens: jax.Array, rng: jax.Array | None) -> jax.Array:
        x = jnp.take(self.embedding[...], tokens, axis=0).astype(self.dtype)
        return L.dropout(x, self.shape.dropout_rate, rng)

    def encode(
        self, tokens: jax.Array, segment_ids: jax.Array | None = None, rng: jax.Array | None = None
    ) -> jax.Array:
        """Encoder output [B, L, D] (after the final norm and dropout)."""
        segments = L.segments_of(tokens, segment_ids)
        bias = L.attention_bias(segments, segments) + self.encoder_relpos(tokens.shape[1], tokens.shape[1])
        x = self._embed(tokens, L.fold(rng, 0))
        x = L.scan_layers(
            lambda layer, _, h, key: layer(h, bias, key),
            x,
            L.fold(rng, 1),
            self.shape.num_encoder_layers,
            stacked=self.encoder_layers,
            remat=self.remat,
        )
        return L.dropout(self.encoder_norm(x), self.shape.dropout_rate, L.fold(rng, 2))

    def decode(
        self,
        encoded: jax.Array,
        encoder_segments: jax.Array,
        decoder_input_tokens: jax.Array,
        decoder_segments: jax.Array,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Float32 logits [B, T, V] for teacher-forced decoder inputs."""
        t = decoder_input_tokens.shape[1]
        self_bias = L.attention_bias(decoder_segments, decoder_segments, causal=True) + self.decoder_relpos(t, t)
        cross_bias = L.attention_bias(decoder_segments, encoder_segments)
        x = self._embed(decoder_input_tokens, L.fold(rng, 0))
        x = L.scan_layers(
            lambda layer, _, h, key: layer(h, layer.cross_attention.project_kv(encoded), self_bias, cross_bias, key)[0],
            x,
            L.fold(rng, 1),
            self.shape.num_decoder_layers,
            stacked=self.decoder_layers,
            remat=self.remat,
        )
        return self._logits(L.dropout(self.decoder_norm(x), self.shape.dropout_rate, L.fold(rng, 2)))

    def _logits(self, x: jax.Array) -> jax.Array:
        """Float32 logits [..., V] of final decoder states."""
        if self.shape.tie_embeddings:
            x = x * self.shape.d_model**-0.5
            return L.dense(x, self.embedding[...].astype(self.dtype).T, preferred_element_type=jnp.float32)
        return L.dense(x, self.lm_head[...].astype(self.dtype), preferred_element_type=jnp.float32)

    def prepare_decoding(self, tokens: jax.Array) -> DecodeContext:
        """The encoder run once over unpacked inputs [B, S] (pad id 0), and what each decoding step reads of it."""
        segments = L.segments_of(tokens, None)
        encoded = self.encode(tokens, segments)
        layers = L.unstack(self.decoder_layers, self.shape.num_decoder_layers)
        cross = tuple(
            L.KV(*(jnp.transpose(a, _HEADS_MAJOR) for a in layer.cross_attention.project_kv(encoded)))
            for layer in layers
        )
        return DecodeContext(layers, jax.lax.optimization_barrier(cross), segments)

    def init_cache(self, batch: int, length: int) -> L.KV:
        """An empty self-attention cache for `length` decoder positions: keys and values [layers, B, T, kv_heads,
        d_kv] in the compute dtype."""
        s = self.shape
        zeros = jnp.zeros((s.num_decoder_layers, batch, length, s.num_kv_heads, s.d_kv), self.dtype)
        return L.KV(zeros, zeros)

    def decode_step(
        self, context: DecodeContext, cache: L.KV, tokens: jax.Array, position: jax.Array | int
    ) -> tuple[jax.Array, L.KV]:
        """(float32 logits [B, V], cache) of decoder position `position`, given its input tokens [B] (the token
        chosen at position - 1, or the start id 0 at position 0): the position's keys and values are written into
        the cache, and it attends to the cache's positions up to itself, as `decode` would with the whole prefix."""
        batch, length = tokens.shape[0], cache.key.shape[2]
        one = jnp.ones((batch, 1), jnp.int32)
        self_bias = L.attention_bias(one, jnp.ones((batch, length), jnp.int32), causal=True, offset=position)
        self_bias = self_bias + self.decoder_relpos(1, length, offset=position)
        cross_bias = L.attention_bias(one, context.segments)
        x = self._embed(tokens[:, None], None)
        for i, layer in enumerate(context.layers):
            x, cache = layer(x, context.cross_kv(i), self_bias, cross_bias, None, cache, position, i)
        return self._logits(self.decoder_norm(x))[:, 0], cache

    def __call__(self, encoder_input_tokens: jax.Array, decoder_input_tokens: jax.Array) -> jax.Array:
        """Float32 logits [B, T, V] without dropout, for unpacked inputs (pad id 0 in the encoder input only).

        Every decoder position is attended to causally, as in Hugging Face's T5 without a decoder mask, since
        decoder inputs start with the pad id (shift right) and so cannot be told from padding.
        """
        enc_segments = L.segments_of(encoder_input_tokens, None)
        dec_segments = jnp.ones_like(decoder_input_tokens, dtype=jnp.int32)
        return self.decode(
            self.encode(encoder_input_tokens, enc_segments), enc_segments, decoder_input_tokens, dec_segments
        )

    def logits(self, batch: Mapping[str, jax.Array], rng: jax.Array | None = None) -> jax.Array:
        enc_tokens, dec_inputs = batch["encoder_input_tokens"], batch["decoder_input_tokens"]
        enc_segments = L.segments_of(enc_tokens, batch.get("encoder_segment_ids"))
        # Unpacked decoder inputs start with the pad id (shift right), so segments come from the targets.
        dec_segments = L.segments_of(batch["decoder_target_tokens"], batch.get("decoder_segment_ids"))
        encoded = self.encode(enc_tokens, enc_segments, L.fold(rng, 0))
        return self.decode(encoded, enc_segments, dec_inputs, dec_segments, L.fold(rng, 1))

    def loss(
        self, batch: Mapping[str, jax.Array], *, dropout_rng: jax.Array | None = None, z_loss: float = 0.0
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        targets = batch["decoder_target_tokens"]
        weights = batch.get("decoder_loss_weights")
        if weights is None:
            weights = (targets > 0).astype(jnp.float32)
        return L.cross_entropy(self.logits(batch, dropout_rng), targets, weights, z_loss)
