"""T5 encoder-decoder (Raffel et al. 2019) in Flax NNX, parameter-for-parameter like the released checkpoints.

v1.0 style by default (ReLU FFN, output layer tied to the embedding with logits scaled by d_model**-0.5);
v1.1 style (gated GELU, untied output layer) via the shape's switches. Layers are stacked and scanned.
"""

from __future__ import annotations

from collections.abc import Mapping

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
        self, x: jax.Array, encoded: jax.Array, self_bias: jax.Array, cross_bias: jax.Array, rng: jax.Array | None
    ) -> jax.Array:
        h = self.self_attention_norm(x)
        x = x + L.dropout(self.self_attention(h, h, self_bias, L.fold(rng, 0)), self.dropout_rate, L.fold(rng, 1))
        h = self.cross_attention(self.cross_attention_norm(x), encoded, cross_bias, L.fold(rng, 2))
        x = x + L.dropout(h, self.dropout_rate, L.fold(rng, 3))
        h = self.mlp(self.mlp_norm(x), L.fold(rng, 4))
        return x + L.dropout(h, self.dropout_rate, L.fold(rng, 5))


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
            lambda layer, _, h, key: layer(h, encoded, self_bias, cross_bias, key),
            x,
            L.fold(rng, 1),
            self.shape.num_decoder_layers,
            stacked=self.decoder_layers,
            remat=self.remat,
        )
        x = L.dropout(self.decoder_norm(x), self.shape.dropout_rate, L.fold(rng, 2))
        if self.shape.tie_embeddings:
            x = x * self.shape.d_model**-0.5
            return L.dense(x, self.embedding[...].astype(self.dtype).T, preferred_element_type=jnp.float32)
        return L.dense(x, self.lm_head[...].astype(self.dtype), preferred_element_type=jnp.float32)

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
