"""Trading a mean-reverting spread with costs: `stat-arb-*` ids, one vectorised core.

The spread X (Brent − WTI, $/bbl) follows an Ornstein–Uhlenbeck process dX = θ(μ − X)dt + σdW fitted
to the monthly spread of 1987–2014 (`ogdata/envs/model_fits.py`, `model-fits.json`: θ = 0.51 a
year, a half-life of 16 months, μ = $0.93, σ = $5.73 a √year). The env simulates it on `grid_points`
levels spaced evenly within ±`width` stationary standard deviations sd = σ/√(2θ) of μ, as a Markov
chain whose rows are the OU's exact one-step law — mean μ + (x − μ)e^(−θΔ), variance
σ²(1 − e^(−2θΔ))/(2θ) — binned onto the levels with both moments matched (ogdata.envs.chains). The
spread therefore lives on the grid, and a dynamic programme over (step, level, position) is the exact
optimum of the env (`stat-arb/dp-optimal`, ogdata.policies.stat_arb), not an approximation of it.

One step is one month (Δ = 1/12 year). Action: Discrete(3), 0 = short (position −1), 1 = flat (0),
2 = long (+1) one unit of the spread (long one barrel of Brent, short one of WTI). The new position p⁺
is held while the spread moves from X to X':

    reward = p⁺ · (X' − X) − c · |p⁺ − p|        ($ per unit; c = `cost`, $ per unit of position traded)

Episodes last `n_steps` months (default 60) from a level drawn from the chain's stationary law, flat;
the last step is terminal (the time left is observed, so the horizon is part of the state) and the
position is marked to market, not closed. Observation (float32): [(X − μ)/sd in [−width, width],
the position, the fraction of the episode left]. `info`: spread X', position p⁺, costs c·|p⁺ − p|,
pnl (the episode's cumulative reward).
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ogdata.envs.chains import cumulative, draw, matched, stationary
from ogdata.envs.core import VectorMarket, _preview
from ogdata.errors import EnvError

SHORT, FLAT, LONG = 0, 1, 2
RANGES: dict[str, tuple[float, float]] = {
    "theta": (1e-4, 1e3), "mu": (-1e6, 1e6), "sigma": (1e-6, 1e6), "cost": (0.0, 1e6), "width": (0.5, 10.0),
    "dt": (1e-6, 10.0)}
INT_RANGES: dict[str, tuple[int, int]] = {"n_steps": (1, 100_000), "grid_points": (2, 5_001)}


def _num(name: str, v) -> float:
    lo, hi = RANGES[name]
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise EnvError(f"stat-arb kwarg {name}={_preview(v)} is not a number; pass a value in [{lo:g}, {hi:g}]") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise EnvError(f"stat-arb kwarg {name}={_preview(v)} is out of range: pass a value in [{lo:g}, {hi:g}]")
    return f


def _int(name: str, v) -> int:
    lo, hi = INT_RANGES[name]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise EnvError(f"stat-arb kwarg {name}={_preview(v)} is invalid: pass an integer in [{lo}, {hi}]")
    return int(v)


class StatArb(VectorMarket):
    """B spread-trading markets; see the module docstring. theta, mu, sigma default to the Brent − WTI fit."""

    def __init__(self, num_envs: int = 1, *, cost: float = 0.05, n_steps: int = 60, grid_points: int = 201,
                 width: float = 4.0, dt: float = 1.0 / 12.0, theta: float | None = None, mu: float | None = None,
                 sigma: float | None = None):
        super().__init__(num_envs)
        if None in (theta, mu, sigma):
            from ogdata.envs.model_fits import model_fits

            ou = model_fits()["ou"]
            theta, mu, sigma = (ou[k] if v is None else v for k, v in (("theta", theta), ("mu", mu), ("sigma", sigma)))
        self.theta, self.mu, self.sigma = _num("theta", theta), _num("mu", mu), _num("sigma", sigma)
        self.cost, self.width, self.dt = _num("cost", cost), _num("width", width), _num("dt", dt)
        self.n_steps = self.max_steps = _int("n_steps", n_steps)
        n = _int("grid_points", grid_points)
        self.sd = self.sigma / math.sqrt(2.0 * self.theta)                      # stationary standard deviation
        self.z = np.linspace(-self.width, self.width, n)                        # levels in stationary sds
        self.levels = self.mu + self.sd * self.z                                # the spread's levels ($)
        decay = math.exp(-self.theta * self.dt)
        step_sd = self.sigma * math.sqrt(-math.expm1(-2.0 * self.theta * self.dt) / (2.0 * self.theta))
        self.P = matched(self.levels, self.mu + (self.levels - self.mu) * decay, np.full(n, step_sd))
        self.initial = stationary(self.P)
        self._cdf, self._init_cdf = cumulative(self.P), np.cumsum(self.initial)
        self._init_cdf[-1] = 1.0
        self.action_space = spaces.Discrete(3)
        self.observation_space = spaces.Box(np.array([-self.width, -1.0, 0.0], np.float32),
                                            np.array([self.width, 1.0, 1.0], np.float32), dtype=np.float32)
        B = self.num_envs
        self.level = np.zeros(B, dtype=np.int64)
        self.position = np.zeros(B)
        self.pnl = np.zeros(B)

    def _observe(self) -> np.ndarray:
        left = (self.n_steps - np.minimum(self._t, self.n_steps)) / self.n_steps
        return np.stack([self.z[self.level], self.position, left], axis=1).astype(np.float32)

    def _reset(self, mask: np.ndarray):
        k = int(mask.sum())
        start = np.minimum(np.searchsorted(self._init_cdf, self.rng.random(k), side="right"), len(self.z) - 1)
        self.level = self.level.copy()  # arrays handed out are never mutated
        self.level[mask] = start
        self.position = np.where(mask, 0.0, self.position)
        self.pnl = np.where(mask, 0.0, self.pnl)
        zero = np.zeros(self.num_envs)
        info = {"spread": self.levels[self.level], "position": self.position, "costs": zero, "pnl": self.pnl}
        return self._observe(), info

    def _step(self, actions: np.ndarray):
        new = actions - 1.0
        nxt = draw(self._cdf, self.level, self.rng.random(self.num_envs))
        costs = self.cost * np.abs(new - self.position)
        reward = new * (self.levels[nxt] - self.levels[self.level]) - costs
        self.level, self.position, self.pnl = nxt, new, self.pnl + reward
        self._t = self._t + 1
        terminated = self._t >= self.n_steps
        info = {"spread": self.levels[nxt], "position": new, "costs": costs, "pnl": self.pnl}
        return self._observe(), reward, terminated, np.zeros(self.num_envs, dtype=bool), info
