"""Market making à la Avellaneda–Stoikov: one vectorised core for one or n market makers.

Dynamics (mbt-gym conventions), per step of length dt = T / n_steps, for each of B markets:

1. Every maker i posts a bid at depth δ_b,i and an ask at depth δ_a,i below / above the
   current mid S_t (action = [δ_b, δ_a] in [0, δ_max]^2; out-of-range depths, negative ones
   included, are clipped to the box as everywhere in ogdata; NaN/inf raises).
2. On each side at most one unit market order arrives (Bernoulli with probability λ·dt,
   the discretised Poisson arrival of intensity λ per side per unit time; λ·dt ≤ 1 is
   required). It fills the best quote on that side (the smallest depth δ*) with
   probability exp(−κ δ*), so a quote at depth δ fills with probability λ·dt·exp(−κδ)
   per step. Ties at the best depth are broken uniformly at random (the whole unit goes
   to one maker, so inventories stay integer). A maker at its inventory bound does not
   quote on that side (q ≥ q_max: its bid is withdrawn; q ≤ −q_max: its ask is
   withdrawn), and the order goes to the best remaining quote.
3. A bid fill buys one unit at S_t − δ_b (cash −= S_t − δ_b, q += 1); an ask fill sells
   one at S_t + δ_a. Then the mid moves: S_{t+1} = S_t + σ·√dt·Z, Z ~ N(0, 1).

Mark-to-market wealth W = cash + q·S (cash and inventory start at 0, so W is the PnL).
The wealth change of a step is ΔW = δ_b·[bid filled] + δ_a·[ask filled] + q_{t+1}·ΔS, and

    reward_t = ΔW − φ·q_{t+1}²·dt − [t+1 = n_steps]·α·q_{t+1}²

(Cartea–Jaimungal running and terminal inventory penalties). Multi-agent, cooperative
(default): every maker gets the team reward ΣΔW_i − φ·Q²·dt − [end]·α·Q² with the firm's
summed inventory Q = Σ q_i. Competitive: each maker gets its own ΔW_i − φ·q_i²·dt − [end]·α·q_i².

Observation (float32) of a maker: [q/q_max, (multi-agent: Q/(n·q_max)), time left (T−t)/T,
the last `n_lags` mid moves ΔS/(σ√dt), newest first, zeros before the start]. Global state
(multi-agent): [q_1..q_n / q_max, time left, mid moves]. info: cash, inventory, pnl (= wealth),
fills [bid, ask] of the step, penalty (the inventory penalty charged in the reward; the firm's
in cooperative mode), mid; multi-agent adds firm_inventory and firm_pnl. Episodes last exactly
n_steps steps and end with terminated=True (the horizon is part of the problem).

Defaults (the Avellaneda–Stoikov paper / mbt-gym): S_0 = 100, σ = 2, T = 1, n_steps = 200
(dt = 0.005), λ = 100, κ = 1.5, δ_max = 4, q_max = 20, φ = 0.2, α = 1, n_lags = 4.
The random numbers a step draws do not depend on the actions, so two policies run from
the same seed see the same market (common random numbers for paired comparisons).

Ids: `market-making-as` (single agent), `multi-market-making-2`, `multi-market-making-3`
(cooperative; `mode="competitive"` as a kwarg). References (names; the code is in
`ogdata.policies.market_making`): "market-making/avellaneda-stoikov"
(the finite-horizon closed form, each maker on its own inventory), "market-making/fixed-symmetric"
(constant symmetric depths) and "multi-market-making/cooperative-as" (AS on the firm's summed
inventory, the multi-agent expert).
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket, _preview
from ogdata.errors import EnvError

MODES = ("cooperative", "competitive")
# np.vecdot (numpy >= 2) is the fastest small dot product; einsum keeps numpy 1.26 working
_vecdot = getattr(np, "vecdot", None) or (lambda a, b: np.einsum("...i,...i->...", a, b))


def _check(name: str, value, ok, want: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise EnvError(f"market-making kwarg {name}={_preview(value)} is not a number; pass {want}") from None
    if not (math.isfinite(v) and ok(v)):
        raise EnvError(f"market-making kwarg {name}={_preview(value)} is invalid; pass {want}")
    return _in_range(name, v)


def _check_int(name: str, value, low: int, want: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise EnvError(f"market-making kwarg {name}={_preview(value)} is invalid; pass {want}")
    return _in_range(name, int(value))


# Admissible kwarg ranges (lo, hi, unit): wide enough for any real market, narrow enough that
# every reward, price and PnL stays finite in float64 for any actions (and that the arrays an
# env allocates stay small), so no kwarg can overflow an episode.
RANGES: dict[str, tuple[float, float, str]] = {
    "n_agents": (1, 1_000, "market makers"), "sigma": (0.0, 1e6, "price units/√time"),
    "kappa": (1e-6, 1e6, "1/price unit"), "intensity": (0.0, 1e9, "orders per side per unit time"),
    "terminal_time": (1e-6, 1e6, "time units"), "n_steps": (1, 10_000_000, "steps"),
    "max_depth": (1e-6, 1e6, "price units"), "max_inventory": (1, 1_000_000, "units"),
    "running_penalty": (0.0, 1e6, "phi"), "terminal_penalty": (0.0, 1e6, "alpha"),
    "initial_price": (-1e9, 1e9, "price units"), "n_lags": (1, 10_000, "mid moves"),
}


def _in_range(name: str, v):
    lo, hi, unit = RANGES[name]
    if not lo <= v <= hi:
        raise EnvError(f"market-making kwarg {name}={_preview(v)} is out of range: pass a value in [{lo:g}, {hi:g}] "
                       f"({unit})")
    return v


class MarketMakingCore(VectorMarket):
    """B markets × n market makers quoting one asset; the physics shared by both faces.

    Internally every array carries a maker axis (B, n); `MarketMaking` (single agent)
    drops it at the edges, `MultiMarketMaking` keeps it.
    """

    def __init__(self, num_envs: int = 1, *, n_agents: int = 1, mode: str = "cooperative",
                 sigma: float = 2.0, kappa: float = 1.5, intensity: float = 100.0,
                 terminal_time: float = 1.0, n_steps: int = 200, max_depth: float = 4.0,
                 max_inventory: int = 20, running_penalty: float = 0.2, terminal_penalty: float = 1.0,
                 initial_price: float = 100.0, n_lags: int = 4):
        super().__init__(num_envs)
        self.n_agents = _check_int("n_agents", n_agents, 1, "an integer >= 1 (the number of market makers)")
        if mode not in MODES:
            raise EnvError(f"market-making kwarg mode={mode!r} is unknown; pass one of {MODES}")
        self.mode = mode
        self.sigma = _check("sigma", sigma, lambda v: v >= 0, "a volatility >= 0")
        self.kappa = _check("kappa", kappa, lambda v: v > 0, "a fill-decay rate kappa > 0")
        self.intensity = _check("intensity", intensity, lambda v: v >= 0,
                                "an arrival intensity >= 0 (orders per side per unit time)")
        self.terminal_time = _check("terminal_time", terminal_time, lambda v: v > 0, "a horizon T > 0")
        self.n_steps = _check_int("n_steps", n_steps, 1, "an integer number of steps >= 1")
        self.max_depth = _check("max_depth", max_depth, lambda v: v > 0, "a maximum quote depth > 0")
        self.max_inventory = _check_int("max_inventory", max_inventory, 1, "an integer inventory bound >= 1")
        self.running_penalty = _check("running_penalty", running_penalty, lambda v: v >= 0, "phi >= 0")
        self.terminal_penalty = _check("terminal_penalty", terminal_penalty, lambda v: v >= 0, "alpha >= 0")
        self.initial_price = _check("initial_price", initial_price, lambda v: True, "a finite mid price")
        self.n_lags = _check_int("n_lags", n_lags, 1, "an integer number of mid moves to observe >= 1")
        self.dt = self.terminal_time / self.n_steps
        self._lam_dt = self.intensity * self.dt
        if self._lam_dt > 1.0:
            raise EnvError(f"intensity × dt = {self.intensity} × {self.dt:g} = {self._lam_dt:g} exceeds 1: "
                           "at most one market order per side arrives in a step; raise n_steps to at least "
                           f"{math.ceil(self.intensity * self.terminal_time)} or lower the intensity")
        self.max_steps = self.n_steps
        self._sig_sqdt = self.sigma * math.sqrt(self.dt)
        self._inv_kappa = 1.0 / self.kappa
        self._reach0 = math.log(self._lam_dt) / self.kappa if self._lam_dt > 0 else -math.inf
        self._phi_dt = self.running_penalty * self.dt
        self._sgn = np.array([1.0, -1.0])
        self._tau_table = (self.n_steps - np.arange(self.n_steps + 1)) / self.n_steps
        self._lo = -float(self.max_inventory)
        self._hi = float(self.max_inventory)
        self.action_space = spaces.Box(0.0, self.max_depth, shape=(2,), dtype=np.float32)
        B, n = self.num_envs, self.n_agents
        self._S = np.full(B, self.initial_price)
        self._W = np.zeros((B, n))                      # mark-to-market wealth = PnL
        self._q = np.zeros((B, n))
        self._moves = np.zeros((B, self.n_lags))
        self._last_fills = np.zeros((B, n, 2))
        self._last_pen = np.zeros((B, n))

    # -- shared pieces ---------------------------------------------------------------------
    def _time_left(self) -> np.ndarray:
        """(T − t)/T per market, clamped at 0 for a market stepped past its end."""
        return self._tau_table[np.minimum(self._t, self.n_steps)]

    def _reset_arrays(self, mask: np.ndarray) -> None:
        m = mask
        self._S = np.where(m, self.initial_price, self._S)
        self._W = np.where(m[:, None], 0.0, self._W)
        self._q = np.where(m[:, None], 0.0, self._q)
        self._moves = np.where(m[:, None], 0.0, self._moves)
        self._last_fills = np.where(m[:, None, None], 0.0, self._last_fills)
        self._last_pen = np.where(m[:, None], 0.0, self._last_pen)

    def _advance(self, d: np.ndarray):
        """One step of the physics on depths d (B, n, 2); returns per-maker (ΔW, q', done).

        State arrays are replaced, never written in place, so obs/info handed out stay valid.
        """
        B, n = self.num_envs, self.n_agents
        rng = self.rng
        q = self._q
        d = d.astype(np.float64)                       # one dtype throughout: mixed ops are slower
        # The order arriving on a side reaches depth h = (E + ln(λ·dt))/κ, E ~ Exp(1), so a quote
        # at depth δ fills with probability P(h > δ) = λ·dt·exp(−κδ); no arrival ⇔ h < 0.
        h = rng.exponential(self._inv_kappa, (B, 2))
        h += self._reach0
        z = rng.standard_normal(B)
        # a maker at its bound withdraws that side: bid needs q < q_max, ask needs -q < q_max
        live = q[:, :, None] * self._sgn < self._hi                              # (B, n, 2)
        if n == 1:
            fills = (d < h[:, None, :]) & live
        else:
            # match on an agent-major (n, B, 2) layout: reductions over the leading axis are fast
            eff = np.where(live.transpose(1, 0, 2), d.transpose(1, 0, 2), np.inf)
            best = np.minimum.reduce(eff, axis=0)                               # (B, 2) best depth
            keys = np.where(eff == best, rng.random((n, B, 2)), -1.0)           # random tie-break
            won = keys == np.maximum.reduce(keys, axis=0)
            fills = (won & (best < h)).transpose(1, 0, 2)                       # best = inf: no quote
        fills = fills.astype(np.float64)
        dq = fills[..., 0] - fills[..., 1]                                      # bought − sold
        earned = _vecdot(fills, d)                                            # depth captured
        dS = z * self._sig_sqdt
        q1 = q + dq
        dw = earned + q1 * dS[:, None]                                          # ΔW = δ·fills + q'ΔS
        self._W = self._W + dw
        self._q = q1
        self._S = self._S + dS
        # standardised mid moves ΔS/(σ√dt) = z (0 when σ = 0), newest first
        new = z if self.sigma > 0 else np.zeros_like(z)
        self._moves = np.concatenate([new[:, None], self._moves[:, :-1]], axis=1)
        self._last_fills = fills
        self._t += 1
        done = self._t >= self.n_steps
        return dw, q1, done

    def _penalised(self, dw: np.ndarray, x: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dw − penalty, penalty) for inventories x (any shape with B first): φ·x²·dt, + α·x² at the end."""
        x2 = x * x
        pen = self._phi_dt * x2
        if done.any():
            pen = pen + (self.terminal_penalty * done).reshape((-1,) + (1,) * (x.ndim - 1)) * x2
        return dw - pen, pen


class MarketMaking(MarketMakingCore):
    """Single-agent market making (the n=1 case with single-agent shapes)."""

    multi_agent = False

    def __init__(self, num_envs: int = 1, **kwargs):
        if "n_agents" in kwargs or "mode" in kwargs:
            raise EnvError("market-making-* is single-agent: n_agents/mode belong to multi-market-making-<n>")
        super().__init__(num_envs, n_agents=1, **kwargs)
        dim = 2 + self.n_lags
        low = np.full(dim, -np.inf, dtype=np.float32)
        high = np.full(dim, np.inf, dtype=np.float32)
        low[:2], high[:2] = (-1.0, 0.0), (1.0, 1.0)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

    def _obs_info(self):
        q = self._q[:, 0]
        wealth = self._W[:, 0]
        obs = np.concatenate([self._q * (1.0 / self._hi), self._time_left()[:, None], self._moves],
                             axis=1, dtype=np.float32)
        info = {"cash": wealth - q * self._S, "inventory": q, "pnl": wealth, "wealth": wealth,
                "fills": self._last_fills[:, 0], "penalty": self._last_pen[:, 0], "mid": self._S}
        return obs, info

    def _reset(self, mask):
        self._reset_arrays(mask)
        return self._obs_info()

    def _step(self, actions):
        dw, q1, done = self._advance(actions[:, None, :])
        rew, self._last_pen = self._penalised(dw, q1, done)
        obs, info = self._obs_info()
        return obs, rew[:, 0], done, np.zeros_like(done), info


class MultiMarketMaking(MarketMakingCore):
    """n market makers on one asset (PettingZoo face via core.MarketParallelEnv)."""

    multi_agent = True

    def __init__(self, num_envs: int = 1, n_agents: int = 2, mode: str = "cooperative", **kwargs):
        super().__init__(num_envs, n_agents=n_agents, mode=mode, **kwargs)
        n = self.n_agents
        self.agents = tuple(f"maker_{i}" for i in range(n))
        self.general_sum = self.mode == "competitive"  # each maker on its own PnL: per-agent scores are recorded
        dim = 3 + self.n_lags
        low = np.full(dim, -np.inf, dtype=np.float32)
        high = np.full(dim, np.inf, dtype=np.float32)
        low[:3], high[:3] = (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        sdim = n + 1 + self.n_lags
        slow = np.full(sdim, -np.inf, dtype=np.float32)
        shigh = np.full(sdim, np.inf, dtype=np.float32)
        slow[:n + 1], shigh[:n + 1] = -1.0, 1.0
        slow[n] = 0.0
        self.state_space = spaces.Box(slow, shigh, dtype=np.float32)

    def _obs_info(self):
        B, n = self.num_envs, self.n_agents
        Q = self._q.sum(axis=1)
        obs = np.empty((B, n, 3 + self.n_lags), dtype=np.float32)
        obs[..., 0] = self._q * (1.0 / self._hi)
        obs[..., 1] = (Q * (1.0 / (n * self._hi)))[:, None]
        obs[..., 2] = self._time_left()[:, None]
        obs[..., 3:] = self._moves[:, None, :]
        wealth = self._W
        info = {"cash": wealth - self._q * self._S[:, None], "inventory": self._q, "pnl": wealth,
                "wealth": wealth, "fills": self._last_fills, "penalty": self._last_pen, "mid": self._S,
                "firm_inventory": Q, "firm_pnl": wealth.sum(axis=1)}
        return obs, info

    def _reset(self, mask):
        self._reset_arrays(mask)
        return self._obs_info()

    def _step(self, actions):
        dw, q1, done = self._advance(actions)
        shape = q1.shape
        if self.mode == "cooperative":
            team, pen = self._penalised(dw.sum(axis=1), q1.sum(axis=1), done)
            rew = np.repeat(team[:, None], self.n_agents, axis=1)
            self._last_pen = np.repeat(pen[:, None], self.n_agents, axis=1)
        else:
            rew, self._last_pen = self._penalised(dw, q1, done)
        done2 = np.repeat(done[:, None], self.n_agents, axis=1)
        obs, info = self._obs_info()
        return obs, rew, done2, np.zeros(shape, dtype=bool), info

    def state(self) -> np.ndarray:
        """[q_1..q_n / q_max, time left, mid moves] (B, n + 1 + n_lags) float32."""
        return np.concatenate([self._q * (1.0 / self._hi), self._time_left()[:, None], self._moves],
                              axis=1, dtype=np.float32)
