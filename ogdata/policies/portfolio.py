"""Reference policies of the portfolio envs (`portfolio-*`): 1/N rebalanced daily (the expert) and
buy-and-hold."""

from __future__ import annotations

import numpy as np

from ogdata.envs.portfolio import Portfolio
from ogdata.errors import EnvError


def _portfolio(core) -> Portfolio:
    if not isinstance(core, Portfolio):
        raise EnvError(f"this reference policy acts in portfolio-* envs, not {type(core).__name__}")
    return core


class EqualWeight:
    """1/N over the risky assets, rebalanced every day (DeMiguel et al.'s hard-to-beat 1/N)."""

    def __init__(self, core):
        n = _portfolio(core).n_assets
        self.action = np.concatenate([np.ones(n), [0.0]]).astype(np.float32)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.broadcast_to(self.action, (obs.shape[0], self.action.size))


class BuyAndHold:
    """Buy 1/N of every asset from the all-cash start, then hold: the target is the drifted weights."""

    def __init__(self, core):
        core = _portfolio(core)
        self.n, self.k = core.n_assets, core._wn
        self.first = np.concatenate([np.ones(self.n), [0.0]]).astype(np.float32)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        w = obs[:, self.k:]
        return np.where(w[:, -1:] >= 1.0, self.first, w)
