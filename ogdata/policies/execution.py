"""Reference policies of the execution envs (`execution-*`, `joint-execution-<n>`): Almgren–Chriss.

The expert is the closed-form discrete Almgren–Chriss schedule of the env's own mean-variance
objective (see `ogdata.envs.execution`): holdings x_k = X sinh(κ(T − t_k)) / sinh(κT) with
cosh(κτ) = 1 + λσ²τ² / (2η̃), η̃ = η − γτ/2. Policies act from observations only (the time
left), selling the fraction of the remaining inventory that keeps them on that trajectory.
"""

from __future__ import annotations

import math

import numpy as np

from ogdata.envs.risk import MEAN_CVAR_WEIGHT
from ogdata.policies.cvar import argmax_log_scale, gaussian_cvar


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


# -- risk-sensitive references (ogdata.envs.risk): the CVaR-optimal static schedule -----------------
def static_return_moments(core, holdings) -> tuple[float, float]:
    """(mean, std) of the episode return, in the env's bp, of the static schedule `holdings` x_0..x_N
    (shares, x_0 = X, x_N = 0) in a single-desk execution core.

    Selling n_k = x_{k−1} − x_k, the shortfall is C = εX + (η/τ)Σn_k² + γΣn_k x_k − σ√τ Σ ξ_k x_k
    (ξ_k iid N(0, 1)): Gaussian, E[C] = εX + (η/τ)Σn_k² + γΣn_k x_k, Var[C] = V = σ²τ Σx_k². The env
    also charges λV deterministically, so G = −(1e4 / X S0)·(C + λV) is Gaussian with
    mean −s(E[C] + λV) and std s√V, s = 1e4 / (X S0)."""
    x = np.asarray(holdings, dtype=np.float64)
    if x.shape != (core.N + 1,) or abs(x[0] - core.X) > 1e-9 * core.X or abs(x[-1]) > 1e-9 * core.X:
        raise ValueError(f"holdings must be x_0..x_N (N = {core.N}) from X = {core.X:g} down to 0")
    n = -np.diff(x)
    k = x[1:]
    cost = core.eps * core.X + core.eta / core.tau * np.sum(n * n) + core.gamma * np.sum(n * k)
    var = core.sigma ** 2 * core.tau * np.sum(k * k)
    s = 1e4 / (core.X * core.S0)
    return float(-s * (cost + core.lam * var)), float(s * math.sqrt(var))


def ac_cvar_risk_aversion(core, alpha: float, weight: float = 1.0) -> float:
    """The risk aversion λ′ whose Almgren–Chriss schedule maximises (1 − w)·E[G] + w·CVaR_α(G) of the
    episode return G (w = `weight`; 1: CVaR_α alone).

    For Gaussian G that is min over schedules of E[cost] + λV + w·c√V (c = φ(z_α)/α), stationary where
    an AC schedule is for λ_eff = λ + w·c / (2√V): the optimum over every static schedule is an AC
    schedule, found by a 1-D search over log λ′ (`ogdata.policies.cvar`)."""
    def objective(log_lam: float) -> float:
        mean, std = static_return_moments(core, ac_trajectory(core, math.exp(log_lam)))
        return (1.0 - weight) * mean + weight * gaussian_cvar(mean, std, alpha)

    return float(math.exp(argmax_log_scale(objective, max(core.lam, 1e-12))))


class _CVaRSchedule(_Schedule):
    def __init__(self, core, alpha: float, weight: float = 1.0):
        self.risk_aversion = ac_cvar_risk_aversion(core, alpha, weight)
        super().__init__(core, ac_kappa_tau(core, self.risk_aversion))


def ac_cvar5_policy(core):
    """The static AC schedule that maximises CVaR_5% of the episode return (best known: an adaptive,
    stock-aware policy may do better)."""
    return _CVaRSchedule(core, 0.05)


def ac_cvar10_policy(core):
    """The static AC schedule that maximises CVaR_10% of the episode return."""
    return _CVaRSchedule(core, 0.10)


def ac_meancvar10_policy(core):
    """The static AC schedule that maximises ½·mean + ½·CVaR_10% of the episode return (the mean-CVaR
    task's objective, `ogdata.envs.risk.MEAN_CVAR_WEIGHT`)."""
    return _CVaRSchedule(core, 0.10, MEAN_CVAR_WEIGHT)
