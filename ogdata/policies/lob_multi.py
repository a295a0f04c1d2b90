"""Reference policies of the multi-agent order-book ids (`ogdata.envs.lob_multi`).

Joint policies: `policy(obs (B, n, d), rng) -> actions (B, n, A)`, each agent's action from the
observations (the desks' firm schedule reads every desk's, as a firm's router would).
Makers ([bid level, bid size, ask level, ask size]):
- "lob-competing-makers/symmetric": every maker one lot at the reference bid and ask.
- "lob-competing-makers/inventory-skew": every maker one lot a side, the side that grows its own
  inventory stepped back a level per two lots held and withdrawn beyond half the bound (the
  single-agent `lob-market-making/inventory-skew`, per maker).
Desks ([m, l, u]: market fraction of the unrested remainder, limit fraction, level):
- "lob-desks/twap": independent TWAPs — each desk sends a market order of remaining / steps left of
  its own child order, in its own direction: the desks with opposite signs both pay the spread.
- "lob-desks/firm-twap": one schedule for the firm — the net remainder R = Σ sign_i · remaining_i,
  R / steps left lots a step by market orders, routed to the desks on R's side in proportion to
  their remaining (largest remainder first for the rounding), the others idle; desks never cross
  and the offsetting child orders are crossed internally at the end (the env's rule).
Mixed (`lob-makers-and-executor`): "…/skew-and-twap" (makers inventory-skew, executor TWAP) and
"…/symmetric-and-twap".
"""

from __future__ import annotations

import numpy as np


class _Joint:
    def __init__(self, core):
        self.core = core
        L = core.L
        self.i_time, self.i_pos, self.i_dir = 2 * L + 3, 2 * L + 10, 2 * L + 11
        self.u1 = 1.0 / core.max_order
        self.A = core.action_space.shape[0]

    def steps_left(self, obs):
        return np.maximum(np.rint(obs[:, :, self.i_time].astype(np.float64) * self.core.T), 1.0)

    def remaining(self, obs):
        return np.rint(obs[:, :, self.i_pos].astype(np.float64) * self.core.X[None, :])

    def _quotes(self, obs, out, skew: float | None):
        c, mk = self.core, self.core.maker
        out[:, mk, 1] = out[:, mk, 3] = self.u1
        if skew is None:
            return
        inv = np.rint(obs[:, mk, self.i_pos].astype(np.float64) * c.q_max)
        back = np.minimum(np.floor(np.abs(inv) / skew), c.K - 1) / (c.K - 1)
        out[:, mk, 0] = np.where(inv > 0, back, 0.0)
        out[:, mk, 2] = np.where(inv < 0, back, 0.0)
        out[:, mk, 1] = np.where(inv < c.q_max / 2, self.u1, 0.0)
        out[:, mk, 3] = np.where(inv > -c.q_max / 2, self.u1, 0.0)

    def _twap(self, obs, out):
        dk = self.core.desk
        out[:, dk, 0] = 1.0 / self.steps_left(obs)[:, dk]


class Symmetric(_Joint):
    """Every maker one lot at the reference bid and ask (desks, if any, TWAP)."""

    def __call__(self, obs, rng):
        out = np.zeros(obs.shape[:2] + (self.A,), dtype=np.float32)
        self._quotes(obs, out, None)
        self._twap(obs, out)
        return out


class InventorySkew(_Joint):
    """Every maker one lot a side, skewed by its own inventory (desks, if any, TWAP)."""

    def __init__(self, core, skew: float = 2.0):
        super().__init__(core)
        self.skew = float(skew)

    def __call__(self, obs, rng):
        out = np.zeros(obs.shape[:2] + (self.A,), dtype=np.float32)
        self._quotes(obs, out, self.skew)
        self._twap(obs, out)
        return out


class IndependentTWAP(_Joint):
    """Each desk a market order of its own remaining / steps left, in its own direction."""

    def __call__(self, obs, rng):
        out = np.zeros(obs.shape[:2] + (self.A,), dtype=np.float32)
        self._twap(obs, out)
        return out


class FirmTWAP(_Joint):
    """The firm's net remainder at TWAP pace, routed to the desks on its side only (no crossing)."""

    def __call__(self, obs, rng):
        c = self.core
        rem = self.remaining(obs) * c.desk
        sign = c.sign[None, :]
        net = (rem * sign).sum(axis=1)                                       # > 0: the firm still sells
        s = self.steps_left(obs)[:, 0]
        lots = np.floor(np.abs(net) / s + 0.5)
        on_side = (sign * np.sign(net)[:, None] > 0) & (rem > 0)
        pool = np.where(on_side, rem, 0.0)
        share = pool / np.maximum(pool.sum(axis=1, keepdims=True), 1.0) * lots[:, None]
        alloc = np.floor(share)
        short = (lots - alloc.sum(axis=1)).astype(np.int64)                 # rounding: largest remainders
        order = np.argsort(-(share - alloc) - 1e-9 * np.arange(c.n), axis=1, kind="stable")
        rank = np.argsort(order, axis=1)
        alloc += (rank < short[:, None]) & on_side
        alloc = np.minimum(alloc, pool)
        out = np.zeros(obs.shape[:2] + (self.A,), dtype=np.float32)
        out[:, :, 0] = np.where(rem > 0, alloc / np.maximum(rem, 1.0), 0.0)
        return out
