"""The networks and optimiser the multi-agent baselines share: an MLP, k critics as one batched MLP,
Adam (fused where torch has it) and Polyak averaging of target networks.

Each algorithm file (mabc, icql, itd3bc, matd3bc, iiql) keeps its own maths, config and update;
only these building blocks, identical across them, live here.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(inp: int, out: int, hidden: int, layers: int) -> nn.Sequential:
    """`layers` hidden ReLU layers of width `hidden`, then a linear output of size `out`."""
    dims = [inp] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(dims[-1], out))


FUSED_ADAM = True   # scripts/bench_baselines.py turns it off to measure what the fused kernel contributes


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has it (CPU since 2.4) and FUSED_ADAM is on (the default):
    one kernel over all parameters instead of a loop of small ops per parameter tensor."""
    params = list(params)
    if not FUSED_ADAM:
        return torch.optim.Adam(params, lr=lr)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


class Twin(nn.Module):
    """k critics as one batched MLP (weights (k, in, out)): one matmul per layer for all of them.

    Each critic is initialised as `mlp` would be (nn.Linear's default uniform ±1/√fan_in)."""

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
    """Polyak averaging: θ' ← (1 − τ)·θ' + τ·θ, for every parameter at once."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
