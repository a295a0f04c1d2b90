"""Risk-sensitive tasks, as data: an env id, the stock-augmented observation, and an objective of the
episode return G that evaluation scores (issue #22).

A task is not a new environment: the markets, dynamics and per-step rewards are the base id's, so
its datasets, fixed v1 markets and recorded references are the base id's too. What changes:

- the observation: `augment_stock=True` appends [tanh(reward so far / scale), time left]
  (`ogdata.envs.core.StockFeatures`), an observation-only kwarg (`OBSERVATION_KWARGS`); an existing
  single-agent dataset gains the same features with `ogdata.augment_stock(ds, path)` (ogdata/writing.py);
- the objective, a property of evaluation, with the lower tail of G as the risk:

      "cvar"       CVaR_α(G) = E[G | G ≤ VaR_α(G)]   the mean of the worst α of episodes
      "mean-cvar"  (1 − w)·E[G] + w·CVaR_α(G)       a trade-off; w = 1 is CVaR, w = 0 the mean

  Rockafellar–Uryasev: CVaR_α(G) = max_b {b − E[(b − G)⁺]/α}, attained at b = VaR_α(G); so both
  objectives are max_b E[u_b(G)] for a piecewise-linear utility u_b, which stock augmentation
  makes a Markov problem (`baselines/sqriql.py`).

Why not registered env ids: every registered id carries v1 references and fixed markets
(`references-v1.json`, `markets-v1.json`, checked by the tests); a task reuses its base id's.
`references` names the best known policy for the objective where one is computable (execution:
the optimal static Almgren–Chriss schedule, `ogdata.policies.execution.ac_cvar_risk_aversion`;
portfolio: the optimal constant mix under the calibration's Gaussian model,
`ogdata.policies.portfolio.mean_cvar_weights`; trading: flat, CVaR 0, and for the mean-CVaR trade-off the
best rule policy on the validation markets, flat again; the order book: the best of the id's v1 references on
the validation markets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ogdata.errors import InvalidIdError, closest

OBJECTIVES = ("cvar", "mean-cvar")
MEAN_CVAR_WEIGHT = 0.5  # w of the mean-CVaR trade-off tasks


@dataclass(frozen=True)
class RiskTask:
    id: str  # the task id, <env-id>-<objective>
    env_id: str  # the base env id: markets, dynamics, rewards, references
    objective: str  # "cvar" or "mean-cvar"
    alpha: float  # tail fraction of CVaR_α
    weight: float = 1.0  # w in (1 − w)·mean + w·CVaR (1 for "cvar")
    kwargs: dict[str, Any] = field(default_factory=lambda: {"augment_stock": True})  # observation-only
    references: dict[str, str] = field(default_factory=dict)  # role -> reference policy name

    @property
    def description(self) -> str:
        what = (f"CVaR_{self.alpha:g} of the episode return" if self.objective == "cvar" else
                f"{1 - self.weight:g}·mean + {self.weight:g}·CVaR_{self.alpha:g} of the episode return")
        return f"maximise {what} on {self.env_id}, observing the reward so far and the time left"


def _tasks(env_id: str, refs: dict[str, dict[str, str]] | None = None) -> tuple[RiskTask, ...]:
    refs = refs or {}
    return (RiskTask(f"{env_id}-cvar5", env_id, "cvar", 0.05, references=refs.get("cvar5", {})),
            RiskTask(f"{env_id}-cvar10", env_id, "cvar", 0.10, references=refs.get("cvar10", {})),
            RiskTask(f"{env_id}-meancvar10", env_id, "mean-cvar", 0.10, MEAN_CVAR_WEIGHT,
                     references=refs.get("meancvar10", {})))


_AC = {t: {"expert": f"execution/ac-{t}"} for t in ("cvar5", "cvar10", "meancvar10")}
_MIX = {t: {"expert": f"portfolio/{t}-mix"} for t in ("cvar5", "cvar10", "meancvar10")}
# Flat returns 0 every episode: CVaR 0, the CVaR optimum of a market whose tail is a loss. For the mean-CVaR
# trade-off it is the best of the rule policies (always-long, the regime filter, flat) on the *validation*
# markets of both ids (re-checked by tests/test_risk_tasks.py). The PPO expert is not a candidate there:
# trading-sp500's validation markets lie in the years it was trained on, where it scores +0.22 (in sample)
# against −0.08 on the held-out test years.
_FLAT = {t: {"expert": "trading/flat"} for t in ("cvar5", "cvar10", "meancvar10")}
# The order book has no closed form: each task's reference is the best of the id's v1 reference policies
# (TWAP, AC, queue-aware, the PPO expert "trained/best") on the task's objective on the *validation*
# markets (re-checked by tests/test_risk_tasks.py); the test markets score it.
_LOB = {t: {"expert": "lob-execution/queue-aware"} for t in ("cvar5", "cvar10", "meancvar10")}
_LOB_LATENT = {**_LOB, "meancvar10": {"expert": "trained/best"}}
TASKS: tuple[RiskTask, ...] = (
    *_tasks("execution-ac", _AC), *_tasks("execution-ac-highvol", _AC),
    *_tasks("portfolio-synth", _MIX), *_tasks("portfolio-sp500", _MIX),
    *_tasks("trading-synth", _FLAT), *_tasks("trading-sp500", _FLAT),
    *_tasks("lob-execution", _LOB), *_tasks("lob-execution-latent", _LOB_LATENT),
)
_BY_ID = {t.id: t for t in TASKS}


def list_risk_tasks() -> list[str]:
    return [t.id for t in TASKS]


def risk_task(task_id: str) -> RiskTask:
    try:
        return _BY_ID[task_id]
    except KeyError:
        raise InvalidIdError(f"unknown risk task {task_id!r}.{closest(task_id, _BY_ID)} "
                             "ogdata.envs.risk.list_risk_tasks() lists them") from None

