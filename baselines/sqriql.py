"""SQRIQL: stock-augmented distributional IQL, for CVaR_α (or mean–CVaR) of the whole episode's return.

Distributional DP with stock augmentation ("Optimizing Return Distributions with Distributional
Dynamic Programming", 2025; Bäuerle & Ott 2011 for CVaR). By Rockafellar–Uryasev,

    J = (1 − w)·E[G] + w·CVaR_α(G) = max_b E[u_b(G)],  u_b(g) = (1 − w)·g + w·(b + min(g − b, 0)/α),

and E[u_b(G)] is an expected utility of the return, which is Markov once the state carries the
stock c_t = (reward so far) − b: then G = c_t + G_t and the greedy action at (s, c) maximises
ρ_c(Z) = E[u(c + Z)], u(x) = (1 − w)·x + w·min(x, 0)/α (the b-terms are constants). So:

  * the env appends the stock feature (`augment_stock=True`: tanh(reward so far / scale), time left);
    this learner decodes the reward so far and feeds the networks c = reward so far − b;
  * stock relabelling: the stock's dynamics c' = c + r are known, so every transition is valid for
    every b. Each sample gets b ~ U[b_low, b_high] (the data's range of episode returns), so one
    critic Z(s, c, a) and value V(s, c) serve every threshold;
  * QRIQL's update with the augmented state: the target r + γ(1 − d)·ζ_j(s', c + r) uses the next
    *augmented* state, and V's expectile and the policy's advantage use ρ_c;
  * the threshold: b* = argmax_b mean_{s0} mean_i [(1 − w)·ζ_i + w·(b + min(ζ_i − b, 0)/α)],
    ζ = V(s0, c = −b), a grid search over [b_low, b_high] on the initial states met in the batches
    (time left = 1); recomputed before acting when the networks have changed, stored with the weights.
  * the episode ends at time left 0 (d = 1 there), and γ = 1 by default: the objective is the
    undiscounted episode return. With one-step targets that return reaches the initial states only by
    bootstrapping on slowly moving (Polyak) targets: on 252-step episodes 5,000 updates leave V(s0) a small
    fraction of the data's episode returns, on 20-step ones they do not (scripts/diagnose_sqriql.py measures
    it). `n_step` (QRIQL's) sums the data's next rewards into the target; the stock moves by their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from baselines.data import Spec, with_agent_id
from baselines.qriql import QRIQL
from baselines.qriql import Config as QRConfig
from ogdata.errors import DataValidationError

STOCK_CLIP = 1.0 - 1e-6  # |feature| cap before atanh (float32 rounds tanh of large stocks to ±1)
INITIAL_STATES = 1024  # initial states kept for choosing b


@dataclass
class Config(QRConfig):
    gamma: float = 1.0  # discount (1: the undiscounted episode return the objective is about)
    risk: str = "cvar"  # "cvar" or "mean-cvar" ("mean" makes the stock irrelevant)
    b_grid: int = 129  # grid points of the search for b*
    # measured on the dataset by fit_config (raw units: the env's; scaled: the networks')
    stock_scale: float = 1.0  # the env's stock_scale: feature = tanh(reward so far / stock_scale)
    reward_scale: float = 1.0  # the loader multiplies rewards by this
    stock_mean: float = 0.0  # standardisation of the stock feature (obs column −2)
    stock_std: float = 1.0
    time_mean: float = 0.0  # standardisation of the time-left feature (obs column −1)
    time_std: float = 1.0
    b_low: float = -1.0  # the range of b (scaled): the data's episode returns
    b_high: float = 1.0


class Threshold(nn.Module):
    """b*, saved with the weights (a buffer)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("b", torch.zeros(()))


class SQRIQL(QRIQL):
    name = "sqriql"
    description = "stock-augmented distributional IQL for CVaR / mean-CVaR of the episode return"
    action_types = ("discrete", "continuous")
    multi_agent = False
    in_suites = False
    needs_stock_features = True  # train.py hands it the stock-augmented copy of a dataset recorded without them
    config_class = Config

    def __init__(self, spec: Spec, config: Config = Config(), device: str = "cpu"):
        super().__init__(spec, config, device)
        self.threshold = Threshold().to(self.device)
        self.initial = torch.zeros((0, spec.obs_dim), device=self.device)
        self._stale = True
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(0)

    @classmethod
    def fit_config(cls, config: Config, ds, scaling) -> Config:
        """Read the stock features' scale and standardisation, and the range of b, from the dataset."""
        from ogdata.envs import make_core

        kwargs = ds.metadata.get("env_kwargs") or {}
        core = make_core(ds.env_id, num_envs=1, **kwargs) if ds.env_id else None
        stock = getattr(core, "_stock", None)
        if stock is None:
            raise DataValidationError(f"{ds.dataset_id or ds.path} has no stock features: sqriql needs data made "
                                      "with env kwarg augment_stock=True (see ogdata.envs.risk)")
        returns = np.array([float(np.sum(ep.rewards)) for ep in ds.iter_episodes()]) * scaling.reward_scale
        lo, hi = float(returns.min()), float(returns.max())
        pad = 0.05 * max(hi - lo, 1e-6)
        config.stock_scale, config.reward_scale = float(stock.scale), float(scaling.reward_scale)
        config.stock_mean, config.stock_std = float(scaling.obs_mean[-2]), float(scaling.obs_std[-2])
        config.time_mean, config.time_std = float(scaling.obs_mean[-1]), float(scaling.obs_std[-1])
        config.b_low, config.b_high = lo - pad, hi + pad
        return config

    # -- the augmented state ----------------------------------------------------------------
    def _stock(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward so far in the networks' units, time left in [0, 1]) from scaled observations (..., d)."""
        c = self.config
        f = (obs[..., -2] * c.stock_std + c.stock_mean).clamp(-STOCK_CLIP, STOCK_CLIP)
        acc = torch.atanh(f) * (c.stock_scale * c.reward_scale)
        left = obs[..., -1] * c.time_std + c.time_mean
        return acc, left

    def _features(self, obs: torch.Tensor, stock: torch.Tensor) -> torch.Tensor:
        """Observations (B, 1, d) with the stock column replaced by c / (b_high − b_low) -> (B, d + 1)."""
        c = self.config
        x = torch.cat([obs[..., :-2], (stock / max(c.b_high - c.b_low, 1e-6)).unsqueeze(-1), obs[..., -1:]], -1)
        return with_agent_id(x).flatten(0, 1)

    def _inputs(self, batch: dict[str, torch.Tensor]):
        obs = batch["observations"]
        acc, left = self._stock(obs)
        if "rewards" in batch:  # training: relabel every sample with its own b
            self._remember_initial(obs, left)
            c = self.config
            b = c.b_low + (c.b_high - c.b_low) * torch.rand(acc.shape, device=self.device, generator=self._gen)
            stock = acc - b
            stock2 = stock + batch["rewards"]  # c' = c + r: the stock's known dynamics
            return (self._features(obs, stock), self._features(batch["next_observations"], stock2),
                    stock.flatten(), stock2.flatten())
        if self._stale:
            self.choose_threshold()
        stock = acc - self.threshold.b
        x = self._features(obs, stock)
        return x, x, stock.flatten(), stock.flatten()

    def _done(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Terminal, or no time left: the episode's return ends there (γ = 1 must not bootstrap past it)."""
        _, left2 = self._stock(batch["next_observations"])
        return torch.maximum(batch["terminals"], (left2 <= 1e-6).float()).flatten()

    def rho(self, q: torch.Tensor, context=None) -> torch.Tensor:
        """ρ_c(Z) = mean_i u(c + θ_i), u(x) = (1 − w)·x + w·min(x, 0)/α."""
        c = self.config
        if c.risk == "mean" or context is None:
            return q.mean(-1)
        w = 1.0 if c.risk == "cvar" else c.cvar_weight
        x = context.unsqueeze(-1) + q
        return ((1.0 - w) * x + w * x.clamp(max=0.0) / c.alpha).mean(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = super().update(batch)
        self._stale = True
        out["b"] = self.threshold.b.clone()
        return out

    # -- the threshold b* ---------------------------------------------------------------------
    def _remember_initial(self, obs: torch.Tensor, left: torch.Tensor) -> None:
        if len(self.initial) >= INITIAL_STATES:
            return
        first = obs.flatten(0, 1)[left.flatten() >= 1.0 - 1e-6]
        if len(first):
            self.initial = torch.cat([self.initial, first])[:INITIAL_STATES]

    @torch.no_grad()
    def choose_threshold(self) -> float:
        """b* = argmax_b mean over initial states and quantiles of (1 − w)·ζ + w·(b + min(ζ − b, 0)/α)."""
        c = self.config
        self._stale = False
        if not len(self.initial):
            return float(self.threshold.b)
        w = 1.0 if c.risk == "cvar" else (0.0 if c.risk == "mean" else c.cvar_weight)
        grid = torch.linspace(c.b_low, c.b_high, c.b_grid, device=self.device)
        s0 = self.initial.unsqueeze(1)  # (M0, 1, d)
        obs = s0.unsqueeze(0).expand(len(grid), -1, -1, -1).flatten(0, 1)  # (G·M0, 1, d)
        b = grid.repeat_interleave(len(self.initial))
        acc, _ = self._stock(obs)
        zeta = self.value(self._features(obs, acc - b[:, None]))  # (G·M0, N), the return to go from s0
        g = acc.flatten()[:, None] + zeta  # the episode return
        j = ((1.0 - w) * g + w * (b[:, None] + (g - b[:, None]).clamp(max=0.0) / c.alpha)).mean(-1)
        best = int(j.view(len(grid), -1).mean(1).argmax())
        self.threshold.b.fill_(float(grid[best]))
        return float(grid[best])

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "threshold": self.threshold}
