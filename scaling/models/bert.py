"""BERT / RoBERTa encoders with every switch of the crammed BERT (Geiping & Goldstein 2023, Section 4.2).

Post-LN (original BERT) or pre-LN; optional QKV and linear biases; plain or split-GLU FFN; learned,
sinusoidal or scaled-sinusoidal positions; norm after the embedding; final norm; MLM head with or without
its dense transform and decoder bias; sparse prediction (the head runs only on masked positions); and
ALBERT-style sharing of all layers or of attention only (Li et al. 2020, Appendix C).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.models import layers as L
from scaling.shapes import Shape


class BertLayer(nnx.Module):
    """One encoder block; under attention-only sharing the attention lives outside and is passed in."""

    def __init__(self, shape: Shape, rngs: nnx.Rngs, *, with_attention: bool = True):
        self.pre_norm, self.dropout_rate = shape.norm_position == "pre", shape.dropout_rate
        self.attention_norm = L.Norm(shape, rngs)
        if with_attention:
            self.attention = L.Attention(shape, rngs, bert_init=True)
        self.mlp_norm = L.Norm(shape, rngs)
        if shape.ffn_activation == "gelu_exact":  # Hugging Face BERT's erf GELU (L.MLP's "gelu" is tanh)
            self.mlp = L.MLP(dataclasses.replace(shape, ffn_activation="gelu"), rngs, bert_init=True)
            self.mlp.act = lambda x: jax.nn.gelu(x, approximate=False)
        else:
            self.mlp = L.MLP(shape, rngs, bert_init=True)

    def __call__(
        self, x: jax.Array, bias: jax.Array, rng: jax.Array | None, attention: L.Attention | None = None
    ) -> jax.Array:
        attention = attention if attention is not None else self.attention
        drop = lambda h, i: L.dropout(h, self.dropout_rate, L.fold(rng, i))
        if self.pre_norm:
            h = self.attention_norm(x)
            x = x + drop(attention(h, h, bias, L.fold(rng, 0)), 1)
            return x + drop(self.mlp(self.mlp_norm(x), L.fold(rng, 2)), 3)
        x = self.attention_norm(x + drop(attention(x, x, bias, L.fold(rng, 0)), 1))
        return self.mlp_norm(x + drop(self.mlp(x, L.fold(rng, 2)), 3))


class Bert(nnx.Module):
    """Encoder with an MLM head; `loss` consumes the MLM batches of `scaling.data` (packed or not)."""

    def __init__(self, shape: Shape, *, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32, remat: str = "none"):
        if shape.family != "bert":
            raise ValueError(f"Bert needs a bert-family shape, got {shape.name!r} ({shape.family})")
        self.shape, self.dtype, self.remat = shape, dtype, remat
        d, init = shape.d_model, L.normal(0.02)
        self.embedding = L.param(rngs, init, (shape.vocab_size, d), ("vocab", "embed"))
        if shape.position_embedding == "learned":
            self.position_embedding = L.param(rngs, init, (shape.max_length, d), ("positions", "embed"))
        elif shape.position_embedding == "scaled-sinusoidal":  # Hua et al. 2022: one learned scale
            self.position_scale = L.param(rngs, jax.nn.initializers.constant(d**-0.5), (1,), (None,))
        if shape.type_vocab_size:
            self.type_embedding = L.param(rngs, init, (shape.type_vocab_size, d), (None, "embed"))
        if shape.embedding_norm:
            self.embedding_norm = L.Norm(shape, rngs)
        n = shape.num_encoder_layers
        if shape.layer_sharing == "all":
            self.layers = BertLayer(shape, rngs)
        elif shape.layer_sharing == "attention":
            self.shared_attention = L.Attention(shape, rngs, bert_init=True)
            self.layers = L.stack(lambda r: BertLayer(shape, r, with_attention=False), n, rngs)
        else:
            self.layers = L.stack(lambda r: BertLayer(shape, r), n, rngs)
        if shape.final_norm:
            self.final_norm = L.Norm(shape, rngs)
        if shape.head_transform:
            self.head_dense = L.param(rngs, init, (d, d), ("embed", "mlp"))
            if shape.linear_bias:
                self.head_dense_bias = L.param(rngs, jax.nn.initializers.zeros, (d,), ("mlp",))
            self.head_norm = L.Norm(shape, rngs)
        if not shape.tie_embeddings:
            self.decoder = L.param(rngs, init, (d, shape.vocab_size), ("embed", "vocab"))
        if shape.decoder_bias:
            self.decoder_bias_value = L.param(rngs, jax.nn.initializers.zeros, (shape.vocab_size,), ("vocab",))

    def _positions(self, positions: jax.Array) -> jax.Array | None:
        kind, d = self.shape.position_embedding, self.shape.d_model
        if kind == "learned":
            return jnp.take(self.position_embedding[...], positions, axis=0)
        enc = L.sinusoidal(positions, d)
        return enc * self.position_scale[...] if kind == "scaled-sinusoidal" else enc

    def encode(
        self,
        tokens: jax.Array,
        segment_ids: jax.Array | None = None,
        positions: jax.Array | None = None,
        token_types: jax.Array | None = None,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Hidden states [B, L, D] after the last layer (and final norm, when the shape has one)."""
        b, length = tokens.shape
        shape = self.shape
        usable = shape.max_length - (shape.pad_id + 1 if shape.roberta_positions else 0)
        if length > usable and shape.position_embedding == "learned":
            raise ValueError(
                f"sequence length {length} exceeds max_length = {shape.max_length} of {shape.name}'s learned "
                f"positions ({usable} usable); shorten the inputs or set max_length"
            )
        if segment_ids is None and shape.pad_id != 0:
            segment_ids = (tokens != shape.pad_id).astype(jnp.int32)
        segments = L.segments_of(tokens, segment_ids)
        if positions is None and shape.roberta_positions:  # as transformers' create_position_ids_from_input_ids
            real = (tokens != shape.pad_id).astype(jnp.int32)
            positions = jnp.cumsum(real, axis=1) * real + shape.pad_id
        elif positions is None:
            positions = jnp.broadcast_to(jnp.arange(length), (b, length))
        x = jnp.take(self.embedding[...], tokens, axis=0) + self._positions(positions)
        if self.shape.type_vocab_size:
            types = jnp.zeros_like(tokens) if token_types is None else token_types
            x = x + jnp.take(self.type_embedding[...], types, axis=0)
        if self.shape.embedding_norm:
            x = self.embedding_norm(x)
        x = L.dropout(x.astype(self.dtype), self.shape.dropout_rate, L.fold(rng, 0))
        bias = L.attention_bias(segments, segments)
        sharing = self.shape.layer_sharing
        if sharing == "all":
            body = lambda _, layer, h, key: layer(h, bias, key)
            stacked, shared = None, self.layers
        elif sharing == "attention":
            body = lambda layer, attention, h, key: layer(h, bias, key, attention)
            stacked, shared = self.layers, self.shared_attention
        else:
            body = lambda layer, _, h, key: layer(h, bias, key)
            stacked, shared = self.layers, None
        x = L.scan_layers(
            body, x, L.fold(rng, 1), self.shape.num_encoder_layers, stacked=stacked, shared=shared, remat=self.remat
        )
        return self.final_norm(x) if self.shape.final_norm else x

    def __call__(self, tokens: jax.Array, token_types: jax.Array | None = None) -> jax.Array:
        """Float32 MLM logits [B, L, vocab] for tokens [B, L]; `shape.pad_id` tokens are masked out of attention
        (as transformers does with attention_mask = tokens != pad_id). Logits at pad positions are not meaningful."""
        return self.mlm_logits(self.encode(tokens, token_types=token_types))

    def mlm_logits(self, hidden: jax.Array) -> jax.Array:
        """Float32 vocabulary logits for hidden states [..., D]."""
        x = hidden
        if self.shape.head_transform:
            x = L.dense(x, self.head_dense[...].astype(self.dtype))
            if self.shape.linear_bias:
                x = x + self.head_dense_bias[...].astype(self.dtype)
            x = self.head_norm(jax.nn.gelu(x, approximate=False))
        if self.shape.tie_embeddings:
            logits = L.dense(x, self.embedding[...].astype(self.dtype).T, preferred_element_type=jnp.float32)
        else:
            logits = L.dense(x, self.decoder[...].astype(self.dtype), preferred_element_type=jnp.float32)
        return logits + self.decoder_bias_value[...] if self.shape.decoder_bias else logits

    def loss(
        self, batch: Mapping[str, jax.Array], *, dropout_rng: jax.Array | None = None, z_loss: float = 0.0
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        hidden = self.encode(
            batch["encoder_input_tokens"],
            batch.get("encoder_segment_ids"),
            batch.get("encoder_positions"),
            batch.get("token_type_ids"),
            dropout_rng,
        )
        targets = batch["encoder_target_tokens"]
        if self.shape.sparse_prediction:
            # Only the masked positions reach the (vocabulary-sized) head: Cramming's sparse prediction.
            pos = batch["mlm_positions"]
            hidden = jnp.take_along_axis(hidden, pos[..., None], axis=1)
            targets = jnp.take_along_axis(targets, pos, axis=1)
            weights = batch["mlm_weights"]
        else:
            weights = batch["encoder_loss_weights"]
        return L.cross_entropy(self.mlm_logits(hidden), targets, weights, z_loss)
