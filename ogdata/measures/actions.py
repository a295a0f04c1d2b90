"""Action statistics: entropy per dimension for discrete actions, per-dimension spread for continuous ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError


class _ActionAccumulator:
    """Streaming action statistics for one (per-agent) action space."""

    def __init__(self, space):
        self.discrete = isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary))
        if isinstance(space, spaces.Discrete):
            self.low, self.n = np.array([int(space.start)]), np.array([int(space.n)])
        elif isinstance(space, spaces.MultiDiscrete):
            self.n = np.asarray(space.nvec, dtype=np.int64).ravel()
            self.low = np.zeros_like(self.n)
        elif isinstance(space, spaces.MultiBinary):
            self.n = np.full(int(np.prod(space.n)), 2, dtype=np.int64)
            self.low = np.zeros_like(self.n)
        self.count = 0
        self.counts = [np.zeros(int(k), dtype=np.int64) for k in self.n] if self.discrete else None
        self.s1 = self.s2 = self.lo = self.hi = None

    def add(self, a: np.ndarray) -> None:
        a = a.reshape(len(a), -1)
        self.count += len(a)
        if self.discrete:
            for d, c in enumerate(self.counts):
                v = a[:, d].astype(np.int64) - self.low[d]
                if len(v) and (v.min() < 0 or v.max() >= len(c)):
                    raise DataValidationError(f"discrete action values outside the action space (dimension {d}: "
                                              f"{int(v.min() + self.low[d])}..{int(v.max() + self.low[d])}, "
                                              f"space has {len(c)} values from {int(self.low[d])})")
                c += np.bincount(v, minlength=len(c))
            return
        if a.shape[1] == 0:
            raise DataValidationError("the actions have zero columns (shape (n, 0)); action statistics need at "
                                      "least one action dimension")
        a = a.astype(np.float64)
        if self.s1 is None:
            z = np.zeros(a.shape[1])
            self.s1, self.s2 = z.copy(), z.copy()
            self.lo, self.hi = np.full_like(z, np.inf), np.full_like(z, -np.inf)
        if len(a):
            self.s1 += a.sum(axis=0)
            self.s2 += (a * a).sum(axis=0)
            np.minimum(self.lo, a.min(axis=0), out=self.lo)
            np.maximum(self.hi, a.max(axis=0), out=self.hi)

    def result(self) -> dict[str, Any]:
        if self.discrete:
            out: dict[str, Any] = {"type": "discrete", "count": self.count, "dims": []}
            for c, low in zip(self.counts, self.low):
                p = c / max(c.sum(), 1)
                nz = p[p > 0]
                h = float(-(nz * np.log(nz)).sum()) if nz.size else 0.0
                out["dims"].append({"n": len(c), "start": int(low), "entropy": h,
                                    "normalised_entropy": h / math.log(len(c)) if len(c) > 1 else 0.0,
                                    "frequencies": p.tolist() if len(c) <= 64 else None})
            out["entropy"] = float(sum(d["entropy"] for d in out["dims"]))
            return out
        if self.s1 is None or self.count == 0:
            return {"type": "continuous", "count": 0, "mean": [], "std": [], "min": [], "max": []}
        mean = self.s1 / self.count
        var = np.maximum(self.s2 / self.count - mean**2, 0.0)
        std = np.sqrt(var)
        return {"type": "continuous", "count": self.count, "mean": mean.tolist(), "std": std.tolist(),
                "min": self.lo.tolist(), "max": self.hi.tolist(), "mean_std": float(std.mean())}


def action_stats(actions: np.ndarray, space=None) -> dict[str, Any]:
    """Action statistics of one action array: entropy (nats) per dimension for discrete spaces,
    per-dimension mean / std / min / max (the spread) for continuous ones.

    `space` defaults to Discrete(max+1) for 1-D integer actions, else a Box.
    """
    a = np.asarray(actions)
    if space is None:
        if a.dtype.kind in "iub" and a.ndim == 1:
            space = spaces.Discrete(int(a.max()) + 1 if a.size else 1)
        else:
            space = spaces.Box(-np.inf, np.inf, shape=a.shape[1:] or (1,))
    acc = _ActionAccumulator(space)
    acc.add(a.reshape(len(a), -1) if a.ndim != 1 else a[:, None])
    return acc.result()


def dataset_action_stats(dataset, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Action statistics of a dataset, streamed; multi-agent: one entry per agent."""
    space = dataset.action_space
    if dataset.multi_agent:
        agents = dataset.agents
        accs = [_ActionAccumulator(space) for _ in agents]
        for ch in dataset.iter_chunks(chunk_size, keys=("actions",)):
            a = ch["actions"]
            for i, acc in enumerate(accs):
                acc.add(a[:, i])
        return {"per_agent": {name: acc.result() for name, acc in zip(agents, accs)}}
    acc = _ActionAccumulator(space)
    for ch in dataset.iter_chunks(chunk_size, keys=("actions",)):
        a = ch["actions"]
        acc.add(a[:, None] if a.ndim == 1 else a)
    return acc.result()
