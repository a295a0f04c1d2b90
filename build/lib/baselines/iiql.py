"""IIQL: independent implicit Q-learning, for discrete and continuous actions, networks shared by all agents.

Per agent, IQL (Kostrikov et al., 2022) never queries actions outside the data:
  V(o_i)     expectile-regresses (τ) on min_k Q'_k(o_i, a_i)   — an in-sample maximum;
  Q_k(o_i,a_i) regresses on r_i + γ(1−d_i)·V(o'_i);
  π(o_i)     is advantage-weighted regression: maximise exp(β·(Q' − V)) · log π(a_i | o_i), weights ≤ 100.
Continuous actions: a Gaussian with mean tanh(·) and a learned state-independent log-std
(d3rlpy's IQL policy); acting uses the mean. Discrete: a softmax policy, acting greedily.
Q and V share one optimiser step (their losses touch disjoint parameters). Agents fold into
the batch: (B·n, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.data import Spec, with_agent_id


@dataclass
class Config:
    hidden: int = 256
    layers: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    expectile: float = 0.7
    beta: float = 3.0
    max_weight: float = 100.0


def mlp(inp: int, out: int, hidden: int, layers: int) -> nn.Sequential:
    dims = [inp] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(dims[-1], out))

def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has it (CPU since 2.4): ~4x less optimiser overhead."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


class Twin(nn.Module):
    """k critics as one batched MLP (weights (k, in, out)): one matmul per layer for all of them."""

    def __init__(self, inp: int, hidden: int, layers: int, out: int = 1, k: int = 2):
        super().__init__()
        dims = [inp] + [hidden] * layers + [out]
        self.w = nn.ParameterList()
        self.b = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default initialisation
            self.w.append(nn.Parameter(torch.empty(k, a, b).uniform_(-bound, bound)))
            self.b.append(nn.Parameter(torch.empty(k, 1, b).uniform_(-bound, bound)))
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, in) -> (k, M, out)."""
        h = x.unsqueeze(0).expand(self.k, -1, -1)
        last = len(self.w) - 1
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class GaussianActor(nn.Module):
    """N(tanh(μ(x)), exp(log_std)) with a state-independent log-std in [-5, 2]."""

    def __init__(self, inp: int, act: int, hidden: int, layers: int):
        super().__init__()
        self.mu = mlp(inp, act, hidden, layers)
        self.log_std = nn.Parameter(torch.zeros(act))

    def log_prob(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        mean = torch.tanh(self.mu(x))
        log_std = self.log_std.clamp(-5.0, 2.0)
        z = (a - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mu(x))


class IIQL:
    name = "iiql"
    action_types = ("discrete", "continuous")

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        self.spec, self.config, self.device = spec, config, torch.device(device)
        d, n, a, h, L = spec.obs_dim, spec.n_agents, spec.act_dim, config.hidden, config.layers
        if spec.discrete:  # Q_k(o, ·) over all actions; softmax policy
            self.critic = Twin(d + n, h, L, out=a).to(self.device)
            self.critic_target = Twin(d + n, h, L, out=a).to(self.device).requires_grad_(False)
            self.actor = mlp(d + n, a, h, L).to(self.device)
        else:  # Q_k(o, a); Gaussian policy
            self.critic = Twin(d + n + a, h, L).to(self.device)
            self.critic_target = Twin(d + n + a, h, L).to(self.device).requires_grad_(False)
            self.actor = GaussianActor(d + n, a, h, L).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.value = mlp(d + n, 1, h, L).to(self.device)
        self.critic_optim = adam(list(self.critic.parameters()) + list(self.value.parameters()),
                                             lr=config.critic_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)

    def _q(self, net: Twin, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(k, M) values of the data's actions."""
        if self.spec.discrete:
            q = net(x)  # (k, M, A)
            return q.gather(2, a.view(1, -1, 1).expand(q.shape[0], -1, 1)).squeeze(-1)
        return net(torch.cat([x, a], 1)).squeeze(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        x = with_agent_id(batch["observations"]).flatten(0, 1)  # (B·n, d + n)
        x2 = with_agent_id(batch["next_observations"]).flatten(0, 1)
        a = batch["actions"].flatten() if self.spec.discrete else batch["actions"].flatten(0, 1)
        r, done = batch["rewards"].flatten(), batch["terminals"].flatten()

        with torch.no_grad():
            q_t = self._q(self.critic_target, x, a).min(0).values
            y = r + c.gamma * (1.0 - done) * self.value(x2).squeeze(-1)
        v = self.value(x).squeeze(-1)
        diff = q_t - v
        value_loss = (torch.abs(c.expectile - (diff < 0).float()) * diff.pow(2)).mean()
        q = self._q(self.critic, x, a)
        q_loss = F.mse_loss(q, y.expand_as(q), reduction="none").mean(1).sum()
        self.critic_optim.zero_grad(set_to_none=True)
        (value_loss + q_loss).backward()
        self.critic_optim.step()

        weight = torch.exp(c.beta * diff.detach()).clamp(max=c.max_weight)
        if self.spec.discrete:
            log_prob = F.log_softmax(self.actor(x), -1).gather(1, a[:, None]).squeeze(1)
        else:
            log_prob = self.actor.log_prob(x, a)
        actor_loss = -(weight * log_prob).mean()
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"value_loss": value_loss.detach(), "q_loss": q_loss.detach(), "actor_loss": actor_loss.detach(),
                "q_mean": q.detach().mean()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, n, d) -> greedy actions (B, n) or means (B, n, a) in [-1, 1]."""
        out = self.actor(with_agent_id(obs))
        return out.argmax(-1) if self.spec.discrete else out

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "value": self.value}
