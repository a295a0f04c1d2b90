"""Reference policies of the execution envs (`execution-*`, `joint-execution-<n>`): Almgren–Chriss.

The expert is the closed-form discrete Almgren–Chriss schedule of the env's own mean-variance
objective (see `ogdata.envs.execution`): holdings x_k = X sinh(κ(T − t_k)) / sinh(κT) with
cosh(κτ) = 1 + λσ²τ² / (2η̃), η̃ = η − γτ/2. Policies act from observations only (the time
left), selling the fraction of the remaining inventory that keeps them on that trajectory.
"""

from __future__ import annotations

import math

import numpy as np


def _steps_left(obs: np.ndarray, N: int) -> np.ndarray:
    return np.maximum(np.rint(obs[..., 1].astype(np.float64) * N), 1.0)


def _ac_fraction(kappa_tau, m: np.ndarray) -> np.ndarray:
    """Fraction of the remaining inventory the AC trajectory sinh(κ(T−t)) sells with m steps left.

    x_next / x = sinh(κτ(m−1)) / sinh(κτm), written with exponentials so large κT cannot overflow.
    κτ = 0 is TWAP (1/m); κτ = inf sells everything now.
    """
    a = np.broadcast_to(np.asarray(kappa_tau, dtype=np.float64), m.shape)
    twap = 1.0 / m
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        keep = np.exp(-a) * (-np.expm1(-2 * a * (m - 1))) / (-np.expm1(-2 * a * m))
    frac = np.where(a <= 0, twap, np.where(np.isinf(a), 1.0, 1.0 - keep))
    return np.clip(np.nan_to_num(frac, nan=1.0), 0.0, 1.0)


def ac_kappa_tau(core, risk_aversion: float | None = None) -> float:
    """κτ of the discrete Almgren–Chriss solution: cosh(κτ) = 1 + λσ²τ² / (2η̃), η̃ = η − γτ/2."""
    lam = core.lam if risk_aversion is None else risk_aversion
    eta_t = core.eta - 0.5 * core.gamma * core.tau
    lsig = lam * core.sigma ** 2
    if lsig <= 0:
        return 0.0
    if eta_t <= 0:
        return math.inf
    return math.acosh(1.0 + lsig * core.tau ** 2 / (2.0 * eta_t))


def ac_trajectory(core, risk_aversion: float | None = None) -> np.ndarray:
    """The closed-form AC holdings x_0..x_N of the firm (shares): X sinh(κ(T − t_k)) / sinh(κT)."""
    kt = ac_kappa_tau(core, risk_aversion)
    k = np.arange(core.N + 1)
    if kt == 0:
        return core.X * (1 - k / core.N)
    if math.isinf(kt):
        return np.where(k == 0, core.X, 0.0)
    return core.X * np.exp(-kt * k) * (-np.expm1(-2 * kt * (core.N - k))) / (-np.expm1(-2 * kt * core.N))


class _Schedule:
    """Acts from observations (time left) with per-desk κτ read from the core at factory time."""

    def __init__(self, core, kappa_tau):
        self.N = core.N
        self.kt = np.asarray(kappa_tau, dtype=np.float64)

    def __call__(self, obs, rng):
        return _ac_fraction(self.kt, _steps_left(obs, self.N))[..., None].astype(np.float32)


def twap_policy(core):
    """TWAP: sell an equal share of the remaining inventory in each remaining step."""
    return _Schedule(core, 0.0)


def ac_optimal_policy(core):
    """Closed-form Almgren–Chriss schedule for the core's risk aversion λ (the firm's problem)."""
    return _Schedule(core, ac_kappa_tau(core))


def joint_ac_policy(core):
    """Cooperative joint reference: the firm's AC schedule, each desk selling its share of it
    (the same fraction of its remaining inventory as the firm's trajectory)."""
    return _Schedule(core, ac_kappa_tau(core))


def independent_greedy_policy(core):
    """Each desk solves the firm's AC problem as if it were the only seller: it charges the
    firm's risk (firm inventory = its own × X/X_i) but only its own sales' impact, i.e. an AC
    schedule with λ_i = λ (X/X_i)². It front-loads too much because the others' sales add to
    the same impact."""
    w = core.X / np.asarray(core.Xi, dtype=np.float64).reshape(-1)
    kt = np.array([ac_kappa_tau(core, core.lam * wi ** 2) for wi in w])
    return _Schedule(core, kt if getattr(core, "multi_agent", False) else kt[0])
