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
    """(k, n) transition rows: row r is N(mean[r], sd[r]²) integrated over the n cells of `grid`.

    Cells are bounded by `edges` (n − 1 interior edges, default the midpoints of the grid); the
    first and last cells extend to −∞ and +∞, so every row sums to 1."""
    grid = np.asarray(grid, dtype=np.float64)
    mean, sd = np.atleast_1d(np.asarray(mean, dtype=np.float64)), np.atleast_1d(np.asarray(sd, dtype=np.float64))
    e = 0.5 * (grid[1:] + grid[:-1]) if edges is None else np.asarray(edges, dtype=np.float64)
    cdf = normal_cdf((e[None, :] - mean[:, None]) / sd[:, None])                        # (k, n-1)
    cdf = np.concatenate([np.zeros((len(mean), 1)), cdf, np.ones((len(mean), 1))], axis=1)
    P = np.maximum(np.diff(cdf, axis=1), 0.0)
    return P / P.sum(axis=1, keepdims=True)


def matched(grid: np.ndarray, mean: np.ndarray, sd: np.ndarray, edges: np.ndarray | None = None,
            iterations: int = 50, tol: float = 1e-13) -> np.ndarray:
    """`tauchen`, with each row's normal shifted and scaled until the chain's one-step conditional mean
    and variance equal `mean` and `sd`² (to `tol`, relative to sd): binning alone biases both, the
    tails piled onto the end cells and the cells' width added to the variance. Interior rows match in
    a few iterations; rows at the ends of the grid, whose moments the grid can barely reach, keep the
    last try after `iterations`."""
    grid = np.asarray(grid, dtype=np.float64)
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    mu, sig = mean.copy(), sd.copy()
    P = tauchen(grid, mu, sig, edges)
    todo = np.arange(len(grid))
    for _ in range(iterations):
        m = P[todo] @ grid
        var = np.maximum(P[todo] @ grid ** 2 - m * m, 1e-300)
        err = np.maximum(np.abs(mean[todo] - m) / sd[todo], np.abs(var / sd[todo] ** 2 - 1.0))
        todo, m, var = todo[err > tol], m[err > tol], var[err > tol]
        if not len(todo):
            break
        mu[todo] += mean[todo] - m
        sig[todo] *= np.sqrt(np.clip(sd[todo] ** 2 / var, 0.25, 4.0))
        P[todo] = tauchen(grid, mu[todo], sig[todo], edges)
    return P


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
