"""The machine's limit for MFU: the best matmul of every installed library, and the source that set it."""

import jax.numpy as jnp
import pytest

from scaling.experiments import peak
from scaling.training import metrics


def test_the_peak_is_the_best_library_and_size(monkeypatch):
    seconds = {("jax", 64): 2.0, ("jax", 128): 4.0, ("torch", 64): 1.0, ("torch", 128): 8.0}
    monkeypatch.setattr(peak, "jax_matmul_seconds", lambda n, dtype, repeats: seconds["jax", n])
    monkeypatch.setattr(peak, "torch_matmul_seconds", lambda n, dtype, repeats: seconds["torch", n])
    best = peak.measured_peak(jnp.float32, sizes=(64, 128))
    # FLOP/s: jax 64 → 2·64³/2, jax 128 → 2·128³/4 (the best: 4× jax-64), torch 64 → 2·64³, torch 128 → 2·128³/8
    assert best.flops_per_second == pytest.approx(2 * 128**3 / 4.0)
    assert best.source.startswith("measured: jax ") and best.source.endswith("matmul 128² float32")
    seconds["torch", 64] = 0.01  # now torch sets it
    best = peak.measured_peak(jnp.float32, sizes=(64, 128))
    assert best.flops_per_second == pytest.approx(2 * 64**3 / 0.01) and " torch " in f" {best.source}"


def test_a_real_measurement_is_at_least_each_library():
    best = peak.measured_peak(jnp.float32, sizes=(256,), repeats=2)
    jax_only = 2 * 256**3 / peak.jax_matmul_seconds(256, jnp.float32, repeats=2)
    assert best.flops_per_second > 0 and best.source.endswith("matmul 256² float32")
    assert best.flops_per_second >= 0.5 * jax_only  # the best of both, up to this machine's minute-to-minute drift
    assert peak.torch_matmul_seconds(64, jnp.bfloat16, repeats=1) > 0  # the step's precision, bfloat16 included


def test_a_device_with_a_published_peak_uses_it(monkeypatch):
    monkeypatch.setattr(metrics, "peak_flops", lambda kind: 989e12)
    limit = peak.device_peak()
    assert limit.flops_per_second == 989e12 and limit.source.startswith("published: ")
