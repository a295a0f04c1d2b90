"""Reference policies of the limit-order-book tasks (`ogdata.envs.lob_tasks`).

Execution (sell X lots in T steps; actions [market fraction, limit fraction, limit level]):
- "lob-execution/twap": a market order of remaining / steps-left every step, no limit orders.
- "lob-execution/queue-aware": rests the whole remainder as one sell at the reference ask (the
  order is reposted unchanged, so it keeps its queue position) and crosses the spread only for what
  the queue cannot deliver: with A lots ahead and s steps left, the touch should see about
  ρ μ Δt s market buys (ρ = 0.7), so lots beyond max(0, ρ μ Δt (s − 1) − A) are sold by market
  orders at the TWAP pace.
- "lob-execution/ac": Almgren–Chriss with impact fitted to this book: the schedule of
  `ogdata.policies.execution` with η (temporary, ticks per lot), γ (permanent, ticks per lot) and
  σ² (ticks² per step) measured by simulating the core's own book (`fit_impact`), executed by
  market orders; risk aversion λ = 1e-3 per tick·lot².
Market making (actions [bid level, bid size, ask level, ask size]):
- "lob-market-making/symmetric": one lot at the reference bid and ask, whatever the inventory.
- "lob-market-making/inventory-skew": one lot a side, the side that would grow the inventory
  stepped back one level per `skew` lots held and withdrawn beyond half the inventory bound.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ogdata.envs.lob import ASK, Book
from ogdata.policies.execution import _ac_fraction

_QS = 10.0  # the tasks observe queue sizes as q / (q + _QS)


def _decode(h: np.ndarray) -> np.ndarray:
    """Lots from an observed q / (q + _QS)."""
    h = np.clip(h.astype(np.float64), 0.0, 0.999)
    return _QS * h / (1.0 - h)


class _Exec:
    def __init__(self, core):
        self.core = core
        L = core.L
        self.i_q0 = L                  # ask level 0 queue
        self.i_time = 2 * L + 3
        self.i_lv, self.i_sz, self.i_ah = 2 * L + 4, 2 * L + 5, 2 * L + 6
        self.i_x = 2 * L + 7

    def steps_left(self, obs):
        return np.maximum(np.rint(obs[:, self.i_time].astype(np.float64) * self.core.T), 1.0)

    def remaining(self, obs):
        return np.rint(obs[:, self.i_x].astype(np.float64) * self.core.X)


class TWAP(_Exec):
    """A market order of remaining / steps left every step."""

    def __call__(self, obs, rng):
        out = np.zeros((obs.shape[0], 3), dtype=np.float32)
        out[:, 0] = 1.0 / self.steps_left(obs)
        return out


class QueueAware(_Exec):
    """Rest at the touch, keep the queue position, cross only for what the queue cannot deliver."""

    def __init__(self, core, rho: float = 0.7):
        super().__init__(core)
        bk = core.book
        self.per_step = rho * bk.flow.mu * bk.dt

    def __call__(self, obs, rng):
        s = self.steps_left(obs)
        x = self.remaining(obs)
        has = obs[:, self.i_sz] > 0
        ahead = np.where(has, _decode(obs[:, self.i_ah]), _decode(obs[:, self.i_q0]))
        capacity = np.maximum(self.per_step * (s - 1.0) - ahead, 0.0)
        deficit = np.maximum(x - capacity, 0.0)
        mkt = np.ceil(deficit / s)
        out = np.zeros((obs.shape[0], 3), dtype=np.float32)
        out[:, 0] = np.where(x > 0, mkt / np.maximum(x, 1.0), 0.0)
        out[:, 1] = 1.0                              # the rest rests at level 0 (u = 0)
        return out


def fit_impact(core, books: int = 512, seed: int = 0) -> dict[str, float]:
    """η, γ (ticks per lot) and σ² (ticks² per step) of the core's book, by simulation.

    η: the slope of the average shortfall per lot (vs the mid) of market sells of 1..8 lots on
    stationary books; γ: the mid's mean move 10 steps after such a sell, per lot; σ²: the variance
    of the mid's change over 50 steps without trading, per step.
    """
    bk = core.book
    return dict(_fit(bk.flow, bk.K, bk.dt, bk.informed, bk.hawkes, books, seed))


@lru_cache(maxsize=8)
def _fit(flow, K, dt, informed, hawkes, books, seed):
    rng = np.random.default_rng(seed)
    vs = np.arange(1, 9)
    cost, perm = [], []
    for v in vs:
        bk = Book(books, K, calibration=flow, dt=dt, informed=informed, hawkes=hawkes if hawkes[0] > 0 else None)
        bk.reset(np.ones(books, bool), rng)
        m0 = bk.mid()
        got, val = bk.market(ASK, np.full(books, v))
        cost.append(np.mean((got * m0 - val) / np.maximum(got, 1)))
        for _ in range(10):
            bk.advance(rng)
        perm.append(np.mean(m0 - bk.mid()))
    eta = float(np.polyfit(vs, cost, 1)[0])
    gamma = float(max(np.polyfit(vs, perm, 1)[0], 0.0))
    bk = Book(books, K, calibration=flow, dt=dt, informed=informed, hawkes=hawkes if hawkes[0] > 0 else None)
    bk.reset(np.ones(books, bool), rng)
    m0 = bk.mid()
    for _ in range(50):
        bk.advance(rng)
    sigma2 = float(np.var(bk.mid() - m0) / 50)
    return (("eta", max(eta, 1e-6)), ("gamma", gamma), ("sigma2", sigma2))


class AlmgrenChriss(_Exec):
    """Almgren–Chriss with η, γ, σ fitted to the core's book, executed by market orders."""

    def __init__(self, core, risk_aversion: float = 1e-3):
        super().__init__(core)
        fit = fit_impact(core)
        self.fit = fit
        eta_t = fit["eta"] - 0.5 * fit["gamma"]
        lsig = risk_aversion * fit["sigma2"]
        self.kappa = 0.0 if lsig <= 0 else (math.inf if eta_t <= 0 else math.acosh(1.0 + lsig / (2.0 * eta_t)))

    def __call__(self, obs, rng):
        out = np.zeros((obs.shape[0], 3), dtype=np.float32)
        out[:, 0] = _ac_fraction(self.kappa, self.steps_left(obs))
        return out


class _Maker:
    def __init__(self, core):
        self.core = core
        self.u1 = 1.0 / core.max_order        # one lot
        self.i_x = 2 * core.L + 4 + 6


class Symmetric(_Maker):
    """One lot at the reference bid and ask."""

    def __call__(self, obs, rng):
        out = np.zeros((obs.shape[0], 4), dtype=np.float32)
        out[:, 1] = out[:, 3] = self.u1
        return out


class InventorySkew(_Maker):
    """One lot a side; the side that grows the inventory steps back a level per `skew` lots held,
    and is withdrawn beyond half the inventory bound."""

    def __init__(self, core, skew: float = 2.0):
        super().__init__(core)
        self.skew = float(skew)

    def __call__(self, obs, rng):
        c = self.core
        inv = np.rint(obs[:, self.i_x].astype(np.float64) * c.q_max)
        back = np.minimum(np.floor(np.abs(inv) / self.skew), c.K - 1) / (c.K - 1)
        out = np.zeros((obs.shape[0], 4), dtype=np.float32)
        out[:, 0] = np.where(inv > 0, back, 0.0)
        out[:, 2] = np.where(inv < 0, back, 0.0)
        out[:, 1] = np.where(inv < c.q_max / 2, self.u1, 0.0)
        out[:, 3] = np.where(inv > -c.q_max / 2, self.u1, 0.0)
        return out
