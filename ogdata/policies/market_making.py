"""Reference policies of the market-making envs: Avellaneda–Stoikov's closed form (each maker on its
own inventory), constant symmetric quotes, the cooperative firm-level AS of the multi-agent ids, and
the exact optimum of the env's own discretisation: a dynamic programme over (step, inventory)
(`market_making_dp`; "market-making/dp-optimal", "multi-market-making/cooperative-dp")."""

from __future__ import annotations

import math

import numpy as np

from ogdata.envs.market_making import MarketMakingCore
from ogdata.errors import EnvError


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


# -- the exact optimum: a dynamic programme over (time step, inventory) -------------------------

def _mm_params(core: MarketMakingCore, max_inventory: int | None = None) -> dict:
    return {"n_steps": int(core.n_steps), "q_max": int(core.max_inventory if max_inventory is None else max_inventory),
            "lam_dt": float(core._lam_dt), "kappa": float(core.kappa), "max_depth": float(core.max_depth),
            "phi_dt": float(core._phi_dt), "alpha": float(core.terminal_penalty)}


def _best_reply(c: np.ndarray, kappa: float, max_depth: float) -> np.ndarray:
    """argmax over δ in [0, δ_max] of e^(−κδ)·(δ + c): 1/κ − c, clipped (the function is unimodal)."""
    return np.clip(1.0 / kappa - c, 0.0, max_depth)


def market_making_dp(core: MarketMakingCore, depths=None, *, max_inventory: int | None = None,
                     grid: int = 801, polish: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Exact dynamic programme of the market-making env's own discretisation and reward.

    State (step t, inventory q), q integer in [−q_max, q_max]. With depths (δ_b, δ_a) the bid
    fills with probability p_b = λdt·e^(−κδ_b) (0 at q = q_max), the ask independently with
    p_a = λdt·e^(−κδ_a) (0 at q = −q_max); the expected reward of the step is
    p_b δ_b + p_a δ_a − φ dt E[q'²] − [t = n−1] α E[q'²] (the mid move q'ΔS has mean zero and is
    independent of the fills), so with G(q') = −φdt q'² − [last] α q'² + V_{t+1}(q')

        V_t(q) = max_δ  G(q) + p_b (δ_b + D_b) + p_a (δ_a + D_a) + p_b p_a C,
        D_b = G(q+1) − G(q),  D_a = G(q−1) − G(q),  C = 2G(q) − G(q+1) − G(q−1),   V_n = 0.

    depths=None: the continuous action box [0, δ_max]². For a fixed δ_a the best δ_b is the
    closed form 1/κ − (D_b + p_a C) clipped to the box (and symmetrically), so the maximum is
    found by scanning δ_a on a `grid` of points with δ_b's best reply, then `polish` rounds of
    alternating best replies from the best grid point. depths=a 1-D array: the maximum over
    every pair of that grid (exact enumeration; what the brute-force test checks).
    max_inventory overrides q_max (the multi-agent firm's bound n·q_max).

    Returns (V (n+1, 2q_max+1) float64, policy (n, 2q_max+1, 2) float64 depths [bid, ask]);
    column j is inventory q = j − q_max.
    """
    p = _mm_params(core, max_inventory)
    n, Q, lam_dt, kappa, dmax = p["n_steps"], p["q_max"], p["lam_dt"], p["kappa"], p["max_depth"]
    q = np.arange(-Q, Q + 1, dtype=np.float64)
    live_b = (q < Q).astype(np.float64)          # at q_max the bid is withdrawn
    live_a = (q > -Q).astype(np.float64)         # at −q_max the ask is withdrawn
    V = np.zeros((n + 1, 2 * Q + 1))
    pol = np.zeros((n, 2 * Q + 1, 2))
    if depths is not None:
        d = np.asarray(depths, dtype=np.float64).reshape(-1)
        db, da = np.meshgrid(d, d, indexing="ij")
        db, da = db.reshape(-1), da.reshape(-1)                                # (K,) all pairs
        pb_all = lam_dt * np.exp(-kappa * db)
        pa_all = lam_dt * np.exp(-kappa * da)
    else:
        scan = np.linspace(0.0, dmax, grid)
    for t in range(n - 1, -1, -1):
        G = -(p["phi_dt"] + (p["alpha"] if t == n - 1 else 0.0)) * q * q + V[t + 1]
        up = np.append(G[1:], 0.0)                                             # G(q+1) (unused at q_max)
        down = np.insert(G[:-1], 0, 0.0)                                       # G(q−1) (unused at −q_max)
        Db, Da, C = up - G, down - G, 2 * G - up - down
        if depths is not None:
            pb = live_b[:, None] * pb_all
            pa = live_a[:, None] * pa_all
            val = pb * (db + Db[:, None]) + pa * (da + Da[:, None]) + pb * pa * C[:, None]
            k = val.argmax(axis=1)
            V[t] = G + val[np.arange(len(q)), k]
            pol[t, :, 0], pol[t, :, 1] = db[k], da[k]
            continue
        da_s = scan[None, :]
        pa_s = live_a[:, None] * lam_dt * np.exp(-kappa * da_s)
        db_s = _best_reply(Db[:, None] + pa_s * C[:, None], kappa, dmax)
        pb_s = live_b[:, None] * lam_dt * np.exp(-kappa * db_s)
        val = pb_s * (db_s + Db[:, None]) + pa_s * (da_s + Da[:, None]) + pb_s * pa_s * C[:, None]
        k = val.argmax(axis=1)
        rows = np.arange(len(q))
        bd, ad = db_s[rows, k], np.broadcast_to(da_s, val.shape)[rows, k]
        for _ in range(polish):                                                # alternating best replies
            pa = live_a * lam_dt * np.exp(-kappa * ad)
            bd = _best_reply(Db + pa * C, kappa, dmax)
            pb = live_b * lam_dt * np.exp(-kappa * bd)
            ad = _best_reply(Da + pb * C, kappa, dmax)
        pb = live_b * lam_dt * np.exp(-kappa * bd)
        pa = live_a * lam_dt * np.exp(-kappa * ad)
        polished = pb * (bd + Db) + pa * (ad + Da) + pb * pa * C
        best = val[rows, k]
        use = polished >= best                                                 # never worse than the scan
        bd = np.where(use, bd, db_s[rows, k])
        ad = np.where(use, ad, np.broadcast_to(da_s, val.shape)[rows, k])
        V[t] = G + np.maximum(polished, best)
        pol[t, :, 0], pol[t, :, 1] = bd, ad
    return V, pol


class MarketMakingDP:
    """The exact optimum of the single-agent env: the DP's depths for (step, own inventory).

    Multi-agent cores: the firm's optimum (`CooperativeDP`)."""

    def __init__(self, core: MarketMakingCore):
        if not isinstance(core, MarketMakingCore):
            raise EnvError(f"the market-making DP acts in market-making envs, not {type(core).__name__}")
        self.core = core
        self.q_max = core.max_inventory * (core.n_agents if core.multi_agent else 1)
        self.value, self.table = market_making_dp(core, max_inventory=self.q_max)
        self.table = np.clip(self.table, 0.0, core.max_depth)

    def _lookup(self, q: np.ndarray, tau: np.ndarray) -> np.ndarray:
        n = self.core.n_steps
        t = np.clip(n - np.rint(tau.astype(np.float64) * n), 0, n - 1).astype(np.int64)
        j = np.clip(q + self.q_max, 0, 2 * self.q_max).astype(np.int64)
        return self.table[t, j]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.core
        if c.multi_agent:
            return CooperativeDP.__call__(self, obs, rng)
        q = np.rint(obs[:, 0].astype(np.float64) * c.max_inventory)
        return self._lookup(q, obs[:, 1]).astype(np.float32)


class CooperativeDP(MarketMakingDP):
    """The firm's exact optimum in cooperative multi-market-making: the DP of one maker with the
    firm's bound n·q_max on the summed inventory Q, routed as in `CooperativeAS` (the maker with the
    least inventory posts the bid, the one with the most the ask, the others stand back at
    max_depth), which keeps every maker inside its own bound until Q reaches n·q_max. Only the best
    quote trades and the team reward depends only on the firm's fills and Q, so no joint policy can
    do better than this single-maker programme."""

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.core
        if not c.multi_agent:
            return MarketMakingDP.__call__(self, obs, rng)
        q = np.rint(obs[..., 0].astype(np.float64) * c.max_inventory)       # (B, n)
        Q = q.sum(axis=1)
        firm = self._lookup(Q, obs[:, 0, 2])
        out = np.full(q.shape + (2,), c.max_depth)
        rows = np.arange(q.shape[0])
        out[rows, q.argmin(axis=1), 0] = firm[:, 0]
        out[rows, q.argmax(axis=1), 1] = firm[:, 1]
        return out.astype(np.float32)
