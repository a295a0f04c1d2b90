"""Optimal execution under Almgren–Chriss dynamics: one vectorised core for 1..n desks.

A firm liquidates a parent order of X shares in N steps of length τ = horizon / N (days).
The order is split across n desks (equal parts by default; n = 1 is the single-agent env).
Step k, with every desk i selling n_ik = a_ik · x_i,k-1 (a = the action, a fraction of the
desk's remaining inventory) and N_k = Σ_i n_ik the firm's total:

    execution price   P_k = S_k-1 − ε − η · N_k / τ          (temporary impact of the TOTAL rate)
    mid               S_k = S_k-1 + σ √τ ξ_k − γ · N_k      (permanent impact moves the mid for all)

with ξ_k ~ N(0, 1): an arithmetic Brownian mid (Almgren & Chriss 2000, discrete form). Two
desks selling x each therefore trade exactly as one desk selling 2x.

Reward (basis points of the parent order's arrival value X_ref · S0, so returns are O(100)):

    r_k = 1e4 / (X_ref S0) · [ Σ n_ik (P_k − S0)  −  λ σ² τ x_k² ]

the implementation-shortfall increment minus Almgren–Chriss's variance charge λσ²τx² for the
inventory x_k held over the step's price move (the quadratic-variation running penalty of
Cartea–Jaimungal). Summed over an episode it is −(shortfall + λ · σ²τ Σ x_k²): for a fixed
schedule its expectation is −(E[cost] + λ Var[cost]), the Almgren–Chriss objective, so the
closed-form AC schedule is the expert
(`ogdata.policies.execution`) and risk_aversion=0 gives the plain shortfall.
Cooperative mode (default): every desk receives the firm's reward (sums over desks,
X_ref = X, x_k = the firm's inventory). Competitive mode: desk i receives its own
(X_ref = X_i, x_k = its own inventory).

Terminal penalty: shares still unsold after step N (Q = their firm total) are dumped at
    S_N − ε − η Q / τ − unsold_penalty          ($/share)
i.e. a one-step block sale with full temporary impact plus `unsold_penalty` $/share.

Episode length: N steps, or fewer when the whole parent order has been sold (terminated).
Observation per desk (float32): [own remaining inventory / own parent order, steps left / N,
the last `window` mid moves S_k − S_k-1 in bp of S0 (oldest first)] and, with
observe_others=True, the other desks' last actions. info: inventory (shares), cash ($),
shortfall ($: S0 · sold − cash), costs ($ paid to temporary impact, spread and the terminal
penalty), risk_penalty ($), wealth (cash + inventory · mid), mid, firm_shortfall.
Defaults are Almgren & Chriss's example: X = 1e6 shares at S0 = $50, σ = 0.95 $/√day
(30 % a year), ε = 1/16 $, η = 2.5e-6 $/(share/day), γ = 2.5e-7 $/share, λ = 1e-6 /$,
liquidated over 5 days in 20 steps. `calibration="sp500"` or `"nasdaq"` replaces them with the
parameters measured on that index's daily OHLCV (`ogdata.envs.liquidity`, committed in
`execution-calibration.json`); kwargs given beside it override single parameters.
`augment_stock=True` (single-agent) appends the stock features [tanh(reward so far / stock_scale),
steps left / N] (`ogdata.envs.core.StockFeatures`) for risk-sensitive tasks (`ogdata.envs.risk`).
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket, _preview
from ogdata.envs.liquidity import calibrated_kwargs
from ogdata.errors import EnvError

_BP = 1e4
_MODES = ("cooperative", "competitive")
DEFAULTS = dict(shares=1e6, steps=20, horizon=5.0, price=50.0, sigma=0.95, eta=2.5e-6, gamma=2.5e-7,
                half_spread=0.0625, risk_aversion=1e-6, unsold_penalty=1.0, window=5)


# Admissible kwarg ranges (lo, hi, unit): wide enough for any real market, narrow enough that
# every reward, price and cash amount stays finite in float64 for any actions (the worst case,
# every bound at once, keeps |reward| below ~1e64), so no kwarg can overflow an episode.
RANGES: dict[str, tuple[float, float, str]] = {
    "shares": (1e-6, 1e15, "shares"), "horizon": (1e-6, 1e6, "days"), "price": (1e-6, 1e9, "$"),
    "sigma": (0.0, 1e6, "$/√day"), "eta": (0.0, 1e6, "$ per share/day"), "gamma": (0.0, 1e6, "$/share"),
    "half_spread": (0.0, 1e9, "$"), "risk_aversion": (0.0, 1e6, "1/$"), "unsold_penalty": (0.0, 1e9, "$/share"),
}
STOCK_SCALE = 300.0  # augment_stock: tanh(Σ rewards so far / 300 bp) (the AC expert's episode return is ~ −312 bp)
INT_RANGES: dict[str, tuple[int, int]] = {"steps": (1, 1_000_000), "window": (1, 10_000), "n_agents": (1, 1_000)}


def _num(name: str, v, *, positive: bool = False) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise EnvError(f"{name} must be a number, got {_preview(v)}") from None
    except OverflowError:
        lo, hi, unit = RANGES[name]
        raise EnvError(f"{name}={_preview(v)} is out of range: pass a value in [{lo:g}, {hi:g}] ({unit})") from None
    if not math.isfinite(f):
        raise EnvError(f"{name} must be finite, got {_preview(v)}")
    if positive and f <= 0:
        raise EnvError(f"{name} must be > 0, got {_preview(v)}")
    if f < 0:
        raise EnvError(f"{name} must be >= 0, got {_preview(v)} (impacts, volatility, spread, risk aversion "
                       "and penalties are magnitudes; the sign is fixed by selling)")
    lo, hi, unit = RANGES[name]
    if not lo <= f <= hi:
        raise EnvError(f"{name}={_preview(v)} is out of range: pass a value in [{lo:g}, {hi:g}] ({unit}); the "
                       f"default is {DEFAULTS[name]:g}")
    return f


def _int(name: str, v, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < minimum:
        raise EnvError(f"{name} must be an integer >= {minimum}, got {_preview(v)}")
    hi = INT_RANGES[name][1]
    if int(v) > hi:
        raise EnvError(f"{name}={_preview(v)} is out of range: pass an integer in [{minimum}, {hi}]")
    return int(v)


class _ExecutionCore(VectorMarket):
    """B markets × n desks as (B, n) arrays; subclasses fix the single- or multi-agent shapes."""

    def __init__(self, num_envs: int = 1, *, n_agents: int = 1, shares: float = DEFAULTS["shares"],
                 steps: int = DEFAULTS["steps"], horizon: float = DEFAULTS["horizon"],
                 price: float = DEFAULTS["price"], sigma: float = DEFAULTS["sigma"],
                 eta: float = DEFAULTS["eta"], gamma: float = DEFAULTS["gamma"],
                 half_spread: float = DEFAULTS["half_spread"], risk_aversion: float = DEFAULTS["risk_aversion"],
                 unsold_penalty: float = DEFAULTS["unsold_penalty"], window: int = DEFAULTS["window"],
                 mode: str = "cooperative", split=None, observe_others: bool = False, **unknown):
        if unknown:
            raise EnvError(f"unknown kwargs {sorted(unknown)} for {type(self).__name__}; known: "
                           f"{sorted(list(DEFAULTS) + self._extra_kwargs)}")
        super().__init__(num_envs)
        n = self.n = _int("n_agents", n_agents, 1)
        self.N = _int("steps", steps, 1)
        self.W = _int("window", window, 1)
        self.X = _num("shares", shares, positive=True)
        self.T = _num("horizon", horizon, positive=True)
        self.S0 = _num("price", price, positive=True)
        self.sigma, self.eta, self.gamma = _num("sigma", sigma), _num("eta", eta), _num("gamma", gamma)
        self.eps = _num("half_spread", half_spread)
        self.lam = _num("risk_aversion", risk_aversion)
        self.penalty = _num("unsold_penalty", unsold_penalty)
        self.tau = self.T / self.N
        if mode not in _MODES:
            raise EnvError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode = mode
        if split is None:
            w = np.full(n, 1.0 / n)
        else:
            w = np.asarray(split, dtype=np.float64).reshape(-1)
            if w.shape != (n,) or not np.isfinite(w).all() or (w <= 0).any():
                raise EnvError(f"split must be {n} positive finite weights (one per desk), got {split!r}")
            w = w / w.sum()
            if not (np.isfinite(w).all() and w.min() >= 1e-9):
                raise EnvError(f"split {split!r} gives a desk less than 1e-9 of the order (or overflows); pass "
                               "weights whose ratios are below 1e9")
        self.Xi = self.X * w  # (n,) each desk's parent order
        self.observe_others = bool(observe_others) and n > 1
        self.max_steps = self.N
        self._vol = self.sigma * math.sqrt(self.tau)
        self._risk = self.lam * self.sigma ** 2 * self.tau
        self._eta_tau = self.eta / self.tau
        self._wfrac = self.Xi / self.X
        self._ones = np.ones(n)  # row sums as matmuls: far faster than .sum(axis=1) on a short axis
        # reward scale: bp of the firm's (cooperative) or the desk's (competitive) arrival value
        self._scale = _BP / (self.X * self.S0) if mode == "cooperative" else _BP / (self.Xi * self.S0)
        self._others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64).reshape(n, n - 1)
        self.obs_dim = 2 + self.W + (n - 1 if self.observe_others else 0)
        lo = np.concatenate([[0.0, 0.0], np.full(self.W, -np.inf), np.zeros(self.obs_dim - 2 - self.W)])
        hi = np.concatenate([[1.0, 1.0], np.full(self.W, np.inf), np.ones(self.obs_dim - 2 - self.W)])
        self.observation_space = spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        # global state: firm inventory, time left, desk inventories (n), last actions (n), mid moves (W)
        sd = 2 + 2 * n + self.W
        slo = np.concatenate([np.zeros(2 + 2 * n), np.full(self.W, -np.inf)]).astype(np.float32)
        shi = np.concatenate([np.ones(2 + 2 * n), np.full(self.W, np.inf)]).astype(np.float32)
        self.state_space = spaces.Box(slo, shi, shape=(sd,), dtype=np.float32)
        B = self.num_envs
        self.x = np.tile(self.Xi, (B, 1))  # remaining shares (B, n)
        self.cash = np.zeros((B, n))
        self.costs = np.zeros((B, n))
        self.riskpen = np.zeros((B, n))
        self.last_a = np.zeros((B, n))
        self.mid = np.full(B, self.S0)
        self.moves = np.zeros((B, self.W))
        self.done = np.zeros(B, dtype=bool)

    _extra_kwargs: list[str] = []

    # -- internals -----------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        B, n = self.num_envs, self.n
        o = np.empty((B, n, self.obs_dim), dtype=np.float32)
        o[:, :, 0] = self.x / self.Xi
        o[:, :, 1] = ((self.N - self._t) / self.N)[:, None]
        o[:, :, 2:2 + self.W] = self.moves[:, None, :]
        if self.observe_others:
            o[:, :, 2 + self.W:] = self.last_a[:, self._others]
        return o

    def _info(self) -> dict[str, np.ndarray]:
        sold = self.Xi - self.x
        short = self.S0 * sold - self.cash
        return {"inventory": self.x.copy(), "cash": self.cash.copy(), "shortfall": short,
                "costs": self.costs.copy(), "risk_penalty": self.riskpen.copy(),
                "wealth": self.cash + self.x * self.mid[:, None], "mid": self.mid.copy(),
                "firm_shortfall": short @ self._ones}

    def _reset_arrays(self, mask: np.ndarray) -> None:
        self.x[mask] = self.Xi
        self.cash[mask] = 0.0
        self.costs[mask] = 0.0
        self.riskpen[mask] = 0.0
        self.last_a[mask] = 0.0
        self.mid[mask] = self.S0
        self.moves[mask] = 0.0
        self.done[mask] = False

    def _advance(self, a: np.ndarray):
        """One step for all B markets; a (B, n) fractions in [0, 1]. Returns (rewards (B, n), done (B,))."""
        ended = self.done.any()
        if ended:  # markets that already ended stay still (the vector face discards their step)
            live = ~self.done
            a = a * live[:, None]
        q = a * self.x
        tot = q @ self._ones if self.n > 1 else q[:, 0]
        temp = self.eps + self._eta_tau * tot  # $/share below the mid, the same for every desk
        px = (self.mid - temp)[:, None]
        self.cash += q * px
        gain = q * (px - self.S0)  # cash relative to the arrival price
        self.costs += q * temp[:, None]
        self.x -= q
        self.last_a = a
        dS = self._vol * self.rng.standard_normal(self.num_envs) - self.gamma * tot
        if ended:
            dS *= live
            self._t += live
        else:
            self._t += 1
        self.mid += dS
        self.moves[:, :-1] = self.moves[:, 1:]
        self.moves[:, -1] = dS * (_BP / self.S0)
        # variance charge on the inventory held over this step's price move
        coop = self.mode == "cooperative"
        held = (self.x @ self._ones)[:, None] if coop and self.n > 1 else self.x
        pen = self._risk * held * held
        self.riskpen += pen * self._wfrac if coop else pen
        end = self._t >= self.N
        if ended:
            end &= live
        if end.any():  # dump what is left in one block at the terminal penalty price
            left = self.x * end[:, None]
            Q = left @ self._ones
            dump = self.eps + self._eta_tau * Q + self.penalty
            self.cash += left * (self.mid - dump)[:, None]
            self.costs += left * dump[:, None]
            gain = gain + left * (self.mid - dump - self.S0)[:, None]
            self.x -= left
        if coop:
            rew = (((gain @ self._ones)[:, None] if self.n > 1 else gain) - pen) * self._scale
            if self.n > 1:
                rew = np.repeat(rew, self.n, axis=1)
        else:
            rew = (gain - pen) * self._scale
        done = end | ((self.x @ self._ones if self.n > 1 else self.x[:, 0]) <= 0.0)
        if ended:
            done &= live
        self.done |= done
        return rew, self.done.copy()

    def state(self) -> np.ndarray:
        """Global state (B, 2 + 2n + window): firm inventory, time left, desk inventories, last actions, moves."""
        B, n = self.num_envs, self.n
        s = np.empty((B, 2 + 2 * n + self.W), dtype=np.float32)
        s[:, 0] = (self.x @ self._ones) / self.X
        s[:, 1] = (self.N - self._t) / self.N
        s[:, 2:2 + n] = self.x / self.Xi
        s[:, 2 + n:2 + 2 * n] = self.last_a
        s[:, 2 + 2 * n:] = self.moves
        return s


def _calibrated(calibration, kwargs: dict) -> dict:
    """kwargs over the named calibration's parameters (None: the Almgren–Chriss example defaults)."""
    if calibration is None:
        return kwargs
    return {**calibrated_kwargs(calibration), **kwargs}


class ExecutionMarket(_ExecutionCore):
    """Single-agent execution (`execution-*`): the n = 1 core with observations (B, obs) and rewards (B,)."""

    def __init__(self, num_envs: int = 1, calibration: str | None = None, augment_stock: bool = False,
                 stock_scale: float = STOCK_SCALE, **kwargs):
        for k in ("n_agents", "mode", "split", "observe_others"):
            if k in kwargs:
                raise EnvError(f"{k!r} is a multi-agent kwarg; use a joint-execution-<n> id for several desks")
        super().__init__(num_envs, n_agents=1, **_calibrated(calibration, kwargs))
        self.calibration = calibration
        if augment_stock:
            self.augment_stock(stock_scale)

    def _reset(self, mask):
        self._reset_arrays(mask)
        info = self._info()
        return self._obs()[:, 0], {k: (v[:, 0] if v.ndim == 2 else v) for k, v in info.items()}

    def _step(self, actions):
        rew, done = self._advance(actions.reshape(self.num_envs, 1).astype(np.float64))
        info = self._info()
        return (self._obs()[:, 0], rew[:, 0], done, np.zeros(self.num_envs, dtype=bool),
                {k: (v[:, 0] if v.ndim == 2 else v) for k, v in info.items()})


class JointExecutionMarket(_ExecutionCore):
    """n desks of one firm liquidate a shared parent order (`joint-execution-<n>`), PettingZoo-shaped."""

    multi_agent = True
    _extra_kwargs = ["n_agents", "mode", "split", "observe_others"]

    def __init__(self, num_envs: int = 1, n_agents: int = 2, calibration: str | None = None, **kwargs):
        super().__init__(num_envs, n_agents=n_agents, **_calibrated(calibration, kwargs))
        self.calibration = calibration
        self.agents = tuple(f"desk_{i}" for i in range(self.n))

    def _reset(self, mask):
        self._reset_arrays(mask)
        return self._obs(), self._info()

    def _step(self, actions):
        rew, done = self._advance(actions.reshape(self.num_envs, self.n).astype(np.float64))
        term = np.repeat(done[:, None], self.n, axis=1)
        return self._obs(), rew, term, np.zeros(term.shape, dtype=bool), self._info()
