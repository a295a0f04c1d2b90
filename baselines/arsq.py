"""ARSQ: auto-regressive soft Q-learning over coarse-to-fine discretised continuous actions, offline.

After Chen et al. (2025), "Learning from Suboptimal Data in Continuous Control via Auto-Regressive
Soft Q-Network"; the discretisation is CQN's (Seo et al., 2024).

Coarse-to-fine discretisation.  Each action dimension lives in [-1, 1]. Level 0 cuts it into
`bins` equal intervals and picks one; level l cuts the interval chosen at level l−1 into `bins`
again. After L levels an action is L digits per dimension, i.e. the finest cell
n = Σ_l i_l · bins^(L−1−l) of bins^L, and it decodes to that cell's centre −1 + (n + ½)·2/bins^L:
`encode` maps a continuous action onto its cell exactly (the error is at most 1/bins^L), and
`decode(encode(a)) = a` for every cell centre a.

Auto-regressive soft Q.  The L·D decisions are taken in the order (level 0: dims 1..D, level 1:
dims 1..D, ...); decision k = (l, j) sees the state and the centres c ∈ [-1, 1]^D of every
dimension's interval so far (dims < j refined to level l, the others to level l−1), so it
conditions on every earlier choice. Its head gives logits z_k over the `bins` choices and a
dimension-wise soft advantage A_k = α·log softmax(z_k), normalised so that α·log Σ exp(A_k/α) = 0.
The soft Q-function is
    Q(s, a) = V(s) + Σ_k A_k(s, a_<k, a_k),
so the soft value α·log Σ_a exp(Q(s, a)/α) is exactly V(s) and the soft-greedy policy is the
product of the per-decision softmaxes π(a|s) = Π_k softmax(z_k)[a_k]. Soft Q-learning:
    Q(s, a) → r + γ(1−d)·V'(s')     (V' from the Polyak-averaged target network).
Offline, actions outside the data must not be trusted: CQL's regulariser
α·log Σ_a exp(Q(s,a)/α) − Q(s, a_data) is, with these normalised advantages, exactly
−Σ_k A_k(s, a_data) = −α·log π(a_data|s), so the loss adds `conservative` × that (the data
action's log-likelihood under the auto-regressive policy). Both terms use the data's own
action digits (teacher forcing): one forward pass of L·D rows per transition, no sampling.
Acting decodes greedily, one decision at a time (argmax z_k), and returns the finest cell's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.networks import adam, mlp, soft_update


@dataclass
class Config:
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers of the state trunk (the auto-regressive head has one)
    batch_size: int = 256  # transitions per update
    levels: int = 3  # L: coarse-to-fine levels
    bins: int = 5  # choices per level and dimension (resolution 2 / bins^L)
    alpha: float = 0.1  # soft-Q temperature α (scaled reward units)
    conservative: float = 10.0  # weight of −α·log π(a_data | s), CQL's term here; chosen on the validation
    #                             markets of two datasets (scripts/select_config.py, results/selection/arsq-conservative)
    lr: float = 3e-4  # Adam learning rate
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target network


class CoarseToFine:
    """The discretisation of [-1, 1]^D into `levels` nested grids of `bins` cells per dimension."""

    def __init__(self, act_dim: int, levels: int, bins: int):
        self.D, self.L, self.B = act_dim, levels, bins

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        """Actions (N, D) in [-1, 1] -> digits (N, L, D) in {0..bins−1}, level 0 first."""
        cells = self.B ** self.L
        n = torch.floor((a.double().clamp(-1, 1) + 1.0) * 0.5 * cells).long().clamp(0, cells - 1)
        digits = [(n // self.B ** (self.L - 1 - l)) % self.B for l in range(self.L)]
        return torch.stack(digits, 1)

    def centres(self, digits: torch.Tensor) -> torch.Tensor:
        """Digits (N, L, D) -> the interval centres after each level, (N, L, D)."""
        out, lo = [], torch.full(digits[:, 0].shape, -1.0, dtype=torch.float64, device=digits.device)
        for l in range(self.L):
            width = 2.0 / self.B ** (l + 1)
            lo = lo + digits[:, l].double() * width
            out.append(lo + 0.5 * width)
        return torch.stack(out, 1)

    def decode(self, digits: torch.Tensor) -> torch.Tensor:
        """Digits (N, L, D) -> the finest cell's centre (N, D), float32."""
        return self.centres(digits)[:, -1].float()

    def contexts(self, digits: torch.Tensor) -> torch.Tensor:
        """What decision k = (l, j) sees: centres (N, L·D, D) with dims < j at level l, the rest at level l−1
        (0, the middle of [-1, 1], before level 0)."""
        cent = self.centres(digits).float()
        prev = torch.cat([torch.zeros_like(cent[:, :1]), cent[:, :-1]], 1)  # (N, L, D): level l−1
        before = torch.ones(self.D, self.D, device=digits.device).tril(-1).bool()  # [j, m]: m < j
        ctx = torch.where(before, cent[:, :, None, :], prev[:, :, None, :])  # (N, L, D_j, D_m)
        return ctx.flatten(1, 2)


class ARSQ:
    name = "arsq"
    description = "auto-regressive soft Q over coarse-to-fine actions, conservative"
    action_types = ("continuous",)
    config_class = Config
    defaults: dict = {}

    def __init__(self, obs_dim: int, act_dim: int, config: Config = Config(), device: str = "cpu"):
        c = config
        self.config, self.device = c, torch.device(device)
        self.grid = CoarseToFine(act_dim, c.levels, c.bins)
        self.net = ARQNet(obs_dim, act_dim, c).to(self.device)
        self.target = ARQNet(obs_dim, act_dim, c).to(self.device).requires_grad_(False)
        self.target.load_state_dict(self.net.state_dict())
        self.optim = adam(self.net.parameters(), lr=c.lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        s, r, s2, d = batch["observations"], batch["rewards"], batch["next_observations"], batch["terminals"]
        digits = self.grid.encode(batch["actions"])  # (N, L, D)
        with torch.no_grad():
            y = r + c.gamma * (1.0 - d) * self.target.value(s2)
        v, logits = self.net(s, self.grid.contexts(digits))  # (N,), (N, L·D, bins)
        log_pi = F.log_softmax(logits, -1).gather(2, digits.flatten(1)[..., None]).squeeze(-1).sum(1)
        q = v + c.alpha * log_pi
        td = F.mse_loss(q, y)
        conservative = -(c.alpha * log_pi).mean()
        loss = td + c.conservative * conservative
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        soft_update(self.target, self.net, c.tau)
        return {"td_loss": td.detach(), "conservative": conservative.detach(), "q_mean": q.detach().mean(),
                "v_mean": v.detach().mean()}

    @torch.no_grad()
    def act_digits(self, s: torch.Tensor) -> torch.Tensor:
        """Greedy auto-regressive decoding: digits (B, L, D), one decision at a time."""
        L, D, B = self.grid.L, self.grid.D, self.grid.B
        h = self.net.trunk(s)
        ctx = torch.zeros(len(s), D, device=s.device)
        lo = torch.full((len(s), D), -1.0, device=s.device)
        digits = torch.zeros(len(s), L, D, dtype=torch.long, device=s.device)
        for l in range(L):
            width = 2.0 / B ** (l + 1)
            for j in range(D):
                i = self.net.head(h, ctx[:, None, :], torch.tensor([l * D + j], device=s.device))[:, 0].argmax(-1)
                digits[:, l, j] = i
                lo[:, j] += i * width
                ctx[:, j] = lo[:, j] + 0.5 * width
        return digits

    @torch.no_grad()
    def act(self, s: torch.Tensor) -> torch.Tensor:
        """Scaled observations (B, d) -> actions (B, D) in [-1, 1]: the greedy cell's centre."""
        return self.grid.decode(self.act_digits(s))

    @torch.no_grad()
    def q_values(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Q(s, a) of continuous actions (through their cells), (N,)."""
        digits = self.grid.encode(a)
        v, logits = self.net(s, self.grid.contexts(digits))
        log_pi = F.log_softmax(logits, -1).gather(2, digits.flatten(1)[..., None]).squeeze(-1).sum(1)
        return v + self.config.alpha * log_pi

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net, "target": self.target}


class ARQNet(nn.Module):
    """A state trunk h(s); V(s) from h; the shared auto-regressive head z_k = f(h, c_k, onehot(l), onehot(j))."""

    def __init__(self, obs_dim: int, act_dim: int, c: Config):
        super().__init__()
        self.D, self.L = act_dim, c.levels
        self.trunk = nn.Sequential(mlp(obs_dim, c.hidden, c.hidden, max(1, c.layers - 1)), nn.ReLU())
        self.v = nn.Linear(c.hidden, 1)
        self.ar = mlp(c.hidden + act_dim + c.levels + act_dim, c.bins, c.hidden, 1)
        steps = torch.arange(c.levels * act_dim)
        self.register_buffer("step_code", torch.cat([F.one_hot(steps // act_dim, c.levels),
                                                     F.one_hot(steps % act_dim, act_dim)], 1).float())

    def value(self, s: torch.Tensor) -> torch.Tensor:
        return self.v(self.trunk(s)).squeeze(-1)

    def head(self, h: torch.Tensor, ctx: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """h (N, H), contexts (N, K, D) of decision steps `steps` (K,) -> logits (N, K, bins)."""
        N, K = ctx.shape[:2]
        code = self.step_code[steps].expand(N, K, -1)
        return self.ar(torch.cat([h[:, None, :].expand(N, K, -1), ctx, code], -1))

    def forward(self, s: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V(s) (N,) and every decision's logits (N, L·D, bins) given teacher-forced contexts (N, L·D, D)."""
        h = self.trunk(s)
        steps = torch.arange(ctx.shape[1], device=s.device)
        return self.v(h).squeeze(-1), self.head(h, ctx, steps)
