"""Schedules against closed forms, the batch ramp, weight-decay masks, Adafactor (T5) and AdamW updates."""

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from scaling import optim

flax.config.update("flax_always_shard_variable", False)


def config(**overrides):
    cfg = optim.default_config()
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------- schedules


def lr(cfg, p=0.0, step=0):
    return float(optim.make_schedule(cfg)(p, step))


def test_inverse_sqrt_is_t5():
    cfg = config(schedule="inverse_sqrt", learning_rate=0.01, warmup_steps=10_000)
    for step in (0, 1, 5_000, 10_000):
        assert lr(cfg, step=step) == pytest.approx(0.01)
    for step in (40_000, 250_000, 1_000_000):
        assert lr(cfg, step=step) == pytest.approx(1 / math.sqrt(step), rel=1e-6)


def test_triangle_rises_peaks_and_reaches_zero():
    cfg = config(schedule="triangle", learning_rate=1e-3, peak_fraction=0.75, start_fraction=0.0)
    assert lr(cfg, 0.0) == 0.0
    assert lr(cfg, 0.375) == pytest.approx(0.5e-3)
    assert lr(cfg, 0.75) == pytest.approx(1e-3)
    assert lr(cfg, 0.875) == pytest.approx(0.5e-3)
    assert lr(cfg, 1.0) == 0.0
    assert lr(cfg, 1.2) == 0.0  # Overshooting the budget never goes negative.


def cramming_get_budget_triangle(fake_step, num_training_steps, base_percentage, falloff):
    """Transcribed from JonasGeiping/cramming, cramming/backend/optimizers/schedulers.py:452-465 (lr_lambda)."""
    return min(
        base_percentage + fake_step * (1 - base_percentage) / (1 - falloff) / num_training_steps,
        float(1 / falloff - fake_step / (num_training_steps * falloff)),
    )


def cramming_get_budget_one_cycle(fake_step, num_training_steps):
    """Transcribed from cramming/backend/optimizers/schedulers.py:394-404 (lr_lambda)."""
    if fake_step < num_training_steps / 2:
        return float(fake_step / (num_training_steps / 2))
    return float(2 - fake_step / (num_training_steps / 2))


@pytest.mark.parametrize("fake_step", [0, 1, 90_000, 337_500, 600_000, 675_000, 700_000, 787_500, 899_999, 900_000])
def test_triangle_defaults_are_the_authors_budget_triangle2(fake_step):
    # train/bert-o4.yaml: scheduler budget-triangle2 = get_budget_triangle(base_percentage=0.25, falloff=0.25)
    # (schedulers.py:177-185), steps 900_000; p = fake_step / steps is the budget fraction spent.
    steps, peak = 900_000, 1e-3
    theirs = peak * cramming_get_budget_triangle(fake_step, steps, base_percentage=0.25, falloff=0.25)
    assert lr(config(schedule="triangle", learning_rate=peak), fake_step / steps) == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("fake_step", [0, 100_000, 449_999, 450_000, 700_000, 900_000])
def test_triangle_without_a_start_is_the_authors_budget_one_cycle(fake_step):
    steps = 900_000
    cfg = config(schedule="triangle", learning_rate=1.0, peak_fraction=0.5, start_fraction=0.0)
    assert lr(cfg, fake_step / steps) == pytest.approx(cramming_get_budget_one_cycle(fake_step, steps), abs=1e-6)


def test_cosine_and_linear_with_warmup_and_floor():
    cos = config(schedule="cosine", learning_rate=2.0, warmup_fraction=0.2, final_fraction=0.1)
    assert lr(cos, 0.1) == pytest.approx(1.0)
    assert lr(cos, 0.2) == pytest.approx(2.0)
    assert lr(cos, 0.6) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # halfway through the decay
    assert lr(cos, 1.0) == pytest.approx(0.2)
    lin = config(schedule="linear", learning_rate=2.0, warmup_fraction=0.0, final_fraction=0.0)
    assert [lr(lin, p) for p in (0.0, 0.25, 1.0)] == pytest.approx([2.0, 1.5, 0.0])


def test_constant_with_warmup_ignores_step():
    cfg = config(schedule="constant", learning_rate=0.5, warmup_fraction=0.5)
    assert lr(cfg, 0.25, step=7) == pytest.approx(0.25)
    assert lr(cfg, 0.9, step=10**6) == pytest.approx(0.5)


def test_schedules_are_jittable_and_vectorised():
    f = optim.make_schedule(config(schedule="triangle", learning_rate=1.0))
    p = jnp.linspace(0, 1, 5)
    np.testing.assert_allclose(jax.jit(f)(p, 0), [0.25, 0.5, 0.75, 1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"schedule": "step"}, "optimizer.schedule"),
        ({"learning_rate": 0.0}, "optimizer.learning_rate"),
        ({"schedule": "inverse_sqrt", "warmup_steps": 0}, "optimizer.warmup_steps"),
        ({"schedule": "triangle", "peak_fraction": 1.0}, "optimizer.peak_fraction"),
        ({"schedule": "triangle", "peak_fraction": 0.0}, "optimizer.peak_fraction"),
        ({"schedule": "triangle", "start_fraction": 1.5}, "optimizer.start_fraction"),
        ({"schedule": "cosine", "warmup_fraction": 1.0}, "optimizer.warmup_fraction"),
    ],
)
def test_bad_schedule_configs_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        optim.make_schedule(config(**overrides))


# ---------------------------------------------------------------- batch ramp


def test_batch_ramp_is_monotone_integer_and_ends_full():
    counts = [optim.microbatches_at(p, full=85, ramp_fraction=0.6) for p in np.linspace(0, 1, 1001)]
    assert all(isinstance(c, int) for c in counts)
    assert counts[0] == 1 and counts[-1] == 85
    assert all(a <= b for a, b in zip(counts, counts[1:]))
    assert optim.microbatches_at(0.6, full=85, ramp_fraction=0.6) == 85
    assert optim.microbatches_at(0.3, full=85, ramp_fraction=0.6) == 43  # 1 + floor(84 / 2)
    assert optim.microbatches_at(0.0, full=8, ramp_fraction=0.0) == 8  # no ramp


def test_batch_ramp_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_ramp_fraction"):
        optim.microbatches_at(0.5, full=8, ramp_fraction=1.5)
    with pytest.raises(ValueError, match="full"):
        optim.microbatches_at(0.5, full=0, ramp_fraction=0.5)


# ---------------------------------------------------------------- optimizers


class Toy(nnx.Module):
    """Parameters named like the models': a kernel, a norm scale, a bias, a scanned (stacked) kernel."""

    def __init__(self):
        self.kernel = nnx.Param(jnp.array([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0]]), out_sharding=("embed", "mlp"))
        self.layer_norm_scale = nnx.Param(jnp.array([1.0, 2.0]), out_sharding=("embed",))
        self.out_bias = nnx.Param(jnp.array([0.1, -0.1, 0.3]), out_sharding=("mlp",))
        self.stack = nnx.Param(
            jnp.stack([jnp.full((2, 3), 1.0), jnp.full((2, 3), 100.0)]), out_sharding=("layers", "embed", "mlp")
        )


def params_and_grads():
    params = nnx.state(Toy(), nnx.Param)
    grads = jax.tree.map(lambda p: jnp.linspace(-1.0, 2.0, p.size).reshape(p.shape) + 0.3, params)
    return params, grads


def step(tx, params, grads, lr_value):
    state = optim.set_learning_rate(tx.init(params), lr_value)
    updates, state = tx.update(grads, state, params)
    return updates, state


def test_decay_mask_skips_norm_scales_and_biases():
    params, _ = params_and_grads()
    mask = optim.decay_mask(params)
    assert {k: bool(v.get_value()) for k, v in mask.items()} == {
        "kernel": True,
        "layer_norm_scale": False,
        "out_bias": False,
        "stack": True,
    }


def test_adafactor_first_step_closed_form():
    # Step 0: decay_rate_t = 1 - 1**-0.8 = 0, so v = g^2 + eps and the raw update is sign(g) (RMS 1, no clip);
    # T5's relative step then gives -lr * max(rms(param), 1e-3) * sign(g) per parameter block.
    params, grads = params_and_grads()
    tx = optim.make_optimizer(config(name="adafactor"))
    updates, state = step(tx, params, grads, 0.01)
    for name in ("kernel", "layer_norm_scale", "out_bias"):
        p, g = np.asarray(params[name][...]), np.asarray(grads[name][...])
        expected = -0.01 * max(np.sqrt(np.mean(p**2)), 1e-3) * np.sign(g)
        np.testing.assert_allclose(updates[name][...], expected, rtol=1e-5)
    assert float(optim.learning_rate(state)) == pytest.approx(0.01)


def test_adafactor_matches_optax_over_steps_factored():
    params, grads = params_and_grads()
    cfg = config(name="adafactor", min_dim_size_to_factor=2)
    ours = optim.make_optimizer(cfg)
    ref = optax.adafactor(0.01, min_dim_size_to_factor=2)
    s_ours, s_ref, p_ours, p_ref = ours.init(params), ref.init(params), params, params
    for i in range(3):
        g = jax.tree.map(lambda x: x * (i + 1) - 0.2 * i, grads)
        u, s_ours = ours.update(g, optim.set_learning_rate(s_ours, 0.01), p_ours)
        v, s_ref = ref.update(g, s_ref, p_ref)
        p_ours, p_ref = optax.apply_updates(p_ours, u), optax.apply_updates(p_ref, v)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), p_ours, p_ref)


def test_adafactor_treats_scanned_layers_one_layer_at_a_time():
    params, grads = params_and_grads()
    specs = nnx.get_partition_spec(params)
    updates, _ = step(optim.make_optimizer(config(name="adafactor"), param_specs=specs), params, grads, 0.01)
    ref = optax.adafactor(0.01)
    for layer in range(2):
        p, g = params["stack"][...][layer], grads["stack"][...][layer]
        expected, _ = ref.update(g, ref.init(p), p)
        np.testing.assert_allclose(updates["stack"][...][layer], expected, rtol=1e-5)
    # Layer 1's parameters are 100x larger, so T5's relative step is 100x larger there.
    ratio = np.abs(updates["stack"][...][1]) / np.abs(updates["stack"][...][0])
    np.testing.assert_allclose(ratio, 100.0, rtol=1e-5)


def test_adamw_decays_only_masked_params_and_clips_global_norm():
    params, grads = params_and_grads()
    zero = jax.tree.map(jnp.zeros_like, grads)
    tx = optim.make_optimizer(config(name="adamw", weight_decay=0.1, b1=0.9, b2=0.98, eps=1e-12))
    updates, _ = step(tx, params, zero, 0.5)  # zero gradients: the update is pure decoupled decay
    np.testing.assert_allclose(updates["kernel"][...], -0.5 * 0.1 * params["kernel"][...], rtol=1e-6)
    np.testing.assert_allclose(updates["layer_norm_scale"][...], 0.0)
    np.testing.assert_allclose(updates["out_bias"][...], 0.0)


def test_global_norm_clipping_runs_before_the_optimizer():
    # Adam's first step is scale-free, so clipping shows on the second: a huge first gradient clipped to
    # norm 1 must leave the same state as optax's own clip-then-adamw chain, and differ from no clipping.
    params, grads = params_and_grads()
    sequence = [jax.tree.map(lambda g: g * 1e6, grads), grads]

    def run(tx, set_lr):
        state, p = tx.init(params), params
        for g in sequence:
            u, state = tx.update(g, set_lr(state), p)
            p = optax.apply_updates(p, u)
        return p

    ours = run(
        optim.make_optimizer(config(name="adamw", grad_clip_norm=1.0)), lambda s: optim.set_learning_rate(s, 1e-2)
    )
    ref = run(optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.0)), lambda s: s)
    unclipped = run(optim.make_optimizer(config(name="adamw")), lambda s: optim.set_learning_rate(s, 1e-2))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, ref)
    assert not np.allclose(ours["kernel"][...], unclipped["kernel"][...])


def test_learning_rate_is_set_inside_jit_without_recompiling():
    params, grads = params_and_grads()
    tx = optim.make_optimizer(config(name="adamw"))
    traces = []

    @jax.jit
    def update(state, lr_value):
        traces.append(1)
        return tx.update(grads, optim.set_learning_rate(state, lr_value), params)[0]

    state = tx.init(params)
    a, b = update(state, 1e-3), update(state, 2e-3)
    assert len(traces) == 1
    jax.tree.map(lambda x, y: np.testing.assert_allclose(2 * x, y, rtol=1e-6), a, b)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"name": "sgd"}, "optimizer.name"),
        ({"name": "adamw", "b2": 1.0}, "optimizer.b2"),
        ({"name": "adafactor", "clipping_threshold": 0.5}, "optimizer.clipping_threshold"),
        ({"grad_clip_norm": -1.0}, "optimizer.grad_clip_norm"),
    ],
)
def test_bad_optimizer_configs_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        optim.make_optimizer(config(**overrides))
