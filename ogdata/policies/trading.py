"""Reference policy of the trading envs (`trading-*`): always long (the passive benchmark)."""

from __future__ import annotations

import numpy as np

from ogdata.envs.trading import LONG, Trading
from ogdata.errors import EnvError


class AlwaysLong:
    """Long the asset every day: the market's own return (the passive benchmark)."""

    def __init__(self, core):
        if not isinstance(core, Trading):
            raise EnvError(f"trading/always-long acts in trading-* envs, not {type(core).__name__}")
        self.continuous = core.continuous

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.continuous:
            return np.ones((obs.shape[0], 1), dtype=np.float32)
        return np.full(obs.shape[0], LONG, dtype=np.int64)
