"""Single-agent baselines through d3rlpy 2.8: BC, CQL, IQL, TD3+BC; DiscreteBC, DiscreteCQL, DiscreteBCQ.

The algorithm is built from the dataset's spaces (observation size, action size and type: all d3rlpy's
`build_with_dataset` reads, without converting a million transitions to d3rlpy episodes), with the env's
scaling (`baselines.data.fit_scaling`) handed to d3rlpy's own scalers:
StandardObservationScaler (per-feature mean/std), MultiplyRewardScaler (1/std of the
rewards) and MinMaxActionScaler (the action space's bounds onto the actor's [-1, 1]).

Batches come from the ogdata arrays as d3rlpy `TransitionMiniBatch`es (`TransitionSampler`):
the same transitions d3rlpy would draw, plus the last step of every truncated episode
(d3rlpy's picker drops it, having no next observation), at ~0.1 ms a batch instead of ~2 ms.

`value_loss = "hl_gauss"` (an override, with `bins`, `sigma_ratio`) gives the critics of cql, iql,
td3bc and bcq an HL-Gauss histogram head over the dataset's value range (baselines/d3rlpy_hlgauss.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from baselines.console import import_d3rlpy
from baselines.data import Scaling
from baselines.hlgauss import check_value_loss, value_support
from ogdata.errors import DataValidationError, InvalidIdError, closest


@dataclass(frozen=True)
class D3rlpyAlgo:
    """A single-agent algorithm run through d3rlpy: its name, what it is, its d3rlpy config per action type."""

    name: str  # the name `python -m baselines train --algo` takes
    description: str  # a few words for `python -m baselines list`
    configs: dict[str, str]  # action type ("discrete" / "continuous") -> d3rlpy config class name

    @property
    def action_types(self) -> tuple[str, ...]:
        return tuple(k for k in ("discrete", "continuous") if k in self.configs)

    @property
    def implementation(self) -> str:
        return "d3rlpy " + " / ".join(c.removesuffix("Config") for c in self.configs.values())


# The single-agent algorithms, in the order `python -m baselines list` shows them.
ALGORITHMS = (
    D3rlpyAlgo("bc", "behaviour cloning", {"continuous": "BCConfig", "discrete": "DiscreteBCConfig"}),
    D3rlpyAlgo("cql", "conservative Q-learning", {"continuous": "CQLConfig", "discrete": "DiscreteCQLConfig"}),
    D3rlpyAlgo("iql", "implicit Q-learning", {"continuous": "IQLConfig"}),
    D3rlpyAlgo("td3bc", "TD3 with a behaviour-cloning term", {"continuous": "TD3PlusBCConfig"}),
    D3rlpyAlgo("bcq", "batch-constrained Q-learning", {"discrete": "DiscreteBCQConfig"}),
)
ALGOS = {a.name: a for a in ALGORITHMS}
# Deviations from d3rlpy's defaults. DiscreteCQL/BCQ default to Atari settings (lr 6.25e-5, a hard
# target copy every 8000 updates, batch 32) under which a short run never refreshes its target.
OVERRIDES: dict[str, dict[str, Any]] = {
    "DiscreteCQLConfig": {"learning_rate": 3e-4, "target_update_interval": 1000},
    "DiscreteBCQConfig": {"learning_rate": 3e-4, "target_update_interval": 1000},
}
HL_GAUSS_FIELDS = ("value_loss", "bins", "sigma_ratio", "v_min", "v_max")  # overrides read here, not d3rlpy's
ENCODER_FIELDS = ("encoder_factory", "actor_encoder_factory", "critic_encoder_factory", "value_encoder_factory",
                  "imitator_encoder_factory")


def action_type(space: spaces.Space) -> str:
    return "discrete" if isinstance(space, spaces.Discrete) else "continuous"


def d3rlpy_device(device: str) -> str:
    return device if ":" in device else f"{device}:0"


def hl_gauss_config(cls_name: str):
    """The d3rlpy config class that takes an HL-Gauss critic in place of `cls_name`, or None where it has no
    critic (BC): d3rlpy's IQL builds its critics itself, so it gets our subclass."""
    d3rlpy = import_d3rlpy()
    from baselines.d3rlpy_hlgauss import HLGaussIQLConfig

    cls = HLGaussIQLConfig if cls_name == "IQLConfig" else getattr(d3rlpy.algos, cls_name)
    return cls if "q_func_factory" in {f.name for f in dataclasses.fields(cls)} else None


def make_config(name: str, kind: str, scaling: Scaling, hidden: int = 256, layers: int = 2,
                batch_size: int = 256, overrides: dict[str, Any] | None = None):
    """The d3rlpy config of algorithm `name` for `kind` ("discrete"/"continuous") actions."""
    d3rlpy = import_d3rlpy()
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import MinMaxActionScaler, MultiplyRewardScaler, StandardObservationScaler

    algo = ALGOS.get(name)
    if algo is None:
        raise InvalidIdError(f"unknown single-agent algorithm {name!r}.{closest(name, ALGOS)} "
                             f"choose from {', '.join(ALGOS)}")
    cls_name = algo.configs.get(kind)
    if cls_name is None:
        raise DataValidationError(f"{name} has no {kind}-action variant; choose from "
                                  f"{', '.join(a.name for a in ALGORITHMS if kind in a.configs)}")
    cls = getattr(d3rlpy.algos, cls_name)
    overrides = dict(overrides or {})
    hl = {k: overrides.pop(k) for k in HL_GAUSS_FIELDS if k in overrides}
    value_loss = hl.pop("value_loss", "mse")
    check_value_loss(value_loss)
    if value_loss == "hl_gauss":
        from baselines.d3rlpy_hlgauss import HLGaussQFunctionFactory

        cls = hl_gauss_config(cls_name)
        if cls is None:
            raise DataValidationError(f"{name} has no critic: value_loss='hl_gauss' is for cql, iql, td3bc and bcq")
        overrides["q_func_factory"] = HLGaussQFunctionFactory(**hl)
    elif hl:
        raise DataValidationError(f"{', '.join(hl)} are HL-Gauss settings: they need value_loss='hl_gauss'")
    names = {f.name for f in dataclasses.fields(cls)}
    kw: dict[str, Any] = {"batch_size": int(batch_size)}
    enc = VectorEncoderFactory(hidden_units=[int(hidden)] * int(layers))
    kw.update({f: enc for f in ENCODER_FIELDS if f in names})
    if scaling.rule.get("observation", "standard") == "standard":
        kw["observation_scaler"] = StandardObservationScaler(mean=np.asarray(scaling.obs_mean, np.float64),
                                                             std=np.asarray(scaling.obs_std, np.float64))
    if scaling.reward_scale != 1.0:
        kw["reward_scaler"] = MultiplyRewardScaler(float(scaling.reward_scale))
    if kind == "continuous":
        kw["action_scaler"] = MinMaxActionScaler(minimum=np.asarray(scaling.action_low, np.float64),
                                                 maximum=np.asarray(scaling.action_high, np.float64))
    kw.update(OVERRIDES.get(cls_name, {}))
    kw.update(overrides)
    return cls(**kw)


class TransitionSampler:
    """Uniform d3rlpy TransitionMiniBatches from an ogdata dataset's transitions, in memory."""

    def __init__(self, ds, seed: int = 0):
        import_d3rlpy()
        from d3rlpy.dataset import TransitionMiniBatch

        self._mb = TransitionMiniBatch
        arrs = {k: [] for k in ("observations", "next_observations", "actions", "rewards", "terminals")}
        for chunk in ds.iter_chunks(chunk_size=1 << 18, keys=tuple(arrs)):
            for k in arrs:
                arrs[k].append(chunk[k])
        n = ds.num_transitions
        self.obs = np.concatenate(arrs["observations"]).astype(np.float32).reshape(n, -1)
        self.next_obs = np.concatenate(arrs["next_observations"]).astype(np.float32).reshape(n, -1)
        self.actions = np.concatenate(arrs["actions"]).astype(np.float32).reshape(n, -1)
        self.rewards = np.concatenate(arrs["rewards"]).astype(np.float32).reshape(n, 1)
        self.terminals = np.concatenate(arrs["terminals"]).astype(np.float32).reshape(n, 1)
        self.size = n
        self.rng = np.random.default_rng(seed)
        self._ones: dict[int, np.ndarray] = {}

    def sample(self, batch_size: int):
        idx = self.rng.integers(0, self.size, size=batch_size)
        if batch_size not in self._ones:
            self._ones[batch_size] = np.ones((batch_size, 1), np.float32)
        act = self.actions[idx]
        return self._mb(observations=self.obs[idx], actions=act, rewards=self.rewards[idx],
                        next_observations=self.next_obs[idx], next_actions=np.zeros_like(act),
                        terminals=self.terminals[idx], intervals=self._ones[batch_size], transitions=[])


class D3rlpyLearner:
    """One d3rlpy algorithm, its sampler and its scaling: update, act, checkpoint."""

    multi_agent = False

    def __init__(self, name: str, algo, scaling: Scaling, kind: str, action_shape: tuple[int, ...],
                 sampler: TransitionSampler | None = None):
        self.name, self.algo, self.scaling, self.kind = name, algo, scaling, kind
        self.action_shape = tuple(action_shape)
        self.sampler = sampler
        self.batch_size = int(algo.config.batch_size)

    @classmethod
    def from_dataset(cls, name: str, ds, scaling: Scaling, *, hidden: int = 256, layers: int = 2,
                     batch_size: int = 256, device: str = "cpu", seed: int = 0,
                     overrides: dict[str, Any] | None = None) -> D3rlpyLearner:
        d3rlpy = import_d3rlpy()
        d3rlpy.seed(int(seed))
        kind = action_type(ds.action_space)
        overrides = dict(overrides or {})
        if overrides.get("value_loss") == "hl_gauss" and "v_min" not in overrides:  # support: the data's values
            overrides["v_min"], overrides["v_max"] = value_support(ds, scaling.reward_scale,
                                                                   float(overrides.get("gamma", 0.99)))
        cfg = make_config(name, kind, scaling, hidden, layers, batch_size, overrides)
        algo = cfg.create(device=d3rlpy_device(device))
        sp = ds.action_space
        algo.create_impl((int(np.prod(ds.observation_space.shape)),),
                         int(sp.n) if kind == "discrete" else int(np.prod(sp.shape)))
        return cls(name, algo, scaling, kind, ds.action_space.shape or (), TransitionSampler(ds, seed))

    def step(self) -> dict[str, float]:
        return self.algo.update(self.sampler.sample(self.batch_size))

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations (B, *obs) -> env actions (B, *act) (d3rlpy applies the scalers)."""
        a = self.algo.predict(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))
        return a.astype(np.int64) if self.kind == "discrete" else a.reshape((len(obs),) + self.action_shape)

    def modules(self) -> dict[str, Any]:
        from torch import nn

        mods = self.algo.impl.modules
        return {f.name: getattr(mods, f.name) for f in dataclasses.fields(mods)
                if isinstance(getattr(mods, f.name), nn.Module)}

    def config_json(self) -> dict[str, Any]:
        from d3rlpy.base import LearnableConfigWithShape

        cfg = LearnableConfigWithShape(observation_shape=self.algo.impl.observation_shape,
                                       action_size=self.algo.impl.action_size, config=self.algo.config)
        return {"kind": "d3rlpy", "algo": self.name, "action_type": self.kind,
                "action_shape": list(self.action_shape), "d3rlpy_version": _d3rlpy_version(),
                "d3rlpy_config": cfg.serialize_to_dict(), "scaling": self.scaling.to_json()}

    @classmethod
    def from_config(cls, config: dict[str, Any], device: str = "cpu") -> D3rlpyLearner:
        """Rebuild the networks (untrained) from a checkpoint's JSON config."""
        import json

        import_d3rlpy()
        from d3rlpy.base import LearnableConfigWithShape

        import baselines.d3rlpy_hlgauss  # noqa: F401 - registers the HL-Gauss critics and IQL for deserialising

        cfg = LearnableConfigWithShape.deserialize(json.dumps(config["d3rlpy_config"]))
        algo = cfg.create(device=d3rlpy_device(device))
        return cls(config["algo"], algo, Scaling.from_json(config["scaling"]), config["action_type"],
                   tuple(config["action_shape"]))


def _d3rlpy_version() -> str:
    return import_d3rlpy().__version__
