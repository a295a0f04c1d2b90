"""HL-Gauss critics for the d3rlpy baselines (cql, iql, td3bc, bcq): `value_loss = "hl_gauss"`.

d3rlpy builds its critics through a `QFunctionFactory`; this one makes Q-functions whose last layer holds
the logits of a histogram over [v_min, v_max] (`baselines.hlgauss.HLGauss`). Everything an algorithm reads
as a value (targets, CQL's logsumexp, TD3+BC's actor objective, IQL's expectile) is the decoded mean
Σ_j softmax(ℓ)_j·z_j; only the TD loss changes: the cross-entropy to the HL-Gauss histogram of the target
y = r + γ(1 − d)·target in place of d3rlpy's (Q − y)² (continuous) or Huber (discrete) error.

d3rlpy's IQL builds its critics with a fixed `MeanQFunctionFactory`; `HLGaussIQLConfig` is IQL with a
`q_func_factory` field, its critics built by that factory and nothing else changed.
"""

from __future__ import annotations

import dataclasses

import torch
from d3rlpy.algos.qlearning import iql as d3rlpy_iql
from d3rlpy.base import register_learnable
from d3rlpy.models.q_functions import QFunctionFactory, make_q_func_field, register_q_func_factory
from d3rlpy.models.torch.q_functions.base import (
    ContinuousQFunction,
    ContinuousQFunctionForwarder,
    DiscreteQFunction,
    DiscreteQFunctionForwarder,
    QFunctionOutput,
)
from d3rlpy.models.torch.q_functions.utility import compute_reduce, pick_value_by_action
from torch import nn

from baselines.hlgauss import HLGauss


class DiscreteHLGaussQFunction(DiscreteQFunction):
    """Q(s, ·): logits (B, A, bins); q_value the decoded (B, A), quantiles the logits."""

    def __init__(self, encoder, hidden_size: int, action_size: int, hl: HLGauss):
        super().__init__()
        self._encoder, self._hl, self._action_size = encoder, hl, action_size
        self._fc = nn.Linear(hidden_size, action_size * hl.bins)

    def forward(self, x) -> QFunctionOutput:
        logits = self._fc(self._encoder(x)).view(-1, self._action_size, self._hl.bins)
        return QFunctionOutput(q_value=self._hl.decode(logits), quantiles=logits, taus=None)

    @property
    def encoder(self):
        return self._encoder


class DiscreteHLGaussQFunctionForwarder(DiscreteQFunctionForwarder):
    def __init__(self, q_func: DiscreteHLGaussQFunction, action_size: int):
        self._q_func, self._action_size = q_func, action_size

    def compute_expected_q(self, x) -> torch.Tensor:
        return self._q_func(x).q_value

    def compute_error(self, observations, actions, rewards, target, terminals,
                      gamma: float | torch.Tensor = 0.99, reduction: str = "mean") -> torch.Tensor:
        logits = self._q_func(observations).quantiles  # (B, A, bins)
        logits = logits[torch.arange(len(logits), device=logits.device), actions.view(-1).long()]
        y = rewards + gamma * target * (1 - terminals)  # (B, 1)
        return compute_reduce(self._q_func._hl.loss(logits, y.view(-1)).view(-1, 1), reduction)

    def compute_target(self, x, action: torch.Tensor | None = None) -> torch.Tensor:
        q = self._q_func(x).q_value
        return q if action is None else pick_value_by_action(q, action, keepdim=True)

    def set_q_func(self, q_func: DiscreteQFunction) -> None:
        self._q_func = q_func


class ContinuousHLGaussQFunction(ContinuousQFunction):
    """Q(s, a): logits (B, bins); q_value the decoded (B, 1), quantiles the logits."""

    def __init__(self, encoder, hidden_size: int, hl: HLGauss):
        super().__init__()
        self._encoder, self._hl = encoder, hl
        self._fc = nn.Linear(hidden_size, hl.bins)

    def forward(self, x, action: torch.Tensor) -> QFunctionOutput:
        logits = self._fc(self._encoder(x, action))
        return QFunctionOutput(q_value=self._hl.decode(logits).unsqueeze(-1), quantiles=logits, taus=None)

    @property
    def encoder(self):
        return self._encoder


class ContinuousHLGaussQFunctionForwarder(ContinuousQFunctionForwarder):
    def __init__(self, q_func: ContinuousHLGaussQFunction):
        self._q_func = q_func

    def compute_expected_q(self, x, action: torch.Tensor) -> torch.Tensor:
        return self._q_func(x, action).q_value

    def compute_error(self, observations, actions, rewards, target, terminals,
                      gamma: float | torch.Tensor = 0.99, reduction: str = "mean") -> torch.Tensor:
        logits = self._q_func(observations, actions).quantiles  # (B, bins)
        y = rewards + gamma * target * (1 - terminals)  # (B, 1)
        return compute_reduce(self._q_func._hl.loss(logits, y.view(-1)).view(-1, 1), reduction)

    def compute_target(self, x, action: torch.Tensor) -> torch.Tensor:
        return self._q_func(x, action).q_value

    def set_q_func(self, q_func: ContinuousQFunction) -> None:
        self._q_func = q_func


@dataclasses.dataclass()
class HLGaussQFunctionFactory(QFunctionFactory):
    """Critics over a histogram of `bins` bins on [v_min, v_max], trained by the HL-Gauss cross-entropy."""

    v_min: float = -1.0
    v_max: float = 1.0
    bins: int = 101
    sigma_ratio: float = 0.75

    def _hl(self) -> HLGauss:
        return HLGauss(self.v_min, self.v_max, self.bins, self.sigma_ratio)

    def create_discrete(self, encoder, hidden_size: int, action_size: int):
        q_func = DiscreteHLGaussQFunction(encoder, hidden_size, action_size, self._hl())
        return q_func, DiscreteHLGaussQFunctionForwarder(q_func, action_size)

    def create_continuous(self, encoder, hidden_size: int):
        q_func = ContinuousHLGaussQFunction(encoder, hidden_size, self._hl())
        return q_func, ContinuousHLGaussQFunctionForwarder(q_func)

    @staticmethod
    def get_type() -> str:
        return "hl_gauss"


register_q_func_factory(HLGaussQFunctionFactory)


@dataclasses.dataclass()
class HLGaussIQLConfig(d3rlpy_iql.IQLConfig):
    """d3rlpy's IQLConfig with the critics' `q_func_factory` (d3rlpy's own IQL fixes the mean one)."""

    q_func_factory: QFunctionFactory = make_q_func_field()

    def create(self, device=False, enable_ddp: bool = False) -> HLGaussIQL:
        return HLGaussIQL(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "iql_q_func_factory"


class HLGaussIQL(d3rlpy_iql.IQL):
    def inner_create_impl(self, observation_shape, action_size: int) -> None:
        """d3rlpy's IQL, its two `MeanQFunctionFactory()` calls answered by the config's factory."""
        factory, mean = self._config.q_func_factory, d3rlpy_iql.MeanQFunctionFactory
        d3rlpy_iql.MeanQFunctionFactory = lambda: factory
        try:
            super().inner_create_impl(observation_shape, action_size)
        finally:
            d3rlpy_iql.MeanQFunctionFactory = mean


register_learnable(HLGaussIQLConfig)
