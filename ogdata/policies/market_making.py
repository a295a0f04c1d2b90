"""Reference policies of the market-making envs: Avellaneda–Stoikov's closed form (each maker on its
own inventory), constant symmetric quotes, and the cooperative firm-level AS of the multi-agent ids."""

from __future__ import annotations

import math

import numpy as np

from ogdata.envs.market_making import MarketMakingCore


def _half_spread(gamma: float, kappa: float) -> float:
    """AS's stationary half-spread (1/γ)·ln(1 + γ/κ) (→ 1/κ as γ → 0)."""
    return math.log1p(gamma / kappa) / gamma if gamma > 0 else 1.0 / kappa


def default_gamma(core: MarketMakingCore) -> float:
    """The risk aversion whose AS variance penalty (γ/2)σ²q² equals the running penalty φq²."""
    return 2.0 * core.running_penalty / core.sigma ** 2 if core.sigma > 0 else 0.0


def as_depths(q: np.ndarray, tau: np.ndarray, gamma: float, sigma: float, kappa: float) -> np.ndarray:
    """Finite-horizon Avellaneda–Stoikov depths for inventory q and time to go tau.

    Reservation price r = S − q·γσ²τ, total spread γσ²τ + (2/γ)ln(1 + γ/κ); the bid sits
    at r − spread/2 and the ask at r + spread/2, so (δ_b, δ_a) = spread/2 ± q·γσ²τ.
    """
    g = gamma * sigma ** 2 * tau
    half = 0.5 * g + _half_spread(gamma, kappa)
    skew = q * g
    return np.stack([half + skew, half - skew], axis=-1)


class AvellanedaStoikov:
    """Each maker quotes the AS closed form on its own inventory (independent makers)."""

    def __init__(self, core: MarketMakingCore, gamma: float | None = None):
        self.core = core
        self.gamma = default_gamma(core) if gamma is None else float(gamma)

    def _q_tau(self, obs):
        c = self.core
        col = 2 if c.multi_agent else 1
        q = np.rint(obs[..., 0].astype(np.float64) * c.max_inventory)
        tau = obs[..., col].astype(np.float64) * c.terminal_time
        return q, tau

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.core
        q, tau = self._q_tau(obs)
        d = as_depths(q, tau, self.gamma, c.sigma, c.kappa)
        return np.clip(d, 0.0, c.max_depth).astype(np.float32)


class FixedSymmetric:
    """Constant symmetric depths (default: AS's stationary half-spread), ignoring inventory."""

    def __init__(self, core: MarketMakingCore, depth: float | None = None):
        self.core = core
        self.depth = _half_spread(default_gamma(core), core.kappa) if depth is None else float(depth)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.full(obs.shape[:-1] + (2,), min(self.depth, self.core.max_depth), dtype=np.float32)


class CooperativeAS(AvellanedaStoikov):
    """The firm quotes AS on its summed inventory Q (centralised: reads every maker's obs).

    Only the best quote on a side trades, so the firm acts as one AS maker. Its bid is
    posted by the maker with the least inventory and its ask by the one with the most (the
    first on ties); the other makers stand back at max_depth. This keeps the makers away
    from their individual bounds.
    """

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.core
        if not c.multi_agent:
            return super().__call__(obs, rng)
        q, tau = self._q_tau(obs)                                   # (B, n)
        Q = q.sum(axis=1)
        firm = np.clip(as_depths(Q, tau[:, 0], self.gamma, c.sigma, c.kappa), 0.0, c.max_depth)
        out = np.full(q.shape + (2,), c.max_depth)
        rows = np.arange(q.shape[0])
        out[rows, q.argmin(axis=1), 0] = firm[:, 0]
        out[rows, q.argmax(axis=1), 1] = firm[:, 1]
        return out.astype(np.float32)
