"""Models the trainer knows only through `build`, `Model.loss` and the logical axes of their parameters.

    model = build(shape, rngs=nnx.Rngs(0))
    objective, aux = model.loss(batch, dropout_rng=key, z_loss=1e-4)  # sums over target tokens
    logical_specs = nnx.get_partition_spec(nnx.state(model, nnx.Param))

`aux` holds `loss_sum`, `z_loss_sum`, `weight_sum` and `correct_sum`, so gradient accumulation and data
parallelism divide by the global weight exactly once.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from scaling.models.bert import Bert
from scaling.models.t5 import T5
from scaling.shapes import Shape

Model = T5 | Bert


def build(shape: Shape, *, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32, remat: str = "none") -> Model:
    """The model for a shape: T5 for the t5 family, Bert for the bert family."""
    cls = T5 if shape.family == "t5" else Bert
    return cls(shape, rngs=rngs, dtype=dtype, remat=remat)


def abstract(shape: Shape, *, dtype: jnp.dtype = jnp.float32, remat: str = "none") -> Model:
    """The model's structure with `ShapeDtypeStruct` leaves: no memory, for sharding and restore targets."""
    return nnx.eval_shape(lambda: build(shape, rngs=nnx.Rngs(0), dtype=dtype, remat=remat))


__all__ = ["Bert", "Model", "T5", "abstract", "build"]
