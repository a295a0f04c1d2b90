"""QRIQL: distributional implicit Q-learning with a quantile critic, acting for the mean, CVaR_α or mean–CVaR.

Return distributions as N quantiles at the midpoints τ̂_i = (2i + 1) / 2N (QR-DQN, Dabney et al. 2018):
twin critics Z^k(s, a) ≈ (1/N) Σ_i δ_{θ^k_i(s, a)} and a value distribution V(s) ≈ (1/N) Σ_i δ_{ζ_i(s)}.
A risk functional ρ of a quantile set (the lower tail is the risk):

    mean        ρ(θ) = (1/N) Σ_i θ_i
    cvar        ρ(θ) = the mean of the ⌈αN⌉ smallest θ_i                 (CVaR_α)
    mean-cvar   ρ(θ) = (1 − w)·mean + w·CVaR_α

In-sample like IQL (Kostrikov et al. 2022): no action outside the data is ever evaluated.
  V    quantile-regresses on the target critics' quantiles at the data's action, θ̄ = min_k θ'^k
       (elementwise), each transition weighted by |τ_e − 1{ρ(θ̄) < ρ(ζ(s))}|: an expectile *in ρ*.
       τ_e → 1 moves V to the return distribution of the data's ρ-best action (a policy's
       distribution, not a quantile-wise maximum); τ_e = 0.5 gives the behaviour's.
  Z^k  quantile-regresses on the N samples r + γ(1 − d)·ζ_j(s'); with `n_step` = m > 1 on
       Σ_{i<k} γ^i r_{t+i} + γ^k (1 − d_{t+k−1})·ζ_j(s_{t+k}), k = min(m, steps to the episode's end):
       the data's own next rewards, so the return reaches s_t in one update instead of m bootstraps on
       slow (Polyak) targets, at the price of the behaviour's actions inside the window.
  π    advantage-weighted regression, A = ρ(θ̄(s, a)) − ρ(ζ(s)): maximise min(exp(β·A), w_max)·log π(a | s).
Quantile Huber loss of predictions θ_i against target samples y_j, u_ij = y_j − θ_i:

    L = (1/J) Σ_j Σ_i |τ̂_i − 1{u_ij < 0}| · H_κ(u_ij) / κ,   H_κ the Huber loss (κ = 0: the pinball loss |u|).

Acting (`acting`): "policy", the policy's mean (continuous) or its most likely action (discrete); or
"greedy", the critic's ρ-best action among those the policy supports — discrete: argmax ρ(θ̄(s, a)) over
{a : π(a | s) ≥ support · max_a' π(a' | s)} (discrete BCQ's filter, Fujimoto et al. 2019, with the AWR policy
in place of a behaviour model); continuous: the ρ-best of the policy's mean and act_samples − 1 draws from
it (the choose-among-the-policy's-samples rule of EMaQ / SfBC). The critic is only read where the data
put weight, and the AWR policy's own imitation of the advantage is bypassed. Per-step greedy CVaR is not
the CVaR of the episode return (that objective is not Markov in the state): sqriql.py adds the
reward so far to the state, which makes it so. Single-agent (an agent axis of one, see multi.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from baselines.data import Spec, with_agent_id
from baselines.iiql import LOG_STD_MAX, LOG_STD_MIN, GaussianActor, implicit_q_step
from baselines.networks import Twin, adam, mlp
from ogdata.errors import DataValidationError

RISKS = ("mean", "cvar", "mean-cvar")
ACTINGS = ("policy", "greedy")


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers of the policy, the value and each critic
    actor_lr: float = 3e-4  # Adam learning rate of the policy
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics and the value (one optimiser)
    batch_size: int = 256  # transitions per update
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics
    quantiles: int = 32  # N quantiles per distribution
    kappa: float = 1.0  # Huber threshold κ of the quantile loss (0: pinball)
    expectile: float = 0.7  # τ_e of V's expectile in ρ (0.5: the behaviour's distribution; → 1: the ρ-best action's)
    # (V regresses on a τ_e : 1 − τ_e mixture of the actions' distributions: for CVaR take τ_e near 1, e.g. 0.99,
    #  else the worse actions' tails leak into V's lower quantiles; tests/test_baselines_risk.py shows it)
    beta: float = 3.0  # inverse temperature β of the advantage weights exp(β·A)
    max_weight: float = 100.0  # advantage weights are clipped at this value
    risk: str = "mean"  # what the policy maximises: "mean", "cvar" or "mean-cvar"
    alpha: float = 0.1  # CVaR_α's tail fraction
    cvar_weight: float = 0.5  # w of "mean-cvar": (1 − w)·mean + w·CVaR_α
    n_step: int = 1  # transitions per critic target (1: one-step TD; see the docstring)
    acting: str = "policy"  # "policy": the policy's action; "greedy": the critic's ρ-best the policy supports
    support: float = 0.3  # greedy, discrete: actions with π(a | s) ≥ support · max π(· | s) are candidates
    act_samples: int = 32  # greedy, continuous: candidates (the policy's mean and draws from it)


def quantile_midpoints(n: int, device=None) -> torch.Tensor:
    """τ̂_i = (2i + 1) / 2N, i = 0..N−1."""
    return (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n


def quantile_huber_loss(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """pred (..., N) quantiles at `taus` (N,), target (..., J) samples -> the mean over leading dims of
    (1/J) Σ_j Σ_i |τ_i − 1{u < 0}|·H_κ(u)/κ, u = y_j − θ_i; `weight` (...) weights each row."""
    u = target.unsqueeze(-2) - pred.unsqueeze(-1)  # (..., N, J)
    if kappa > 0:
        h = torch.where(u.abs() <= kappa, 0.5 * u.pow(2), kappa * (u.abs() - 0.5 * kappa)) / kappa
    else:
        h = u.abs()
    loss = ((taus.unsqueeze(-1) - (u.detach() < 0).float()).abs() * h).mean(-1).sum(-1)
    if weight is not None:
        loss = loss * weight
    return loss.mean()


def risk_measure(q: torch.Tensor, risk: str, alpha: float, cvar_weight: float = 0.5) -> torch.Tensor:
    """ρ of quantile sets q (..., N) -> (...): the mean, CVaR_α (mean of the ⌈αN⌉ smallest) or a mix."""
    mean = q.mean(-1)
    if risk == "mean":
        return mean
    k = max(1, math.ceil(alpha * q.shape[-1] - 1e-9))
    cvar = torch.sort(q, dim=-1).values[..., :k].mean(-1)
    return cvar if risk == "cvar" else (1.0 - cvar_weight) * mean + cvar_weight * cvar


def n_step_batch(batch: dict[str, torch.Tensor], gamma: float) -> dict[str, torch.Tensor]:
    """A batch with n-step windows (baselines.data.AgentBatches, n_step > 1) as one-step transitions to
    s_{t+k}: rewards Σ_{i<k} γ^i r_{t+i}, next_observations s_{t+k}, terminals d_{t+k−1}, discounts γ^k."""
    r = batch["n_rewards"]  # (B, n, m), 0 past the window
    powers = gamma ** torch.arange(r.shape[-1], device=r.device, dtype=r.dtype)
    discounts = (gamma ** batch["n_steps"].to(r.dtype))[:, None].expand_as(batch["terminals"])
    return {**batch, "rewards": (r * powers).sum(-1), "next_observations": batch["n_next_observations"],
            "terminals": batch["n_terminals"], "discounts": discounts}


class QRIQL:
    name = "qriql"
    description = "distributional IQL (quantile critic) for the mean, CVaR or mean-CVaR"
    action_types = ("discrete", "continuous")
    multi_agent = False
    in_suites = False  # risk-sensitive: run by scripts/risk_table.py, or reproduce.py --algos qriql
    config_class = Config

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        if config.risk not in RISKS:
            raise DataValidationError(f"risk must be one of {RISKS}, got {config.risk!r}")
        if not 0.0 < config.alpha <= 1.0:
            raise DataValidationError(f"alpha (CVaR's tail fraction) must be in (0, 1], got {config.alpha}")
        if config.acting not in ACTINGS:
            raise DataValidationError(f"acting must be one of {ACTINGS}, got {config.acting!r}")
        if not 0.0 <= config.support <= 1.0 or int(config.act_samples) < 1:
            raise DataValidationError(f"greedy acting needs support in [0, 1] and act_samples >= 1, got "
                                      f"{config.support} and {config.act_samples}")
        if int(config.n_step) < 1:
            raise DataValidationError(f"n_step must be a positive number of transitions, got {config.n_step}")
        self.spec, self.config, self.device = spec, config, torch.device(device)
        d, n, a, h, L, N = self._in_dim(), spec.n_agents, spec.act_dim, config.hidden, config.layers, config.quantiles
        if spec.discrete:  # θ^k(s, ·): N quantiles for every action
            self.critic = Twin(d + n, h, L, out=a * N).to(self.device)
            self.critic_target = Twin(d + n, h, L, out=a * N).to(self.device).requires_grad_(False)
            self.actor = mlp(d + n, a, h, L).to(self.device)
        else:
            self.critic = Twin(d + n + a, h, L, out=N).to(self.device)
            self.critic_target = Twin(d + n + a, h, L, out=N).to(self.device).requires_grad_(False)
            self.actor = GaussianActor(d + n, a, h, L).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.value = mlp(d + n, N, h, L).to(self.device)
        self.critic_optim = adam(list(self.critic.parameters()) + list(self.value.parameters()), lr=config.critic_lr)
        self.actor_optim = adam(self.actor.parameters(), lr=config.actor_lr)
        self.taus = quantile_midpoints(N, self.device)
        self._act_gen = torch.Generator(device=self.device)
        self._act_gen.manual_seed(0)  # greedy acting's draws: the same candidates for the same run

    def _in_dim(self) -> int:
        return self.spec.obs_dim

    # -- what sqriql.py changes: the network inputs and the risk functional -----------------
    def _inputs(self, batch: dict[str, torch.Tensor]):
        """(x, x', context, context') with x (M, d + n); the context is what ρ needs besides the quantiles."""
        x = with_agent_id(batch["observations"]).flatten(0, 1)
        x2 = with_agent_id(batch["next_observations"]).flatten(0, 1)
        return x, x2, None, None

    def rho(self, q: torch.Tensor, context=None) -> torch.Tensor:
        c = self.config
        return risk_measure(q, c.risk, c.alpha, c.cvar_weight)

    def _done(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["terminals"].flatten()

    # -- the update -------------------------------------------------------------------------
    def _quantiles(self, net: Twin, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(k, M, N) quantiles of the data's actions."""
        N = self.config.quantiles
        if self.spec.discrete:
            q = net(x).unflatten(-1, (self.spec.act_dim, N))  # (k, M, A, N)
            idx = a.view(1, -1, 1, 1).expand(q.shape[0], -1, 1, N)
            return q.gather(2, idx).squeeze(2)
        return net(torch.cat([x, a], 1))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.config.n_step > 1:
            if "n_rewards" not in batch:
                raise DataValidationError(f"{self.name}: n_step = {self.config.n_step} needs batches with n-step "
                                          "windows (baselines.data.AgentBatches(..., n_step=...))")
            batch = n_step_batch(batch, self.config.gamma)
        x, x2, ctx, ctx2 = self._inputs(batch)
        a = batch["actions"].flatten() if self.spec.discrete else batch["actions"].flatten(0, 1)
        r, done = batch["rewards"].flatten(), self._done(batch)
        discount = batch["discounts"].flatten() if "discounts" in batch else torch.full_like(r, self.config.gamma)

        value_loss, advantage = self._value_loss(x, a, ctx)
        q_loss, q = self._q_loss(x, a, r, x2, done, discount)
        return {**implicit_q_step(self, x, a, value_loss, q_loss, q, advantage),
                "advantage_mean": advantage.detach().mean()}

    def _value_loss(self, x, a, ctx) -> tuple[torch.Tensor, torch.Tensor]:
        """V's quantiles onto θ̄(s, a), weighted by the expectile in ρ; returns the loss and A = ρ(θ̄) − ρ(ζ)."""
        with torch.no_grad():
            target = self._quantiles(self.critic_target, x, a).min(0).values  # (M, N)
        zeta = self.value(x)
        advantage = self.rho(target, ctx) - self.rho(zeta.detach(), ctx)
        weight = torch.abs(self.config.expectile - (advantage < 0).float())
        return quantile_huber_loss(zeta, target, self.taus, self.config.kappa, weight), advantage

    def _q_loss(self, x, a, r, x2, done, discount) -> tuple[torch.Tensor, torch.Tensor]:
        """Both critics' quantiles onto the samples r + γ^k(1−d)·ζ_j(s') (k = 1 but with n-step windows)."""
        with torch.no_grad():
            y = r[:, None] + (discount * (1.0 - done))[:, None] * self.value(x2)  # (M, N)
        q = self._quantiles(self.critic, x, a)  # (k, M, N)
        loss = sum(quantile_huber_loss(q[k], y, self.taus, self.config.kappa) for k in range(q.shape[0]))
        return loss, q

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, 1, d) -> actions (B, 1) or (B, 1, a) in [-1, 1], by `config.acting`."""
        x, _, ctx, _ = self._inputs({"observations": obs, "next_observations": obs})
        out = self.actor(x)
        if self.config.acting == "greedy":
            out = self._greedy(x, ctx, out)
        elif self.spec.discrete:
            out = out.argmax(-1)
        return out.unflatten(0, obs.shape[:2])

    def _greedy(self, x: torch.Tensor, ctx, out: torch.Tensor) -> torch.Tensor:
        """The critic's ρ-best action among the policy's candidates (see the docstring) -> (M,) or (M, a)."""
        c = self.config
        if self.spec.discrete:
            probs = torch.softmax(out, -1)
            supported = probs >= c.support * probs.max(-1, keepdim=True).values
            return self._utilities(x, ctx).masked_fill(~supported, -math.inf).argmax(-1)
        k, m = int(c.act_samples), len(x)
        std = torch.exp(self.actor.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))
        noise = torch.randn((k - 1, *out.shape), device=self.device, generator=self._act_gen)
        cand = torch.cat([out[None], (out[None] + std * noise).clamp(-1.0, 1.0)])  # (k, M, a)
        q = self.critic(torch.cat([x[None].expand(k, -1, -1), cand], -1).flatten(0, 1)).min(0).values  # (k·M, N)
        u = self.rho(q, None if ctx is None else ctx.repeat(k)).view(k, m)
        return cand[u.argmax(0), torch.arange(m, device=self.device)]

    def _utilities(self, x: torch.Tensor, ctx) -> torch.Tensor:
        """ρ of each discrete action's critic distribution (the twins' minimum) at network inputs x -> (M, A)."""
        q = self.critic(x).unflatten(-1, (self.spec.act_dim, self.config.quantiles)).min(0).values  # (M, A, N)
        return torch.stack([self.rho(q[:, k], ctx) for k in range(self.spec.act_dim)], 1)

    @torch.no_grad()
    def action_utilities(self, obs: torch.Tensor) -> torch.Tensor:
        """ρ of each discrete action's critic distribution (the twins' minimum) at scaled observations (B, 1, d)
        -> (B·1, A): how the critic ranks the actions the actor chooses among."""
        if not self.spec.discrete:
            raise DataValidationError(f"{self.name}: action utilities are for discrete actions; this critic takes "
                                      "the action as an input")
        x, _, ctx, _ = self._inputs({"observations": obs, "next_observations": obs})
        return self._utilities(x, ctx)

    @torch.no_grad()
    def distribution(self, obs: torch.Tensor) -> torch.Tensor:
        """V's quantiles (B, 1, N) at scaled observations (B, 1, d), sorted."""
        x = self._inputs({"observations": obs, "next_observations": obs})[0]
        return torch.sort(self.value(x), -1).values.unflatten(0, obs.shape[:2])

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "value": self.value}
