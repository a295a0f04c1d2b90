"""What the risk-sensitive reference policies share: the CVaR of a Gaussian episode return, and a 1-D
search over a positive scale. The CVaR-optimal Almgren–Chriss schedule and the mean-CVaR portfolio mix
both reduce a convex problem to choosing one effective risk aversion."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def gaussian_cvar(mean: float, std: float, alpha: float) -> float:
    """Lower-tail CVaR_α of N(mean, std²): mean − std · φ(z_α) / α, z_α = Φ⁻¹(α)."""
    return mean - std * tail_factor(alpha)


def tail_factor(alpha: float) -> float:
    """c = φ(z_α) / α: CVaR_α of a Gaussian lies c standard deviations below its mean."""
    from statistics import NormalDist

    return NormalDist().pdf(NormalDist().inv_cdf(alpha)) / alpha


def argmax_log_scale(f: Callable[[float], float], centre: float, span: float = 12.0, points: int = 97,
                     iters: int = 60) -> float:
    """The u in [log centre − span, log centre + span] maximising f(u) (u is a log scale): a grid of
    `points`, then golden-section search between the best grid point's neighbours. Returns u."""
    grid = math.log(centre) + np.linspace(-span, span, points)
    vals = [f(float(g)) for g in grid]
    i = int(np.argmax(vals))
    lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
    r = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - r * (hi - lo), lo + r * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(iters):
        if fa > fb:
            hi, b, fb = b, a, fa
            a = hi - r * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + r * (hi - lo)
            fb = f(b)
    best = 0.5 * (lo + hi)
    return best if f(best) >= vals[i] else float(grid[i])
