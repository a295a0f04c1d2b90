"""Reference policies of the stat-arb envs: the exact optimum (a finite-horizon dynamic programme over the
env's own spread chain) and the classic band rule of pairs trading.

The optimum. The spread lives on the env's levels x_i and moves by the env's transition matrix P, the
position p is one of −1, 0, 1, and the reward is linear in the spread's move, so with V_N ≡ 0

    Q_t(i, p, a) = −c|a − p| + a · (Σ_j P_ij x_j − x_i) + Σ_j P_ij V_{t+1}(j, a),   V_t(i, p) = max_a Q_t(i, p, a)

over steps t = N−1 … 0 is the exact value of the env (a finite MDP whose whole state — step, level,
position — is observed), and acting greedily on Q is optimal among all policies, history-dependent
ones included.
"""

from __future__ import annotations

import numpy as np

from ogdata.envs.stat_arb import StatArb
from ogdata.errors import EnvError

POSITIONS = np.array([-1.0, 0.0, 1.0])


def _core(core, name: str) -> StatArb:
    if not isinstance(core, StatArb):
        raise EnvError(f"{name} acts in stat-arb envs, not {type(core).__name__}")
    return core


def stat_arb_dp(core: StatArb) -> tuple[np.ndarray, np.ndarray]:
    """(V (N+1, n, 3), actions (N, n, 3)): the value and the optimal action index for every step,
    level and current position (index 0/1/2 = −1/0/+1). Ties keep the current position."""
    P, x, c, N = core.P, core.levels, core.cost, core.n_steps
    n = len(x)
    drift = P @ x - x                                                  # E[X' − X | level]
    trade = c * np.abs(POSITIONS[None, :] - POSITIONS[:, None])        # (p, a)
    V = np.zeros((N + 1, n, 3))
    act = np.empty((N, n, 3), dtype=np.int64)
    for t in range(N - 1, -1, -1):
        future = drift[:, None] * POSITIONS[None, :] + P @ V[t + 1]    # (n, a)
        Q = future[:, None, :] - trade[None, :, :]                     # (n, p, a)
        best = Q.max(axis=2)
        keep = Q[:, np.arange(3), np.arange(3)] >= best - 1e-12 * (1.0 + np.abs(best))
        act[t] = np.where(keep, np.arange(3)[None, :], Q.argmax(axis=2))
        V[t] = best
    return V, act


def _state(core: StatArb, obs: np.ndarray):
    o = obs.astype(np.float64)
    dz = core.z[1] - core.z[0]
    i = np.clip(np.rint((o[:, 0] + core.width) / dz), 0, len(core.z) - 1).astype(np.int64)
    p = np.clip(np.rint(o[:, 1]) + 1, 0, 2).astype(np.int64)
    t = np.clip(np.rint(core.n_steps * (1.0 - o[:, 2])), 0, core.n_steps - 1).astype(np.int64)
    return t, i, p


class OptimalSpreadTrading:
    """The exact optimum of the env (stat_arb_dp): the expert."""

    def __init__(self, core):
        self.core = _core(core, "stat-arb/dp-optimal")
        self.value, self.table = stat_arb_dp(self.core)

    def expected_return(self) -> float:
        """The optimum's expected episode return from the env's start (stationary level, flat)."""
        return float(self.core.initial @ self.value[0, :, 1])

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t, i, p = _state(self.core, obs)
        return self.table[t, i, p]


class BandRule:
    """Pairs trading's classic rule (Gatev, Goetzmann & Rouwenhorst 2006): open a position against the
    spread when it is `k` stationary standard deviations from its mean (short above, long below), close
    it when the spread crosses the mean. Costs and the horizon play no part."""

    def __init__(self, core, k: float = 2.0):
        self.core = _core(core, "stat-arb/band")
        self.k = float(k)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z, p = obs[:, 0].astype(np.float64), np.rint(obs[:, 1])
        out = p.copy()
        out = np.where((p == 0) & (z >= self.k), -1.0, out)
        out = np.where((p == 0) & (z <= -self.k), 1.0, out)
        out = np.where((p > 0) & (z >= 0.0), 0.0, out)
        out = np.where((p < 0) & (z <= 0.0), 0.0, out)
        return (out + 1).astype(np.int64)


def band_rule_1sd(core) -> BandRule:
    """The band rule opening at one standard deviation."""
    return BandRule(core, k=1.0)
