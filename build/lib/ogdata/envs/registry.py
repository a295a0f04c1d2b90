"""The environment registry: ids -> vectorised cores, made lazily (Minari-style entry points).

Each family module calls `register(EnvSpec(...))` at import; `ogdata.envs` imports the
family modules, which are numpy-only (real-price loaders import their packages lazily).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ogdata.errors import InvalidIdError, closest

_REGISTRY: dict[str, EnvSpec] = {}


@dataclass(frozen=True)
class EnvSpec:
    """What an environment id means.

    core: "module:Class" of a `VectorMarket`, built as Class(num_envs=B, **kwargs).
    references: names of the random and expert reference policies in `ogdata.policies`.
    extras: pip extras the env needs (e.g. ("realdata",)).
    """

    id: str
    core: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    multi_agent: bool = False
    family: str = ""
    description: str = ""
    references: Mapping[str, str] = field(default_factory=lambda: {"random": "random"})
    extras: tuple[str, ...] = ()

    def core_class(self):
        mod, _, name = self.core.partition(":")
        return getattr(importlib.import_module(mod), name)

    def make_core(self, num_envs: int = 1, **kwargs):
        return self.core_class()(num_envs=num_envs, **{**self.kwargs, **kwargs})


def register(spec: EnvSpec) -> EnvSpec:
    if spec.id in _REGISTRY and _REGISTRY[spec.id] != spec:
        raise InvalidIdError(f"environment id {spec.id!r} is already registered differently")
    _REGISTRY[spec.id] = spec
    import gymnasium

    gym_id = f"ogdata/{spec.id}"
    if not spec.multi_agent and gym_id not in gymnasium.registry:
        gymnasium.register(gym_id, entry_point="ogdata.envs.registry:_gym_entry",
                           kwargs={"ogdata_id": spec.id}, disable_env_checker=False)
    return spec


def _gym_entry(ogdata_id: str, **kwargs):
    return make_env(ogdata_id, **kwargs)


def env_spec(env_id: str) -> EnvSpec:
    """The spec of a registered id; a clear error with the closest id otherwise."""
    _load_families()
    if env_id.startswith("ogdata/"):
        env_id = env_id[len("ogdata/"):]
    try:
        return _REGISTRY[env_id]
    except KeyError:
        raise InvalidIdError(f"unknown environment id {env_id!r}.{closest(env_id, _REGISTRY)} "
                             "See ogdata.list_envs() for every id.") from None


def list_envs(multi_agent: bool | None = None) -> list[str]:
    """Every registered env id (optionally only single- or only multi-agent)."""
    _load_families()
    return sorted(k for k, s in _REGISTRY.items() if multi_agent is None or s.multi_agent == multi_agent)


def make_env(env_id: str, **kwargs):
    """A gymnasium.Env for single-agent ids, a pettingzoo ParallelEnv for multi-agent ids."""
    from ogdata.envs.core import MarketEnv, MarketParallelEnv

    spec = env_spec(env_id)
    core = spec.make_core(num_envs=1, **kwargs)
    return MarketParallelEnv(core, spec.id) if spec.multi_agent else MarketEnv(core, spec.id)


def make_vector_env(env_id: str, num_envs: int, **kwargs):
    """A gymnasium VectorEnv (next-step autoreset) over one vectorised core."""
    from ogdata.envs.core import MarketVectorEnv

    spec = env_spec(env_id)
    if spec.multi_agent:
        raise InvalidIdError(f"{env_id!r} is multi-agent; use make_core(env_id, num_envs) for batches")
    return MarketVectorEnv(spec.make_core(num_envs=num_envs, **kwargs))


def make_core(env_id: str, num_envs: int = 1, **kwargs):
    """The raw vectorised core (what generation uses)."""
    return env_spec(env_id).make_core(num_envs=num_envs, **kwargs)


_FAMILIES = (
    "ogdata.envs.portfolio",
    "ogdata.envs.trading",
    "ogdata.envs.execution",
    "ogdata.envs.market_making",
)
_loaded = False


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _FAMILIES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a family module exists but fails to import: surface it
                raise
