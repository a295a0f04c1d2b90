"""HL-Gauss: value functions trained by classification ("Stop Regressing", Farebrother et al. 2024;
the histogram loss of Imani & White 2018), the `value_loss = "hl_gauss"` option of every value-based baseline.

A value is a distribution over a fixed histogram: `bins` equal bins on [v_min, v_max] with centres z_j.
The network outputs logits ℓ_j and its value is the decoded mean

    Q = Σ_j softmax(ℓ)_j · z_j.

A scalar regression target y (a TD target) becomes a *target histogram*: the mass that a Gaussian
N(y, σ²) puts on each bin, renormalised to the support,

    p_j(y) = [Φ((e_{j+1} − y)/σ) − Φ((e_j − y)/σ)] / [Φ((v_max − y)/σ) − Φ((v_min − y)/σ)],

e_j the bin edges, σ = sigma_ratio × bin width (0.75: the paper's recommendation, about six bins of
spread), and the loss is the cross-entropy −Σ_j p_j(y)·log softmax(ℓ)_j in place of (Q − y)².
A target outside the support is first clipped to it (as the paper's code does), so its mass lands on
the end bins: the support must cover the values.

The support comes from the dataset (`value_support`): the range of the discounted returns-to-go of
its episodes, in the networks' reward units (after the reward scaling), widened by `PAD` on each
side — every value an in-sample policy can have lies in it, up to bootstrapping past truncations.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ogdata.errors import InvalidArgumentError

PAD = 0.1  # the support is the returns-to-go range widened by this fraction of its width on each side
VALUE_LOSSES = ("mse", "hl_gauss")


class HLGauss(nn.Module):
    """The histogram of one value head: target histograms, the cross-entropy loss and the decoded value."""

    def __init__(self, v_min: float, v_max: float, bins: int = 101, sigma_ratio: float = 0.75):
        super().__init__()
        if not (math.isfinite(v_min) and math.isfinite(v_max) and v_max > v_min):
            raise ValueError(f"HL-Gauss needs a finite support with v_max > v_min, got [{v_min}, {v_max}]")
        if bins < 2 or sigma_ratio <= 0:
            raise ValueError(f"HL-Gauss needs bins >= 2 and sigma_ratio > 0, got {bins} and {sigma_ratio}")
        edges = torch.linspace(float(v_min), float(v_max), int(bins) + 1)
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("centres", 0.5 * (edges[1:] + edges[:-1]), persistent=False)
        self.bins, self.v_min, self.v_max = int(bins), float(v_min), float(v_max)
        self.sigma = float(sigma_ratio) * (float(v_max) - float(v_min)) / int(bins)

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """Scalar targets (...) -> target histograms (..., bins); targets are clipped to the support."""
        y = y.clamp(self.v_min, self.v_max)
        cdf = torch.special.erf((self.edges - y.unsqueeze(-1)) / (math.sqrt(2.0) * self.sigma))
        mass = cdf[..., 1:] - cdf[..., :-1]
        return mass / (cdf[..., -1:] - cdf[..., :1]).clamp_min(1e-12)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits (..., bins) against the histograms of targets y (...) -> (...)."""
        return -(self.target(y.detach()) * torch.log_softmax(logits, -1)).sum(-1)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., bins) -> values (...): the histogram's mean."""
        return torch.softmax(logits, -1) @ self.centres


def returns_to_go(rewards: np.ndarray, episode_lengths: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted returns-to-go of transitions stored episode after episode (rewards (T, ...), T = the sum of
    `episode_lengths`): one backward pass over the steps of all episodes at once."""
    r = np.asarray(rewards, dtype=np.float64)
    lengths = np.asarray(episode_lengths, dtype=np.int64)
    steps = np.arange(int(lengths.max(initial=0)))
    valid = steps < lengths[:, None]  # (E, L)
    idx = (np.cumsum(lengths) - lengths)[:, None] + steps
    padded = np.zeros(valid.shape + r.shape[1:])
    padded[valid] = r[idx[valid]]
    g = np.zeros_like(padded)
    acc = np.zeros(padded.shape[:1] + padded.shape[2:])
    for j in steps[::-1]:
        acc = padded[:, j] + gamma * acc
        g[:, j] = acc
    return g[valid]


def value_support(ds, reward_scale: float, gamma: float, pad: float = PAD) -> tuple[float, float]:
    """[v_min, v_max] for a dataset's values in the networks' units: the range of its discounted returns-to-go
    (rewards × reward_scale; per agent for multi-agent data), widened by `pad` × the width on each side."""
    arrs = ds.arrays()
    g = returns_to_go(np.asarray(arrs["rewards"]) * float(reward_scale), arrs["episode_lengths"], gamma)
    lo, hi = float(g.min()), float(g.max())
    width = max(hi - lo, 1e-3)
    return lo - pad * width, hi + pad * width


def check_value_loss(value_loss: str) -> None:
    if value_loss not in VALUE_LOSSES:
        raise InvalidArgumentError(f"value_loss must be one of {VALUE_LOSSES}, got {value_loss!r}")


class ValueHead:
    """What a critic's last layer holds under a config's `value_loss`: one value ("mse") or the logits of
    an HL-Gauss histogram ("hl_gauss"). `size` is the layer's width per value; `value` reads values off
    it, `loss` is the elementwise regression loss ((Q − y)², or Huber with `huber`) or the cross-entropy."""

    def __init__(self, config, device: str | torch.device = "cpu"):
        check_value_loss(config.value_loss)
        self.hl = (HLGauss(config.v_min, config.v_max, config.bins, config.sigma_ratio).to(device)
                   if config.value_loss == "hl_gauss" else None)
        self.size = 1 if self.hl is None else self.hl.bins

    def value(self, out: torch.Tensor) -> torch.Tensor:
        """(..., size) -> (...)."""
        return out.squeeze(-1) if self.hl is None else self.hl.decode(out)

    def loss(self, out: torch.Tensor, y: torch.Tensor, huber: bool = False) -> torch.Tensor:
        """(..., size) against targets y (...) -> (...)."""
        if self.hl is not None:
            return self.hl.loss(out, y)
        q = out.squeeze(-1)
        y = y.detach().expand_as(q)
        return torch.nn.functional.huber_loss(q, y, reduction="none") if huber else (q - y).pow(2)


def fit_support(config, ds, scaling):
    """A config's HL-Gauss support [v_min, v_max] from the dataset (`value_support`), when it uses HL-Gauss."""
    check_value_loss(config.value_loss)
    if config.value_loss == "hl_gauss":
        config.v_min, config.v_max = value_support(ds, scaling.reward_scale, config.gamma)
    return config
