"""Single-agent algorithms written here (not d3rlpy) behind the learner face train.py drives:
MOPO and its single-model Lipschitz variant (baselines/mopo.py), ARSQ (baselines/arsq.py).

`Transitions` keeps a dataset's transitions scaled (`baselines.data.Scaling`) on the training
device, so a batch is one `index_select`; `NativeLearner` builds an algorithm from a dataset or a
checkpoint's JSON config, steps it, and acts on raw observations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from baselines.arsq import ARSQ
from baselines.data import Scaling
from baselines.mopo import LMOPO, MOPO
from ogdata.errors import DataValidationError, InvalidIdError, closest

# In the order `python -m baselines list` shows them.
CLASSES = (MOPO, LMOPO, ARSQ)
ALGOS = {cls.name: cls for cls in CLASSES}


def algo_class(name: str):
    cls = ALGOS.get(name)
    if cls is None:
        raise InvalidIdError(f"unknown algorithm {name!r}.{closest(name, ALGOS)} choose from {', '.join(ALGOS)}")
    return cls


class Transitions:
    """A single-agent dataset's transitions, scaled, as tensors: observations and next_observations (N, d),
    actions (N, a) in [-1, 1], rewards and terminals (N,)."""

    KEYS = ("observations", "next_observations", "actions", "rewards", "terminals")

    def __init__(self, ds, scaling: Scaling, device: str | torch.device = "cpu", seed: int = 0):
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self.KEYS}
        for chunk in ds.iter_chunks(chunk_size=1 << 18, keys=self.KEYS):
            n = len(chunk["rewards"])
            parts["observations"].append(scaling.obs(chunk["observations"].reshape(n, -1)))
            parts["next_observations"].append(scaling.obs(chunk["next_observations"].reshape(n, -1)))
            parts["actions"].append(scaling.action_to_unit(chunk["actions"].reshape(n, -1)))
            parts["rewards"].append((chunk["rewards"] * scaling.reward_scale).astype(np.float32))
            parts["terminals"].append(chunk["terminals"].astype(np.float32))
        self.device = torch.device(device)
        self.tensors = {k: torch.from_numpy(np.concatenate(v)).to(self.device) for k, v in parts.items()}
        self.size = len(self.tensors["rewards"])
        if self.size == 0:
            raise DataValidationError("cannot train on an empty dataset")
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (int(batch_size),), device=self.device, generator=self.generator)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


class NativeLearner:
    """One of `CLASSES` with its data and scaling: update, act, checkpoint."""

    multi_agent = False

    def __init__(self, name: str, algo, scaling: Scaling, action_shape: tuple[int, ...],
                 data: Transitions | None = None):
        self.name, self.algo, self.scaling, self.data = name, algo, scaling, data
        self.action_shape = tuple(action_shape)
        self.batch_size = int(algo.config.batch_size)
        self.device = algo.device

    @classmethod
    def from_dataset(cls, name: str, ds, scaling: Scaling, *, hidden: int = 256, layers: int = 2,
                     batch_size: int = 256, device: str = "cpu", seed: int = 0,
                     overrides: dict[str, Any] | None = None) -> NativeLearner:
        torch.manual_seed(int(seed))
        klass = algo_class(name)
        if not isinstance(ds.action_space, spaces.Box) or ds.multi_agent:
            raise DataValidationError(f"{name} needs single-agent continuous (Box) actions")
        config = klass.config_class(hidden=int(hidden), layers=int(layers), batch_size=int(batch_size),
                                    **{**klass.defaults, **(overrides or {})})
        data = Transitions(ds, scaling, device=device, seed=seed)
        obs_dim, act_dim = data.tensors["observations"].shape[1], data.tensors["actions"].shape[1]
        algo = klass(obs_dim, act_dim, config, device)
        if hasattr(algo, "attach"):
            algo.attach(data, seed)
        return cls(name, algo, scaling, ds.action_space.shape, data)

    def step(self) -> dict[str, torch.Tensor]:
        return self.algo.update(self.data.sample(self.batch_size))

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations (B, *obs) -> env actions (B, *act)."""
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        x = torch.from_numpy(self.scaling.obs(obs)).to(self.device)
        a = self.algo.act(x).cpu().numpy()
        return self.scaling.action_from_unit(a).reshape((len(obs),) + self.action_shape)

    def modules(self) -> dict[str, torch.nn.Module]:
        return self.algo.modules()

    def config_json(self) -> dict[str, Any]:
        return {"kind": "native", "algo": self.name, "config": dataclasses.asdict(self.algo.config),
                "obs_dim": int(len(self.scaling.obs_mean)), "act_dim": int(np.prod(self.action_shape)),
                "action_shape": list(self.action_shape), "scaling": self.scaling.to_json()}

    @classmethod
    def from_config(cls, config: dict[str, Any], device: str = "cpu") -> NativeLearner:
        """Rebuild the networks (untrained) from a checkpoint's JSON config."""
        klass = algo_class(config["algo"])
        algo = klass(config["obs_dim"], config["act_dim"], klass.config_class(**config["config"]), device)
        return cls(config["algo"], algo, Scaling.from_json(config["scaling"]), tuple(config["action_shape"]))
