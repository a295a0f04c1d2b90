"""ICQL: independent conservative Q-learning for discrete actions, one Q-network shared by all agents.

Each agent learns Q(o_i, id_i, ·) from its own reward as if the others were part of the
environment ("Dispelling the Mirage", 2024: such independent learners match most offline
MARL methods). The loss is d3rlpy's DiscreteCQL per agent: a double-DQN Huber TD error
plus α·(logsumexp_a Q(o, a) − Q(o, a_data)), which pushes down actions the data never took.
The target network is copied every `target_update_interval` updates.
With `value_loss = "hl_gauss"` every critic outputs the logits of a histogram over the dataset's
value range and is trained by cross-entropy to the HL-Gauss target (baselines/hlgauss.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.data import Spec, with_agent_id
from baselines.hlgauss import ValueHead, fit_support
from baselines.networks import adam, mlp
from ogdata.errors import DataValidationError


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers of the Q-network
    lr: float = 3e-4  # Adam learning rate
    batch_size: int = 256  # joint transitions per update (each gives n agent examples)
    gamma: float = 0.99  # discount
    alpha: float = 1.0  # weight of the conservative term
    target_update_interval: int = 1000  # updates between hard copies of the target network
    value_loss: str = "mse"  # "mse", or "hl_gauss": critics classify over a histogram (baselines/hlgauss.py)
    bins: int = 101  # HL-Gauss: histogram bins
    sigma_ratio: float = 0.75  # HL-Gauss: σ of the target Gaussian, in bin widths
    v_min: float = -1.0  # HL-Gauss support, set from the dataset's returns-to-go by fit_config
    v_max: float = 1.0


class ICQL:
    name = "icql"
    description = "independent CQL"
    action_types = ("discrete",)
    config_class = Config

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        if not spec.discrete:
            raise DataValidationError("ICQL needs discrete actions; use itd3bc, matd3bc or iiql for continuous ones")
        self.spec, self.config, self.device = spec, config, torch.device(device)
        self.head = ValueHead(config, self.device)  # one value, or HL-Gauss logits, per action
        out = spec.act_dim * self.head.size
        self.q = mlp(spec.obs_dim + spec.n_agents, out, config.hidden, config.layers).to(self.device)
        self.q_target = mlp(spec.obs_dim + spec.n_agents, out, config.hidden,
                            config.layers).to(self.device).requires_grad_(False)
        self.q_target.load_state_dict(self.q.state_dict())
        self.optim = adam(self.q.parameters(), lr=config.lr)
        self.steps = 0

    @classmethod
    def fit_config(cls, config: Config, ds, scaling) -> Config:
        """The HL-Gauss support from the dataset's returns-to-go (value_loss = "hl_gauss")."""
        return fit_support(config, ds, scaling)

    def _out(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(M, A, 1 or bins): the network's output per action."""
        return net(x).unflatten(-1, (self.spec.act_dim, self.head.size))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        x = with_agent_id(batch["observations"]).flatten(0, 1)  # (B·n, d + n)
        x2 = with_agent_id(batch["next_observations"]).flatten(0, 1)
        a = batch["actions"].flatten()
        r, done = batch["rewards"].flatten(), batch["terminals"].flatten()

        out = self._out(self.q, x)  # (M, A, m)
        q_all = self.head.value(out)  # (M, A)
        q_data = q_all.gather(1, a[:, None]).squeeze(1)
        with torch.no_grad():
            a2 = self.head.value(self._out(self.q, x2)).argmax(1, keepdim=True)  # double DQN: online argmax
            y = r + c.gamma * (1.0 - done) * self.head.value(self._out(self.q_target, x2)).gather(1, a2).squeeze(1)
        out_data = out.gather(1, a.view(-1, 1, 1).expand(-1, 1, out.shape[-1])).squeeze(1)
        td = self.head.loss(out_data, y, huber=True).mean()
        conservative = (torch.logsumexp(q_all, dim=1) - q_data).mean()
        loss = td + c.alpha * conservative
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()

        self.steps += 1
        if self.steps % c.target_update_interval == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return {"loss": loss.detach(), "td_loss": td.detach(), "conservative_loss": conservative.detach(),
                "q_mean": q_data.detach().mean()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, n, d) -> greedy actions (B, n)."""
        return self.head.value(self._out(self.q, with_agent_id(obs))).argmax(-1)

    def modules(self) -> dict[str, nn.Module]:
        return {"q": self.q, "q_target": self.q_target}
