"""A sequential oracle of `ogdata.envs.lob.Book`: one book, one order at a time, in plain Python.

Every queue is a list of orders in time priority, each ["bg" or an agent index, lots]; background
orders are one lot, as in the model; one agent (`Book`) or several (`ogdata.envs.lob_agents.AgentBook`). A step draws the same uniforms as the vectorised book (one generator call, the same column order:
see the lob module docstring) and turns each into a count with the same inverse-CDF tables
(`ogdata.envs.lob_draws`, one scalar look-up per count), but applies them one event at a time: each
cancelled lot removed from its queue, each arriving lot appended, each market order walking the book
from the best level, lot by lot, through the FIFO queue. It shares no code with the book but the
count tables and their row layout, so the same seed must give the same path.
"""

from __future__ import annotations

import numpy as np

from ogdata.envs.lob_draws import poisson_inverse

BID, ASK = 0, 1


class OracleBook:
    def __init__(self, book):
        """A copy of book 0 of a vectorised `Book` or `AgentBook` (its parameters and current state).

        Queue entries are [who, lots] with who "bg" (one lot) or an agent index; agents' orders at one
        level sit in time-stamp order, each behind its `ahead` background lots."""
        self.K = book.K
        f = book.flow
        self.flow = f
        self.lam_dt = [float(x) for x in book._lam_dt]
        self.draws = book._draws              # the count tables (lob_draws): rows and inversion, shared
        self.mu_base = float(book._mu_base)
        self.mu_inf = float(book._mu_inf)
        self.decay, self.jump, self.hawkes_on = float(book._decay), float(book._jump), book._hawkes_on
        self.dt = float(book.dt)
        self.pb = int(book.pb[0])
        self.z = int(book.z[0])
        self.fund = float(book.f[0])                    # the latent book's fundamental (calibration 'latent')
        self.kappa_dt, self.fstep = float(book._kappa_dt), float(book._fstep)
        self.deep_lots = int(round(float(book._deep)))
        self.e = [float(book.e[0, 0]), float(book.e[0, 1])]
        self.multi = hasattr(book, "a_sz")
        if self.multi:
            lv, sz, ah, seq = (book.a_lv[0], book.a_sz[0], book.a_ahead[0], book.a_seq[0])
        else:
            lv, sz, ah, seq = (book.o_lv[0][None], book.o_sz[0][None], book.o_ahead[0][None],
                               np.zeros((1, 2), np.int64))
        self.n = lv.shape[0]
        self.queues = []
        for s in (0, 1):
            side = []
            for j in range(self.K):
                queue = [["bg", 1] for _ in range(int(book.q[0, s, j]))]
                here = sorted((int(seq[i, s]), i) for i in range(self.n) if sz[i, s] > 0 and lv[i, s] == j)
                for k, (_, i) in enumerate(here):          # each behind its background lots and earlier agents
                    queue.insert(int(ah[i, s]) + k, [i, int(sz[i, s])])
                side.append(queue)
            self.queues.append(side)
        self.passive = [[0, 0] for _ in range(self.n)]     # resting fills from agents' market orders

    # -- reading the book -----------------------------------------------------------------------
    def agent(self, s, i=0):
        """(level, lots, background lots ahead) of agent i's order on side s, or (0, 0, 0)."""
        for j, queue in enumerate(self.queues[s]):
            for k, (who, lots) in enumerate(queue):
                if who == i:
                    return j, lots, sum(x[1] for x in queue[:k] if x[0] == "bg")
        return 0, 0, 0

    def background(self, s, j):
        return sum(lots for who, lots in self.queues[s][j] if who == "bg")

    def lots(self, s, j):
        return sum(lots for _, lots in self.queues[s][j])

    def price(self, s, j):
        return self.pb - j if s == BID else self.pb + 1 + j

    def best(self):
        out = []
        for s in (BID, ASK):
            j = next((j for j in range(self.K) if self.lots(s, j) > 0), self.K)
            out.append(self.price(s, j))
        return out[0], out[1]

    # -- agents -----------------------------------------------------------------------------------
    def _remove_agent(self, s, i):
        for queue in self.queues[s]:
            queue[:] = [o for o in queue if o[0] != i]

    def post(self, s, level, size, i=0):
        j, lots, _ = self.agent(s, i)
        if lots > 0 and j == level and size <= lots:
            for o in self.queues[s][j]:
                if o[0] == i:
                    o[1] = size
            if size == 0:
                self._remove_agent(s, i)
            return
        self._remove_agent(s, i)
        if size > 0:
            self.queues[s][level].append([i, size])

    def market(self, side, volume, i=0):
        """Agent i's market order: side BID buys (walks the asks), ASK sells (walks the bids)."""
        walked = ASK if side == BID else BID
        if volume > 0:
            self._remove_agent(walked, i)
        got = value = 0
        for _ in range(volume):
            hit = self._take_one(walked)
            if hit is None:
                break
            got += 1
            value += hit[1]
            if hit[0] != "bg":
                self.passive[hit[0]][walked] += 1
        return got, value

    def _take_one(self, s):
        """One lot from side s's best level, front of the queue first: (who, price) or None."""
        for j in range(self.K):
            queue = self.queues[s][j]
            if queue:
                o = queue[0]
                o[1] -= 1
                if o[1] == 0:
                    queue.pop(0)
                return o[0], self.price(s, j)
        return None

    # -- the step ----------------------------------------------------------------------------------
    def advance(self, rng):
        K, f, D = self.K, self.flow, self.draws
        # the step's uniforms, in the book's column order (see the lob module docstring)
        width = 4 * K + 2 * self.n + 6 + (1 if self.kappa_dt else 0)
        v = [int(x) for x in rng.integers(0, 2**64, size=(1, width), dtype=np.uint64)[0]]
        if f.gap_shift:                                   # the early reference move, without a coin
            self._move(self.deep_lots)
        vis = [[self.lots(s, j) for j in range(K)] for s in (0, 1)]
        n = self.n
        # cancellations: each level's lots behind its last agent order, then each agent's segment ahead
        for s in (0, 1):
            for j in range(K):
                queue = self.queues[s][j]
                agents = [k for k, o in enumerate(queue) if o[0] != "bg"]
                segs, start = [], 0                       # (agent, positions of its segment ahead)
                for k in agents:
                    segs.append((queue[k][0], [p for p in range(start, k) if queue[p][0] == "bg"]))
                    start = k + 1
                behind = [p for p in range(start, len(queue)) if queue[p][0] == "bg"]
                c = D.cancel(j, len(behind), v[s * K + j])
                drop = set(behind[len(behind) - c:] if c else [])
                for i, seg in segs:
                    drop |= set(seg[:D.cancel(j, len(seg), v[4 * K + 2 * i + s])])
                queue[:] = [o for k, o in enumerate(queue) if k not in drop]
        # limit arrivals (QR: the rate reads the level's visible queue at the start of the step)
        d = self.fund - self.pb - 0.5                     # latent: x ticks beyond the fundamental
        for s in (0, 1):
            for j in range(K):
                x = vis[s][j] if f.insert_boost else 0
                u = v[2 * K + s * K + j]
                if self.kappa_dt:                         # the row of its distance in half ticks
                    x = int(np.rint(2.0 * max((d if s == BID else -d) + j, 0.0)))
                count = D.arrival(j, x, u)
                for _ in range(count):
                    self.queues[s][j].append(["bg", 1])
        # market orders, one lot at a time
        i = 4 * K + 2 * n
        if self.hawkes_on:
            mu = [self.mu_base, self.mu_base]
            if f.market_boost:
                mu = [self.mu_base * (1.0 + f.market_boost / (1.0 + vis[ASK][0])),
                      self.mu_base * (1.0 + f.market_boost / (1.0 + vis[BID][0]))]
            rate = np.array([[mu[0] + self.e[0] * self.dt, mu[1] + self.e[1] * self.dt]])
            m = [int(x) for x in poisson_inverse(rate, np.array([v[i:i + 2]], dtype=np.uint64))[0]]
        else:
            x = [vis[ASK][0], vis[BID][0]] if f.market_boost else [0, 0]
            m = [D.market(x[0], v[i]), D.market(x[1], v[i + 1])]
        m.append(D.informed(v[i + 2]))
        buys = m[0] + (m[2] if self.z > 0 and self.mu_inf else 0)
        sells = m[1] + (m[2] if self.z < 0 and self.mu_inf else 0)
        fills = [[0, 0] for _ in range(n)]
        fill_px = [[self.agent_price(BID, a), self.agent_price(ASK, a)] for a in range(n)]
        for s_walk, count in ((ASK, buys), (BID, sells)):
            for _ in range(count):
                hit = self._take_one(s_walk)
                if hit is not None and hit[0] != "bg":
                    fills[hit[0]][s_walk] += 1
        if self.hawkes_on:
            self.e = [self.e[0] * self.decay + self.jump * m[0], self.e[1] * self.decay + self.jump * m[1]]
        deep = D.far(v[4 * K + 2 * n + 3])
        coin, sign = ((x >> 11) / 2.0**53 for x in v[4 * K + 2 * n + 4:4 * K + 2 * n + 6])
        shift = self._move(deep) if coin < f.shift_prob else 0
        if shift:
            self.z = 1 if sign < 0.5 else -1
        if self.kappa_dt:                                 # the fundamental's fair-coin step, last column
            self.fund += self.fstep if (v[-1] >> 11) / 2.0**53 < 0.5 else -self.fstep
        if not self.multi:
            fills, fill_px = fills[0], fill_px[0]
        return fills, fill_px, (buys, sells), shift

    def _move(self, deep):
        """The frame moves one tick where one best level is empty and the other is not: +1, −1 or 0."""
        ask_empty, bid_empty = self.lots(ASK, 0) == 0, self.lots(BID, 0) == 0
        if ask_empty == bid_empty:
            return 0
        gone, grow, shift = (ASK, BID, 1) if ask_empty else (BID, ASK, -1)
        self.queues[gone].pop(0)
        self.queues[gone].append([["bg", 1] for _ in range(deep)])
        self.queues[grow].insert(0, [])
        self.queues[grow].pop()
        self.pb += shift
        return shift

    def agent_price(self, s, i=0):
        j, lots, _ = self.agent(s, i)
        return self.price(s, j) if lots else self.price(s, 0)
