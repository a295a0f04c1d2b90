"""Many agents on one order book: competing makers, a firm's desks, makers beside an executor.

Why: on a real book the other liquidity providers and the other desks are part of the market. Here
they are agents of the same game on one `ogdata.envs.lob_agents.AgentBook` (price-time priority among
agents and the background flow), so queue competition, undercutting and crossing between agents
emerge from the matching, as impact and adverse selection do in the single-agent lob tasks.

Agents are makers or desks (executors):
- maker, action [bid level, bid size, ask level, ask size] in [0, 1] (as `lob-market-making`: level
  round(u (K − 1)) from the reference quote outwards, size round(s · max_order) lots, capped so the
  inventory stays within ±max_inventory). Reward Δ(cash + inventory × mid) − φ inventory² per step and
  −α inventory² at the end (ticks): its own PnL marked to mid minus its inventory penalty.
- desk, a child order of `lots` X_i (> 0 sells, < 0 buys), action [m, l, u] in [0, 1] (a mixed id pads
  a fourth, ignored, component): a resting limit order of round(l · remaining) lots at level u on its
  own side (asks for a seller, bids for a buyer) and a market order of round(m · (remaining − resting))
  lots, so resting + market never exceed what is left. Its implementation shortfall is
  Σ fills sign · lots · (m0 − price) (m0 the mid at reset); the reward is minus its increment, in bp
  of |X_i| m0. Whatever is left after T steps goes to the market at the end (as `lob-execution`:
  lots beyond the K levels at the price one tick past the last, minus `beyond_penalty` ticks).
A step: (1) every agent's limit orders (makers' quotes, desks' resting orders), orders new this step
queued at a shared level in an order that is pairwise fair over every 2n steps (`queue_rank`: the agent
order rotated, then its reverse rotated, the cycle starting at a uniformly drawn step each episode, so no
agent is first at the opening, when everyone joins at once; a repost at the same level with no larger
size keeps its place);
(2) desks' market orders, in agent order (ids with several desks are cooperative), each walking the
book through background lots and other agents' resting orders alike; (3) the background step. Episodes
last `steps` steps for every agent.

Ids:
- `lob-competing-makers-<n>` (n = 2, 3), general-sum: n makers against the same background flow (30 %
  informed), each rewarded on its own PnL − penalty. What "expert" and a tier mean here: a *joint*
  policy (every maker's rule), ranked by the sum (reported: the mean) of the makers' returns — the
  references record each maker's own score beside it; no claim of equilibrium is made.
- `lob-desks-<n>` (n = 2, 4), cooperative: desks of one firm work one parent order, net sell X =
  Σ X_i = 20 lots in 60 steps, arriving as child orders of both signs (desks-2: sell 30, buy 10;
  desks-4: sell 15, 15, buy 5, 5). Team reward: minus the firm's shortfall increment (the sum over desks)
  in bp of X m0. Desks' orders can cross each other — a buying desk's market order lifts a selling
  desk's resting ask in its FIFO turn — and such a trade adds nothing to the firm's shortfall (the two
  desks' terms cancel) but costs the firm its place in the queue and time. At the end the firm crosses
  its desks' offsetting leftovers internally at the mid (no cost) and sends the net rest to the market.
- `lob-makers-and-executor`: 2 makers (as above) and an executor selling 20 lots in 100 steps, each
  rewarded on its own (the executor in bp of its order); general-sum like the makers' id.

Observation (float32) of agent i: the visible book's first `obs_levels` levels a side (every agent's
orders included) as q / (q + 10), spread / K, mid move since reset / 20 ticks (clipped), last step's
background market-order imbalance, time left / T; its own bid and ask (level / (K − 1), size / scale,
lots ahead / (lots ahead + 10)); its position (maker: inventory / max_inventory; desk: remaining /
|X_i|) and its direction (maker 0, selling desk +1, buying desk −1). Global state: the book block and
every agent's last eight values. info (B, n): cash, inventory (desk: remaining), wealth, shortfall
(ticks·lots), fills [bid, ask], crossed (lots traded with another agent this step); (B,): mid, spread,
firm_shortfall_bp (desks).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ogdata.envs.core import VectorMarket, _preview
from ogdata.envs.lob import ASK, BID
from ogdata.envs.lob_agents import AgentBook
from ogdata.envs.lob_tasks import _MOVE, _QS, _int_kw, _num_kw
from ogdata.errors import EnvError

_BP = 1e4


def queue_rank(t: np.ndarray, n: int) -> np.ndarray:
    """(B, n) order in which the n agents' orders new at step t (B,) join a shared queue (rank 0 first).

    The cyclic order 0, 1, …, n−1 rotated by one a step for n steps, then its reverse rotated for n steps:
    over every 2n steps each pair of agents is ahead of the other exactly n times. (Rotation alone is
    pairwise fair only for n = 2: with three agents, agent 0 would be ahead of agent 1 two steps in three.)
    For n = 2 it is plain alternation."""
    k = (t % n)[:, None]
    i = np.arange(n)[None, :]
    return np.where(((t // n) % 2 == 0)[:, None], (i - k) % n, (k - i) % n)


class LobAgents(VectorMarket):
    """B books × n agents (makers and desks); the core under the multi-agent lob ids."""

    multi_agent = True

    def __init__(self, num_envs: int = 1, *, makers: int = 0, lots=(), team: bool = False, levels: int = 10,
                 calibration: str = "cst", dt: float = 1.0, informed: float = 0.3, hawkes=None, steps: int = 200,
                 obs_levels: int = 5, max_order: int = 5, max_inventory: int = 20, running_penalty: float = 0.01,
                 terminal_penalty: float = 0.5, beyond_penalty: float = 1.0):
        super().__init__(num_envs)
        nm = _int_kw("makers", makers, 0, 16)
        try:
            child = [int(x) for x in lots]
            ok = all(x == y and not isinstance(y, bool) for x, y in zip(child, lots, strict=True)) \
                and all(c != 0 for c in child)
        except (TypeError, ValueError):
            ok = False
        if not ok or nm + len(child) < 2 or nm + len(child) > 16 or any(abs(c) > 1_000_000 for c in child):
            raise EnvError(f"lob kwarg lots={_preview(lots)} is invalid; pass one non-zero integer per desk "
                           "(> 0 sells, < 0 buys, |lots| <= 1e6), 2..16 agents with the makers")
        self.team = bool(team)
        self.general_sum = not self.team        # each agent on its own reward (per-agent scores are recorded)
        if self.team and (nm or sum(child) == 0):
            raise EnvError("a team of desks needs desks only and a non-zero net parent order (sum of lots)")
        self.n_makers, self.n = nm, nm + len(child)
        n = self.n
        self.K = _int_kw("levels", levels, 5, 100)
        self.T = _int_kw("steps", steps, 1, 100_000)
        self.L = _int_kw("obs_levels", obs_levels, 1, self.K)
        self.dt = _num_kw("dt", dt, 1e-3, 60.0)
        informed = _num_kw("informed", informed, 0.0, 0.95)
        self.max_order = _int_kw("max_order", max_order, 1, 10_000)
        self.q_max = _int_kw("max_inventory", max_inventory, 1, 1_000_000)
        self.phi = _num_kw("running_penalty", running_penalty, 0.0, 1e6)
        self.alpha = _num_kw("terminal_penalty", terminal_penalty, 0.0, 1e6)
        self.beyond = _num_kw("beyond_penalty", beyond_penalty, 0.0, 1e6)
        self.book = AgentBook(self.num_envs, n, self.K, calibration=calibration, dt=self.dt, informed=informed,
                              hawkes=hawkes)
        self.max_steps = self.T
        self.agents = tuple([f"maker_{i}" for i in range(nm)] + [f"desk_{i}" for i in range(len(child))])
        self.maker = np.arange(n) < nm
        self.desk = ~self.maker
        self.X = np.array([0] * nm + [abs(c) for c in child], dtype=np.int64)          # child order sizes
        self.sign = np.array([0] * nm + [1 if c > 0 else -1 for c in child], dtype=np.int64)
        self.X_net = abs(sum(child))
        self._scale = np.where(self.maker, self.max_order, np.maximum(self.X, 1)).astype(np.float64)
        self._desk_bp = np.where(self.desk, _BP / np.maximum(self.X, 1), 0.0)          # per m0, below
        d = 4 if nm else 3
        self.action_space = spaces.Box(0.0, 1.0, shape=(d,), dtype=np.float32)
        nb = 2 * self.L + 4
        lo = np.concatenate([np.zeros(2 * self.L), [0.0, -1.0, -1.0, 0.0], np.zeros(6), [-1.0, -1.0]])
        hi = np.concatenate([np.ones(2 * self.L), [1.0, 1.0, 1.0, 1.0], np.ones(6), [1.0, 1.0]])
        self.observation_space = spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)
        self.state_space = spaces.Box(np.concatenate([lo[:nb], np.tile(lo[nb:], n)]).astype(np.float32),
                                      np.concatenate([hi[:nb], np.tile(hi[nb:], n)]).astype(np.float32),
                                      dtype=np.float32)
        B = self.num_envs
        self.m0 = np.zeros(B)
        self.mid = np.zeros(B)
        self.flow = np.zeros(B)
        self.cash = np.zeros((B, n))
        self.pos = np.zeros((B, n), dtype=np.int64)            # maker: inventory; desk: remaining lots
        self.wealth = np.zeros((B, n))
        self.short = np.zeros((B, n))                           # desks' shortfall, ticks·lots
        self.fills = np.zeros((B, n, 2), dtype=np.int64)
        self.crossed = np.zeros((B, n), dtype=np.int64)
        self._short_prev = np.zeros((B, n))
        self._ag = np.arange(n)
        self._rank0 = np.zeros(B, dtype=np.int64)             # where each market's queue_rank cycle starts

    # -- observations ------------------------------------------------------------------------------
    def _own(self) -> np.ndarray:
        """(B, n, 8): own bid and ask (level, size, lots ahead) scaled, position, direction."""
        bk = self.book
        B, n = self.num_envs, self.n
        on = bk.a_sz > 0
        M = bk.ahead_matrix()
        ahead = (bk.a_ahead + np.where(M, bk.a_sz[:, None, :, :], 0).sum(axis=2)).astype(np.float64)
        o = np.empty((B, n, 8))
        o[:, :, 0:6:3] = on * bk.a_lv / (self.K - 1)
        o[:, :, 1:6:3] = np.minimum(bk.a_sz / self._scale[None, :, None], 1.0)
        o[:, :, 2:6:3] = on * ahead / (ahead + _QS)
        o[:, :, 6] = np.where(self.maker, self.pos / self.q_max, self.pos / np.maximum(self.X, 1))
        o[:, :, 7] = self.sign
        return o

    def _book_block(self) -> np.ndarray:
        bk = self.book
        q = bk.visible()[:, :, :self.L].astype(np.float64)
        bid, ask = bk.best()
        return np.concatenate([(q / (q + _QS)).reshape(self.num_envs, -1),
                               (np.minimum(ask - bid, self.K) / self.K)[:, None],
                               np.clip((self.mid - self.m0) / _MOVE, -1.0, 1.0)[:, None], self.flow[:, None],
                               ((self.T - np.minimum(self._t, self.T)) / self.T)[:, None]], axis=1)

    def _obs_info(self):
        B, n = self.num_envs, self.n
        blk, own = self._book_block(), self._own()
        obs = np.concatenate([np.broadcast_to(blk[:, None, :], (B, n, blk.shape[1])), own], axis=2,
                             dtype=np.float32)
        self._state = np.concatenate([blk, own.reshape(B, -1)], axis=1, dtype=np.float32)
        bid, ask = self.book.best()
        info = {"cash": self.cash.copy(), "inventory": self.pos.copy(), "wealth": self.wealth.copy(),
                "shortfall": self.short.copy(), "fills": self.fills.copy(), "crossed": self.crossed.copy(),
                "mid": self.mid.copy(), "spread": (ask - bid).astype(np.float64)}
        if self.team:
            info["firm_shortfall_bp"] = self.short.sum(axis=1) * _BP / (self.X_net * self.m0)
        return obs, info

    def state(self) -> np.ndarray:
        """(B, 2L + 4 + 8n): the book block and every agent's own orders, position and direction."""
        return self._state.copy()

    # -- reset and step ----------------------------------------------------------------------------
    def _reset(self, mask):
        self.book.reset(mask, self.rng)
        mid = self.book.mid()
        self.m0 = np.where(mask, mid, self.m0)
        self.mid = np.where(mask, mid, self.mid)
        self.flow = np.where(mask, 0.0, self.flow)
        m2 = mask[:, None]
        self.cash = np.where(m2, 0.0, self.cash)
        self.pos = np.where(m2, self.X[None, :] * self.desk, self.pos)
        self.wealth = np.where(m2, self.m0[:, None] * self._held(), self.wealth)
        self.short = np.where(m2, 0.0, self.short)
        self._short_prev = np.where(m2, 0.0, self._short_prev)
        self.fills[mask] = 0
        self.crossed[mask] = 0
        self._rank0 = np.where(mask, self.rng.integers(0, 2 * self.n, self.num_envs), self._rank0)
        return self._obs_info()

    def _held(self) -> np.ndarray:
        """(B, n) lots held: a maker's inventory, a selling desk's remaining, a buying desk's bought lots."""
        return np.where(self.maker, self.pos, np.where(self.sign > 0, self.pos, self.X - self.pos))

    def _trade(self, fills: np.ndarray, px: np.ndarray) -> None:
        """Book agents' fills (B, n, 2) [bid bought, ask sold] at prices px (B, n, 2)."""
        bought, sold = fills[:, :, BID], fills[:, :, ASK]
        self.cash += sold * px[:, :, ASK] - bought * px[:, :, BID]
        self.pos += np.where(self.maker, bought - sold, -(bought + sold))
        self.short += np.where(self.desk, self.m0[:, None] * (sold - bought) - (sold * px[:, :, ASK]
                                                                               - bought * px[:, :, BID]), 0.0)
        self.fills += fills

    def _market(self, i: int, lots: np.ndarray) -> None:
        """Desk i's market order of `lots` (B,) in its direction; other agents' resting orders fill too."""
        bk, s = self.book, self.sign[i]
        got, value, passive, px = bk.market(i, ASK if s > 0 else BID, lots)
        self._trade(passive, px)
        one = np.zeros((self.num_envs, self.n, 2), dtype=np.int64)
        side = ASK if s > 0 else BID
        one[:, i, side] = got
        vpx = np.zeros((self.num_envs, self.n, 2))
        vpx[:, i, side] = value / np.maximum(got, 1)
        self._trade(one, vpx)
        hit = passive.sum(axis=2)
        self.crossed += hit
        self.crossed[:, i] += hit.sum(axis=1)

    def _step(self, a):
        bk, B, n, K = self.book, self.num_envs, self.n, self.K
        live = ~(self._t >= self.T)
        a = a.astype(np.float64)
        self.fills[:] = 0
        self.crossed[:] = 0
        lv = np.zeros((B, n, 2), dtype=np.int64)
        sz = np.zeros((B, n, 2), dtype=np.int64)
        # (1) limit orders: makers quote both sides, desks rest on their own side
        mk = self.maker
        if self.n_makers:
            ml = np.floor(a[:, mk][:, :, 0::2] * (K - 1) + 0.5).astype(np.int64)
            ms = np.floor(a[:, mk][:, :, 1::2] * self.max_order + 0.5).astype(np.int64)
            inv = self.pos[:, mk]
            room = np.stack([self.q_max - inv, self.q_max + inv], axis=2)
            lv[:, mk], sz[:, mk] = ml, np.minimum(ms, room)
        dk = self.desk
        if dk.any():
            side = np.where(self.sign[dk] > 0, ASK, BID)
            rest = np.floor(a[:, dk, 1] * self.pos[:, dk] + 0.5).astype(np.int64)
            ul = np.floor(a[:, dk, 2] * (K - 1) + 0.5).astype(np.int64)
            cols = np.flatnonzero(dk)
            lv[:, cols, side], sz[:, cols, side] = ul, rest
        sz *= live[:, None, None]
        rank = queue_rank(self._t + self._rank0, n)
        bk.post_all(BID, lv[:, :, BID], sz[:, :, BID], rank)
        bk.post_all(ASK, lv[:, :, ASK], sz[:, :, ASK], rank)
        # (2) desks' market orders, in agent order
        for i in np.flatnonzero(dk):
            side = ASK if self.sign[i] > 0 else BID
            free = self.pos[:, i] - bk.a_sz[:, i, side]
            self._market(i, np.where(live, np.floor(a[:, i, 0] * free + 0.5), 0).astype(np.int64))
        # (3) the background step
        fl = bk.advance(self.rng)
        vol = fl.volume
        self.flow = (vol[:, 0] - vol[:, 1]) / (vol[:, 0] + vol[:, 1] + 1.0)
        self._trade(fl.fills, fl.fill_px)
        self._t += live
        end = live & (self._t >= self.T)
        if end.any():
            self._finish(end)
        self.mid = bk.mid()
        w = self.cash + self._held() * self.mid[:, None]
        dw = w - self.wealth
        self.wealth = w
        inv2 = (self.pos * mk).astype(np.float64) ** 2
        r_mk = dw - self.phi * inv2 - self.alpha * end[:, None] * inv2
        d_short = self.short - self._short_prev
        self._short_prev = self.short.copy()
        if self.team:
            r_dk = np.repeat((-d_short.sum(axis=1) * _BP / (self.X_net * self.m0))[:, None], n, axis=1)
        else:
            r_dk = -d_short * self._desk_bp[None, :] / self.m0[:, None]
        rew = np.where(live[:, None], np.where(mk, r_mk, r_dk), 0.0)
        obs, info = self._obs_info()
        term = np.repeat(end[:, None], n, axis=1)
        return obs, rew, term, np.zeros((B, n), dtype=bool), info

    def _finish(self, end: np.ndarray) -> None:
        """End of the episode in markets `end`: desks cancel their orders; a team crosses its desks'
        offsetting leftovers at the mid; each desk's rest goes to the market (beyond the K levels at one
        tick past the last level, minus the penalty); then the makers' quotes are cancelled."""
        bk, dk = self.book, np.flatnonzero(self.desk)
        if dk.size == 0:
            self._cancel(np.flatnonzero(self.maker), end)
            return
        self._cancel(dk, end)
        left = np.where(end[:, None], self.pos, 0) * self.desk
        if self.team:
            sells, buys = (left * (self.sign > 0)), (left * (self.sign < 0))
            c = np.minimum(sells.sum(axis=1), buys.sum(axis=1))
            mid = bk.mid()
            for side_left in (sells, buys):
                # allocate the crossed lots c to the desks of one side in agent order
                before = np.cumsum(side_left, axis=1) - side_left
                k = np.clip(c[:, None] - before, 0, side_left)
                px = np.broadcast_to(mid[:, None, None], (self.num_envs, self.n, 2))
                f = np.zeros((self.num_envs, self.n, 2), dtype=np.int64)
                f[:, :, ASK] = k * (self.sign > 0)
                f[:, :, BID] = k * (self.sign < 0)
                self._trade(f, px)
                self.crossed += k
            left = np.where(end[:, None], self.pos, 0) * self.desk
        for i in dk:
            lots = left[:, i]
            if not lots.any():
                continue
            side = ASK if self.sign[i] > 0 else BID
            before = self.fills[:, i, side].copy()
            self._market(i, lots)
            beyond = lots - (self.fills[:, i, side] - before)
            px = np.zeros((self.num_envs, self.n, 2))
            px[:, i, side] = bk.pb - self.K - self.beyond if side == ASK else bk.pb + 1 + self.K + self.beyond
            f = np.zeros((self.num_envs, self.n, 2), dtype=np.int64)
            f[:, i, side] = beyond
            self._trade(f, px)
        self._cancel(np.flatnonzero(self.maker), end)

    def _cancel(self, agents, end: np.ndarray) -> None:
        for i in agents:
            self.book.post(int(i), BID, 0, 0, mask=end)
            self.book.post(int(i), ASK, 0, 0, mask=end)


class CompetingMakers(LobAgents):
    """`lob-competing-makers-<n>`: n makers, each on its own PnL − inventory penalty."""

    def __init__(self, num_envs: int = 1, n_agents: int = 2, **kw):
        super().__init__(num_envs, makers=_int_kw("n_agents", n_agents, 2, 16), **kw)


class Desks(LobAgents):
    """`lob-desks-<n>`: a firm's desks working one parent order; team reward = minus the firm's shortfall."""

    def __init__(self, num_envs: int = 1, lots=(30, -10), steps: int = 60, informed: float = 0.0, **kw):
        super().__init__(num_envs, lots=lots, team=True, steps=steps, informed=informed, **kw)


class MakersAndExecutor(LobAgents):
    """`lob-makers-and-executor`: makers and an executor, each on its own reward."""

    def __init__(self, num_envs: int = 1, makers: int = 2, lots=(20,), steps: int = 100, **kw):
        super().__init__(num_envs, makers=makers, lots=lots, steps=steps, **kw)
