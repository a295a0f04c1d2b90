"""The two tasks on the limit-order book (`ogdata.envs.lob`): execution and market making.

Why two: they read the book from the two sides of the spread. An executor pays the spread and
walks the book (impact is whatever the book does, not a formula); a maker earns it but waits in
FIFO queues and is filled first by the informed flow, just before the price moves against it.

`lob-execution` — sell X lots within T steps of Δt seconds. Action Box [0, 1]^3, every step:
  [0] m: market-order fraction — a market sell of round(m · remaining) lots walks the bids now;
  [1] l: limit fraction — a resting sell of round(l · (remaining after the market order)) lots;
  [2] u: its level, round(u · (K − 1)) on the ask side (0 = the reference ask).
  The limit order is reposted every step: the same level with no larger size keeps its queue
  position, l = 0 cancels it. Unfilled inventory after step T is sold by one market order walking
  the bids (lots beyond the K visible levels fill at the price one tick beyond the last level,
  minus `beyond_penalty` ticks). Reward per step, in bp of the arrival value X · m0 (m0 the mid at
  reset): Σ fills (price − m0) · 1e4 / (X m0), so an episode's return is minus the implementation
  shortfall against the arrival mid. Episodes end when the inventory is sold or after T steps.
`lob-market-making` — quote for T steps. Action Box [0, 1]^4: [bid level, bid size, ask level, ask
  size]; level round(u (K − 1)) from the reference quote outwards, size round(s · max_order) lots
  (0 = no quote on that side), capped so the inventory stays within ±max_inventory. Reward per step:
  Δ(cash + inventory × mid) − φ · inventory² (ticks), and −α · inventory² at the end: PnL marked to
  mid minus an inventory penalty. By default 30 % of the market orders are informed (see the book):
  naive symmetric quoting at the touch loses to them.

Observations are float32 in stated bounds: the book's first `obs_levels` levels per side as
q / (q + 10) (in [0, 1)), the spread (capped at K ticks) / K, the mid move since reset in ticks / 20
clipped to [−1, 1], the last step's market-order imbalance (buys − sells) / (buys + sells + 1), the
agent's own order(s) (level / (K − 1), size, volume ahead / (ahead + 10)), time left / T, and the
inventory (execution: remaining / X; making: inventory / max_inventory). info: cash (tick·lots),
inventory, mid, spread, fills, and wealth / shortfall. `augment_stock=True` (lob-execution) appends the
stock features of the risk tasks (`ogdata.envs.risk`): tanh(reward so far / 5 bp) and the time left.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket, _preview
from ogdata.envs.lob import ASK, BID, Book
from ogdata.errors import EnvError

_BP = 1e4
STOCK_SCALE = 5.0  # augment_stock (lob-execution): tanh(Σ rewards so far / 5 bp); an episode's return is ~ −1.5 bp, its tail −7
_QS = 10.0        # queue sizes are observed as q / (q + _QS)
_MOVE = 20.0      # mid moves since reset are observed in units of _MOVE ticks, clipped to [-1, 1]


def _int_kw(name: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not lo <= int(v) <= hi:
        raise EnvError(f"lob kwarg {name}={_preview(v)} is invalid; pass an integer in [{lo}, {hi}]")
    return int(v)


def _num_kw(name: str, v, lo: float, hi: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise EnvError(f"lob kwarg {name}={_preview(v)} is not a number; pass a value in [{lo:g}, {hi:g}]") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise EnvError(f"lob kwarg {name}={_preview(v)} is out of range: pass a value in [{lo:g}, {hi:g}]")
    return f


class _LobTask(VectorMarket):
    """The book, the shared observation block and the kwargs every lob task takes."""

    _n_own = 1

    def __init__(self, num_envs: int = 1, *, levels: int = 10, calibration: str = "cst", dt: float = 1.0,
                 informed: float = 0.0, hawkes=None, steps: int = 60, obs_levels: int = 5):
        super().__init__(num_envs)
        self.K = _int_kw("levels", levels, 5, 100)
        self.T = _int_kw("steps", steps, 1, 100_000)
        self.L = _int_kw("obs_levels", obs_levels, 1, self.K)
        self.dt = _num_kw("dt", dt, 1e-3, 60.0)
        informed = _num_kw("informed", informed, 0.0, 0.95)
        self.book = Book(self.num_envs, self.K, calibration=calibration, dt=self.dt, informed=informed,
                         hawkes=hawkes)
        self.max_steps = self.T
        B = self.num_envs
        self.m0 = np.zeros(B)
        self.mid = np.zeros(B)
        self.cash = np.zeros(B)
        self.flow = np.zeros(B)
        self.fills = np.zeros((B, 2), dtype=np.int64)
        self.done = np.zeros(B, dtype=bool)

    def _obs_space(self, extra_lo: list[float], extra_hi: list[float]) -> spaces.Box:
        lo = np.concatenate([np.zeros(2 * self.L), [0.0, -1.0, -1.0, 0.0], np.zeros(3 * self._n_own), extra_lo])
        hi = np.concatenate([np.ones(2 * self.L), [1.0, 1.0, 1.0, 1.0], np.ones(3 * self._n_own), extra_hi])
        return spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)

    def _book_obs(self, sides: tuple[int, ...], size_scale: float) -> list[np.ndarray]:
        bk = self.book
        q = bk.q[:, :, :self.L].astype(np.float64)
        bid, ask = bk.best()
        spread = np.minimum(ask - bid, self.K) / self.K
        move = np.clip((self.mid - self.m0) / _MOVE, -1.0, 1.0)
        cols = [(q / (q + _QS)).reshape(self.num_envs, -1), spread[:, None], move[:, None], self.flow[:, None],
                ((self.T - np.minimum(self._t, self.T)) / self.T)[:, None]]
        for s in sides:
            on = bk.o_sz[:, s] > 0
            ah = bk.o_ahead[:, s].astype(np.float64)
            cols += [(on * bk.o_lv[:, s] / (self.K - 1))[:, None],
                     np.minimum(bk.o_sz[:, s] / size_scale, 1.0)[:, None], (on * ah / (ah + _QS))[:, None]]
        return cols

    def _reset_book(self, mask: np.ndarray) -> None:
        self.book.reset(mask, self.rng)
        mid = self.book.mid()
        self.m0 = np.where(mask, mid, self.m0)
        self.mid = np.where(mask, mid, self.mid)
        self.cash = np.where(mask, 0.0, self.cash)
        self.flow = np.where(mask, 0.0, self.flow)
        self.fills[mask] = 0
        self.done[mask] = False

    def _advance_book(self):
        fl = self.book.advance(self.rng)
        vol = fl.volume
        self.flow = (vol[:, 0] - vol[:, 1]) / (vol[:, 0] + vol[:, 1] + 1.0)
        return fl


class LobExecution(_LobTask):
    """Sell X lots within T steps on the order book (`lob-execution`)."""

    def __init__(self, num_envs: int = 1, *, lots: int = 20, beyond_penalty: float = 1.0, steps: int = 60,
                 augment_stock: bool = False, stock_scale: float = STOCK_SCALE, **kw):
        super().__init__(num_envs, steps=steps, **kw)
        self.X = _int_kw("lots", lots, 1, 1_000_000)
        self.beyond = _num_kw("beyond_penalty", beyond_penalty, 0.0, 1e6)
        self.action_space = spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
        self.observation_space = self._obs_space([0.0], [1.0])
        self.x = np.zeros(self.num_envs, dtype=np.int64)
        if augment_stock:
            self.augment_stock(stock_scale)

    def _obs_info(self):
        cols = self._book_obs((ASK,), self.X) + [(self.x / self.X)[:, None]]
        obs = np.concatenate(cols, axis=1, dtype=np.float32)
        bid, ask = self.book.best()
        sold = self.X - self.x
        info = {"inventory": self.x.copy(), "cash": self.cash.copy(), "mid": self.mid.copy(),
                "spread": (ask - bid).astype(np.float64), "fills": self.fills.copy(),
                "shortfall_bp": (sold * self.m0 - self.cash) * _BP / (self.X * self.m0)}
        return obs, info

    def _reset(self, mask):
        self._reset_book(mask)
        self.x = np.where(mask, self.X, self.x)
        return self._obs_info()

    def _step(self, a):
        bk, B = self.book, self.num_envs
        live = ~self.done
        a = a.astype(np.float64)
        x = self.x
        mkt = np.where(live, np.floor(a[:, 0] * x + 0.5), 0).astype(np.int64)
        got, value = bk.market(ASK, mkt)                  # ASK: the agent sells, walking the bids
        lim = np.where(live, np.floor(a[:, 1] * (x - got) + 0.5), 0).astype(np.int64)
        lvl = np.floor(a[:, 2] * (self.K - 1) + 0.5).astype(np.int64)
        bk.post(ASK, lvl, lim)
        fl = self._advance_book()
        lf = fl.fills[:, ASK]
        sold = got + lf
        value = value + lf * fl.fill_px[:, ASK]
        self.x = x - sold
        self._t += live
        end = live & ((self._t >= self.T) | (self.x <= 0))
        if end.any():                                     # dump what is left, walking the bids
            bk.post(ASK, 0, 0, mask=end)
            left = np.where(end, self.x, 0)
            g2, v2 = bk.market(ASK, left)
            beyond = left - g2
            v2 = v2 + beyond * (bk.pb - self.K - self.beyond)
            sold = sold + left
            value = value + v2
            self.x = self.x - left
        self.cash = self.cash + value
        self.fills[:, 0], self.fills[:, 1] = got, lf
        self.mid = bk.mid()
        rew = (value - sold * self.m0) * _BP / (self.X * self.m0)
        self.done |= end
        obs, info = self._obs_info()
        return obs, rew, end, np.zeros(B, dtype=bool), info


class LobMarketMaking(_LobTask):
    """Quote a bid and an ask on the order book for T steps (`lob-market-making`)."""

    _n_own = 2

    def __init__(self, num_envs: int = 1, *, max_order: int = 5, max_inventory: int = 20,
                 running_penalty: float = 0.01, terminal_penalty: float = 0.5, informed: float = 0.3,
                 steps: int = 200, **kw):
        super().__init__(num_envs, steps=steps, informed=informed, **kw)
        self.max_order = _int_kw("max_order", max_order, 1, 10_000)
        self.q_max = _int_kw("max_inventory", max_inventory, 1, 1_000_000)
        self.phi = _num_kw("running_penalty", running_penalty, 0.0, 1e6)
        self.alpha = _num_kw("terminal_penalty", terminal_penalty, 0.0, 1e6)
        self.action_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.observation_space = self._obs_space([-1.0], [1.0])
        self.inv = np.zeros(self.num_envs, dtype=np.int64)
        self.wealth = np.zeros(self.num_envs)

    def _obs_info(self):
        cols = self._book_obs((BID, ASK), self.max_order) + [(self.inv / self.q_max)[:, None]]
        obs = np.concatenate(cols, axis=1, dtype=np.float32)
        bid, ask = self.book.best()
        info = {"inventory": self.inv.copy(), "cash": self.cash.copy(), "mid": self.mid.copy(),
                "spread": (ask - bid).astype(np.float64), "fills": self.fills.copy(),
                "wealth": self.wealth.copy()}
        return obs, info

    def _reset(self, mask):
        self._reset_book(mask)
        self.inv = np.where(mask, 0, self.inv)
        self.wealth = np.where(mask, 0.0, self.wealth)
        return self._obs_info()

    def _step(self, a):
        bk, B = self.book, self.num_envs
        live = ~self.done
        a = a.astype(np.float64)
        lvl = np.floor(a[:, 0::2] * (self.K - 1) + 0.5).astype(np.int64)
        size = np.floor(a[:, 1::2] * self.max_order + 0.5).astype(np.int64)
        room = np.stack([self.q_max - self.inv, self.q_max + self.inv], axis=1)
        size = np.where(live[:, None], np.minimum(size, room), 0)
        bk.post(BID, lvl[:, 0], size[:, 0])
        bk.post(ASK, lvl[:, 1], size[:, 1])
        fl = self._advance_book()
        f = fl.fills
        self.inv = self.inv + f[:, BID] - f[:, ASK]
        self.cash = self.cash + (f[:, ASK] * fl.fill_px[:, ASK] - f[:, BID] * fl.fill_px[:, BID])
        self.mid = bk.mid()
        w = self.cash + self.inv * self.mid
        dw = w - self.wealth
        self.wealth = w
        self._t += live
        end = live & (self._t >= self.T)
        inv2 = self.inv.astype(np.float64) ** 2
        rew = np.where(live, dw - self.phi * inv2 - self.alpha * end * inv2, 0.0)
        if end.any():
            bk.post(BID, 0, 0, mask=end)
            bk.post(ASK, 0, 0, mask=end)
        self.fills = f.copy()
        self.done |= end
        obs, info = self._obs_info()
        return obs, rew, end, np.zeros(B, dtype=bool), info

