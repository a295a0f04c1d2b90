"""MABC: multi-agent behaviour cloning with one shared policy and a one-hot agent id.

Every agent's (observation, action) pair is a supervised example for one network
π(o_i, id_i): cross-entropy for discrete actions, mean-squared error on tanh outputs for
continuous ones (d3rlpy's deterministic BC). The agent axis is folded into the batch, so
one update trains all n agents on B·n examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.data import Spec, with_agent_id
from baselines.networks import adam, mlp


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers of the policy
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 256  # joint transitions per update (each gives n agent examples)


class MABC:
    name = "mabc"
    description = "shared-parameter BC with a one-hot agent id"
    action_types = ("discrete", "continuous")
    config_class = Config

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        self.spec, self.config, self.device = spec, config, torch.device(device)
        self.policy = mlp(spec.obs_dim + spec.n_agents, spec.act_dim, config.hidden, config.layers).to(self.device)
        self.optim = adam(self.policy.parameters(), lr=config.lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = with_agent_id(batch["observations"]).flatten(0, 1)  # (B·n, d + n)
        out = self.policy(x)
        if self.spec.discrete:
            loss = F.cross_entropy(out, batch["actions"].flatten())
        else:
            loss = F.mse_loss(torch.tanh(out), batch["actions"].flatten(0, 1))
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, n, d) -> actions (B, n) ints or (B, n, a) in [-1, 1]."""
        out = self.policy(with_agent_id(obs))
        return out.argmax(-1) if self.spec.discrete else torch.tanh(out)

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy}
