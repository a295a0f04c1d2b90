"""Portfolio allocation over N assets plus cash: `portfolio-*` ids, one vectorised core.

Each of B markets starts at a random date of the period (real prices) or on a fresh
synthetic path, with wealth 1 held entirely in cash, and lasts `n_steps` trading days
(default 252, one year); the last step returns truncated=True (the horizon is a cut of an
ongoing investment, not a terminal state), terminated is always False.

Action: a Box [0, 1]^(N+1) of target weights, assets first, cash last. It is mapped onto
the simplex by clipping to the box and normalising: w⁺ = a / Σa (an all-zero action means
all cash). So [1, …, 1, 0] is equal weight and one-hot vectors are single assets.

One step at day d, wealth W, current (drifted) weights w, costs rate c:

    turnover  τ = Σ_i<N |w⁺_i − w_i|            (risky assets; cash is the other leg)
    costs     C = c · τ · W                      (paid from wealth, proportionally)
    growth    g = Σ_i w⁺_i · P_i(d+1)/P_i(d)     (cash earns nothing)
    wealth    W' = (W − C) · g = W · (1 − cτ) · g
    reward    r = log(W'/W) = log(1 − cτ) + log g
    weights   w'_i = w⁺_i · P_i(d+1)/P_i(d) / g  (weights drift with prices)

Cash earns the universe's cash rate, g_cash = 1 for the 20 stocks (no interest) and 1 + RF for
the Fama–French factors, where asset i's gross return is 1 + RF + F_i (the long-short factor held
on T-bill collateral); so for any weights the factor portfolio earns, before costs,

    r_p = g − 1 = RF + Σ_i<N w⁺_i · F_i                  (prices.ff_factors)

Leverage and shorting (kwargs; default long-only, leverage 1, the simplex above unchanged):
`short=True` widens the risky part of the action Box to [−1, 1] (cash stays [0, 1]) and
`leverage=L` (1 ≤ L ≤ 10) maps an action a to risky weights w⁺_i = L · a_i / Σ_j |a_j| (j over all
N+1 entries; all zeros = all cash) and cash 1 − Σ_i<N w⁺_i, negative when borrowing (at the cash
rate); so Σ_i<N |w⁺_i| ≤ L and every such portfolio is reachable. With L = 1 and no shorting this is
exactly the simplex map. A step whose wealth factor (1 − cτ)·g is ≤ 0 ruins the market: wealth 0,
terminated=True, and the "log" reward pays log(1e-12). Observed weights are clipped to ±100.
`Portfolio.action_for(weights)` gives the action of target risky weights under any L (the
reference policies use it).

Reward (kwarg `reward`, `ogdata.envs.rewards`): "log" (default, the r above), "return" (W'/W − 1)
or "dsr" (the differential Sharpe ratio of W'/W − 1, EMA rate `dsr_eta`).

Observation (float32, length window·N + N + 1): the last `window` log returns of every asset
in percent (one step each: a day, a month), time-major, oldest first (returns up to the current
step only), then the current weights w (assets, cash). `info`: wealth W', turnover τ, costs C.
The default window of 10 days keeps an observation at 221 floats: what a transition costs
in a dataset and what the step copies; pass `window=` for longer histories. `augment_stock=True`
appends the stock features (reward so far, time left; `ogdata.envs.core.StockFeatures`) for
risk-sensitive tasks (`ogdata.envs.risk`).

Ids: portfolio-sp500 (training years 1990–2014), portfolio-sp500-eval (held-out
2015–2022), both on skfolio's 20 S&P 500 stocks (extra `realdata`; hindsight-picked survivors:
see `prices`); portfolio-ff (monthly, Fama–French Mkt-RF, SMB, HML + RF, returns of 1926-07 →
1989-12) and portfolio-ff-eval (held-out 1990-02 → 2018-11), 60-month episodes; portfolio-synth
(correlated GBM) and portfolio-synth-regime (two-regime Gaussian HMM), calibrated on the
training years (no extra). References (names; the code is in
`ogdata.policies.portfolio`): "random" and "portfolio/equal-weight" (expert).
"portfolio/buy-and-hold" is registered too; equal weight is the expert because 1/N
rebalanced daily is the standard benchmark that optimised portfolios fail to beat out of
sample (DeMiguel, Garlappi & Uppal 2009), it is the same stationary action from any start
date, and it beats buy-and-hold on the training years; the two stay within 0.01 of
yearly log growth of each other on every id (both are in references.json).
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket
from ogdata.envs.prices import FEATURE_BOUND, FEATURE_SCALE, ReturnPaths
from ogdata.envs.rewards import DifferentialSharpe, check_reward, pay
from ogdata.errors import EnvError

WEIGHT_BOUND = 100.0  # observed weights are clipped here (only leverage or shorting gets past [0, 1])
MAX_LEVERAGE = 10.0
STOCK_SCALE = 0.25  # augment_stock: the stock feature is tanh(Σ rewards so far / 0.25) (a year's log growth ~0.1-0.3)


def check_params(family: str, n_steps, window, cost, max_cost: float) -> tuple[int, int, float]:
    """Validate the kwargs every market family shares; EnvError saying what to pass."""
    for name, v, hi in (("n_steps", n_steps, 1_000_000), ("window", window, 10_000)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise EnvError(f"{family} kwarg {name}={v!r} is invalid; pass an integer >= 1")
        if v > hi:  # the env allocates (num_envs, window + n_steps) rows of returns
            raise EnvError(f"{family} kwarg {name}={v!r} is out of range: pass an integer in [1, {hi}]")
    try:
        c = float(cost)
    except (TypeError, ValueError, OverflowError):
        raise EnvError(f"{family} kwarg cost={cost!r} is not a number; pass a rate such as 0.001") from None
    if not (0.0 <= c < max_cost):
        raise EnvError(f"{family} kwarg cost={cost!r} is invalid; pass a proportional cost rate in "
                       f"[0, {max_cost}) (0.001 = 10 basis points); costs cannot be negative")
    return int(n_steps), int(window), c


class Portfolio(VectorMarket):
    """B portfolio markets over the same N assets; see the module docstring for the economics.

    source: "real" (`universe` "sp500" or "ff", `period` "train" or "eval", or explicit
    start/end dates), "gbm" or "regime" (synthetic, calibrated on sp500); `prices` (T, N) replaces
    the source with your own prices. assets: a subset of the universe's names (default all).
    leverage, short: see the module docstring; reward, dsr_eta: `ogdata.envs.rewards`.
    """

    def __init__(self, num_envs: int = 1, *, source: str = "real", universe: str = "sp500", period: str = "train",
                 start: str | None = None, end: str | None = None, assets=None, n_steps: int = 252,
                 window: int = 10, cost: float = 0.001, leverage: float = 1.0, short: bool = False,
                 reward: str = "log", dsr_eta: float = 0.01, prices=None, augment_stock: bool = False,
                 stock_scale: float = STOCK_SCALE):
        super().__init__(num_envs)
        self.n_steps, self.window, self.cost = check_params("portfolio", n_steps, window, cost, 0.5)
        self.reward, self.dsr_eta = check_reward("portfolio", reward, dsr_eta)
        try:
            self.leverage = float(leverage)
        except (TypeError, ValueError, OverflowError):
            raise EnvError(f"portfolio kwarg leverage={leverage!r} is not a number; pass 1 (no borrowing) "
                           f"up to {MAX_LEVERAGE:g}") from None
        if not (1.0 <= self.leverage <= MAX_LEVERAGE):
            raise EnvError(f"portfolio kwarg leverage={leverage!r} is out of range: pass a gross exposure "
                           f"limit Σ|w| in [1, {MAX_LEVERAGE:g}]")
        if not isinstance(short, bool | np.bool_):
            raise EnvError(f"portfolio kwarg short={short!r} is invalid; pass True or False")
        self.short = bool(short)
        if source != "real" and prices is None and universe != "sp500":
            raise EnvError(f"synthetic prices are calibrated on universe 'sp500' only, not {universe!r}")
        self.max_steps = self.n_steps
        self.universe = universe
        self.paths = ReturnPaths(self.num_envs, source=source, universe=universe, n_steps=self.n_steps,
                                 window=self.window, assets=assets, period=period, start=start, end=end,
                                 prices=prices)
        self.source = "custom" if prices is not None else source
        self.assets = self.paths.names
        B, N, w = self.num_envs, len(self.assets), self.window
        self.n_assets = N
        self._wn = w * N
        # the general map (leverage or shorting) and its observation bounds; the simplex keeps its fast path
        self._general = self.short or self.leverage != 1.0
        a_low = np.concatenate([np.full(N, -1.0 if self.short else 0.0), [0.0]])
        self.action_space = spaces.Box(a_low.astype(np.float32), np.ones(N + 1, dtype=np.float32), dtype=np.float32)
        w_lo, w_hi = (-WEIGHT_BOUND, WEIGHT_BOUND) if self._general else (0.0, 1.0)
        low = np.concatenate([np.full(w * N, -FEATURE_BOUND), np.full(N + 1, w_lo)]).astype(np.float32)
        high = np.concatenate([np.full(w * N, FEATURE_BOUND), np.full(N + 1, w_hi)]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._dsr = DifferentialSharpe(B, self.dsr_eta) if self.reward == "dsr" else None
        # state and preallocated work arrays
        self.weights = np.zeros((B, N + 1))
        self.wealth = np.ones(B)
        self._raw = np.empty((B, N + 1))
        self._raw_row = self._raw[0]
        self._target = np.empty((B, N + 1))
        self._hold = np.empty((B, N + 1))
        self._gross = np.empty((B, N + 1))
        self._diff = np.empty((B, N))
        self._idx = np.empty(B, dtype=np.int64)
        self._ones = np.ones((N + 1, 1))
        self._turnover_cost = np.stack([np.ones(N), np.full(N, self.cost)], axis=1)
        self._unit = np.float64(1.0)
        self._low64, self._high64 = a_low, np.ones(N + 1)  # the action Box's bounds (exact in float64)
        self._target_risky = self._target[:, :-1]
        self._weights_risky = self.weights[:, :-1]
        self._last = np.full(B, self.n_steps - 1, dtype=np.int64)
        self._start, self._returns = self.paths.start, self.paths.gross  # updated in place by paths.reset
        self._one, self._n = np.ones(B, dtype=np.int64), np.full(B, self.n_steps, dtype=np.int64)
        self._table = self.paths.padded_windows(N + 1)
        if augment_stock:
            self.augment_stock(stock_scale)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        w = np.clip(self.weights, -WEIGHT_BOUND, WEIGHT_BOUND) if self._general else self.weights
        if self._table is None:
            return np.concatenate((self.paths.windows[rows], w), axis=1, dtype=np.float32)
        obs = self._table.take(rows, axis=0)
        obs[:, self._wn:] = w
        return obs

    def action_for(self, weights) -> np.ndarray:
        """Actions (B, N+1) whose target risky weights are `weights`, (B, N) for any B, or (N,) for all
        num_envs markets, under this core's leverage and shorting (scaled down onto Σ|w| ≤ L; negative
        weights become 0 when shorting is off)."""
        w = np.asarray(weights, dtype=np.float64)
        w = np.broadcast_to(w, (self.num_envs, self.n_assets)) if w.ndim == 1 else w
        if not self.short:
            w = np.maximum(w, 0.0)
        gross = np.abs(w).sum(axis=1, keepdims=True)
        a = w / np.maximum(gross, self.leverage)
        return np.concatenate([a, 1.0 - np.abs(a).sum(axis=1, keepdims=True)], axis=1).astype(np.float32)

    def _reset(self, mask: np.ndarray):
        self.paths.reset(self.rng, mask)
        self.weights[mask] = 0.0
        self.weights[mask, -1] = 1.0
        self.wealth = np.where(mask, 1.0, self.wealth)  # fresh: arrays handed out are never mutated
        B = self.num_envs
        info = {"wealth": self.wealth, "turnover": np.zeros(B), "costs": np.zeros(B)}
        obs = self._observe(self.paths.start + np.minimum(self._t, self.n_steps) - 1)
        if self._dsr is not None:  # prior variance: the window's equal-weight returns (rewards.py)
            x = obs[:, :self._wn].astype(np.float64).reshape(B, self.window, self.n_assets) / FEATURE_SCALE
            self._dsr.reset(mask, np.square(x.mean(axis=2)).mean(axis=1))
        return obs, info

    def _step_general(self, actions: np.ndarray):
        """Leverage, shorting or another reward: the map and economics of the module docstring, plainly."""
        a = actions.astype(np.float64)
        s = np.abs(a).sum(axis=1, keepdims=True)
        zero = s[:, 0] == 0.0
        risky = self.leverage * a[:, :-1] / np.where(zero[:, None], 1.0, s)
        tgt = np.concatenate([risky, 1.0 - risky.sum(axis=1, keepdims=True)], axis=1)
        idx = np.minimum(self._t, self._last) + self._start
        g = self._returns.take(idx, 0, None, "clip")
        turnover = np.abs(risky - self.weights[:, :-1]).sum(axis=1)
        ccost = self.cost * turnover
        hold = tgt * g
        growth = hold.sum(axis=1)
        factor = (1.0 - ccost) * growth
        ruined = factor <= 0.0
        alive = growth > 0.0
        cash = np.zeros_like(tgt)
        cash[:, -1] = 1.0
        self.weights[:] = np.where(alive[:, None], hold / np.where(alive, growth, 1.0)[:, None], cash)
        costs = ccost * self.wealth
        reward = pay(self.reward, factor, self._dsr)
        self.wealth = self.wealth * np.maximum(factor, 0.0)
        self._t = self._t + self._one
        info = {"wealth": self.wealth, "turnover": turnover, "costs": costs}
        return self._observe(idx), reward, ruined, self._t >= self._n, info

    def single_step(self):
        """The B = 1 simplex, log-reward step with the market's scalars as numpy scalars (see
        `VectorMarket.single_step`); the general map, other rewards and the stock features take `step`."""
        if self.num_envs != 1 or self._general or self.reward != "log" or self._stock is not None:
            return None
        return self._step_one

    def _step_one(self, action: np.ndarray):
        """`_step` for one market, the same numpy operations on the same (1, N+1) arrays (so the same bits),
        with the (1,) per-market arrays read and written as scalars."""
        raw, tgt, w = self._raw, self._target, self.weights
        np.copyto(raw, action)
        # finite iff its sum of squares is: one product, which float32 values cannot overflow in float64
        if not math.isfinite(self._raw_row.dot(self._raw_row)):
            raise self._nan_error()
        np.minimum(np.maximum(raw, self._low64, out=raw), self._high64, out=raw)
        s = raw.dot(self._ones)
        if s[0, 0] == 0.0:  # an all-zero action means all cash
            s[0, 0] = 1.0
            raw[0, -1] = 1.0
        np.divide(raw, s, out=tgt)
        t = int(self._t[0])
        row = min(t, self.n_steps - 1) + int(self._start[0])
        g = self._returns[min(row, len(self._returns) - 1)]  # clamped as `_step`'s take(mode="clip")
        tc = np.abs(np.subtract(self._target_risky, self._weights_risky, out=self._diff)).dot(self._turnover_cost)
        turnover, ccost = tc[0, 0], tc[0, 1]
        hold = np.multiply(tgt, g, out=self._hold)
        growth = hold.dot(self._ones)
        np.divide(hold, growth, out=w)
        wealth = self.wealth[0]
        factor = (self._unit - ccost) * growth[0, 0]
        self.wealth = np.array((wealth * factor,))  # fresh: arrays handed out are never mutated
        self._t[0] = t + 1  # (reset writes _t in place too; it is never handed out)
        if self._table is None:
            obs = np.concatenate((self.paths.windows[row], w[0]), dtype=np.float32)
        else:
            obs = self._table[row].copy()
            obs[self._wn:] = w[0]
        info = {"wealth": self.wealth[0], "turnover": turnover, "costs": ccost * wealth}
        return obs, float(np.log(factor)), False, t + 1 >= self.n_steps, info

    def _step(self, actions: np.ndarray):
        # Small-batch speed notes: row sums are matrix products (B, N+1)·(N+1, 1), far faster
        # than reductions over short rows; ndarray methods (.dot, .take) skip the dispatch of
        # the np.* functions; outputs never alias inputs (numpy's overlap check costs as much
        # as a small op) and operands are numpy values, not Python scalars.
        if self._general or self.reward != "log":
            return self._step_general(actions)
        raw, tgt, w = self._raw, self._target, self.weights
        # target weights on the simplex: clip (done by check_actions) and normalise, in float64
        np.copyto(raw, actions)
        s = raw.dot(self._ones)
        if np.count_nonzero(s) != len(s):  # an all-zero action means all cash
            zero = s[:, 0] == 0.0
            s[zero] = 1.0
            raw[zero, -1] = 1.0
        np.divide(raw, s, out=tgt)
        # this step's row, clamped so that stepping an ended market stays in range
        idx = np.add(np.minimum(self._t, self._last), self._start, out=self._idx)
        g = self._returns.take(idx, 0, self._gross, "clip")
        d = np.subtract(self._target_risky, self._weights_risky, out=self._diff)
        tc = np.abs(d).dot(self._turnover_cost)  # columns: τ and c·τ in one product
        turnover, ccost = tc[:, 0], tc[:, 1]
        hold = np.multiply(tgt, g, out=self._hold)
        growth = hold.dot(self._ones)
        np.divide(hold, growth, out=w)
        costs = ccost * self.wealth
        factor = (self._unit - ccost) * growth.reshape(-1)
        self.wealth = self.wealth * factor
        self._t = self._t + self._one
        info = {"wealth": self.wealth, "turnover": turnover, "costs": costs}
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self._observe(idx), np.log(factor), terminated, self._t >= self._n, info
