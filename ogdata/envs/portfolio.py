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

Observation (float32, length window·N + N + 1): the last `window` daily log returns of
every asset in percent, time-major, oldest first (returns up to the current day only),
then the current weights w (assets, cash). `info`: wealth W', turnover τ, costs C.
The default window of 10 days keeps an observation at 221 floats: what a transition costs
in a dataset and what the step copies; pass `window=` for longer histories.

Ids: portfolio-sp500 (training years 1990–2014), portfolio-sp500-eval (held-out
2015–2022), both on skfolio's 20 S&P 500 stocks (extra `realdata`); portfolio-synth
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

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket
from ogdata.envs.prices import FEATURE_BOUND, ReturnPaths
from ogdata.errors import EnvError


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

    source: "real" (universe sp500, `period` "train" or "eval", or explicit start/end dates),
    "gbm" or "regime" (synthetic, calibrated); `prices` (T, N) replaces the source with your
    own daily prices. assets: a subset of the tickers (default all 20).
    """

    def __init__(self, num_envs: int = 1, *, source: str = "real", period: str = "train",
                 start: str | None = None, end: str | None = None, assets=None, n_steps: int = 252,
                 window: int = 10, cost: float = 0.001, prices=None):
        super().__init__(num_envs)
        self.n_steps, self.window, self.cost = check_params("portfolio", n_steps, window, cost, 0.5)
        self.max_steps = self.n_steps
        self.paths = ReturnPaths(self.num_envs, source=source, universe="sp500", n_steps=self.n_steps,
                                 window=self.window, assets=assets, period=period, start=start, end=end,
                                 prices=prices)
        self.source = "custom" if prices is not None else source
        self.assets = self.paths.names
        B, N, w = self.num_envs, len(self.assets), self.window
        self.n_assets = N
        self._wn = w * N
        self.action_space = spaces.Box(0.0, 1.0, shape=(N + 1,), dtype=np.float32)
        low = np.concatenate([np.full(w * N, -FEATURE_BOUND), np.zeros(N + 1)]).astype(np.float32)
        high = np.concatenate([np.full(w * N, FEATURE_BOUND), np.ones(N + 1)]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        # state and preallocated work arrays
        self.weights = np.zeros((B, N + 1))
        self.wealth = np.ones(B)
        self._raw = np.empty((B, N + 1))
        self._target = np.empty((B, N + 1))
        self._hold = np.empty((B, N + 1))
        self._gross = np.empty((B, N + 1))
        self._diff = np.empty((B, N))
        self._idx = np.empty(B, dtype=np.int64)
        self._ones = np.ones((N + 1, 1))
        self._turnover_cost = np.stack([np.ones(N), np.full(N, self.cost)], axis=1)
        self._unit = np.float64(1.0)
        self._target_risky = self._target[:, :-1]
        self._weights_risky = self.weights[:, :-1]
        self._last = np.full(B, self.n_steps - 1, dtype=np.int64)
        self._start, self._returns = self.paths.start, self.paths.gross  # updated in place by paths.reset
        self._one, self._n = np.ones(B, dtype=np.int64), np.full(B, self.n_steps, dtype=np.int64)
        self._table = self.paths.padded_windows(N + 1)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        if self._table is None:
            return np.concatenate((self.paths.windows[rows], self.weights), axis=1, dtype=np.float32)
        obs = self._table.take(rows, axis=0)
        obs[:, self._wn:] = self.weights
        return obs

    def _reset(self, mask: np.ndarray):
        self.paths.reset(self.rng, mask)
        self.weights[mask] = 0.0
        self.weights[mask, -1] = 1.0
        self.wealth = np.where(mask, 1.0, self.wealth)  # fresh: arrays handed out are never mutated
        B = self.num_envs
        info = {"wealth": self.wealth, "turnover": np.zeros(B), "costs": np.zeros(B)}
        return self._observe(self.paths.start + np.minimum(self._t, self.n_steps) - 1), info

    def _step(self, actions: np.ndarray):
        # Small-batch speed notes: row sums are matrix products (B, N+1)·(N+1, 1), far faster
        # than reductions over short rows; ndarray methods (.dot, .take) skip the dispatch of
        # the np.* functions; outputs never alias inputs (numpy's overlap check costs as much
        # as a small op) and operands are numpy values, not Python scalars.
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
