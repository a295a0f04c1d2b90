"""Reference policies: random and per-family analytic experts, batched over markets.

A policy is a callable `policy(obs, rng) -> actions` on a whole batch: obs (B, *obs_shape)
(multi-agent: (B, n, *obs_shape)) -> actions (B, *act_shape) (multi-agent (B, n, ...)).
Reference policies are built from the core they will act in (`factory(core)`), so an
analytic expert can read the market's parameters (impact, horizon, volatility).

The registry maps a name to its factory, given as a "module:attr" string and imported on
first use (or as a callable, for policies registered at run time). The environments name
their references by these names (`EnvSpec.references`) and never import this package; the
family experts live beside this module, one module per env family.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import InvalidIdError, closest

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Factory = Callable[[Any], Policy]

_POLICIES: dict[str, Factory | str] = {
    "random": "ogdata.policies.reference:RandomPolicy",
    "execution/twap": "ogdata.policies.execution:twap_policy",
    "execution/ac-optimal": "ogdata.policies.execution:ac_optimal_policy",
    "execution/joint-ac": "ogdata.policies.execution:joint_ac_policy",
    "execution/independent-greedy": "ogdata.policies.execution:independent_greedy_policy",
    "execution/ac-cvar5": "ogdata.policies.execution:ac_cvar5_policy",
    "execution/ac-cvar10": "ogdata.policies.execution:ac_cvar10_policy",
    "execution/ac-meancvar10": "ogdata.policies.execution:ac_meancvar10_policy",
    "lob-execution/twap": "ogdata.policies.lob:TWAP",
    "lob-execution/queue-aware": "ogdata.policies.lob:QueueAware",
    "lob-execution/ac": "ogdata.policies.lob:AlmgrenChriss",
    "lob-market-making/symmetric": "ogdata.policies.lob:Symmetric",
    "lob-market-making/inventory-skew": "ogdata.policies.lob:InventorySkew",
    "lob-competing-makers/symmetric": "ogdata.policies.lob_multi:Symmetric",
    "lob-competing-makers/inventory-skew": "ogdata.policies.lob_multi:InventorySkew",
    "lob-desks/twap": "ogdata.policies.lob_multi:IndependentTWAP",
    "lob-desks/firm-twap": "ogdata.policies.lob_multi:FirmTWAP",
    "lob-makers-and-executor/symmetric-and-twap": "ogdata.policies.lob_multi:Symmetric",
    "lob-makers-and-executor/skew-and-twap": "ogdata.policies.lob_multi:InventorySkew",
    "market-making/avellaneda-stoikov": "ogdata.policies.market_making:AvellanedaStoikov",
    "market-making/fixed-symmetric": "ogdata.policies.market_making:FixedSymmetric",
    "market-making/dp-optimal": "ogdata.policies.market_making:MarketMakingDP",
    "multi-market-making/cooperative-as": "ogdata.policies.market_making:CooperativeAS",
    "multi-market-making/cooperative-dp": "ogdata.policies.market_making:CooperativeDP",
    "portfolio/equal-weight": "ogdata.policies.portfolio:EqualWeight",
    "portfolio/buy-and-hold": "ogdata.policies.portfolio:BuyAndHold",
    "portfolio/kelly": "ogdata.policies.portfolio:KellyMix",
    "portfolio/cvar5-mix": "ogdata.policies.portfolio:cvar5_mix",
    "portfolio/cvar10-mix": "ogdata.policies.portfolio:cvar10_mix",
    "portfolio/meancvar10-mix": "ogdata.policies.portfolio:meancvar10_mix",
    "trading/always-long": "ogdata.policies.trading:AlwaysLong",
    "trading/flat": "ogdata.policies.trading:Flat",
    "trading/regime-filter": "ogdata.policies.trading:RegimeFilter",
    "option-exercise/dp-optimal": "ogdata.policies.option_exercise:OptimalExercise",
    "option-exercise/at-maturity": "ogdata.policies.option_exercise:ExerciseAtMaturity",
    "option-exercise/longstaff-schwartz": "ogdata.policies.option_exercise:LongstaffSchwartz",
    "stat-arb/dp-optimal": "ogdata.policies.stat_arb:OptimalSpreadTrading",
    "stat-arb/band": "ogdata.policies.stat_arb:BandRule",
    "stat-arb/band-1sd": "ogdata.policies.stat_arb:band_rule_1sd",
}


def register_policy(name: str, factory: Factory | str | None = None):
    """Register `factory(core) -> policy` under `name`: `register_policy(name, "module:attr")`
    (imported on first use), `register_policy(name, factory)`, or as a decorator `@register_policy(name)`."""
    if factory is not None:
        _POLICIES[name] = factory
        return factory

    def deco(f):
        _POLICIES[name] = f
        return f

    return deco


def _resolve(name: str) -> Factory:
    factory = _POLICIES[name]
    if isinstance(factory, str):
        mod, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(mod), attr)
    return factory


def make_policy(name: str, core) -> Policy:
    """Build the named reference policy for `core`."""
    try:
        factory = _resolve(name)
    except KeyError:
        raise InvalidIdError(f"unknown reference policy {name!r}.{closest(name, _POLICIES)} "
                             f"Known: {sorted(_POLICIES)}") from None
    return factory(core)


def list_policies() -> list[str]:
    """Every registered policy name (nothing is imported)."""
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


class NoisyPolicy:
    """Another policy plus the tiers' rollout noise: Gaussian σ = `noise` on the [-1, 1] action scale
    (Box, clipped to the bounds) or ε = `noise` of ε-greedy (Discrete) — the same noise a checkpoint's
    rollouts get, so a reference policy can stand in for a tier (catalogue v1's named fallbacks)."""

    def __init__(self, policy: Policy, space: spaces.Space, noise: float):
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite value >= 0, got {noise!r}")
        self.policy, self.space, self.noise = policy, space, float(noise)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = self.policy(obs, rng)
        sp = self.space
        if isinstance(sp, spaces.Discrete):
            explore = rng.random(a.shape) < self.noise
            return np.where(explore, rng.integers(sp.start, sp.start + sp.n, size=a.shape), a)
        half = np.where(np.isfinite(sp.high - sp.low), 0.5 * (sp.high.astype(np.float64) - sp.low), 1.0)
        u = np.asarray(a, np.float64) + self.noise * half * rng.standard_normal(a.shape)
        return np.clip(u, sp.low, sp.high).astype(sp.dtype)
