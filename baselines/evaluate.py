"""Evaluation on the env's held-out setting: raw returns, normalised score, finance figures.

Held-out setting (`heldout`): real-price envs evaluate on their later, unseen years — the
registered `<id>-eval` counterpart when there is one, else the spec's period kwarg set to
its evaluation value; synthetic markets evaluate on fresh seeds (`EVAL_SEED_OFFSET` + 1000 × run
seed + round: far from the small seeds generation and the reference returns use). Every
evaluation of a run sees the same markets, and so does every algorithm with that run seed.
The policy acts on a whole batch of markets through the vectorised core
(`ogdata.envs.make_core(id, num_envs=B)`), no per-env loop.

Normalised score = 100 × (R − R_random) / (R_expert − R_random), with the references
recorded for the evaluation id (ogdata.policies.reference_returns); when none are recorded
for it, both reference policies are rolled on the same markets and seeds and the result
says `"references": {"source": "computed"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from baselines import finance
from ogdata.catalogue import weights_path
from ogdata.envs import make_core
from ogdata.envs.registry import OBSERVATION_KWARGS, env_spec
from ogdata.errors import EnvError, ReferenceMissingError
from ogdata.policies import make_policy, reference_returns
from ogdata.policies.checkpoint import load_policy
from ogdata.policies.evaluate import check_agents_end_together, reference_returns_v1

EVAL_SEED_OFFSET = 1_000_003
PERIOD_KWARGS = ("period", "split", "segment")  # kwargs real-price envs use to choose their years
EVAL_VALUES = ("eval", "test", "heldout")


@dataclass
class HeldOut:
    env_id: str
    kwargs: dict[str, Any]
    how: str  # "eval-id", "eval-kwarg" or "fresh-seeds"


def heldout(env_id: str, env_kwargs: dict[str, Any] | None = None) -> HeldOut:
    """The setting a policy trained on `env_id` data is evaluated in (see the module docstring)."""
    from ogdata.envs import list_envs

    kwargs = dict(env_kwargs or {})
    spec = env_spec(env_id)
    for suffix in ("-eval", "-test"):
        if spec.id + suffix in list_envs():
            return HeldOut(spec.id + suffix, kwargs, "eval-id")
    merged = {**spec.kwargs, **kwargs}
    for k in PERIOD_KWARGS:
        if k in merged:
            if str(merged[k]).lower() not in EVAL_VALUES:
                kwargs[k] = "eval"
            return HeldOut(spec.id, kwargs, "eval-kwarg")
    return HeldOut(spec.id, kwargs, "fresh-seeds")


FINANCE_KEYS = ("wealth", "inventory", "shortfall", "position", "turnover", "costs", "fills", "pnl", "exercised")


def rollout(core, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """One episode in each of the core's B markets; returns per-market `returns`, `lengths`, the
    `alive` mask (B, T) and the per-step paths of the finance keys of `info` (wealth, inventory,
    shortfall, position, turnover, costs, fills, pnl, exercised), shape (B, T+1), frozen at their final value once a
    market's episode has ended. Execution envs whose action is the fraction of the inventory to sell
    add `dumped`: the shares the last step left for the terminal block sale (inventory × (1 − the
    last action's fraction)), summed over desks.

    Multi-agent: the return sums, per step, the mean reward across agents, and `agent_returns` (B, n)
    keeps each agent's own (what a general-sum id's per-agent scores are); per-agent info (B, n) is
    summed over agents (the firm's figure) unless a `firm_<key>` is given.
    """
    B = core.num_envs
    obs, info = core.reset(seed=int(seed))
    first = {k: _firm(info, k, B) for k in FINANCE_KEYS}
    paths: dict[str, list[np.ndarray]] = {k: [v] for k, v in first.items() if v is not None}
    ret, length = np.zeros(B), np.zeros(B, dtype=np.int64)
    agent_ret = np.zeros((B, len(core.agents))) if core.multi_agent else None
    alive = np.ones(B, dtype=bool)
    alive_steps = []
    execution = "shortfall" in info
    dumped = np.zeros(B)
    while alive.any():
        act = policy(obs)
        if execution:  # shares a market's last step leaves for the terminal block sale: inventory × (1 − a)
            held = np.asarray(info["inventory"], dtype=np.float64).reshape(B, -1)
            frac = np.clip(np.asarray(act, dtype=np.float64).reshape(B, -1), 0.0, 1.0)
            if held.shape != frac.shape:   # orders, not fractions of what is held (the order-book desks)
                execution = False
            else:
                left_if_last = (held * (1.0 - frac)).sum(axis=1)
        obs, rew, term, trunc, info = core.step(act)
        if core.multi_agent:
            check_agents_end_together(core, term, trunc, alive, len(alive_steps))
            agent_ret += np.where(alive[:, None], rew, 0.0)
            rew = np.asarray(rew).mean(axis=1)
            term, trunc = np.asarray(term).all(axis=1), np.asarray(trunc).all(axis=1)
        ret += np.where(alive, rew, 0.0)
        length += alive
        alive_steps.append(alive.copy())
        for k, p in paths.items():
            v = _firm(info, k, B)
            p.append(np.where(alive, v, p[-1]) if v is not None else p[-1])
        ending = alive & (np.asarray(term) | np.asarray(trunc))
        if execution:
            dumped = np.where(ending, left_if_last, dumped)
        alive &= ~ending
    out = {"returns": ret, "lengths": length, "alive": np.stack(alive_steps, axis=1)}
    if agent_ret is not None:
        out["agent_returns"] = agent_ret
    if execution:
        out["dumped"] = dumped
    out.update({k: np.stack(v, axis=1) for k, v in paths.items()})
    return out


def _firm(info: dict, key: str, B: int) -> np.ndarray | None:
    v = info.get(f"firm_{key}", info.get(key))
    if v is None:
        return None
    v = np.asarray(v, dtype=np.float64)
    if v.shape[:1] != (B,):
        return None
    return v.reshape(B, -1).sum(axis=1)


@dataclass
class Evaluator:
    """Evaluates policies trained on `env_id` data in its held-out setting, on fixed seeds."""

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: int = 10
    seed: int = 0
    batch: int = 64

    def __post_init__(self):
        self.setting = heldout(self.env_id, self.env_kwargs)
        n = max(1, min(self.batch, self.episodes))
        self.core = make_core(self.setting.env_id, num_envs=n, **self.setting.kwargs)
        self.rounds = -(-self.episodes // n)
        self.seeds = [EVAL_SEED_OFFSET + 1000 * self.seed + r for r in range(self.rounds)]
        # annualisation: the env's own `periods_per_year` when it states one, else daily steps (252 a year)
        self.periods_per_year = float(getattr(self.core, "periods_per_year", finance.TRADING_DAYS))
        self.periods_source = "env" if hasattr(self.core, "periods_per_year") else "assumed daily"
        self._refs: dict[str, Any] | None = None

    def references(self) -> dict[str, Any]:
        """{"random", "expert", "source"}: recorded for the evaluation id, else computed here."""
        if self._refs is None:
            try:
                refs = reference_returns(self.setting.env_id)
                self._refs = {**refs, "source": "recorded"}
            except ReferenceMissingError:
                names = env_spec(self.setting.env_id).references
                if "expert" not in names:
                    raise ReferenceMissingError(
                        f"{self.setting.env_id} has no expert reference policy and no recorded references; "
                        "a normalised score needs both") from None
                out = {}
                for which in ("random", "expert"):
                    pol = make_policy(names[which], self.core)
                    rng = np.random.default_rng(self.seed)
                    out[which] = float(self.returns(lambda o, p=pol, g=rng: p(o, g))["returns"].mean())
                self._refs = {**out, "source": "computed"}
        return self._refs

    def returns(self, policy: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
        parts = [rollout(self.core, policy, s) for s in self.seeds]
        out = {}
        for k in parts[0]:
            arrs = [p[k] for p in parts]
            if arrs[0].ndim == 2:  # pad rounds of different lengths: paths keep their last value, alive False
                T = max(a.shape[1] for a in arrs)
                arrs = [np.concatenate([a, np.repeat(a[:, -1:] if k != "alive" else np.zeros_like(a[:, -1:]),
                                                     T - a.shape[1], axis=1)], axis=1) for a in arrs]
            out[k] = np.concatenate(arrs)[: self.episodes]
        return out

    def __call__(self, policy: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        """Score `policy(obs_batch) -> action_batch`: mean/std return, normalised score, finance figures."""
        res = self.returns(policy)
        R = res["returns"]
        refs = self.references()
        scores = 100.0 * (R - refs["random"]) / (refs["expert"] - refs["random"])
        out: dict[str, Any] = {
            "return_mean": float(R.mean()), "return_std": float(R.std()),
            "normalised_score": float(scores.mean()), "normalised_score_std": float(scores.std()),
            "episodes": int(len(R)), "mean_length": float(res["lengths"].mean()),
            "references": refs, "eval_env": self.setting.env_id, "eval_kwargs": self.setting.kwargs,
            "heldout": self.setting.how,
        }
        if "wealth" in res:
            alive = res["alive"]
            turnover = None
            if "turnover" in res:  # per-step one-way turnover (portfolio)
                turnover = np.where(alive, res["turnover"][:, 1:], np.nan)
            elif "position" in res:  # a position as a fraction of wealth (trading): |Δposition| traded
                turnover = np.where(alive, np.abs(np.diff(res["position"], axis=1)), np.nan)
            fin = finance.summary(res["wealth"], self.periods_per_year, turnover=turnover,
                                  inventory=res.get("inventory"))
            fin["periods_per_year_source"] = self.periods_source
            if "shortfall" in res:  # execution: shortfall of the parent order in bp of its arrival value
                w0 = res["wealth"][:, 0]
                fin["implementation_shortfall_bp"] = float(np.mean(res["shortfall"][:, -1] / w0 * 1e4)) if (
                    w0 > 0).all() else float("nan")
            out["finance"] = fin
        return out


# -- protocol v1: fixed markets, paired references ----------------------------------------------
def concat_rounds(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join rollouts of several rounds; (B, T) paths of different lengths are padded with their
    last value (`alive` with False)."""
    out = {}
    for k in parts[0]:
        arrs = [p[k] for p in parts]
        if arrs[0].ndim == 2:
            T = max(a.shape[1] for a in arrs)
            arrs = [np.concatenate([a, np.repeat(a[:, -1:] if k != "alive" else np.zeros_like(a[:, -1:]),
                                                 T - a.shape[1], axis=1)], axis=1) for a in arrs]
        out[k] = np.concatenate(arrs)
    return out


def reference_policy(env_id: str, name: str, core):
    """A v1 reference of `env_id` by name, acting in `core`: a trained checkpoint the env's v1 references
    name (e.g. "trained/best", deterministic), else a registered policy (`make_policy`). A checkpoint of
    the base id reads the base observation: in a stock-augmented core (the risk tasks) it is given the
    observation without the appended stock features."""
    try:
        entry = reference_returns_v1(env_id)
    except ReferenceMissingError:
        entry = {}
    rows = [((entry.get("expert") or {}).get("name"), entry.get("expert") or {}),
            *(entry.get("baselines") or {}).items()]
    checkpoint = next((r["checkpoint"] for n, r in rows if n == name and r.get("checkpoint")), None)
    if checkpoint is None:
        return make_policy(name, core)
    pol = load_policy(weights_path(checkpoint), noise=0.0, mode="deterministic")
    width, full = int(np.prod(pol.obs_shape)), int(np.prod(core.observation_space.shape))
    if full == width:
        return pol
    if getattr(core, "_stock", None) is not None and full == width + 2:   # StockFeatures appends two
        return lambda obs, rng: pol(obs[..., :width], rng)
    raise EnvError(f"checkpoint {checkpoint} reads {width} observation features and {env_id}'s core gives {full}: "
                   "the checkpoint was trained on another observation")


class MarketEvaluator:
    """Scores policies on the published v1 markets (`ogdata.envs.markets`) of the id a dataset was made on.

    split "test" for every headline number, "validation" for anything that selects (checkpoints,
    learning curves). Every algorithm, seed and reference policy sees exactly these markets, and
    the normalised score uses the references scored on them (paired normalisation)."""

    def __init__(self, env_id: str, split: str = "test", env_kwargs: dict[str, Any] | None = None):
        from ogdata.envs.markets import market_references, market_set

        spec = env_spec(env_id)
        extra = {k: v for k, v in (env_kwargs or {}).items() if spec.kwargs.get(k, object()) != v}
        # observation-only kwargs (the stock features of the risk tasks) keep the id's markets and references
        obs_kwargs = {k: extra.pop(k) for k in list(extra) if k in OBSERVATION_KWARGS}
        if extra:
            raise ValueError(f"the v1 evaluation markets are those of the registered {spec.id}; this dataset's "
                             f"env_kwargs {extra} change the env, so it has no v1 markets: evaluate it with the "
                             "v0 Evaluator (RunSettings.protocol='v0')")
        refs = market_references(spec.id, split)
        self._setup(spec.id, market_set(spec.id, split), {
            "random": float(refs["random"]["return_mean"]), "expert": float(refs["expert"]["return_mean"]),
            "expert_name": refs["expert"]["name"], "split": split, "source": "ogdata/envs/markets-v1.json"},
                    obs_kwargs)

    @classmethod
    def on(cls, env_id: str, markets, references: dict[str, Any] | None = None) -> MarketEvaluator:
        """An evaluator on given markets (an `ogdata.envs.markets.MarketSet`), e.g. to score the
        references themselves before they are published (scripts/compute_evaluation_markets.py)."""
        ev = cls.__new__(cls)
        ev._setup(env_spec(env_id).id, markets, references)
        return ev

    def _setup(self, env_id: str, markets, references: dict[str, Any] | None,
               obs_kwargs: dict[str, Any] | None = None) -> None:
        self.env_id, self.split, self.markets, self.references = env_id, markets.split, markets, references
        self.obs_kwargs = dict(obs_kwargs or {})
        eval_spec = env_spec(markets.env_id)
        self.family, self.periods_per_year = eval_spec.family, eval_spec.periods_per_year
        self.step, self.episodes = eval_spec.step, markets.episodes
        self._rounds = None
        self.n_agents = 1

    def cores(self) -> list[tuple[Any, int]]:
        """(core, reset seed) per round, built once: every reset returns the same markets."""
        if self._rounds is None:
            self._rounds = list(self.markets.rounds(**self.obs_kwargs))
            self.n_agents = max(1, len(getattr(self._rounds[0][0], "agents", ())))
        return self._rounds

    def returns(self, policy: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
        return concat_rounds([rollout(core, policy, seed) for core, seed in self.cores()])

    def reference_returns(self, name: str, action_seed: int = 0) -> dict[str, np.ndarray]:
        """A reference policy of this id by name (`reference_policy`: a registered
        policy, or a trained checkpoint its v1 references name), built for each round's core, on these markets."""
        parts = []
        for core, seed in self.cores():
            pol, rng = reference_policy(self.env_id, name, core), np.random.default_rng(action_seed)
            parts.append(rollout(core, lambda o, p=pol, g=rng: p(o, g), seed))
        return concat_rounds(parts)

    def __call__(self, policy: Callable[[np.ndarray], np.ndarray], finance: bool = True,
                 episode_returns: bool = False) -> dict[str, Any]:
        """Mean return, sample std (ddof = 1), normalised score and its SE; the v1 finance figures;
        with `episode_returns`, every episode's return (in market order) for records and paired tests."""
        res = self.returns(policy)
        return summarise(res, self, finance=finance, episode_returns=episode_returns)


def summarise(res: dict[str, np.ndarray], ev: MarketEvaluator, finance: bool = True,
              episode_returns: bool = False, references: dict | None = None) -> dict[str, Any]:
    """The v1 record of one rollout on `ev`'s markets (references: `ev.references` unless given)."""
    from baselines import finance as fin

    refs = references if references is not None else ev.references
    R = res["returns"]
    n = len(R)
    out: dict[str, Any] = {"return_mean": float(R.mean()), "return_std": float(R.std(ddof=1)) if n > 1 else None,
                           "return_se": float(R.std(ddof=1) / np.sqrt(n)) if n > 1 else None, "episodes": n,
                           "split": ev.split, "markets": ev.markets.env_id, "mean_length": float(res["lengths"].mean())}
    if refs:
        gap = refs["expert"] - refs["random"]
        out["normalised_score"] = 100.0 * (out["return_mean"] - refs["random"]) / gap
        out["normalised_score_se"] = None if out["return_se"] is None else 100.0 * out["return_se"] / abs(gap)
        out["references"] = refs
    if finance:
        n_agents = len(getattr(ev, "_rounds", None) and ev._rounds[0][0].agents or ()) or 1
        out["finance"] = fin.v1_figures(ev.family, res, ev.periods_per_year, n_agents=n_agents,
                                        references=refs or None)
        out["finance"]["step"] = ev.step
    if "agent_returns" in res:           # each agent's own mean return and SE (their mean is return_mean)
        A = res["agent_returns"]
        out["per_agent"] = {"return_mean": [float(x) for x in A.mean(axis=0)],
                            "return_se": [float(x) for x in A.std(axis=0, ddof=1) / np.sqrt(n)] if n > 1 else None}
    if episode_returns:
        out["episode_returns"] = [float(x) for x in R]
    return out
