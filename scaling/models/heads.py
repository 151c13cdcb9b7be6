"""Task heads for downstream finetuning of encoders.

BERT is finetuned as Devlin et al. do it: the hidden state of the first token goes through a pooler (dense +
tanh), dropout and a linear layer to one output per class (or a single output for regression). The MLM head
of the pretrained encoder stays in the parameter tree, unused, so the backbone's parameters keep their names
and a finetuned tree is the pretrained tree plus `pooler*` and `classifier*`.
"""

from __future__ import annotations

from collections.abc import Mapping

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
        self.num_outputs = num_outputs
        self.backbone = backbone
        self.pooler = L.param(rngs, init, (d, d), ("embed", "mlp"))
        self.pooler_bias = L.param(rngs, jax.nn.initializers.zeros, (d,), ("mlp",))
        self.classifier = L.param(rngs, init, (d, num_outputs), ("mlp", None))
        self.classifier_bias = L.param(rngs, jax.nn.initializers.zeros, (num_outputs,), (None,))

    def __call__(
        self, tokens: jax.Array, token_types: jax.Array | None = None, rng: jax.Array | None = None
    ) -> jax.Array:
        """Float32 outputs [B, num_outputs] for unpacked token rows (pad id 0)."""
        hidden = self.backbone.encode(tokens, token_types=token_types, rng=L.fold(rng, 0))[:, 0]
        dtype = self.backbone.dtype
        pooled = jnp.tanh(hidden @ self.pooler[...].astype(dtype) + self.pooler_bias[...].astype(dtype))
        pooled = L.dropout(pooled, self.backbone.shape.dropout_rate, L.fold(rng, 1))
        return (pooled.astype(jnp.float32) @ self.classifier[...]) + self.classifier_bias[...]

    def loss(
        self, batch: Mapping[str, jax.Array], *, dropout_rng: jax.Array | None = None, z_loss: float = 0.0
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The trainer's interface (as `Bert.loss`): summed loss over the rows and the aux sums it logs.

        Classification: the token models' cross-entropy (with z-loss) over the classes; regression (one output):
        squared error, `correct_sum` 0. Every row weighs 1.
        """
        outputs = self(batch["tokens"], batch.get("token_types"), dropout_rng)
        labels = batch["labels"]
        if self.num_outputs > 1:
            return L.cross_entropy(outputs, labels, jnp.ones(labels.shape, jnp.float32), z_loss)
        loss_sum, zero = jnp.square(outputs[:, 0] - labels).sum(), jnp.zeros((), jnp.float32)
        return loss_sum, {
            "loss_sum": loss_sum,
            "z_loss_sum": zero,
            "weight_sum": jnp.float32(labels.shape[0]),
            "correct_sum": zero,
        }


__all__ = ["SequenceClassifier"]
