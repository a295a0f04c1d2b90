"""Reward options of the portfolio and trading families: log growth, simple return, differential Sharpe.

Every option is a function of the step's wealth factor f = W'/W (after costs), so the economics
(wealth, costs, positions) are the same under each; only what the learner is paid differs:

    "log"     log f                       (portfolio's default: the sum over an episode is log W_T/W_0)
    "return"  r = f − 1                   (trading's default: position × return − costs)
    "dsr"     D_t, the differential Sharpe ratio of r (Moody & Saffell 1998, 2001)

The differential Sharpe ratio pays each step its first-order contribution to an exponential moving
Sharpe ratio of the per-step returns r_t. With η the EMA rate and A, B the moving first and second
moments,

    ΔA_t = r_t − A_{t−1},   ΔB_t = r_t² − B_{t−1}
    D_t  = (B_{t−1} ΔA_t − ½ A_{t−1} ΔB_t) / (B_{t−1} − A_{t−1}²)^{3/2}
    A_t  = A_{t−1} + η ΔA_t,  B_t = B_{t−1} + η ΔB_t

Start: A_0 = 0 and B_0 = the mean square of the market's returns over the observation window at
reset (the equal-weight return of the risky assets for a portfolio), so D_t is on the market's scale
from the first step instead of dividing by a zero variance; D_t = 0 while B − A² ≤ 1e-20. The default
η = 0.01 is a memory of about 100 steps.
"""

from __future__ import annotations

import numpy as np

from ogdata.errors import EnvError

REWARDS = ("log", "return", "dsr")
RUIN = 1e-12  # a wealth factor at or below zero pays log(RUIN) under "log" (about −27.6)
_VAR_FLOOR = 1e-20


def check_reward(family: str, reward, eta) -> tuple[str, float]:
    """Validate the reward kwargs; EnvError saying what to pass."""
    if reward not in REWARDS:
        raise EnvError(f"{family} kwarg reward={reward!r} is invalid; pass one of {list(REWARDS)}")
    try:
        e = float(eta)
    except (TypeError, ValueError, OverflowError):
        raise EnvError(f"{family} kwarg dsr_eta={eta!r} is not a number; pass an EMA rate in (0, 1]") from None
    if not (0.0 < e <= 1.0):
        raise EnvError(f"{family} kwarg dsr_eta={eta!r} is invalid; pass an EMA rate in (0, 1] (0.01 = a "
                       "memory of about 100 steps)")
    return reward, e


class DifferentialSharpe:
    """The moving moments A, B of B markets and the D_t they pay (module docstring)."""

    def __init__(self, num_envs: int, eta: float):
        self.eta = float(eta)
        self.A = np.zeros(num_envs)
        self.B = np.zeros(num_envs)

    def reset(self, mask: np.ndarray, var0: np.ndarray) -> None:
        """Restart the markets in `mask`: A = 0, B = var0 (the prior variance of a step's return)."""
        self.A = np.where(mask, 0.0, self.A)
        self.B = np.where(mask, var0, self.B)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        """D_t for the step returns r (B,), then update A and B."""
        A, B = self.A, self.B
        dA, dB = r - A, r * r - B
        var = B - A * A
        ok = var > _VAR_FLOOR
        d = np.where(ok, (B * dA - 0.5 * A * dB) / np.where(ok, var, 1.0) ** 1.5, 0.0)
        self.A = A + self.eta * dA
        self.B = B + self.eta * dB
        return d


def pay(kind: str, factor: np.ndarray, dsr: DifferentialSharpe | None) -> np.ndarray:
    """The reward of wealth factors `factor` = W'/W under option `kind` ("log", "return", "dsr")."""
    if kind == "log":
        return np.log(np.maximum(factor, RUIN))
    r = factor - 1.0
    return r if kind == "return" else dsr(r)
