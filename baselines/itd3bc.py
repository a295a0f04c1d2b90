"""ITD3+BC: independent TD3+BC for continuous actions, actor and twin critics shared by all agents.

Per agent, TD3+BC (Fujimoto & Gu, 2021) on its own observation, action and reward:
twin critics Q_k(o_i, id_i, a_i) regress on r_i + γ(1−d_i)·min_k Q'_k(o'_i, π'(o'_i) + clipped noise);
every `policy_delay` updates the actor maximises λ·Q_1(o, π(o)) − (π(o) − a_data)², with
λ = α / mean|Q_1| so the BC term keeps its weight whatever the reward scale. Actions live in
[-1, 1] (the loader maps the env's bounds). Agents fold into the batch: (B·n, ...).
With `value_loss = "hl_gauss"` every critic outputs the logits of a histogram over the dataset's
value range and is trained by cross-entropy to the HL-Gauss target (baselines/hlgauss.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.data import Spec, with_agent_id
from baselines.hlgauss import ValueHead, fit_support
from baselines.networks import Twin, adam, mlp, soft_update
from ogdata.errors import DataValidationError

Q_SCALE_MIN = 1e-6  # floor of mean|Q| in λ = α / mean|Q| (a critic still at zero)


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers of the actor and of each critic
    actor_lr: float = 3e-4  # Adam learning rate of the actor
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics
    batch_size: int = 256  # joint transitions per update (each gives n agent examples)
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target networks
    alpha: float = 2.5  # α in λ = α / mean|Q|: the weight of Q against the BC term
    policy_noise: float = 0.2  # std of the target policy smoothing noise (actions in [-1, 1])
    noise_clip: float = 0.5  # the smoothing noise is clipped to ±noise_clip
    policy_delay: int = 2  # critic updates per actor (and target) update
    value_loss: str = "mse"  # "mse", or "hl_gauss": critics classify over a histogram (baselines/hlgauss.py)
    bins: int = 101  # HL-Gauss: histogram bins
    sigma_ratio: float = 0.75  # HL-Gauss: σ of the target Gaussian, in bin widths
    v_min: float = -1.0  # HL-Gauss support, set from the dataset's returns-to-go by fit_config
    v_max: float = 1.0


class ITD3BC:
    name = "itd3bc"
    description = "independent TD3+BC"
    action_types = ("continuous",)
    config_class = Config

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        if spec.discrete:
            raise DataValidationError("ITD3+BC needs continuous actions; use icql, iiql or mabc for discrete ones")
        self.spec, self.config, self.device = spec, config, torch.device(device)
        d, n, a = spec.obs_dim, spec.n_agents, spec.act_dim
        self.actor = mlp(d + n, a, config.hidden, config.layers).to(self.device)
        self.actor_target = mlp(d + n, a, config.hidden, config.layers).to(self.device).requires_grad_(False)
        self.head = ValueHead(config, self.device)  # one value, or HL-Gauss logits, per critic
        self.critic = Twin(d + n + a, config.hidden, config.layers, out=self.head.size).to(self.device)
        self.critic_target = Twin(d + n + a, config.hidden, config.layers,
                                  out=self.head.size).to(self.device).requires_grad_(False)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=config.critic_lr)
        self.steps = 0

    @classmethod
    def fit_config(cls, config: Config, ds, scaling) -> Config:
        """The HL-Gauss support from the dataset's returns-to-go (value_loss = "hl_gauss")."""
        return fit_support(config, ds, scaling)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = with_agent_id(batch["observations"]).flatten(0, 1)  # (B·n, d + n)
        x2 = with_agent_id(batch["next_observations"]).flatten(0, 1)
        a = batch["actions"].flatten(0, 1)  # (B·n, act) in [-1, 1]
        r, done = batch["rewards"].flatten(), batch["terminals"].flatten()

        out = self._update_critic(x, a, r, x2, done)
        self.steps += 1
        if self.steps % self.config.policy_delay == 0:
            out["actor_loss"] = self._update_actor(x, a)
            soft_update(self.critic_target, self.critic, self.config.tau)
            soft_update(self.actor_target, self.actor, self.config.tau)
        return out

    def _update_critic(self, x, a, r, x2, done) -> dict[str, torch.Tensor]:
        """Twin critics onto r + γ(1−d)·min_k Q'_k(o', π'(o') + clipped noise)."""
        c = self.config
        with torch.no_grad():
            noise = (torch.randn_like(a) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            a2 = (torch.tanh(self.actor_target(x2)) + noise).clamp(-1.0, 1.0)
            q2 = self.head.value(self.critic_target(torch.cat([x2, a2], 1))).min(0).values
            y = r + c.gamma * (1.0 - done) * q2
        out = self.critic(torch.cat([x, a], 1))  # (2, B·n, 1 or bins)
        q = self.head.value(out)
        critic_loss = self.head.loss(out, y.expand_as(q)).mean(1).sum()
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()
        return {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}

    def _update_actor(self, x, a) -> torch.Tensor:
        """Maximise λ·Q_1(o, π(o)) − (π(o) − a)², λ = α / mean|Q_1|."""
        pi = torch.tanh(self.actor(x))
        self.critic.requires_grad_(False)  # the actor step needs no critic weight gradients
        q_pi = self.head.value(self.critic(torch.cat([x, pi], 1)))[0]
        lam = self.config.alpha / q_pi.abs().mean().detach().clamp_min(Q_SCALE_MIN)
        actor_loss = -lam * q_pi.mean() + F.mse_loss(pi, a)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()
        self.critic.requires_grad_(True)
        return actor_loss.detach()

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, n, d) -> actions (B, n, a) in [-1, 1]."""
        return torch.tanh(self.actor(with_agent_id(obs)))

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "actor_target": self.actor_target, "critic": self.critic,
                "critic_target": self.critic_target}
