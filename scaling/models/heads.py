"""Task heads for downstream finetuning of encoders.

BERT is finetuned as Devlin et al. do it: the hidden state of the first token goes through a pooler (dense +
tanh), dropout and a linear layer to one output per class (or a single output for regression). The MLM head
of the pretrained encoder stays in the parameter tree, unused, so the backbone's parameters keep their names
and a finetuned tree is the pretrained tree plus `pooler*` and `classifier*`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.models import layers as L
from scaling.models.bert import Bert


class SequenceClassifier(nnx.Module):
    """A BERT encoder with a first-token classification (or regression, `num_outputs=1`) head."""

    def __init__(self, backbone: Bert, num_outputs: int, *, rngs: nnx.Rngs):
        if num_outputs < 1:
            raise ValueError(f"num_outputs = {num_outputs}: a head needs at least one output")
        d, init = backbone.shape.d_model, L.normal(0.02)
        self.backbone = backbone
        self.pooler = L.param(rngs, init, (d, d), ("embed", "mlp"))
        self.pooler_bias = L.param(rngs, jax.nn.initializers.zeros, (d,), ("mlp",))
        self.classifier = L.param(rngs, init, (d, num_outputs), ("mlp", None))
        self.classifier_bias = L.param(rngs, jax.nn.initializers.zeros, (num_outputs,), (None,))

    def __call__(self, tokens: jax.Array, token_types: jax.Array | None = None,
                 rng: jax.Array | None = None) -> jax.Array:
        """Float32 outputs [B, num_outputs] for unpacked token rows (pad id 0)."""
        hidden = self.backbone.encode(tokens, token_types=token_types, rng=L.fold(rng, 0))[:, 0]
        dtype = self.backbone.dtype
        pooled = jnp.tanh(hidden @ self.pooler[...].astype(dtype) + self.pooler_bias[...].astype(dtype))
        pooled = L.dropout(pooled, self.backbone.shape.dropout_rate, L.fold(rng, 1))
        return (pooled.astype(jnp.float32) @ self.classifier[...]) + self.classifier_bias[...]


__all__ = ["SequenceClassifier"]
