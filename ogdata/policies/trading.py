"""Reference policies of the trading envs (`trading-*`): always long (the passive benchmark), always
flat (no exposure, no costs) and a regime filter on the calibrated two-state HMM (a candidate expert
of the regime envs)."""

from __future__ import annotations

import numpy as np

from ogdata.envs.trading import FLAT, LONG, Trading
from ogdata.errors import EnvError


class AlwaysLong:
    """Long the asset every day: the market's own return (the passive benchmark)."""

    def __init__(self, core):
        if not isinstance(core, Trading):
            raise EnvError(f"trading/always-long acts in trading-* envs, not {type(core).__name__}")
        self.continuous = core.continuous

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.continuous:
            return np.ones((obs.shape[0], 1), dtype=np.float32)
        return np.full(obs.shape[0], LONG, dtype=np.int64)


class Flat:
    """Never hold a position: zero return and zero costs (the floor any trading must clear)."""

    def __init__(self, core):
        if not isinstance(core, Trading):
            raise EnvError(f"trading/flat acts in trading-* envs, not {type(core).__name__}")
        self.continuous = core.continuous

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.continuous:
            return np.zeros((obs.shape[0], 1), dtype=np.float32)
        return np.full(obs.shape[0], FLAT, dtype=np.int64)


class RegimeFilter:
    """Long, flat or short by the regime the calibrated two-state HMM (training years) infers.

    At each step a scaled forward filter runs over the observed window of daily log returns from
    the stationary regime distribution, predicts tomorrow's regime and its expected simple return
    E[r] = Σ_k p_k (exp(μ_k + σ_k²/2) − 1), and picks the position p in {−1, 0, 1} maximising
    `horizon`·p·E[r] − c·|p − p_now| (the costs of a switch spread over the days a regime lasts).
    A heuristic for the regime envs, a candidate expert only (the POMDP's optimum is not known)."""

    def __init__(self, core, horizon: float = 20.0):
        from ogdata.envs.prices import SyntheticModel

        if not isinstance(core, Trading) or core.continuous:
            raise EnvError("trading/regime-filter acts in discrete trading-* envs")
        m = SyntheticModel("regime", "sp500-index")
        self.mean = m.mean[:, 0].astype(np.float64)                    # (K,) daily log-return means
        self.sd = m.chol[:, 0, 0].astype(np.float64)
        self.A, self.pi = m.transition, m.stationary
        self.er = np.expm1(self.mean + 0.5 * self.sd ** 2)              # E[r | regime]
        self.window, self.cost, self.horizon = core.window, core.cost, float(horizon)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from ogdata.envs.prices import FEATURE_SCALE

        x = obs[:, :self.window].astype(np.float64) / FEATURE_SCALE     # (B, w) oldest first
        p = np.broadcast_to(self.pi, (len(x), len(self.pi)))
        for t in range(self.window):
            p = p @ self.A
            z = (x[:, t:t + 1] - self.mean) / self.sd
            p = p * np.exp(-0.5 * z * z) / self.sd
            p = p / p.sum(axis=1, keepdims=True)
        er = (p @ self.A) @ self.er                                      # tomorrow's expected return
        now = obs[:, -1].astype(np.float64)
        pos = np.array([-1.0, 0.0, 1.0])
        value = self.horizon * pos * er[:, None] - self.cost * np.abs(pos - now[:, None])
        return (value.argmax(axis=1)).astype(np.int64)                   # index = position + 1
