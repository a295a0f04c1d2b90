"""IIQL: independent implicit Q-learning, for discrete and continuous actions, networks shared by all agents.

Per agent, IQL (Kostrikov et al., 2022) never queries actions outside the data:
  V(o_i)     expectile-regresses (τ) on min_k Q'_k(o_i, a_i)   — an in-sample maximum;
  Q_k(o_i,a_i) regresses on r_i + γ(1−d_i)·V(o'_i);
  π(o_i)     is advantage-weighted regression: maximise exp(β·(Q' − V)) · log π(a_i | o_i), weights ≤ 100.
Continuous actions: a Gaussian with mean tanh(·) and a learned state-independent log-std
(d3rlpy's IQL policy); acting uses the mean. Discrete: a softmax policy, acting greedily.
Q and V share one optimiser step (their losses touch disjoint parameters). Agents fold into
the batch: (B·n, ...).
With `value_loss = "hl_gauss"` every critic outputs the logits of a histogram over the dataset's
value range and is trained by cross-entropy to the HL-Gauss target (baselines/hlgauss.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.data import Spec, with_agent_id
from baselines.hlgauss import ValueHead, fit_support
from baselines.networks import Twin, adam, mlp, soft_update

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # bounds of the Gaussian policy's log-std (d3rlpy's IQL)


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers of the policy, the value and each critic
    actor_lr: float = 3e-4  # Adam learning rate of the policy
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics and the value (one optimiser)
    batch_size: int = 256  # joint transitions per update (each gives n agent examples)
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics
    expectile: float = 0.7  # τ of V's expectile regression (0.5: the mean; → 1: the in-sample maximum)
    beta: float = 3.0  # inverse temperature β of the advantage weights exp(β·(Q − V))
    max_weight: float = 100.0  # advantage weights are clipped at this value
    value_loss: str = "mse"  # "mse", or "hl_gauss": critics classify over a histogram (baselines/hlgauss.py)
    bins: int = 101  # HL-Gauss: histogram bins
    sigma_ratio: float = 0.75  # HL-Gauss: σ of the target Gaussian, in bin widths
    v_min: float = -1.0  # HL-Gauss support, set from the dataset's returns-to-go by fit_config
    v_max: float = 1.0


class GaussianActor(nn.Module):
    """N(tanh(μ(x)), exp(log_std)) with a state-independent log-std in [LOG_STD_MIN, LOG_STD_MAX]."""

    def __init__(self, inp: int, act: int, hidden: int, layers: int):
        super().__init__()
        self.mu = mlp(inp, act, hidden, layers)
        self.log_std = nn.Parameter(torch.zeros(act))

    def log_prob(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        mean = torch.tanh(self.mu(x))
        log_std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        z = (a - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mu(x))


def implicit_q_step(learner, x, a, value_loss, q_loss, q, advantage) -> dict[str, torch.Tensor]:
    """The rest of an IQL update once V's and the critics' losses are built: one optimiser step on both (disjoint
    parameters), advantage-weighted regression of the actor on the detached advantage, Polyak update of the
    target critics. Shared by IIQL and the distributional IQLs, whose losses differ but whose update does not."""
    learner.critic_optim.zero_grad(set_to_none=True)
    (value_loss + q_loss).backward()
    learner.critic_optim.step()
    actor_loss = advantage_weighted_step(learner, x, a, advantage.detach())
    soft_update(learner.critic_target, learner.critic, learner.config.tau)
    return {"value_loss": value_loss.detach(), "q_loss": q_loss.detach(), "actor_loss": actor_loss,
            "q_mean": q.detach().mean()}

def advantage_weighted_step(learner, x, a, advantage) -> torch.Tensor:
    """One step of advantage-weighted regression on `learner.actor` (softmax over discrete actions, else a
    GaussianActor): maximise min(exp(β·A), max_weight) · log π(a | o). Shared by IIQL and the distributional IQLs."""
    c = learner.config
    weight = torch.exp(c.beta * advantage).clamp(max=c.max_weight)
    if learner.spec.discrete:
        log_prob = F.log_softmax(learner.actor(x), -1).gather(1, a[:, None]).squeeze(1)
    else:
        log_prob = learner.actor.log_prob(x, a)
    actor_loss = -(weight * log_prob).mean()
    learner.actor_optim.zero_grad(set_to_none=True)
    actor_loss.backward()
    learner.actor_optim.step()
    return actor_loss.detach()


class IIQL:
    name = "iiql"
    description = "independent IQL"
    action_types = ("discrete", "continuous")
    config_class = Config

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        self.spec, self.config, self.device = spec, config, torch.device(device)
        d, n, a, h, L = spec.obs_dim, spec.n_agents, spec.act_dim, config.hidden, config.layers
        self.head = ValueHead(config, self.device)  # one value, or HL-Gauss logits, per Q
        m = self.head.size
        if spec.discrete:  # Q_k(o, ·) over all actions; softmax policy
            self.critic = Twin(d + n, h, L, out=a * m).to(self.device)
            self.critic_target = Twin(d + n, h, L, out=a * m).to(self.device).requires_grad_(False)
            self.actor = mlp(d + n, a, h, L).to(self.device)
        else:  # Q_k(o, a); Gaussian policy
            self.critic = Twin(d + n + a, h, L, out=m).to(self.device)
            self.critic_target = Twin(d + n + a, h, L, out=m).to(self.device).requires_grad_(False)
            self.actor = GaussianActor(d + n, a, h, L).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.value = mlp(d + n, 1, h, L).to(self.device)
        self.critic_optim = adam(list(self.critic.parameters()) + list(self.value.parameters()),
                                 lr=config.critic_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)

    @classmethod
    def fit_config(cls, config: Config, ds, scaling) -> Config:
        """The HL-Gauss support from the dataset's returns-to-go (value_loss = "hl_gauss")."""
        return fit_support(config, ds, scaling)

    def _q_out(self, net: Twin, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(k, M, 1 or bins): the critics' outputs at the data's actions."""
        m = self.head.size
        if self.spec.discrete:
            q = net(x).unflatten(-1, (self.spec.act_dim, m))  # (k, M, A, m)
            return q.gather(2, a.view(1, -1, 1, 1).expand(q.shape[0], -1, 1, m)).squeeze(2)
        return net(torch.cat([x, a], 1))

    def _q(self, net: Twin, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(k, M) values of the data's actions."""
        return self.head.value(self._q_out(net, x, a))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = with_agent_id(batch["observations"]).flatten(0, 1)  # (B·n, d + n)
        x2 = with_agent_id(batch["next_observations"]).flatten(0, 1)
        a = batch["actions"].flatten() if self.spec.discrete else batch["actions"].flatten(0, 1)
        r, done = batch["rewards"].flatten(), batch["terminals"].flatten()

        value_loss, advantage = self._value_loss(x, a)
        q_loss, q = self._q_loss(x, a, r, x2, done)
        return implicit_q_step(self, x, a, value_loss, q_loss, q, advantage)

    def _value_loss(self, x, a) -> tuple[torch.Tensor, torch.Tensor]:
        """V(o) expectile-regresses on min_k Q'_k(o, a); returns the loss and the advantage Q' − V."""
        with torch.no_grad():
            q_t = self._q(self.critic_target, x, a).min(0).values
        diff = q_t - self.value(x).squeeze(-1)
        weight = torch.abs(self.config.expectile - (diff < 0).float())
        return (weight * diff.pow(2)).mean(), diff

    def _q_loss(self, x, a, r, x2, done) -> tuple[torch.Tensor, torch.Tensor]:
        """Both critics regress on r + γ(1−d)·V(o'); returns the loss and the (k, M) values."""
        with torch.no_grad():
            y = r + self.config.gamma * (1.0 - done) * self.value(x2).squeeze(-1)
        out = self._q_out(self.critic, x, a)
        q = self.head.value(out)
        return self.head.loss(out, y.expand_as(q)).mean(1).sum(), q

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, n, d) -> greedy actions (B, n) or means (B, n, a) in [-1, 1]."""
        out = self.actor(with_agent_id(obs))
        return out.argmax(-1) if self.spec.discrete else out

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "value": self.value}
