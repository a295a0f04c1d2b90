"""Several agents' orders on one order book: price-time priority among agents and background flow.

Why: the multi-agent lob tasks (`ogdata.envs.lob_multi`) put makers, executors and a firm's desks on
the same book, so their orders must queue behind and in front of each other exactly as they would on
an exchange, and one agent's market order must be able to fill another agent's resting order.

`AgentBook` is `ogdata.envs.lob.Book` (same background flow, same draws, same step order) with n
agents instead of one, each with at most one resting order a side: arrays `a_lv`, `a_sz`, `a_ahead`,
`a_seq` (B, n, 2) [agent, bid/ask] — level, lots, *background* lots ahead of it in its queue, and a
time stamp (the order of `post` calls). Agents' orders at the same level queue in time-stamp order,
so a queue is a FIFO sequence of background segments and agent orders:

    [bg seg_1][agent i_1][bg seg_2][agent i_2] ... [bg behind]

seg_k = a_ahead[i_k] − a_ahead[i_(k−1)] (a_ahead is non-decreasing along the queue: a later order
joined behind everything an earlier one had ahead of it). The step, as in the single-agent book:
- cancellations: each segment's lots Binomial(seg, p_j) independently (columns 4K + 2i + s of the
  step's uniforms hold agent i's segment ahead on side s; n = 1 is exactly the single-agent layout);
  an order's `ahead` falls by the cancellations of its own and every earlier segment;
- market orders (background, or an agent's via `market`) take lots best level first, FIFO within a
  level: agent i at level j, with P_i = a_ahead[i] + (agent lots ahead of it), gets
  min(max(t_j − P_i, 0), size_i) of the t_j lots taken there;
- reference moves relabel every agent's level; an order pushed beyond the K levels is cancelled.
An agent's market order first cancels its own resting order on the walked side (no self-trade);
every other agent's order there is fair game — the fill is recorded for both (a cross between
agents: a counterparty inside the game). Reposting at the same level with no larger size keeps the
time stamp and the position; anything else joins the back of the queue with a new time stamp.
`tests/lob_oracle.py` replays this lot by lot for several agents (same seed ⇒ same path).
"""

from __future__ import annotations

import numpy as np

from ogdata.envs.lob import ASK, BID, Book, StepFlow, _as_int, take_from_levels
from ogdata.envs.lob_draws import BITS
from ogdata.errors import EnvError

MAX_AGENTS = 16


class AgentBook(Book):
    """B books, n agents with at most one order a side each (batch axis first)."""

    def __init__(self, num_books: int, agents: int, levels: int = 10, **kw):
        if isinstance(agents, bool) or not isinstance(agents, int | np.integer) or not 1 <= agents <= MAX_AGENTS:
            raise EnvError(f"an AgentBook needs 1..{MAX_AGENTS} agents, got {agents!r}")
        self.n = self._slots = int(agents)
        super().__init__(num_books, levels, **kw)
        shape = (self.B, self.n, 2)
        self.a_lv = np.zeros(shape, dtype=np.int64)
        self.a_sz = np.zeros(shape, dtype=np.int64)
        self.a_ahead = np.zeros(shape, dtype=np.int64)
        self.a_seq = np.zeros(shape, dtype=np.int64)
        self._seq = 0
        self._rows3 = np.arange(self.B)[:, None, None]
        self._sides3 = np.arange(2)[None, None, :]

    # -- reading -----------------------------------------------------------------------------------
    def visible(self) -> np.ndarray:
        """(B, 2, K) lots at each level, every agent's orders included."""
        v = self.q.copy()
        flat = v.reshape(-1)
        for i in range(self.n):
            flat[self._flat + self.a_lv[:, i].ravel()] += self.a_sz[:, i].ravel()
        return v

    def agent_price(self) -> np.ndarray:
        """(B, n, 2) price of each agent order [bid, ask] (meaningless where a_sz == 0)."""
        px = np.empty_like(self.a_lv)
        px[:, :, BID] = self.pb[:, None] - self.a_lv[:, :, BID]
        px[:, :, ASK] = self.pb[:, None] + 1 + self.a_lv[:, :, ASK]
        return px

    def ahead_matrix(self) -> np.ndarray:
        """(B, n, n, 2) bool: [b, i, k, s] is True when agent k's order is ahead of agent i's in one queue."""
        on = self.a_sz > 0
        same = self.a_lv[:, :, None, :] == self.a_lv[:, None, :, :]
        earlier = self.a_seq[:, None, :, :] < self.a_seq[:, :, None, :]
        return same & earlier & on[:, :, None, :] & on[:, None, :, :]

    # -- reset and orders --------------------------------------------------------------------------
    def reset(self, mask: np.ndarray, rng: np.random.Generator) -> None:
        super().reset(mask, rng)
        for a in (self.a_lv, self.a_sz, self.a_ahead, self.a_seq):
            a[mask] = 0

    def post(self, agent: int, side: int, level, size, mask: np.ndarray | None = None) -> None:
        """Agent `agent`'s order on `side` at `level` with `size` lots (0 cancels), as `Book.post`."""
        i = self._agent(agent)
        level = _as_int("level", level, self.B, 0, self.K - 1, f"a level in [0, {self.K - 1}] (K = {self.K} levels)")
        size = _as_int("size", size, self.B, 0, None, "a size >= 0 lots")
        old = self.a_sz[:, i, side]
        keep = (old > 0) & (self.a_lv[:, i, side] == level) & (size <= old)
        self._seq += 1
        on = size > 0
        new = (np.where(on, level, 0), size,
               np.where(on, np.where(keep, self.a_ahead[:, i, side], self.q[self._r1, side, level]), 0),
               np.where(on, np.where(keep, self.a_seq[:, i, side], self._seq), 0))
        for arr, v in zip((self.a_lv, self.a_sz, self.a_ahead, self.a_seq), new, strict=True):
            arr[:, i, side] = v if mask is None else np.where(mask, v, arr[:, i, side])

    def post_all(self, side: int, level, size, rank=None) -> None:
        """Every agent's order on `side` at once: level, size (B, n); as n `post` calls made in the order
        `rank` (B, n) (default: agent order), so orders new in this call queue by rank at a shared level."""
        B, n = self.B, self.n
        level, size = np.asarray(level, dtype=np.int64), np.asarray(size, dtype=np.int64)
        if level.shape != (B, n) or size.shape != (B, n):
            raise EnvError(f"post_all takes level and size of shape ({B}, {n}), got {level.shape}, {size.shape}")
        if (level < 0).any() or (level >= self.K).any() or (size < 0).any():
            raise EnvError(f"post_all: levels must lie in [0, {self.K - 1}] and sizes be >= 0")
        old = self.a_sz[:, :, side]
        keep = (old > 0) & (self.a_lv[:, :, side] == level) & (size <= old)
        stamp = self._seq + 1 + (np.arange(n) if rank is None else np.asarray(rank, dtype=np.int64))
        self._seq += n
        on = size > 0
        self.a_ahead[:, :, side] = np.where(on, np.where(keep, self.a_ahead[:, :, side],
                                                          self.q[self._r1[:, None], side, level]), 0)
        self.a_seq[:, :, side] = np.where(on, np.where(keep, self.a_seq[:, :, side], stamp), 0)
        self.a_lv[:, :, side] = np.where(on, level, 0)
        self.a_sz[:, :, side] = size

    def market(self, agent: int, side: int, volume):
        """Agent `agent`'s market order of `volume` lots (B,): side=BID buys (walks the asks), ASK sells.

        Returns (lots filled (B,), value in tick·lots (B,), resting agents' fills (B, n, 2) in lots at
        their prices (B, n, 2)): other agents' orders on the walked side fill in their FIFO turn."""
        i = self._agent(agent)
        volume = _as_int("volume", volume, self.B, 0, None, "a market-order size >= 0 lots")
        walked = ASK if side == BID else BID
        gone = volume > 0
        for arr in (self.a_lv, self.a_sz, self.a_ahead, self.a_seq):
            arr[gone, i, walked] = 0
        px = self.agent_price()
        vol = np.zeros((self.B, 2), dtype=np.int64)
        vol[:, walked] = volume
        take, fills = self._walk(vol)
        take = take[:, walked]
        prices = self.pb[:, None] - self._levels if walked == BID else self.pb[:, None] + 1 + self._levels
        return take.sum(axis=1), (take * prices).sum(axis=1), fills, px

    # -- the step ----------------------------------------------------------------------------------
    def advance(self, rng: np.random.Generator) -> StepFlow:
        """One step of background flow (the single-agent book's order); fills and fill_px are (B, n, 2)."""
        B, K, n, D, mc = self.B, self.K, self.n, self._draws, self._mc
        q, lv, ahead = self.q, self.a_lv, self.a_ahead
        v, vis = self._begin(rng)
        R = self._rowbuf
        M = self.ahead_matrix()
        prev = np.where(M, ahead[:, None, :, :], 0).max(axis=2)           # ahead of the agent just in front
        seg = ahead - prev                                                # each agent's segment ahead (B, n, 2)
        keys = R[:, :2 * K].reshape(B, 2, K)
        np.left_shift(q, BITS, out=keys)
        keys += D.ckeys
        flat = R.reshape(-1)
        for i in range(n):                                                # the level slot keeps the lots behind all
            flat[self._kflat + lv[:, i].ravel()] -= seg[:, i].ravel() << BITS
        ka = R[:, 4 * K:mc].reshape(B, n, 2)
        np.left_shift(seg, BITS, out=ka)
        ka += lv * D.nc_key
        cnt = self._counts(v, vis)
        c_seg = cnt[:, 4 * K:mc].reshape(B, n, 2)
        q -= cnt[:, :2 * K].reshape(B, 2, K)
        qf = q.reshape(-1)
        for i in range(n):
            qf[self._flat + lv[:, i].ravel()] -= c_seg[:, i].ravel()
        ahead -= c_seg + np.where(M, c_seg[:, None, :, :], 0).sum(axis=2)
        q += cnt[:, 2 * K:4 * K].reshape(B, 2, K)
        vol, m = self._market_volume(cnt, v, vis)
        fill_px = self.agent_price()
        _, fills = self._walk(vol)
        shift = self._end(v, cnt, m)
        return StepFlow(fills, fill_px, vol[:, ::-1].copy(), shift)

    # -- internals ---------------------------------------------------------------------------------
    def _agent(self, agent) -> int:
        if isinstance(agent, bool) or not isinstance(agent, int | np.integer) or not 0 <= agent < self.n:
            raise EnvError(f"agent {agent!r} is not one of this book's agents 0..{self.n - 1}")
        return int(agent)

    def _walk(self, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take volume[:, s] lots from side s, best level first, FIFO within a level (background segments
        and agent orders in queue order). Returns (lots taken per level (B, 2, K), agents' fills (B, n, 2))."""
        q, sz, lv, ahead = self.q, self.a_sz, self.a_lv, self.a_ahead
        take = take_from_levels(self.visible(), volume)
        M = self.ahead_matrix()
        pos = ahead + np.where(M, sz[:, None, :, :], 0).sum(axis=2)      # lots ahead: background + agents
        t = take[self._rows3, self._sides3, lv]                           # lots taken at each agent's level
        fill = np.minimum(np.maximum(t - pos, 0), sz)
        bg_ahead = np.minimum(t, pos) - np.where(M, fill[:, None, :, :], 0).sum(axis=2)
        q -= take
        qf = q.reshape(-1)
        for i in range(self.n):
            qf[self._flat + lv[:, i].ravel()] += fill[:, i].ravel()
        sz -= fill
        ahead -= np.minimum(bg_ahead, ahead)
        done = (sz == 0) & (fill > 0)
        if done.any():
            lv[done] = 0
            ahead[done] = 0
            self.a_seq[done] = 0
        return take, fill

    def _orders(self) -> tuple[np.ndarray, ...]:
        """Every agent's orders (B, agents, 2), relabelled by `Book._shift` when the frame moves."""
        return self.a_sz, self.a_lv, self.a_ahead, self.a_seq
