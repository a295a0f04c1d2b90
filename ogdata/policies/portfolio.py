"""Reference policies of the portfolio envs (`portfolio-*`): 1/N rebalanced daily (the v0 expert),
buy-and-hold, the growth-optimal (Kelly) long-only constant mix of the calibration (v1), and the
constant mixes that maximise CVaR or a mean-CVaR trade-off of the year's log growth (the risk tasks)."""

from __future__ import annotations

import numpy as np

from ogdata.envs.portfolio import Portfolio
from ogdata.envs.risk import MEAN_CVAR_WEIGHT
from ogdata.errors import EnvError
from ogdata.policies.cvar import argmax_log_scale, tail_factor


def _portfolio(core) -> Portfolio:
    if not isinstance(core, Portfolio):
        raise EnvError(f"this reference policy acts in portfolio-* envs, not {type(core).__name__}")
    return core


class EqualWeight:
    """1/N over the risky assets, rebalanced every day (DeMiguel et al.'s hard-to-beat 1/N)."""

    def __init__(self, core):
        n = _portfolio(core).n_assets
        self.action = np.concatenate([np.ones(n), [0.0]]).astype(np.float32)
        if core._general:  # leverage or shorting: 1/N each, fully invested, whatever the map
            self.action = core.action_for(np.full(n, 1.0 / n))[0]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.broadcast_to(self.action, (obs.shape[0], self.action.size))


class BuyAndHold:
    """Buy 1/N of every asset from the all-cash start, then hold: the target is the drifted weights."""

    def __init__(self, core):
        core = _portfolio(core)
        self.n, self.k = core.n_assets, core._wn
        self.first = np.concatenate([np.ones(self.n), [0.0]]).astype(np.float32)
        self.core = core if core._general else None
        if self.core is not None:
            self.first = core.action_for(np.full(self.n, 1.0 / self.n))[0]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        w = obs[:, self.k:]
        if self.core is not None:  # leverage or shorting: the drifted risky weights, mapped back
            return np.where(w[:, -1:] >= 1.0, self.first, self.core.action_for(w[:, :-1]))
        return np.where(w[:, -1:] >= 1.0, self.first, w)


# -- the growth-optimal (Kelly) long-only constant mix ------------------------------------------

def growth_rate(w: np.ndarray, drift: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Expected log growth per step of the constant mix w (risky weights, the rest in cash) when the
    assets' log prices are Brownian with per-step covariance `cov` and arithmetic drift `drift`
    (= mean log return + ½ diag(cov)): w·drift − ½ w'Σw (Merton / Kelly). w may be (..., N)."""
    w = np.asarray(w, dtype=np.float64)
    return w @ drift - 0.5 * np.einsum("...i,ij,...j->...", w, cov, w)


def kelly_weights(drift, cov, tol: float = 1e-13) -> np.ndarray:
    """The long-only growth-optimal mix: argmax w·drift − ½ w'Σw over w >= 0, Σw <= 1 (the rest cash).

    A strictly concave QP on the simplex, solved by an active-set method: guess the support,
    solve its KKT system (with or without the budget Σw = 1 binding), drop variables that go
    negative, add the one whose multiplier is violated; exact to rounding. Returns (N,) weights.
    """
    m = np.asarray(drift, dtype=np.float64).reshape(-1)
    S = np.asarray(cov, dtype=np.float64)
    n = len(m)
    if S.shape != (n, n) or not (np.isfinite(m).all() and np.isfinite(S).all()):
        raise EnvError(f"kelly_weights needs a finite drift (N,) and covariance (N, N); got {m.shape}, {S.shape}")
    scale = 1.0 / max(np.abs(np.diag(S)).max(), 1e-300)        # conditioning only; argmax unchanged
    m, S = m * scale, S * scale

    def solve(free: np.ndarray) -> tuple[np.ndarray, float]:
        w = np.zeros(n)
        if not free.any():
            return w, 0.0
        idx = np.flatnonzero(free)
        Sf, mf = S[np.ix_(idx, idx)], m[idx]
        x = np.linalg.solve(Sf, mf)
        if x.sum() <= 1.0:
            w[idx] = x
            return w, 0.0
        # budget binds: max w·m − ½w'Sw − ν(1'w − 1): w = S⁻¹(m − ν1), 1'w = 1
        y = np.linalg.solve(Sf, np.ones(len(idx)))
        nu = (x.sum() - 1.0) / y.sum()
        w[idx] = x - nu * y
        return w, float(nu)

    free = m > 0
    for _ in range(10 * n + 10):
        w, nu = solve(free)
        if (w[free] < -tol).any():                          # drop the most negative, re-solve
            j = np.flatnonzero(free)[np.argmin(w[free])]
            free[j] = False
            continue
        grad = m - S @ w - nu                               # KKT: grad <= 0 on the inactive set
        out = ~free & (grad > tol)
        if not out.any():
            return np.clip(w, 0.0, None)
        free[np.flatnonzero(out)[np.argmax(grad[out])]] = True
    raise EnvError("kelly_weights did not converge; check that the covariance is positive definite")


def kelly_inputs(core) -> tuple[np.ndarray, np.ndarray]:
    """(drift, cov) per step of the core's assets, from the committed calibration of the training
    years (`ogdata/envs/calibration.json`), or for an uncalibrated real universe (the factors) the
    training period's moments of the log returns in excess of cash. A regime model gives the stationary mixture of its
    regimes (the best *constant* mix; a regime-aware policy may do better); real prices use the
    training years' Gaussian (gbm) moments, never the evaluation years."""
    from ogdata.envs.prices import SyntheticModel

    core = _portfolio(core)
    model = getattr(core.paths, "model", None) if core.paths.synthetic else None
    if model is None:
        if core.source == "custom":
            raise EnvError("the Kelly mix needs a calibration; custom prices have none")
        if core.universe != "sp500":  # no synthetic calibration: the training period's moments, in
            from ogdata.envs.prices import excess_log_returns  # excess of cash (the factors' RF)

            x = excess_log_returns(core.universe, list(core.assets), "train")
            cov = np.atleast_2d(np.cov(x, rowvar=False))
            return x.mean(axis=0) + 0.5 * np.diag(cov), cov
        model = SyntheticModel("gbm", "sp500", list(core.assets))
    covs = model.chol @ np.swapaxes(model.chol, -1, -2)                     # (K, N, N)
    pi = model.stationary
    drift = np.einsum("k,kn->n", pi, model.mean + 0.5 * np.diagonal(covs, axis1=-2, axis2=-1))
    # the stationary expected growth Σ_k π_k (w·m_k − ½ w'Σ_k w) is linear in π: mix drift and cov
    cov = np.einsum("k,kij->ij", pi, covs)
    return drift, cov


class KellyMix:
    """The growth-optimal long-only constant mix of the calibration, rebalanced every day."""

    def __init__(self, core):
        drift, cov = kelly_inputs(core)
        self.weights = kelly_weights(drift, cov)
        self.growth = float(growth_rate(self.weights, drift, cov))          # per step, before costs
        self.action = np.append(self.weights, max(0.0, 1.0 - self.weights.sum())).astype(np.float32)
        if core._general:  # leverage or shorting: the same long-only mix through the core's map
            self.action = core.action_for(self.weights)[0]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.broadcast_to(self.action, (obs.shape[0], self.action.size))


# -- the constant mixes of the risk tasks (ogdata.envs.risk) --------------------------------------

def episode_moments(w: np.ndarray, drift: np.ndarray, cov: np.ndarray, steps: int) -> tuple[float, float]:
    """(mean, std) of G, the log growth of the constant mix w over `steps` steps before costs, when log
    prices are Brownian (`growth_rate`'s model): G ~ N(steps·g(w), steps·w'Σw)."""
    w = np.asarray(w, dtype=np.float64)
    return float(steps * growth_rate(w, drift, cov)), float(np.sqrt(steps * max(w @ cov @ w, 0.0)))


def mean_cvar_weights(drift, cov, steps: int, alpha: float, weight: float = 1.0) -> np.ndarray:
    """The long-only constant mix (w >= 0, Σw <= 1, the rest cash) maximising (1 − λ)·E[G] + λ·CVaR_α(G)
    of G, the log growth over `steps` steps, under `episode_moments`' Gaussian model (λ = `weight`).

    J(w) = steps·g(w) − λ·c·√steps·s(w) (c = φ(z_α)/α, s = √(w'Σw)) is concave. At a maximiser w* ≠ 0
    the gradient of s is Σw*/s*, so w* also maximises w·μ − ½γ·w'Σw with γ = 1 + λc/(√steps·s*): a Kelly
    mix of a larger risk aversion, found by a 1-D search over log(γ − 1). w* = 0 (all cash, G = 0 when
    cash earns nothing) when J is nowhere positive: no mix's Sharpe ratio over the episode exceeds λc.
    """
    mu, S = np.asarray(drift, dtype=np.float64), np.asarray(cov, dtype=np.float64)
    c = weight * tail_factor(alpha)

    def objective(w: np.ndarray) -> float:
        mean, std = episode_moments(w, mu, S, steps)
        return mean - c * std

    def mix(log_extra: float) -> np.ndarray:
        return kelly_weights(mu, (1.0 + np.exp(log_extra)) * S)

    kelly = kelly_weights(mu, S)
    s_kelly = max(np.sqrt(steps * (kelly @ S @ kelly)), 1e-12)
    u = argmax_log_scale(lambda u: objective(mix(u)), max(c / s_kelly, 1e-9), span=16.0)
    best = mix(u)
    return best if objective(best) > 0.0 else np.zeros_like(best)


class MeanCVaRMix:
    """The constant mix maximising (1 − λ)·mean + λ·CVaR_α of the episode's log growth under the Gaussian
    model of the calibration (`mean_cvar_weights`), rebalanced every day. The best *constant* mix: a
    policy that conditions on the gain so far (the stock features) may do better, so it is best known, not
    an optimum. For CVaR_5 % and CVaR_10 % of a year on the 20-stock calibrations it is all cash."""

    def __init__(self, core, alpha: float, weight: float = 1.0):
        core = _portfolio(core)
        drift, cov = kelly_inputs(core)
        self.weights = mean_cvar_weights(drift, cov, core.n_steps, alpha, weight)
        self.mean, self.std = episode_moments(self.weights, drift, cov, core.n_steps)  # before costs
        self.action = np.append(self.weights, max(0.0, 1.0 - self.weights.sum())).astype(np.float32)
        if core._general:
            self.action = core.action_for(self.weights)[0]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.broadcast_to(self.action, (obs.shape[0], self.action.size))


def cvar5_mix(core) -> MeanCVaRMix:
    """The constant mix maximising CVaR_5 % of the episode's log growth (risk task <env>-cvar5)."""
    return MeanCVaRMix(core, 0.05)


def cvar10_mix(core) -> MeanCVaRMix:
    """The constant mix maximising CVaR_10 % of the episode's log growth (risk task <env>-cvar10)."""
    return MeanCVaRMix(core, 0.10)


def meancvar10_mix(core) -> MeanCVaRMix:
    """The constant mix maximising ½·mean + ½·CVaR_10 % of the episode's log growth (<env>-meancvar10)."""
    return MeanCVaRMix(core, 0.10, MEAN_CVAR_WEIGHT)
