"""The environment registry: ids -> vectorised cores, made lazily from "module:Class" strings.

A spec is data: `register(EnvSpec(...))` imports nothing of the env it names. `ogdata.envs`
registers the built-in ids (`ogdata/envs/builtin.py`) on import, so `import ogdata` makes every
id known without importing a family module (numpy cores, price loaders) until it is made.

Every single-agent id is also registered with Gymnasium as `ogdata/<id>-v<version>`, with an
`entry_point` (one env) and a `vector_entry_point` (`gymnasium.make_vec` gets ogdata's batched
core, not B copies of the single env). Gymnasium does not mix versioned and unversioned ids, so
no unversioned `ogdata/<id>` is registered: `gymnasium.make("ogdata/<id>")` resolves to the
latest version with Gymnasium's warning. Multi-agent ids are PettingZoo envs: `make_env` only.

The envs layer knows nothing of policies: `EnvSpec.references` holds the *names* of the
reference policies, which `ogdata.policies.make_policy` resolves.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ogdata.errors import EnvError, InvalidIdError, closest

GYM_NAMESPACE = "ogdata"
# Kwargs that change only what a policy observes, never the markets, the dynamics or the rewards
# (`core.StockFeatures`): data and evaluations with them keep the id's markets and references.
OBSERVATION_KWARGS = ("augment_stock", "stock_scale")
_REGISTRY: dict[str, EnvSpec] = {}
_GYM_IDS: dict[str, str] = {}  # "ogdata/<id>-v<N>" -> ogdata id


@dataclass(frozen=True)
class EnvSpec:
    """What an environment id means.

    core: "module:Class" of a `VectorMarket`, built as Class(num_envs=B, **kwargs).
    references: role ("random", "expert") -> name of a reference policy, resolved by
        `ogdata.policies.make_policy` (the envs layer never imports it).
    extras: pip extras the env needs (e.g. ("realdata",)).
    version: the Gymnasium version (`ogdata/<id>-v<version>`); bumped when the dynamics change.
    step: what one step is in market time, in words ("1 trading day", "1/4 trading day").
    periods_per_year: steps a year, stated only for daily-or-slower envs: finance figures are
        annualised with it; None (intraday envs) means per-episode figures, never annualised.
    sources: where the dynamics' parameters come from (papers, tables, our own choices), in words;
        the dataset cards print it beside the description.
    """

    id: str
    core: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    multi_agent: bool = False
    family: str = ""
    description: str = ""
    references: Mapping[str, str] = field(default_factory=lambda: {"random": "random"})
    extras: tuple[str, ...] = ()
    version: int = 0
    step: str = ""
    periods_per_year: float | None = None
    sources: str = ""

    @property
    def gym_id(self) -> str:
        """The Gymnasium id, `ogdata/<id>-v<version>` (single-agent ids only are registered there)."""
        return f"{GYM_NAMESPACE}/{self.id}-v{self.version}"

    def core_class(self):
        mod, _, name = self.core.partition(":")
        return getattr(importlib.import_module(mod), name)

    def make_core(self, num_envs: int = 1, **kwargs):
        return self.core_class()(num_envs=num_envs, **{**self.kwargs, **kwargs})


def register(spec: EnvSpec) -> EnvSpec:
    """Register an id (data only: nothing is imported); single-agent ids also with Gymnasium."""
    if spec.id in _REGISTRY and _REGISTRY[spec.id] != spec:
        raise InvalidIdError(f"environment id {spec.id!r} is already registered differently")
    _REGISTRY[spec.id] = spec
    if not spec.multi_agent:
        import gymnasium

        _GYM_IDS[spec.gym_id] = spec.id
        if spec.gym_id not in gymnasium.registry:
            gymnasium.register(spec.gym_id, entry_point="ogdata.envs.registry:gym_entry_point",
                               vector_entry_point="ogdata.envs.registry:gym_vector_entry_point",
                               kwargs={"ogdata_id": spec.id})
    return spec


def _no_render(render_mode) -> None:
    if render_mode is not None:
        raise EnvError(f"ogdata envs do not render (render_mode={render_mode!r}); pass render_mode=None")


def gym_entry_point(ogdata_id: str, render_mode: str | None = None, **kwargs):
    """What `gymnasium.make("ogdata/<id>-v0", **kwargs)` calls: `make_env(ogdata_id, **kwargs)`."""
    _no_render(render_mode)
    return make_env(ogdata_id, **kwargs)


def gym_vector_entry_point(ogdata_id: str, num_envs: int = 1, render_mode: str | None = None, **kwargs):
    """What `gymnasium.make_vec("ogdata/<id>-v0", num_envs=B)` calls: one batched core, not B envs."""
    _no_render(render_mode)
    return make_vector_env(ogdata_id, num_envs=num_envs, **kwargs)


def env_spec(env_id: str) -> EnvSpec:
    """The spec of a registered id (also accepts the Gymnasium `ogdata/<id>-v<N>` and `ogdata/<id>`)."""
    if not isinstance(env_id, str):
        raise InvalidIdError(f"an environment id is a string such as 'execution-ac', got {env_id!r}")
    if env_id in _GYM_IDS:
        env_id = _GYM_IDS[env_id]
    elif env_id.startswith(GYM_NAMESPACE + "/"):
        env_id = env_id[len(GYM_NAMESPACE) + 1:]
    try:
        return _REGISTRY[env_id]
    except KeyError:
        raise InvalidIdError(f"unknown environment id {env_id!r}.{closest(env_id, _REGISTRY)} "
                             "See ogdata.list_envs() for every id.") from None


def list_envs(multi_agent: bool | None = None) -> list[str]:
    """Every registered env id (optionally only single- or only multi-agent)."""
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
