"""Trading one asset with a short / flat / long position: `trading-*` ids, one vectorised core.

Each of B markets starts at a random date of the period (real prices) or on a fresh
synthetic path, flat with wealth 1, and lasts `n_steps` trading days (default 252); the
last step returns truncated=True, terminated is always False.

Action: Discrete(3), 0 = short (position −1), 1 = flat (0), 2 = long (+1). With
`continuous=True` the action is instead a Box [−1, 1] target position (out-of-range values
are clipped, as everywhere in ogdata). The position is the exposure as a fraction of
wealth, held from the close of day d to the close of day d+1.

One step at day d, previous position p, new position p⁺, costs rate c:

    return    r = P(d+1)/P(d) − 1
    costs     κ = c · |p⁺ − p|                   (a fraction of wealth)
    reward    p⁺ · r − κ
    wealth    W' = W · (1 + p⁺ · r − κ)

Reward (kwarg `reward`, `ogdata.envs.rewards`): "return" (default, the p⁺·r − κ above = W'/W − 1),
"log" (log W'/W) or "dsr" (the differential Sharpe ratio of W'/W − 1, EMA rate `dsr_eta`).

Observation (float32, length window + 1): the last `window` log returns in percent (one per
step: a day, an hour), oldest first (returns up to the current step only), then the current
position. `info`: wealth W', position p⁺, costs (κ·W, in wealth units). `augment_stock=True` appends
the stock features (reward so far, time left; `ogdata.envs.core.StockFeatures`) for risk-sensitive tasks.

Ids: trading-sp500 (training years 1999–2014) and trading-sp500-eval (held-out 2015–2018)
on the S&P 500 index of `arch.data.sp500` (extra `realdata`; price only, no dividends);
trading-wti (WTI spot crude, daily, training 1986–2011) and trading-wti-eval (held-out
2012 → 2019-01-03); trading-eurusd (EUR/USD hourly ask closes of gym-anytrading, 120-hour episodes
with a 1 bp cost per unit of position change, training 2017-01 → 2017-10) and trading-eurusd-eval
(held-out 2017-11 → 2017-12: about 1,000 hours, a tiny market; see `prices` for sources and biases);
trading-synth (GBM) and
trading-synth-regime (two-regime Gaussian HMM: a calm bull and a turbulent bear regime),
calibrated on the training years (no extra). References (names; the code is in
`ogdata.policies.trading`): "random" and
"trading/always-long" (expert).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket
from ogdata.envs.portfolio import check_params
from ogdata.envs.prices import FEATURE_BOUND, FEATURE_SCALE, ReturnPaths
from ogdata.envs.rewards import DifferentialSharpe, check_reward, pay
from ogdata.errors import EnvError

SHORT, FLAT, LONG = 0, 1, 2
STOCK_SCALE = 0.25  # augment_stock: the stock feature is tanh(Σ rewards so far / 0.25) (a year's return ~0.1-0.3)


class Trading(VectorMarket):
    """B single-asset trading markets; see the module docstring for the economics.

    source: "real" (`universe` "sp500-index", "wti" or "eurusd"; `period` "train" or "eval",
    or explicit start/end dates), "gbm" or "regime" (synthetic, calibrated on the S&P 500
    index); `prices` (T,) replaces the source with your own prices. reward, dsr_eta:
    `ogdata.envs.rewards`.
    """

    def __init__(self, num_envs: int = 1, *, source: str = "real", universe: str = "sp500-index",
                 period: str = "train", start: str | None = None, end: str | None = None, n_steps: int = 252,
                 window: int = 20, cost: float = 0.001, continuous: bool = False, reward: str = "return",
                 dsr_eta: float = 0.01, prices=None, augment_stock: bool = False, stock_scale: float = STOCK_SCALE):
        super().__init__(num_envs)
        self.n_steps, self.window, self.cost = check_params("trading", n_steps, window, cost, 0.5)
        self.reward, self.dsr_eta = check_reward("trading", reward, dsr_eta)
        if source != "real" and prices is None and universe != "sp500-index":
            raise EnvError(f"synthetic prices are calibrated on universe 'sp500-index' only, not {universe!r}")
        self.universe = universe
        self.max_steps = self.n_steps
        if prices is not None:
            prices = np.asarray(prices, dtype=np.float64)
            if prices.ndim == 2 and prices.shape[1] == 1:
                prices = prices[:, 0]
            if prices.ndim != 1:
                raise EnvError(f"trading takes the prices of one asset, shape (T,); got {prices.shape}")
        self.paths = ReturnPaths(self.num_envs, source=source, universe=universe, n_steps=self.n_steps,
                                 window=self.window, period=period, start=start, end=end, prices=prices)
        self.source = "custom" if prices is not None else source
        self.continuous = bool(continuous)
        B, w = self.num_envs, self.window
        if self.continuous:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(3)
        low = np.concatenate([np.full(w, -FEATURE_BOUND), [-1.0]]).astype(np.float32)
        high = np.concatenate([np.full(w, FEATURE_BOUND), [1.0]]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.position = np.zeros(B)
        self.wealth = np.ones(B)
        self._gross = self.paths.gross[:, 0]
        self._idx = np.empty(B, dtype=np.int64)
        self._last = np.full(B, self.n_steps - 1, dtype=np.int64)
        self._start = self.paths.start  # updated in place by paths.reset
        self._one, self._n = np.ones(B, dtype=np.int64), np.full(B, self.n_steps, dtype=np.int64)
        self._unit, self._cost = np.float64(1.0), np.float64(self.cost)
        self._table = self.paths.padded_windows(1)
        self._dsr = DifferentialSharpe(B, self.dsr_eta) if self.reward == "dsr" else None
        if augment_stock:
            self.augment_stock(stock_scale)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        if self._table is None:
            return np.concatenate((self.paths.windows[rows], self.position[:, None]), axis=1, dtype=np.float32)
        obs = self._table.take(rows, axis=0)
        obs[:, -1] = self.position
        return obs

    def _reset(self, mask: np.ndarray):
        self.paths.reset(self.rng, mask)
        self.position = np.where(mask, 0.0, self.position)  # fresh: arrays handed out are never mutated
        self.wealth = np.where(mask, 1.0, self.wealth)
        info = {"wealth": self.wealth, "position": self.position, "costs": np.zeros(self.num_envs)}
        obs = self._observe(self.paths.start + np.minimum(self._t, self.n_steps) - 1)
        if self._dsr is not None:  # prior variance: the window's returns (rewards.py)
            x = obs[:, :self.window].astype(np.float64) / FEATURE_SCALE
            self._dsr.reset(mask, np.square(x).mean(axis=1))
        return obs, info

    def _step(self, actions: np.ndarray):
        # outputs never alias inputs; operands are numpy values, not Python scalars: see Portfolio._step
        pos = actions[:, 0].astype(np.float64) if self.continuous else actions - self._unit
        idx = np.add(np.minimum(self._t, self._last), self._start, out=self._idx)
        ret = self._gross.take(idx, 0, None, "clip") - self._unit
        ccost = np.abs(pos - self.position) * self._cost
        reward = pos * ret - ccost
        costs = ccost * self.wealth
        self.wealth = self.wealth * (self._unit + reward)
        if self.reward != "return":
            reward = pay(self.reward, self._unit + reward, self._dsr)
        self.position = pos
        self._t = self._t + self._one
        info = {"wealth": self.wealth, "position": pos, "costs": costs}
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self._observe(idx), reward, terminated, self._t >= self._n, info
