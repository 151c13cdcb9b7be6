"""Scaling-law fits: a power law with an irreducible term, and Chinchilla's L(N, D) (Hoffmann et al. 2022).

Both fit the log of the loss with the log-sum-exp parameterisation of Hoffmann et al.'s approach 3:

    log L̂ = LSE(a − α log N, b − β log D, e),   A = exp(a), B = exp(b), E = exp(e),

which keeps A, B, E positive without bounds and makes the residuals relative errors. The objective is the
Huber loss (δ = 1e-3) of log L̂ − log L, minimised with L-BFGS from the best points of Hoffmann et al.'s grid
of initialisations (α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}); the Huber loss makes
the fit robust to the outliers that early-stopped or diverged runs produce. :func:`bootstrap` resamples the
points to give standard errors.

With C = 6ND, minimising L(N, C / 6N) has the closed form (Hoffmann et al. Appendix D.2)

    N_opt = G (C/6)^a,  D_opt = G^-1 (C/6)^b,  a = β/(α+β),  b = α/(α+β),  G = (αA / (βB))^(1/(α+β)),

which :func:`compute_optimal` returns; :func:`compute_optimal_numeric` minimises the loss directly as a check.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

HUBER_DELTA = 1e-3
GRID_EXPONENTS = np.arange(0.0, 2.01, 0.5)
GRID_E = np.arange(-1.0, 1.01, 0.5)
GRID_LOG_COEFFICIENTS = np.arange(0.0, 25.01, 5.0)
DEFAULT_STARTS = 16


# ---------------------------------------------------------------------------------------- the objective


def _predict_log(theta: np.ndarray, log_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L̂ for parameter rows ``theta`` = (e, a_1, α_1, …, a_K, α_K) (shape [..., 1+2K]) at ``log_x`` [K, n].

    Returns (log L̂ [..., n], the softmax weights of the K+1 terms [..., K+1, n]) for the gradient.
    """
    e, a, alpha = theta[..., :1], theta[..., 1::2], theta[..., 2::2]
    terms = a[..., :, None] - alpha[..., :, None] * log_x  # [..., K, n]
    constant = np.broadcast_to(e[..., None, :], (*terms.shape[:-2], 1, terms.shape[-1]))
    z = np.concatenate([terms, constant], axis=-2)  # [..., K+1, n]
    top = z.max(axis=-2, keepdims=True)
    w = np.exp(z - top)
    total = w.sum(axis=-2, keepdims=True)
    return (top + np.log(total))[..., 0, :], w / total


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of ``r`` divided by δ (same minimiser, gradients of order one), and its derivative."""
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)) / delta
    return value, np.where(small, r, delta * np.sign(r)) / delta


def _objective(theta: np.ndarray, log_x: np.ndarray, log_y: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    pred, w = _predict_log(theta, log_x)
    value, slope = _huber(pred - log_y, delta)
    n = log_y.size
    grad = np.empty_like(theta)
    grad[0] = np.sum(slope * w[-1]) / n
    grad[1::2] = np.sum(slope * w[:-1], axis=-1) / n
    grad[2::2] = -np.sum(slope * w[:-1] * log_x, axis=-1) / n
    return float(np.sum(value) / n), grad


def _grid(k: int) -> np.ndarray:
    """Hoffmann et al.'s initialisations for K power terms: rows (e, a_1, α_1, …)."""
    axes = [GRID_E] + [GRID_LOG_COEFFICIENTS, GRID_EXPONENTS] * k
    return np.array(list(itertools.product(*axes)))


def _fit_lse(
    log_x: np.ndarray, log_y: np.ndarray, delta: float, starts: int | None, initial: np.ndarray | None = None
) -> np.ndarray:
    """The best L-BFGS optimum over the ``starts`` best grid points (all of them with None), or from ``initial``."""
    if initial is not None:
        candidates = initial[None, :]
    else:
        grid = _grid(log_x.shape[0])
        pred, _ = _predict_log(grid, log_x)
        values = _huber(pred - log_y, delta)[0].mean(axis=-1)
        candidates = grid[np.argsort(values)[:starts]] if starts else grid
    best, best_value = None, np.inf
    for start in candidates:
        result = optimize.minimize(
            _objective,
            start,
            args=(log_x, log_y, delta),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2_000, "ftol": 1e-15, "gtol": 1e-12},
        )
        if result.fun < best_value:
            best, best_value = result.x, result.fun
    return best


def _check(name: str, values: Sequence[float], n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty: a fit needs data points")
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} values, expected {n} (one per point)")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be finite and positive (the fit works in log space); drop diverged runs first")
    return array


# ---------------------------------------------------------------------------------------------- fits


def fit_power_law(
    x: Sequence[float], y: Sequence[float], *, delta: float = HUBER_DELTA, starts: int | None = DEFAULT_STARTS
) -> dict[str, float]:
    """y ≈ E + A · x^-α, fitted like approach 3 (see module docstring): returns ``E``, ``A``, ``alpha``."""
    xs = _check("x", x)
    ys = _check("y", y, xs.size)
    if xs.size < 3:
        raise ValueError(f"a power law with an irreducible term has 3 parameters; got {xs.size} point(s)")
    theta = _fit_lse(np.log(xs)[None, :], np.log(ys), delta, starts)
    return {"E": float(np.exp(theta[0])), "A": float(np.exp(theta[1])), "alpha": float(theta[2])}


def power_law(fit: Mapping[str, float], x: Sequence[float] | float) -> np.ndarray:
    """E + A · x^-α for a :func:`fit_power_law` result."""
    return fit["E"] + fit["A"] * np.asarray(x, dtype=float) ** -fit["alpha"]


def _chinchilla_data(N, D, loss) -> tuple[np.ndarray, np.ndarray]:
    n = _check("N", N)
    d = _check("D", D, n.size)
    y = _check("loss", loss, n.size)
    if n.size < 5:
        raise ValueError(f"L(N, D) = E + A/N^α + B/D^β has 5 parameters; got {n.size} point(s)")
    return np.stack([np.log(n), np.log(d)]), np.log(y)


def _as_dict(theta: np.ndarray) -> dict[str, float]:
    e, a, alpha, b, beta = theta
    return {
        "E": float(np.exp(e)),
        "A": float(np.exp(a)),
        "B": float(np.exp(b)),
        "alpha": float(alpha),
        "beta": float(beta),
    }


def _theta(fit: Mapping[str, float]) -> np.ndarray:
    """Inverse of :func:`_as_dict`: the fit as the optimiser's parameter row (log E, log A, α, log B, β)."""
    return np.array([np.log(fit["E"]), np.log(fit["A"]), fit["alpha"], np.log(fit["B"]), fit["beta"]])


def fit_chinchilla(
    N: Sequence[float],
    D: Sequence[float],
    loss: Sequence[float],
    *,
    delta: float = HUBER_DELTA,
    starts: int | None = DEFAULT_STARTS,
) -> dict[str, float]:
    """L(N, D) = E + A/N^α + B/D^β by approach 3: returns ``E``, ``A``, ``B``, ``alpha``, ``beta``.

    ``N``: parameters, ``D``: training tokens, ``loss``: the loss each (N, D) reached (points along training
    curves are fine). ``starts``: how many of the best grid initialisations L-BFGS starts from (None: all 4,500,
    as Hoffmann et al.; the grid is ranked by its objective first, so 16 finds the same optimum far faster).
    """
    log_x, log_y = _chinchilla_data(N, D, loss)
    return _as_dict(_fit_lse(log_x, log_y, delta, starts))


def chinchilla(fit: Mapping[str, float], N: Sequence[float] | float, D: Sequence[float] | float) -> np.ndarray:
    """E + A/N^α + B/D^β for a :func:`fit_chinchilla` result."""
    n, d = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return fit["E"] + fit["A"] * n ** -fit["alpha"] + fit["B"] * d ** -fit["beta"]


def bootstrap(
    N: Sequence[float],
    D: Sequence[float],
    loss: Sequence[float],
    *,
    samples: int = 100,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    fit: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Chinchilla fits on ``samples`` resamplings (with replacement) of the points; ``.std()`` = standard errors.

    Each resample starts L-BFGS from the full-data optimum (its own optimum lies near it), which makes a few
    hundred resamples affordable. ``fit``: that optimum when the caller already has it (:func:`fit_chinchilla` of
    the same points), which saves fitting it again.
    """
    log_x, log_y = _chinchilla_data(N, D, loss)
    full = _fit_lse(log_x, log_y, delta, DEFAULT_STARTS) if fit is None else _theta(fit)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(samples):
        pick = rng.integers(0, log_y.size, log_y.size)
        rows.append(_as_dict(_fit_lse(log_x[:, pick], log_y[pick], delta, None, initial=full)))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ optimal allocation


def compute_optimal(fit: Mapping[str, float], flops: Sequence[float] | float) -> dict[str, np.ndarray | float]:
    """Closed-form compute-optimal parameters and tokens for budgets ``flops`` (C = 6ND): N_opt, D_opt, a, b, G."""
    alpha, beta, A, B = fit["alpha"], fit["beta"], fit["A"], fit["B"]
    c = np.asarray(flops, dtype=float) / 6.0
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    return {"N_opt": G * c**a, "D_opt": c**b / G, "a": a, "b": b, "G": G}


def compute_optimal_numeric(fit: Mapping[str, float], flops: float) -> tuple[float, float]:
    """(N_opt, D_opt) by minimising L(N, C / 6N) over log N: an independent check of :func:`compute_optimal`."""
    if not flops > 0:
        raise ValueError(f"flops must be positive, got {flops}")
    log_c6 = np.log(flops / 6.0)

    def loss_at(log_n: float) -> float:
        return float(chinchilla(fit, np.exp(log_n), np.exp(log_c6 - log_n)))

    result = optimize.minimize_scalar(loss_at, bounds=(0.0, log_c6), method="bounded", options={"xatol": 1e-10})
    n = float(np.exp(result.x))
    return n, flops / (6.0 * n)


CHINCHILLA_PUBLISHED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
"""Hoffmann et al. (2022) Section 3.3 / Equation 10: the approach-3 fit on their runs."""
