"""Fits against known constants: synthetic Chinchilla data, and the published constants' allocation formulas."""

import numpy as np
import pytest

from scaling.analysis import fits

TRUE = {"E": 1.8, "A": 500.0, "B": 1200.0, "alpha": 0.36, "beta": 0.31}


def synthetic(noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.logspace(6, 9, 8), 8)
    D = np.tile(np.logspace(8, 11, 8), 8)
    return N, D, fits.chinchilla(TRUE, N, D) * np.exp(rng.normal(0, noise, N.size))


def test_chinchilla_fit_recovers_constants_from_noisy_data():
    N, D, loss = synthetic(noise=0.005)
    fit = fits.fit_chinchilla(N, D, loss)
    assert set(fit) == {"E", "A", "B", "alpha", "beta"}
    for key in ("E", "alpha", "beta"):
        assert fit[key] == pytest.approx(TRUE[key], rel=0.03), key
    for key in ("A", "B"):  # exp of a fitted log: a 0.05 error in log A is 5%
        assert fit[key] == pytest.approx(TRUE[key], rel=0.1), key
    # What the fit is for: the compute-optimal allocation agrees within a few percent.
    budget = 1e21
    assert fits.compute_optimal(fit, budget)["N_opt"] == pytest.approx(
        fits.compute_optimal(TRUE, budget)["N_opt"], rel=0.05
    )


def test_exact_data_is_recovered_exactly_and_the_grid_start_count_does_not_matter():
    N, D, loss = synthetic(noise=0.0)
    fit = fits.fit_chinchilla(N, D, loss, starts=4)
    for key, value in TRUE.items():
        assert fit[key] == pytest.approx(value, rel=1e-4), key


def test_bootstrap_standard_errors_shrink_with_less_noise():
    N, D, noisy = synthetic(noise=0.01, seed=1)
    _, _, quiet = synthetic(noise=0.002, seed=1)
    se_noisy = fits.bootstrap(N, D, noisy, samples=12, seed=0).std()
    se_quiet = fits.bootstrap(N, D, quiet, samples=12, seed=0).std()
    assert list(se_noisy.index) == ["E", "A", "B", "alpha", "beta"]
    assert se_quiet["alpha"] < se_noisy["alpha"] and se_quiet["E"] < se_noisy["E"]
    assert 0 < se_noisy["alpha"] < 0.05


def test_published_chinchilla_allocation_closed_form_matches_numeric():
    published = fits.CHINCHILLA_PUBLISHED
    for budget in (1e18, 5.76e23, 1e26):
        closed = fits.compute_optimal(published, budget)
        n, d = fits.compute_optimal_numeric(published, budget)
        assert closed["N_opt"] == pytest.approx(n, rel=1e-5) and closed["D_opt"] == pytest.approx(d, rel=1e-5)
        assert 6 * closed["N_opt"] * closed["D_opt"] == pytest.approx(budget)
    exponents = fits.compute_optimal(published, 1e20)
    # Hoffmann et al. Table 2 prints a = 0.46, b = 0.54 for approach 3 (from unrounded constants).
    assert exponents["a"] == pytest.approx(0.46, abs=0.01) and exponents["b"] == pytest.approx(0.54, abs=0.01)
    assert exponents["a"] + exponents["b"] == pytest.approx(1.0)


def test_power_law_with_irreducible_term():
    truth = {"E": 2.0, "A": 300.0, "alpha": 0.3}
    x = np.logspace(5, 10, 12)
    fit = fits.fit_power_law(x, fits.power_law(truth, x) * np.exp(np.random.default_rng(0).normal(0, 0.002, 12)))
    for key, value in truth.items():
        assert fit[key] == pytest.approx(value, rel=0.05), key


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        fits.fit_chinchilla([], [], [])
    with pytest.raises(ValueError, match="positive"):
        fits.fit_chinchilla([1e6] * 5, [1e9] * 5, [2.0, 2.0, np.nan, 2.0, 2.0])
    with pytest.raises(ValueError, match="expected 5"):
        fits.fit_chinchilla([1e6] * 5, [1e9] * 4, [2.0] * 5)
    with pytest.raises(ValueError, match="3 parameters"):
        fits.fit_power_law([1.0, 2.0], [3.0, 2.0])
