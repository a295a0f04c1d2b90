"""Offline model-based RL: a learned market model, short penalised rollouts, SAC on real + model data.

Two variants of one algorithm (Yu et al., 2020, MOPO; Zheng et al., 2023, "Is Model Ensemble
Necessary? Model-based RL via a Single Model with Lipschitz Regularized Value Function"):

  mopo   K = 5 Gaussian dynamics models (an ensemble); rollouts step a random member; the reward
         is penalised by the ensemble's largest predicted std, u(s,a) = max_k ‖σ_k(s,a)‖₂.
  lmopo  K = 1: a single Gaussian model, penalty u(s,a) = ‖σ(s,a)‖₂, and the critics' Lipschitz
         constant bounded by spectral normalisation: every layer's weight W is used as W / σ_max(W)
         (one power iteration per update, Miyato et al., 2018) and the output scaled by
         `lipschitz`, so |Q(x) − Q(y)| ≤ lipschitz · ‖x − y‖₂ in the scaled (standardised) inputs.
         The paper's thesis: what an ensemble buys is a smoother value function; bound it directly.

All quantities live in the scaled space of `baselines.data.Scaling` (standardised observations,
rewards × 1/std, actions in [-1, 1]).

Model.  p_k(Δs, r | s, a) = N(μ_k(s, a), diag σ_k²(s, a)) over the state change Δs = s' − s and
the reward; log σ² soft-clamped into learned bounds [min_logvar, max_logvar] (PETS); a termination
logit on the side. Loss (every update, on a real batch): Gaussian NLL
  Σ_j (μ_j − y_j)² / σ_j² + log σ_j²  +  BCE(done logit, d)  +  0.01·(Σ max_logvar − Σ min_logvar).

Rollouts.  Every `rollout_every` updates (from `rollout_start`), `rollout_batch` dataset states
are rolled `horizon` steps under the current policy π(a|s) through the model (a random ensemble
member per sample, s' clipped to the data's range widened by `clip_margin` std), each step stored
in a FIFO model buffer as (s, a, r̂ − λ·u(s,a), s', d̂); rollouts stop at a predicted termination.

Agent.  SAC (Haarnoja et al., 2018) on batches that are `real_ratio` real and the rest model data:
  twin critics Q_k(s,a) → r + γ(1−d)·(min_k Q'_k(s', a') − α log π(a'|s')), a' ~ π(·|s');
  actor: minimise α log π(a|s) − min_k Q_k(s, a), a ~ π (tanh-Gaussian, reparameterised);
  temperature: α = exp(log α) minimises −log α · (log π + target_entropy), target −dim(a).
The learner acts with tanh(mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.networks import Twin, adam, mlp, soft_update

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # bounds of the SAC actor's log-std


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer (actor, critics, model)
    layers: int = 2  # hidden layers
    batch_size: int = 256  # transitions per agent update (and per model update)
    ensemble: int = 5  # K dynamics models (1: the single-model variant)
    lipschitz: float = 0.0  # > 0: spectral-normalised critics with Lipschitz bound `lipschitz`; 0: plain critics
    penalty: float = 1.0  # λ in r̃ = r̂ − λ·u(s, a)
    horizon: int = 5  # model rollout length h
    rollout_batch: int = 1000  # dataset states a rollout starts from
    rollout_every: int = 250  # agent updates between rollouts
    rollout_start: int = 1000  # the first rollout (the model trains alone until then... and after)
    model_buffer: int = 50_000  # model transitions kept (FIFO)
    real_ratio: float = 0.5  # share of real transitions in an agent batch
    clip_margin: float = 1.0  # model states are clipped to [data min − m·std, data max + m·std] (scaled units)
    model_lr: float = 1e-3  # Adam learning rate of the model
    actor_lr: float = 3e-4  # Adam learning rate of the actor
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics
    alpha_lr: float = 3e-4  # Adam learning rate of log α
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics


class GaussianModel(nn.Module):
    """K Gaussian models of (Δs, r) and a termination logit given (s, a), as one batched MLP."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, k: int):
        super().__init__()
        self.obs_dim, self.k = obs_dim, k
        out = obs_dim + 1  # Δs and r
        self.net = Twin(obs_dim + act_dim, hidden, layers, out=2 * out + 1, k=k)
        self.max_logvar = nn.Parameter(torch.full((out,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out,), -10.0))

    def forward(self, s: torch.Tensor, a: torch.Tensor):
        """(s (M, d), a (M, a)) -> mean, log-variance (k, M, d + 1) and done logit (k, M)."""
        h = self.net(torch.cat([s, a], -1))
        n = self.obs_dim + 1
        mean, logvar, done = h[..., :n], h[..., n:2 * n], h[..., -1]
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)  # soft clamp (PETS)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar, done

    def loss(self, s, a, r, s2, d) -> torch.Tensor:
        mean, logvar, done = self(s, a)
        y = torch.cat([s2 - s, r[:, None]], -1)
        nll = ((mean - y).pow(2) * torch.exp(-logvar) + logvar).mean((1, 2)).sum()
        bce = F.binary_cross_entropy_with_logits(done, d.expand_as(done), reduction="none").mean(1).sum()
        return nll + bce + 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())

    @torch.no_grad()
    def step(self, s: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None = None):
        """One sampled step: next state, reward, done (bool) and uncertainty u = max_k ‖σ_k‖₂, each (M,)."""
        mean, logvar, done = self(s, a)
        std = torch.exp(0.5 * logvar)
        u = std.norm(dim=-1).max(0).values
        member = torch.randint(self.k, (len(s),), device=s.device, generator=generator)
        rows = torch.arange(len(s), device=s.device)
        noise = torch.randn(mean.shape[1:], device=s.device, generator=generator)
        y = mean[member, rows] + std[member, rows] * noise
        return s + y[:, :-1], y[:, -1], done[member, rows] > 0, u


class SpectralTwin(Twin):
    """Twin critics whose every layer is W / σ_max(W) (power iteration), the output × `bound`:
    each critic is `bound`-Lipschitz in its input (ReLU is 1-Lipschitz)."""

    def __init__(self, inp: int, hidden: int, layers: int, bound: float, k: int = 2):
        super().__init__(inp, hidden, layers, k=k)
        self.bound = float(bound)
        for i, w in enumerate(self.w):  # a left singular vector estimate per critic and layer
            self.register_buffer(f"u{i}", F.normalize(torch.randn(k, w.shape[2]), dim=-1))

    def _sigma(self, i: int, w: torch.Tensor) -> torch.Tensor:
        """σ_max of each (in, out) weight w[k], one power iteration (u updated in training only)."""
        u = getattr(self, f"u{i}")
        with torch.no_grad():
            v = F.normalize(torch.einsum("kab,kb->ka", w, u), dim=-1)
            u_new = F.normalize(torch.einsum("kab,ka->kb", w, v), dim=-1)
            if self.training:
                u.copy_(u_new)
        return torch.einsum("ka,kab,kb->k", v, w, u_new)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.k, -1, -1)
        last = len(self.w) - 1
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            h = torch.baddbmm(b, h, w / self._sigma(i, w)[:, None, None])
            if i < last:
                h = torch.relu(h)
        return self.bound * h


class TanhGaussianActor(nn.Module):
    """π(a|s) = tanh(N(μ(s), σ(s))), log-std in [LOG_STD_MIN, LOG_STD_MAX]."""

    def __init__(self, inp: int, act: int, hidden: int, layers: int):
        super().__init__()
        self.net = mlp(inp, 2 * act, hidden, layers)

    def sample(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.net(s).chunk(2, -1)
        std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        z = mu + std * torch.randn_like(mu)
        a = torch.tanh(z)
        log_prob = (-0.5 * ((z - mu) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - z - F.softplus(-2 * z))).sum(-1)  # log |d tanh / dz|
        return a, log_prob

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(s).chunk(2, -1)[0])


class MOPO:
    name = "mopo"
    description = "MOPO: model ensemble, uncertainty-penalised rollouts, SAC"
    action_types = ("continuous",)
    config_class = Config
    defaults: dict = {}

    def __init__(self, obs_dim: int, act_dim: int, config: Config = Config(), device: str = "cpu"):
        c = config
        self.config, self.device = c, torch.device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.model = GaussianModel(obs_dim, act_dim, c.hidden, c.layers, c.ensemble).to(self.device)
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.hidden, c.layers).to(self.device)
        make = (lambda: SpectralTwin(obs_dim + act_dim, c.hidden, c.layers, c.lipschitz)) if c.lipschitz > 0 else (
            lambda: Twin(obs_dim + act_dim, c.hidden, c.layers))
        self.critic = make().to(self.device)
        self.critic_target = make().to(self.device).requires_grad_(False)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.log_alpha = nn.Parameter(torch.zeros((), device=self.device))
        self.model_optim = adam(self.model.parameters(), lr=c.model_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_optim = adam(self.critic.parameters(), lr=c.critic_lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=c.alpha_lr)
        self.target_entropy = -float(act_dim)
        # the model buffer (FIFO ring) and the data's state range (set by `attach`)
        self.buf = {k: torch.zeros((c.model_buffer, n), device=self.device) for k, n in (
            ("observations", obs_dim), ("actions", act_dim), ("next_observations", obs_dim),
            ("rewards", 1), ("terminals", 1))}
        self.buf_size = self.buf_pos = 0
        self.state_range = nn.Module()  # the state range travels with the checkpoint (model rollouts need it)
        self.state_range.register_buffer("obs_low", torch.full((obs_dim,), -1e6, device=self.device))
        self.state_range.register_buffer("obs_high", torch.full((obs_dim,), 1e6, device=self.device))
        self.data = None
        self.steps = 0
        self.generator = torch.Generator(device=self.device)

    def attach(self, data, seed: int = 0) -> None:
        """The real transitions (`baselines.native.Transitions`): rollouts start from their states."""
        self.data = data
        obs = data.tensors["observations"]
        std = obs.std(0)
        self.state_range.obs_low.copy_(obs.min(0).values - self.config.clip_margin * std)
        self.state_range.obs_high.copy_(obs.max(0).values + self.config.clip_margin * std)
        self.generator.manual_seed(int(seed) + 1)

    # -- updates -----------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        s, a, r = batch["observations"], batch["actions"], batch["rewards"]
        s2, d = batch["next_observations"], batch["terminals"]
        out = {"model_loss": self._update_model(s, a, r, s2, d)}
        self.steps += 1
        if self.steps >= c.rollout_start and (self.steps - c.rollout_start) % c.rollout_every == 0:
            out.update(self.rollout())
        if self.buf_size:
            s, a, r, s2, d = self._mix(s, a, r, s2, d)
        out.update(self._update_critic(s, a, r, s2, d))
        out.update(self._update_actor(s))
        soft_update(self.critic_target, self.critic, c.tau)
        return out

    def _update_model(self, s, a, r, s2, d) -> torch.Tensor:
        loss = self.model.loss(s, a, r, s2, d)
        self.model_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.model_optim.step()
        return loss.detach()

    @torch.no_grad()
    def rollout(self) -> dict[str, torch.Tensor]:
        """`horizon` penalised model steps from `rollout_batch` dataset states, into the model buffer."""
        c = self.config
        s = self.data.sample(c.rollout_batch)["observations"]
        alive = torch.ones(len(s), dtype=torch.bool, device=self.device)
        r_sum = torch.zeros((), device=self.device)
        u_sum = torch.zeros((), device=self.device)
        n = 0
        for _ in range(c.horizon):
            a, _ = self.actor.sample(s)
            s2, r, done, u = self.model.step(s, a, self.generator)
            s2 = torch.maximum(torch.minimum(s2, self.state_range.obs_high), self.state_range.obs_low)
            keep = alive.nonzero().squeeze(1)
            self._store(s[keep], a[keep], (r - c.penalty * u)[keep], s2[keep], done[keep].float())
            r_sum += r[keep].sum()
            u_sum += u[keep].sum()
            n += len(keep)
            alive &= ~done
            if not alive.any():
                break
            s = s2
        return {"rollout_reward": r_sum / max(n, 1), "rollout_uncertainty": u_sum / max(n, 1)}

    def _store(self, s, a, r, s2, d) -> None:
        cap = self.config.model_buffer
        idx = (self.buf_pos + torch.arange(len(s), device=self.device)) % cap
        for k, v in (("observations", s), ("actions", a), ("rewards", r[:, None]), ("next_observations", s2),
                     ("terminals", d[:, None])):
            self.buf[k][idx] = v
        self.buf_pos = int((self.buf_pos + len(s)) % cap)
        self.buf_size = min(cap, self.buf_size + len(s))

    def _mix(self, s, a, r, s2, d):
        """Keep `real_ratio` of the real batch; fill the rest from the model buffer."""
        n_real = int(round(self.config.real_ratio * len(s)))
        idx = torch.randint(self.buf_size, (len(s) - n_real,), device=self.device, generator=self.generator)
        m = {k: v.index_select(0, idx) for k, v in self.buf.items()}
        return (torch.cat([s[:n_real], m["observations"]]), torch.cat([a[:n_real], m["actions"]]),
                torch.cat([r[:n_real], m["rewards"][:, 0]]), torch.cat([s2[:n_real], m["next_observations"]]),
                torch.cat([d[:n_real], m["terminals"][:, 0]]))

    def _update_critic(self, s, a, r, s2, d) -> dict[str, torch.Tensor]:
        c = self.config
        with torch.no_grad():
            a2, logp2 = self.actor.sample(s2)
            q2 = self.critic_target(torch.cat([s2, a2], -1)).squeeze(-1).min(0).values
            y = r + c.gamma * (1.0 - d) * (q2 - self.log_alpha.exp() * logp2)
        q = self.critic(torch.cat([s, a], -1)).squeeze(-1)
        loss = F.mse_loss(q, y.expand_as(q), reduction="none").mean(1).sum()
        self.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optim.step()
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def _update_actor(self, s) -> dict[str, torch.Tensor]:
        a, logp = self.actor.sample(s)
        self.critic.requires_grad_(False)
        q = self.critic(torch.cat([s, a], -1)).squeeze(-1).min(0).values
        alpha = self.log_alpha.exp().detach()
        actor_loss = (alpha * logp - q).mean()
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()
        self.critic.requires_grad_(True)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_optim.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optim.step()
        return {"actor_loss": actor_loss.detach(), "alpha": alpha}

    # -- acting and the model as a simulator -----------------------------------------------------------
    @torch.no_grad()
    def act(self, s: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, d) -> actions (B, a) in [-1, 1]: tanh of the mean."""
        return self.actor(s)

    @torch.no_grad()
    def model_step(self, s: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None = None):
        """The learned market as a simulator (scaled units): next state (clipped as in rollouts),
        reward, done, uncertainty u."""
        s2, r, done, u = self.model.step(s, a, generator)
        return torch.maximum(torch.minimum(s2, self.state_range.obs_high), self.state_range.obs_low), r, done, u

    def modules(self) -> dict[str, nn.Module]:
        alpha = nn.Module()
        alpha.log_alpha = self.log_alpha
        return {"model": self.model, "actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "state_range": self.state_range, "alpha": alpha}


@torch.no_grad()
def model_returns(learner, obs0, lengths, seed: int = 0):
    """What the learned model says the learner's own policy earns: from raw observations obs0 (B, d),
    `lengths[b]` model steps (or to a predicted termination), acting as the learner acts (tanh of the
    mean). Returns (raw, penalised), each (B,) in the env's reward units (÷ reward_scale): the sum of r̂,
    and of r̂ − λ·u (what the agent was trained on), along the one sampled trajectory (the penalty
    changes the reward, not the path). The gap to the true return on the same markets measures how far
    the policy exploits the model."""
    import numpy as np

    algo = learner.algo
    g = torch.Generator(device=algo.device)
    g.manual_seed(int(seed))
    obs0 = np.asarray(obs0, dtype=np.float32).reshape(len(obs0), -1)
    s = torch.from_numpy(learner.scaling.obs(obs0)).to(algo.device)
    lengths = torch.as_tensor(np.asarray(lengths), device=algo.device)
    raw = torch.zeros(len(s), dtype=torch.float64, device=algo.device)
    penalised = torch.zeros_like(raw)
    alive = torch.ones(len(s), dtype=torch.bool, device=algo.device)
    for t in range(int(lengths.max())):
        alive &= t < lengths
        if not alive.any():
            break
        s2, r, done, u = algo.model_step(s, algo.act(s), g)
        raw += torch.where(alive, r, torch.zeros_like(r)).double()
        rp = r - algo.config.penalty * u
        penalised += torch.where(alive, rp, torch.zeros_like(rp)).double()
        alive &= ~done
        s = s2
    return tuple((x / learner.scaling.reward_scale).cpu().numpy() for x in (raw, penalised))


class LMOPO(MOPO):
    """The single-model variant: one Gaussian model, spectral-normalised (Lipschitz-bounded) critics."""

    name = "lmopo"
    description = "single model, Lipschitz-regularised (spectral-norm) value, penalised rollouts, SAC"
    defaults = {"ensemble": 1, "lipschitz": 10.0}
