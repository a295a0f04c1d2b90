"""A sequential oracle of `ogdata.envs.lob.Book`: one book, one order at a time, in plain Python.

Every queue is a list of orders in time priority, each ["bg" or "agent", lots]; background orders
are one lot, as in the model. A step draws the same uniforms as the vectorised book (one generator call, the same column order:
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
        """A copy of book 0 of a vectorised `Book` (its parameters and its current state)."""
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
        self.e = [float(book.e[0, 0]), float(book.e[0, 1])]
        self.queues = [[[["bg", 1] for _ in range(int(book.q[0, s, j]))] for j in range(self.K)] for s in (0, 1)]
        for s in (0, 1):
            if book.o_sz[0, s] > 0:
                j, ahead = int(book.o_lv[0, s]), int(book.o_ahead[0, s])
                self.queues[s][j].insert(ahead, ["agent", int(book.o_sz[0, s])])

    # -- reading the book -----------------------------------------------------------------------
    def agent(self, s):
        """(level, lots, background lots ahead) of the agent order on side s, or (0, 0, 0)."""
        for j, queue in enumerate(self.queues[s]):
            for k, (who, lots) in enumerate(queue):
                if who == "agent":
                    return j, lots, sum(x[1] for x in queue[:k])
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

    # -- agent ------------------------------------------------------------------------------------
    def _remove_agent(self, s):
        for queue in self.queues[s]:
            queue[:] = [o for o in queue if o[0] != "agent"]

    def post(self, s, level, size):
        j, lots, _ = self.agent(s)
        if lots > 0 and j == level and size <= lots:
            for o in self.queues[s][j]:
                if o[0] == "agent":
                    o[1] = size
            if size == 0:
                self._remove_agent(s)
            return
        self._remove_agent(s)
        if size > 0:
            self.queues[s][level].append(["agent", size])

    def market(self, side, volume):
        """The agent's market order: side BID buys (walks the asks), ASK sells (walks the bids)."""
        walked = ASK if side == BID else BID
        if volume > 0:
            self._remove_agent(walked)
        got = value = 0
        for _ in range(volume):
            hit = self._take_one(walked)
            if hit is None:
                break
            got += 1
            value += hit[1]
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
        v = [int(x) for x in rng.integers(0, 2**64, size=(1, 4 * K + 8), dtype=np.uint64)[0]]
        vis = [[self.lots(s, j) for j in range(K)] for s in (0, 1)]
        agent = [self.agent(s) for s in (0, 1)]
        # cancellations: levels (behind the agent at its level), then the lots ahead of the agent
        for s in (0, 1):
            aj, alots, ahead = agent[s]
            ahead = ahead if alots else 0
            counts = []
            for j in range(K):
                n = self.background(s, j) - (ahead if j == aj else 0)
                counts.append(D.cancel(j, n, v[s * K + j]))
            c_ahead = D.cancel(aj, ahead, v[4 * K + s])
            for j in range(K):
                queue = self.queues[s][j]
                k_agent = next((k for k, o in enumerate(queue) if o[0] == "agent"), None)
                # lots behind: the last background lots; lots ahead: the first ones
                behind = [k for k, o in enumerate(queue) if o[0] == "bg" and (k_agent is None or k > k_agent)]
                drop = set(behind[len(behind) - counts[j]:] if counts[j] else [])
                if k_agent is not None and c_ahead:
                    drop |= set([k for k in range(k_agent) if queue[k][0] == "bg"][:c_ahead])
                queue[:] = [o for k, o in enumerate(queue) if k not in drop]
        # limit arrivals (QR: the rate reads the level's visible queue at the start of the step)
        for s in (0, 1):
            for j in range(K):
                x = vis[s][j] if f.insert_boost else 0
                for _ in range(D.arrival(j, x, v[2 * K + s * K + j])):
                    self.queues[s][j].append(["bg", 1])
        # market orders, one lot at a time
        i = 4 * K + 2
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
        fills = [0, 0]
        fill_px = [self.agent_price(BID), self.agent_price(ASK)]
        for s_walk, n in ((ASK, buys), (BID, sells)):
            for _ in range(n):
                hit = self._take_one(s_walk)
                if hit is not None and hit[0] == "agent":
                    fills[s_walk] += 1
        if self.hawkes_on:
            self.e = [self.e[0] * self.decay + self.jump * m[0], self.e[1] * self.decay + self.jump * m[1]]
        deep = D.far(v[4 * K + 5])
        coin, sign = ((x >> 11) / 2.0**53 for x in v[4 * K + 6:])
        shift = 0
        if coin < f.shift_prob:
            ask_empty, bid_empty = self.lots(ASK, 0) == 0, self.lots(BID, 0) == 0
            if ask_empty and not bid_empty:
                shift = 1
                self.queues[ASK].pop(0)
                self.queues[ASK].append([["bg", 1] for _ in range(deep)])
                self.queues[BID].insert(0, [])
                self.queues[BID].pop()
            elif bid_empty and not ask_empty:
                shift = -1
                self.queues[BID].pop(0)
                self.queues[BID].append([["bg", 1] for _ in range(deep)])
                self.queues[ASK].insert(0, [])
                self.queues[ASK].pop()
            if shift:
                self.pb += shift
                self.z = 1 if sign < 0.5 else -1
        return fills, fill_px, (buys, sells), shift

    def agent_price(self, s):
        j, lots, _ = self.agent(s)
        return self.price(s, j) if lots else self.price(s, 0)
