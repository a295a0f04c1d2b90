"""Reference policies: random and per-family analytic experts, batched over markets.

A policy is a callable `policy(obs, rng) -> actions` on a whole batch: obs (B, *obs_shape)
(multi-agent: (B, n, *obs_shape)) -> actions (B, *act_shape) (multi-agent (B, n, ...)).
Reference policies are built from the core they will act in (`factory(core)`), so an
analytic expert can read the market's parameters (impact, horizon, volatility).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import InvalidIdError, closest

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]
_POLICIES: dict[str, Callable[[Any], Policy]] = {}


def register_policy(name: str):
    """Decorator: register `factory(core) -> policy` under `name`."""

    def deco(factory):
        _POLICIES[name] = factory
        return factory

    return deco


def make_policy(name: str, core) -> Policy:
    """Build the named reference policy for `core`."""
    from ogdata.envs.registry import _load_families

    _load_families()
    try:
        return _POLICIES[name](core)
    except KeyError:
        raise InvalidIdError(f"unknown reference policy {name!r}.{closest(name, _POLICIES)} "
                             f"Known: {sorted(_POLICIES)}") from None


def list_policies() -> list[str]:
    from ogdata.envs.registry import _load_families

    _load_families()
    return sorted(_POLICIES)


class RandomPolicy:
    """Uniform over the action space (Box: uniform between bounds; Discrete: uniform integers)."""

    def __init__(self, core):
        self.space = core.action_space
        self.lead = (len(core.agents),) if core.multi_agent else ()

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = (obs.shape[0],) + self.lead
        sp = self.space
        if isinstance(sp, spaces.Box):
            return rng.uniform(sp.low, sp.high, size=size + sp.shape).astype(sp.dtype)
        if isinstance(sp, spaces.Discrete):
            return rng.integers(sp.start, sp.start + sp.n, size=size)
        raise TypeError(f"RandomPolicy does not support {sp}")


register_policy("random")(RandomPolicy)
