"""The torch algorithms we own behind one face: build from a dataset or a checkpoint config, update, act.

Multi-agent ones (mabc, icql, itd3bc, matd3bc, iiql) and single-agent ones (qriql, sqriql: distributional,
risk-sensitive) alike: a single-agent dataset is loaded with an agent axis of one, so every algorithm
file is written once for (B, n, ...) batches. A class says which it is with `multi_agent`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from baselines.data import AgentBatches, Scaling, Spec, agent_spec
from baselines.icql import ICQL
from baselines.iiql import IIQL
from baselines.itd3bc import ITD3BC
from baselines.mabc import MABC
from baselines.matd3bc import MATD3BC
from baselines.qriql import QRIQL
from baselines.sqriql import SQRIQL
from ogdata.errors import DataValidationError, InvalidIdError, closest

# The torch algorithms, in the order `python -m baselines list` shows them. Each class carries
# its identity (name, description, action_types) and its config_class; the registry reads them here.
CLASSES = (MABC, ICQL, ITD3BC, MATD3BC, IIQL, QRIQL, SQRIQL)
ALGOS = {cls.name: cls for cls in CLASSES}


def algo_class(name: str):
    """The class of the multi-agent algorithm `name`."""
    cls = ALGOS.get(name)
    if cls is None:
        raise InvalidIdError(f"unknown multi-agent algorithm {name!r}.{closest(name, ALGOS)} "
                             f"choose from {', '.join(ALGOS)}")
    return cls


class MultiLearner:
    """A torch algorithm (parameter-shared across agents, or single-agent) with its loader and scaling."""

    def __init__(self, name: str, algo, scaling: Scaling, batches: AgentBatches | None = None):
        self.name, self.algo, self.scaling, self.batches = name, algo, scaling, batches
        self.multi_agent = bool(getattr(algo, "multi_agent", True))
        self.batch_size = int(algo.config.batch_size)
        self.device = algo.device

    @classmethod
    def from_dataset(cls, name: str, ds, scaling: Scaling, *, hidden: int = 256, layers: int = 2,
                     batch_size: int = 256, device: str = "cpu", seed: int = 0,
                     overrides: dict[str, Any] | None = None) -> MultiLearner:
        torch.manual_seed(int(seed))
        klass = algo_class(name)
        spec = agent_spec(ds, single_agent=not getattr(klass, "multi_agent", True))
        if ("discrete" if spec.discrete else "continuous") not in klass.action_types:
            raise DataValidationError(f"{name} does not support {'discrete' if spec.discrete else 'continuous'} "
                                      f"actions; it supports {' and '.join(klass.action_types)}")
        config = klass.config_class(hidden=int(hidden), layers=int(layers), batch_size=int(batch_size),
                                    **(overrides or {}))
        if hasattr(klass, "fit_config"):  # fields measured on the data (HL-Gauss support, stock ranges)
            config = klass.fit_config(config, ds, scaling)
        batches = AgentBatches(ds, scaling, device=device, seed=seed, n_step=getattr(config, "n_step", 1))
        return cls(name, klass(spec, config, device), scaling, batches)

    def step(self) -> dict[str, torch.Tensor]:
        return self.algo.update(self.batches.sample(self.batch_size))

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations (B, n, d) -> env actions (B, n) ints or (B, n, *act); single-agent (B, d) -> (B, ...)."""
        obs = np.asarray(obs, dtype=np.float32)
        if not self.multi_agent:
            obs = obs.reshape(len(obs), 1, -1)
        x = torch.from_numpy(self.scaling.obs(obs)).to(self.device)
        a = self.algo.act(x).cpu().numpy()
        a = a.astype(np.int64) if self.algo.spec.discrete else self.scaling.action_from_unit(a)
        return a if self.multi_agent else a[:, 0]  # (flat Box actions: (B, act_dim) is (B, *act_shape))

    def modules(self) -> dict[str, torch.nn.Module]:
        return self.algo.modules()

    def config_json(self) -> dict[str, Any]:
        return {"kind": "multi", "algo": self.name, "config": dataclasses.asdict(self.algo.config),
                "spec": dataclasses.asdict(self.algo.spec), "scaling": self.scaling.to_json()}

    @classmethod
    def from_config(cls, config: dict[str, Any], device: str = "cpu") -> MultiLearner:
        """Rebuild the networks (untrained) from a checkpoint's JSON config."""
        klass = algo_class(config["algo"])
        algo = klass(Spec(**config["spec"]), klass.config_class(**config["config"]), device)
        return cls(config["algo"], algo, Scaling.from_json(config["scaling"]))
