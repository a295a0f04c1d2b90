"""Finite Markov chains on a grid that stand in for a diffusion (Tauchen 1986), sampled batch-first.

The stat-arb spread and the Heston variance of option-exercise live on such a chain: the env
simulates the chain itself, so a dynamic programme over its states is exact for the env, not an
approximation of it. Each row of the transition matrix is a normal law (the diffusion's one-step
mean and standard deviation from that state) integrated over the cells around the grid points,
the outermost cells reaching to ±∞.
"""

from __future__ import annotations

import math

import numpy as np

_ERF = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(x) -> np.ndarray:
    """Φ(x), elementwise, float64 (math.erf: no scipy needed)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64))


def normal_pdf(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def tauchen(grid: np.ndarray, mean: np.ndarray, sd: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
    """(n, n) transition matrix: row i is N(mean[i], sd[i]²) integrated over the cells of `grid`.

    Cells are bounded by `edges` (n − 1 interior edges, default the midpoints of the grid); the
    first and last cells extend to −∞ and +∞, so every row sums to 1."""
    grid = np.asarray(grid, dtype=np.float64)
    e = 0.5 * (grid[1:] + grid[:-1]) if edges is None else np.asarray(edges, dtype=np.float64)
    cdf = normal_cdf((e[None, :] - np.asarray(mean)[:, None]) / np.asarray(sd)[:, None])   # (n, n-1)
    cdf = np.concatenate([np.zeros((len(grid), 1)), cdf, np.ones((len(grid), 1))], axis=1)
    P = np.diff(cdf, axis=1)
    P = np.maximum(P, 0.0)
    return P / P.sum(axis=1, keepdims=True)


def matched(grid: np.ndarray, mean: np.ndarray, sd: np.ndarray, edges: np.ndarray | None = None,
            iterations: int = 50) -> np.ndarray:
    """`tauchen`, with each row's normal shifted and scaled until the chain's one-step conditional mean
    and variance equal `mean` and `sd`² (binning alone biases both: the tails piled onto the end cells,
    the cells' width added to the variance). Rows whose moments the grid cannot reach keep the best try."""
    grid = np.asarray(grid, dtype=np.float64)
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    mu, sig = mean.copy(), sd.copy()
    for _ in range(iterations):
        P = tauchen(grid, mu, sig, edges)
        m = P @ grid
        var = np.maximum(P @ grid ** 2 - m * m, 1e-300)
        mu = mu + (mean - m)
        sig = sig * np.sqrt(np.clip(sd * sd / var, 0.25, 4.0))
    return tauchen(grid, mu, sig, edges)


def stationary(P: np.ndarray) -> np.ndarray:
    """The stationary distribution π = πP of an irreducible chain (least squares, then clipped ≥ 0)."""
    n = len(P)
    A = np.vstack([P.T - np.eye(n), np.ones((1, n))])
    b = np.concatenate([np.zeros(n), [1.0]])
    pi, *_ = np.linalg.lstsq(A, b, rcond=None)
    pi = np.maximum(pi, 0.0)
    return pi / pi.sum()


def cumulative(P: np.ndarray) -> np.ndarray:
    """Row-wise CDFs for sampling, the last column exactly 1."""
    c = np.cumsum(P, axis=1)
    c[:, -1] = 1.0
    return c


def draw(cdf: np.ndarray, state: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Next states of B chains at `state` (B,) given uniforms `u` (B,): inverse CDF of each row."""
    rows = cdf[state]                                       # (B, n)
    return np.minimum((rows <= u[:, None]).sum(axis=1), cdf.shape[1] - 1)
