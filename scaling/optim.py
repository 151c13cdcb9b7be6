"""Optimizers (T5's Adafactor, AdamW), learning-rate schedules and the batch-size ramp.

Schedules are functions ``schedule(progress, step) -> learning rate``: ``progress`` is the fraction of the
budget spent in [0, 1] (steps, tokens, FLOPs or wall-clock seconds, from :mod:`scaling.budget`) and ``step``
the update count. Budget-tied schedules (Cramming's one-cycle ``triangle``) need ``progress``, which for a
wall-clock budget is only known on the host at step time, so the learning rate is *not* baked into the
optimizer: :func:`make_optimizer` wraps it in ``optax.inject_hyperparams`` and the trainer writes each step's
rate into the optimizer state with :func:`set_learning_rate` (it is then checkpointed with the state and can
be read back with :func:`learning_rate`).

Config block ``config.optimizer`` (see :func:`default_config`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from scaling.errors import UserError

Schedule = Callable[[jax.typing.ArrayLike, jax.typing.ArrayLike], jax.Array]

OPTIMIZERS = ("adafactor", "adamw")
SCHEDULES = ("inverse_sqrt", "cosine", "linear", "constant", "triangle")


def default_config() -> ml_collections.ConfigDict:
    """The ``config.optimizer`` block; defaults are T5's pre-training recipe (Adafactor, inverse sqrt)."""
    placeholder = ml_collections.config_dict.placeholder
    return ml_collections.ConfigDict(
        {
            "name": "adafactor",
            # Peak learning rate. T5: 0.01 with inverse_sqrt and warmup_steps=10_000 gives 1/sqrt(max(step, 1e4)).
            "learning_rate": 0.01,
            "schedule": "inverse_sqrt",
            "warmup_steps": 10_000,  # inverse_sqrt: the rate is constant for this many steps, then decays.
            "warmup_fraction": 0.0,  # cosine/linear/constant: linear warmup over this fraction of the budget.
            "final_fraction": 0.0,  # cosine/linear: final rate as a fraction of the peak.
            # triangle (Cramming's budget-tied one-cycle): the rate starts at start_fraction * peak, rises linearly to
            # the peak at progress peak_fraction and falls linearly to zero at progress 1. The defaults are the
            # authors' final recipe (train/bert-o4.yaml: scheduler budget-triangle2); see triangle.
            "peak_fraction": 0.75,
            "start_fraction": 0.25,
            "grad_clip_norm": 0.0,  # Global-norm gradient clipping; 0 disables it.
            "weight_decay": 0.0,  # Decoupled, multiplied by the learning rate; never on norms and biases.
            # AdamW.
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            # Adafactor (T5 / t5x defaults).
            "decay_rate": 0.8,
            "momentum": placeholder(float),  # None: no first moment, as in T5.
            "clipping_threshold": 1.0,  # Update-RMS clipping per parameter block; None disables it.
            "multiply_by_parameter_scale": True,  # Updates relative to max(rms(param), 1e-3).
            "min_dim_size_to_factor": 128,
            "factored": True,
            "epsilon1": 1e-30,
            # Cramming's batch-size ramp: accumulate linearly more micro-batches until this fraction of the
            # budget; 0 disables the ramp. See microbatches_at.
            "batch_ramp_fraction": 0.0,
        }
    )


# ---------------------------------------------------------------- schedules: (progress, step) -> lr


def _warmup(progress: jax.Array, warmup_fraction: float) -> jax.Array:
    if warmup_fraction <= 0:
        return jnp.ones_like(progress)
    return jnp.minimum(1.0, progress / warmup_fraction)


def _after_warmup(progress: jax.Array, warmup_fraction: float) -> jax.Array:
    """Progress through the decay phase, in [0, 1]."""
    return jnp.clip((progress - warmup_fraction) / (1.0 - warmup_fraction), 0.0, 1.0)


def inverse_sqrt(peak: float, warmup_steps: int) -> Schedule:
    """T5: ``peak * sqrt(warmup_steps / max(step, warmup_steps))`` — constant, then 1/sqrt(step) decay."""

    def schedule(progress, step):
        del progress
        step = jnp.asarray(step, jnp.float32)
        return peak * jnp.sqrt(warmup_steps / jnp.maximum(step, warmup_steps))

    return schedule


def constant(peak: float, warmup_fraction: float = 0.0) -> Schedule:
    """``peak`` after an optional linear warmup over ``warmup_fraction`` of the budget."""

    def schedule(progress, step):
        del step
        return peak * _warmup(jnp.asarray(progress, jnp.float32), warmup_fraction)

    return schedule


def linear(peak: float, warmup_fraction: float = 0.0, final_fraction: float = 0.0) -> Schedule:
    """Linear warmup to ``peak``, then linear decay to ``final_fraction * peak`` at progress 1."""

    def schedule(progress, step):
        del step
        p = jnp.asarray(progress, jnp.float32)
        decay = 1.0 - (1.0 - final_fraction) * _after_warmup(p, warmup_fraction)
        return peak * _warmup(p, warmup_fraction) * decay

    return schedule


def cosine(peak: float, warmup_fraction: float = 0.0, final_fraction: float = 0.0) -> Schedule:
    """Linear warmup to ``peak``, then half a cosine down to ``final_fraction * peak`` at progress 1."""

    def schedule(progress, step):
        del step
        p = jnp.asarray(progress, jnp.float32)
        shape = 0.5 * (1.0 + jnp.cos(math.pi * _after_warmup(p, warmup_fraction)))
        return peak * _warmup(p, warmup_fraction) * (final_fraction + (1.0 - final_fraction) * shape)

    return schedule


def triangle(peak: float, peak_fraction: float = 0.75, start_fraction: float = 0.25) -> Schedule:
    """Cramming's budget-tied one-cycle, as the authors' code defines it: ``start_fraction * peak`` at progress 0,
    linearly up to ``peak`` at ``peak_fraction``, linearly down to 0 at progress 1 (and 0 past it).

    The paper (§4.3) calls it "a triangular shape that mimics a long warmup period with a quick decay"; the
    shipped recipe (JonasGeiping/cramming, cramming/config/train/bert-o4.yaml:20, ``scheduler: budget-triangle2``)
    is ``get_budget_triangle`` (cramming/backend/optimizers/schedulers.py:452-465) with ``base_percentage=0.25``
    and ``falloff=0.25`` (schedulers.py:177-185)::

        min(base + p * (1 - base) / (1 - falloff), 1 / falloff - p / falloff)

    with ``p`` the fraction of the wall-clock budget spent (schedulers.py:310-316). It does not start at 0, and
    peaks at ``1 - falloff = 0.75``. Their earlier ``budget-one-cycle`` (0 → peak at 0.5 → 0, v1/bert-o2.yaml) is
    ``peak_fraction=0.5, start_fraction=0``.
    """

    def schedule(progress, step):
        del step
        p = jnp.asarray(progress, jnp.float32)
        rise = start_fraction + p * (1.0 - start_fraction) / peak_fraction
        fall = (1.0 - p) / (1.0 - peak_fraction)
        return peak * jnp.clip(jnp.minimum(rise, fall), 0.0, 1.0)

    return schedule


def make_schedule(config: ml_collections.ConfigDict) -> Schedule:
    """The schedule named by ``optimizer.schedule``, validated."""
    name = config.schedule
    peak = config.learning_rate
    if not peak > 0:
        raise UserError(f"optimizer.learning_rate={peak!r}: use a positive peak learning rate")
    for field in ("warmup_fraction", "final_fraction"):
        if not 0.0 <= config[field] < 1.0:
            raise UserError(f"optimizer.{field}={config[field]!r}: use a fraction in [0, 1)")
    if name == "inverse_sqrt":
        if not (isinstance(config.warmup_steps, int) and config.warmup_steps > 0):
            raise UserError(
                f"optimizer.warmup_steps={config.warmup_steps!r}: inverse_sqrt needs a positive integer "
                "(T5 uses 10_000)"
            )
        return inverse_sqrt(peak, config.warmup_steps)
    if name == "constant":
        return constant(peak, config.warmup_fraction)
    if name == "linear":
        return linear(peak, config.warmup_fraction, config.final_fraction)
    if name == "cosine":
        return cosine(peak, config.warmup_fraction, config.final_fraction)
    if name == "triangle":
        if not 0.0 < config.peak_fraction < 1.0:
            raise UserError(
                f"optimizer.peak_fraction={config.peak_fraction!r}: use a fraction in (0, 1) (Cramming: 0.75)"
            )
        if not 0.0 <= config.start_fraction <= 1.0:
            raise UserError(
                f"optimizer.start_fraction={config.start_fraction!r}: use a fraction in [0, 1] (Cramming: 0.25)"
            )
        return triangle(peak, config.peak_fraction, config.start_fraction)
    raise UserError(f"optimizer.schedule={name!r} is unknown; use one of {SCHEDULES}")


# ---------------------------------------------------------------- batch-size ramp


def microbatches_at(progress: float, full: int, ramp_fraction: float, start: int = 1) -> int:
    """Micro-batches to accumulate at ``progress`` under Cramming's linear batch-size ramp.

    Rises linearly (rounded down, so monotone) from ``start`` at progress 0 to ``full`` at ``ramp_fraction``
    and stays there; ``ramp_fraction == 0`` means no ramp. The count changes at most ``full - start`` times,
    so accumulate with a host loop over a jitted micro-step rather than compiling one step per count.
    """
    if not (isinstance(full, int) and full >= 1):
        raise ValueError(f"full={full!r}: the full batch must be a positive number of micro-batches")
    if not 1 <= start <= full:
        raise ValueError(f"start={start!r}: use 1 <= start <= full ({full})")
    if not 0.0 <= ramp_fraction <= 1.0:
        raise UserError(f"optimizer.batch_ramp_fraction={ramp_fraction!r}: use a fraction in [0, 1]")
    if ramp_fraction == 0.0:
        return full
    fraction = min(1.0, max(0.0, progress) / ramp_fraction)
    return min(full, start + math.floor((full - start) * fraction + 1e-9))


# ---------------------------------------------------------------- optimizers


def _path_names(path: tuple) -> list[str]:
    names = []
    for key in path:
        name = getattr(key, "key", getattr(key, "name", getattr(key, "idx", None)))
        names.append(str(name))
    if names and names[-1] == "value":  # nnx.Variable's own child.
        names.pop()
    return names


def decay_mask(params: Any) -> Any:
    """True where weight decay applies: every parameter except those named ``*scale`` (norms) or ``*bias``."""

    def one(path, _):
        names = _path_names(path)
        last = names[-1] if names else ""
        return not (last.endswith("scale") or last.endswith("bias"))

    return jax.tree_util.tree_map_with_path(one, params)


def stacked_mask(param_specs: Any) -> Any:
    """True for parameters whose leading logical axis is ``layers`` (scanned layers), from their specs."""
    return jax.tree.map(lambda spec: len(spec) > 0 and spec[0] == "layers", param_specs)


def _per_layer(inner: optax.GradientTransformation, stacked: Any) -> optax.GradientTransformation:
    """Apply ``inner`` to each layer of stacked parameters separately, as on an unscanned model.

    Adafactor's update clipping and parameter scale use one RMS per parameter block; t5x treats the scanned
    ``layers`` axis as a batch axis for them, and so do we (by vmapping over it).
    """
    flags = jax.tree.leaves(stacked)
    flat = jax.tree.map(lambda s: not s, stacked)
    vmapped = optax.GradientTransformation(jax.vmap(inner.init), jax.vmap(inner.update))
    parts = []
    if not all(flags):
        parts.append(optax.masked(inner, flat))
    if any(flags):
        parts.append(optax.masked(vmapped, stacked))
    return optax.chain(*parts)


def _validate(config: ml_collections.ConfigDict) -> None:
    if config.name not in OPTIMIZERS:
        raise UserError(f"optimizer.name={config.name!r} is unknown; use one of {OPTIMIZERS}")
    if not (
        isinstance(config.learning_rate, (int, float))
        and math.isfinite(config.learning_rate)
        and config.learning_rate > 0
    ):
        raise UserError(f"optimizer.learning_rate={config.learning_rate!r}: use a positive peak learning rate")
    if config.grad_clip_norm < 0:
        raise UserError(f"optimizer.grad_clip_norm={config.grad_clip_norm!r}: use a positive norm, or 0 for off")
    if config.weight_decay < 0:
        raise UserError(f"optimizer.weight_decay={config.weight_decay!r}: use a value >= 0")
    if config.name == "adamw":
        for field in ("b1", "b2"):
            if not 0.0 <= config[field] < 1.0:
                raise UserError(f"optimizer.{field}={config[field]!r}: use a value in [0, 1)")
        if not config.eps > 0:
            raise UserError(f"optimizer.eps={config.eps!r}: use a small positive number such as 1e-8")
    else:
        if not 0.0 < config.decay_rate <= 1.0:
            raise UserError(f"optimizer.decay_rate={config.decay_rate!r}: use a value in (0, 1] (T5: 0.8)")
        if config.clipping_threshold is not None and config.clipping_threshold < 1.0:
            raise UserError(
                f"optimizer.clipping_threshold={config.clipping_threshold!r}: use a value >= 1 (T5: 1.0) or None"
            )
        if config.momentum is not None and not 0.0 <= config.momentum < 1.0:
            raise UserError(f"optimizer.momentum={config.momentum!r}: use a value in [0, 1) or None")


def make_optimizer(config: ml_collections.ConfigDict, param_specs: Any = None) -> optax.GradientTransformation:
    """The optimizer described by ``config.optimizer``, with the learning rate as an injected hyperparameter.

    ``param_specs`` (``nnx.get_partition_spec`` of the parameters) lets Adafactor treat scanned layers one
    layer at a time; without it every array is one block. The learning rate starts at 0: set it before
    each update with :func:`set_learning_rate`.
    """
    _validate(config)

    def build(learning_rate: jax.Array) -> optax.GradientTransformation:
        parts = []
        if config.grad_clip_norm > 0:
            parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
        if config.name == "adamw":
            parts.append(
                optax.adamw(
                    learning_rate,
                    b1=config.b1,
                    b2=config.b2,
                    eps=config.eps,
                    weight_decay=config.weight_decay,
                    mask=decay_mask,
                )
            )
        else:
            adafactor = optax.adafactor(
                learning_rate,
                min_dim_size_to_factor=config.min_dim_size_to_factor,
                decay_rate=config.decay_rate,
                multiply_by_parameter_scale=config.multiply_by_parameter_scale,
                clipping_threshold=config.clipping_threshold,
                momentum=config.momentum,
                eps=config.epsilon1,
                factored=config.factored,
            )
            parts.append(adafactor if param_specs is None else _per_layer(adafactor, stacked_mask(param_specs)))
            if config.weight_decay > 0:
                parts.append(optax.masked(optax.add_decayed_weights(-learning_rate * config.weight_decay), decay_mask))
        return optax.chain(*parts)

    return optax.inject_hyperparams(build, hyperparam_dtype=jnp.float32)(learning_rate=0.0)


def set_learning_rate(opt_state: optax.OptState, lr: jax.typing.ArrayLike) -> optax.OptState:
    """A copy of ``opt_state`` (from :func:`make_optimizer`) whose next update uses learning rate ``lr``."""
    hyperparams = dict(opt_state.hyperparams)
    hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return opt_state._replace(hyperparams=hyperparams)


def learning_rate(opt_state: optax.OptState) -> jax.Array:
    """The learning rate stored in ``opt_state`` (the one the last/next update uses)."""
    return opt_state.hyperparams["learning_rate"]
