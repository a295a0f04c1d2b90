"""Data for the baselines: per-env scaling, and batches of joint transitions as torch tensors.

Scaling is chosen per env family (`SCALING_RULES`) and fitted on the training dataset:
market features mix scales (log returns ~1e-2 beside weights in [0, 1] and inventories in
units), and per-step rewards are tiny (daily log growth ~1e-3) or large (cash), so the
networks see standardised observations and rewards multiplied by 1/std (a pure rescale,
which never changes the optimal policy). Continuous actions are mapped onto [-1, 1] from
the action space's bounds (the data's range where the space is unbounded). The fitted
numbers go into every run's config, so a checkpoint acts exactly as it was trained.

`with_stock_features` gives a learner that reads the stock features (sqriql) the stock-augmented copy of
a dataset recorded without them, made once and reused.

`AgentBatches` is the multi-agent loader: the dataset's transitions (the same ones
`Dataset.sample` draws from) are scaled once and kept on the training device, so a batch
is one `index_select` — no per-step host work, on a CPU or a GPU.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from gymnasium import spaces

from ogdata.config import home
from ogdata.dataset import Dataset
from ogdata.errors import DataValidationError
from ogdata.writing import augment_stock

# family (env-id prefix) -> how observations and rewards are scaled, and why.
SCALING_RULES: dict[str, dict[str, str]] = {
    "portfolio": {"observation": "standard", "reward": "std",
                  "why": "log-return windows (~1e-2) beside weights in [0,1]; daily log growth ~1e-3"},
    "trading": {"observation": "standard", "reward": "std",
                "why": "return features ~1e-2 beside a position in {-1,0,1}; position x return ~1e-3"},
    "execution": {"observation": "standard", "reward": "std",
                  "why": "inventory and time left on different scales; cash rewards in currency units"},
    "market-making": {"observation": "standard", "reward": "std",
                      "why": "inventory, time and normalised mid moves; PnL rewards in currency units"},
    "multi-market-making": {"observation": "standard", "reward": "std",
                            "why": "as market-making, per maker"},
    "joint-execution": {"observation": "standard", "reward": "std", "why": "as execution, per desk"},
    "default": {"observation": "standard", "reward": "std",
                "why": "standardise features; rescale rewards to unit std (never changes the optimal policy)"},
}


def scaling_rule(env_id: str | None) -> dict[str, str]:
    """The scaling rule of an env id: the longest matching family prefix, else the default."""
    env_id = env_id or ""
    best = max((k for k in SCALING_RULES if k != "default" and env_id.startswith(k)), key=len, default="default")
    return {"family": best, **SCALING_RULES[best]}


@dataclass
class Scaling:
    """Affine maps fitted on a dataset: obs' = (obs − mean) / std, r' = r × reward_scale,
    a' = 2 (a − low) / (high − low) − 1 for continuous actions."""

    obs_mean: list  # per-feature mean of the observations
    obs_std: list  # per-feature std (1 where a feature is constant)
    reward_scale: float = 1.0  # rewards are multiplied by this (1 / std of the rewards)
    state_mean: list | None = None  # per-feature mean of the global states (multi-agent)
    state_std: list | None = None  # per-feature std of the global states
    action_low: list | None = None  # continuous actions: the bounds mapped onto [-1, 1]
    action_high: list | None = None
    rule: dict = field(default_factory=dict)  # the SCALING_RULES entry used, with its family and why

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Scaling:
        return cls(**d)

    # numpy views (float32) -------------------------------------------------------------
    def obs(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.obs_mean, np.float32)) / np.asarray(self.obs_std, np.float32)).astype(
            np.float32)

    def state(self, x: np.ndarray) -> np.ndarray:
        if self.state_mean is None:
            return x.astype(np.float32)
        return ((x - np.asarray(self.state_mean, np.float32)) / np.asarray(self.state_std, np.float32)).astype(
            np.float32)

    def action_to_unit(self, a: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(self.action_low, np.float32), np.asarray(self.action_high, np.float32)
        return np.clip(2.0 * (a - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32)

    def action_from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(self.action_low, np.float32), np.asarray(self.action_high, np.float32)
        return (lo + (np.clip(u, -1.0, 1.0) + 1.0) * 0.5 * (hi - lo)).astype(np.float32)


def _mean_std(x: np.ndarray, axes: tuple[int, ...]) -> tuple[list, list]:
    x = np.asarray(x, dtype=np.float64)
    m = x.mean(axis=axes)
    s = x.std(axis=axes)
    s = np.where(s > 1e-6, s, 1.0)  # constant features pass through unscaled
    return m.astype(np.float32).tolist(), s.astype(np.float32).tolist()


def fit_scaling(ds, rule: dict | None = None) -> Scaling:
    """Fit the env's scaling rule on a dataset (vectorised over the stored arrays)."""
    rule = rule or scaling_rule(ds.env_id)
    arrs = ds.arrays()
    obs = arrs["observations"]
    lead = 2 if ds.multi_agent else 1
    if obs.ndim - lead != 1:
        raise DataValidationError(f"the baselines take flat vector observations; this dataset's observations "
                                  f"have shape {obs.shape[lead:]} per {'agent' if lead == 2 else 'step'}")
    axes = tuple(range(lead))
    if rule["observation"] == "standard":
        om, os_ = _mean_std(obs, axes)
    else:
        om, os_ = [0.0] * obs.shape[-1], [1.0] * obs.shape[-1]
    sm = ss = None
    if "states" in arrs:
        sm, ss = _mean_std(arrs["states"], (0,)) if rule["observation"] == "standard" else (None, None)
    r = np.asarray(arrs["rewards"], dtype=np.float64)
    rs = 1.0
    if rule["reward"] == "std" and r.size and r.std() > 1e-12:
        rs = float(1.0 / r.std())
    lo = hi = None
    sp = ds.action_space
    if isinstance(sp, spaces.Box):
        a = np.asarray(arrs["actions"], dtype=np.float64).reshape(-1, int(np.prod(sp.shape)))
        low, high = sp.low.reshape(-1).astype(np.float64), sp.high.reshape(-1).astype(np.float64)
        dmin, dmax = (a.min(axis=0), a.max(axis=0)) if len(a) else (low, high)
        low = np.where(np.isfinite(low), low, dmin)
        high = np.where(np.isfinite(high), high, dmax)
        high = np.where(high > low, high, low + 1.0)
        lo, hi = low.astype(np.float32).tolist(), high.astype(np.float32).tolist()
    return Scaling(obs_mean=om, obs_std=os_, reward_scale=rs, state_mean=sm, state_std=ss,
                   action_low=lo, action_high=hi, rule=dict(rule))


def stock_copy_path(ds) -> Path:
    """Where the stock-augmented copy of `ds` lives: OGDATA_HOME/derived/stock/<name>-<key>, the key a hash of
    the source's arrays and env, so a copy is never reused for other data (an episode subset of a dataset, say)."""
    h = hashlib.sha256(json.dumps({"env_id": ds.env_id, "env_kwargs": ds.metadata.get("env_kwargs") or {}},
                                  sort_keys=True).encode())
    for k, a in sorted(ds.arrays().items()):
        a = np.ascontiguousarray(a)
        h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.data)
    name = (ds.dataset_id or Path(ds.path).name).replace("/", "__")
    return home() / "derived" / "stock" / f"{name}-{h.hexdigest()[:16]}"


def with_stock_features(ds):
    """`ds` when its observations carry the stock features (env kwarg augment_stock), else its stock-augmented
    copy (`ogdata.augment_stock`: the same markets, actions and rewards), made at `stock_copy_path(ds)` once —
    under a lock, so runs side by side make it once — and reused by every later run."""
    if (ds.metadata.get("env_kwargs") or {}).get("augment_stock"):
        return ds
    if ds.multi_agent or not ds.env_id:
        raise DataValidationError(f"{ds.dataset_id or ds.path}: stock features are for single-agent datasets of a "
                                  "known env; this one is multi-agent or names no env")
    path = stock_copy_path(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if (path / "metadata.json").is_file():
            return Dataset(path)
        return augment_stock(ds, path)


@dataclass
class Spec:
    """What a multi-agent network needs to know about the data."""

    n_agents: int  # agents per joint step
    obs_dim: int  # size of one agent's flat observation
    state_dim: int  # size of the flat global state (0: the dataset has none)
    discrete: bool  # Discrete actions (else Box)
    act_dim: int  # continuous: action size; discrete: number of actions


def agent_spec(ds, single_agent: bool = False) -> Spec:
    """The Spec of a multi-agent dataset; with `single_agent`, of a single-agent one as one agent."""
    if not ds.multi_agent and not single_agent:
        raise DataValidationError(f"{ds.dataset_id or ds.path} is single-agent; the multi-agent baselines need a "
                                  "multi-agent dataset (use bc/cql/iql/td3bc for single-agent ones)")
    sp = ds.action_space
    arrs = ds.arrays()
    obs_dim = int(arrs["observations"].shape[-1])
    state_dim = int(np.prod(arrs["states"].shape[1:])) if "states" in arrs else 0
    n = len(ds.agents) if ds.multi_agent else 1
    if isinstance(sp, spaces.Discrete):
        return Spec(n, obs_dim, state_dim, True, int(sp.n))
    if isinstance(sp, spaces.Box):
        return Spec(n, obs_dim, state_dim, False, int(np.prod(sp.shape)))
    raise DataValidationError(f"action space {sp} is not supported by the baselines (Discrete or Box only)")


def check_agents_end_together(terminations: np.ndarray, truncations: np.ndarray, start: int = 0,
                              ds=None) -> None:
    """Raise DataValidationError unless, at every step, either every agent's episode ends or none does.

    Per-agent terminal flags bootstrap each agent's value; an agent that ended while its episode
    went on would be trained on transitions that never happened. (B, n) flags of steps start, start+1, ...
    """
    ends = np.asarray(terminations, dtype=bool) | np.asarray(truncations, dtype=bool)
    split = ends.any(axis=1) != ends.all(axis=1)
    if split.any():
        i = int(np.flatnonzero(split)[0])
        where = f"{ds.dataset_id or ds.path}: " if ds is not None else ""
        raise DataValidationError(
            f"{where}at transition {start + i} agents {np.flatnonzero(ends[i]).tolist()} end their episode but "
            f"agents {np.flatnonzero(~ends[i]).tolist()} do not ({int(split.sum())} such steps); a multi-agent "
            "episode must end for every agent at the same step. Regenerate the dataset, or fix its "
            "terminations/truncations")


class AgentBatches:
    """A multi-agent dataset on one device: uniform batches of joint transitions.

    A batch is a dict of tensors with a batch and an agent axis: observations and
    next_observations (B, n, obs_dim) scaled, actions (B, n) int64 (discrete) or (B, n, act_dim)
    in [-1, 1], rewards and terminals (B, n) float32, states and next_states (B, state_dim).
    `agent_ids` is the (n, n) one-hot identity that parameter-shared networks append.
    A single-agent dataset (for the single-agent torch learners, e.g. qriql) is loaded as one agent:
    the same tensors with n = 1.

    With `n_step` = m > 1 a batch also carries each transition's window of the next k = min(m, steps to its
    episode's end) transitions, for n-step targets: n_rewards (B, n, m), the rewards r_t .. r_{t+k−1} and
    0 after them; n_next_observations (B, n, obs_dim), s_{t+k}; n_terminals (B, n), the terminal flag of
    step t + k − 1; n_steps (B,) int64, k. The indices drawn are the same as with m = 1.
    """

    KEYS = ("observations", "next_observations", "actions", "rewards", "terminals", "states", "next_states")

    def __init__(self, ds, scaling: Scaling, device: str | torch.device = "cpu", seed: int = 0,
                 chunk_size: int = 1 << 18, n_step: int = 1):
        if int(n_step) < 1:
            raise DataValidationError(f"n_step must be a positive number of transitions, got {n_step}")
        self.n_step = int(n_step)
        self.spec = agent_spec(ds, single_agent=True)
        self.scaling = scaling
        one = not ds.multi_agent  # add the agent axis of one
        self.device = torch.device(device)
        keys = [k for k in self.KEYS if self.spec.state_dim or "state" not in k]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        ends: list[np.ndarray] = []
        start = 0
        for chunk in ds.iter_chunks(chunk_size=chunk_size, keys=[*keys, "truncations"]):
            if one:
                chunk = {k: v if "state" in k else v[:, None] for k, v in chunk.items()}
            check_agents_end_together(chunk["terminals"], chunk["truncations"], start, ds)
            ends.append(start + np.flatnonzero(np.asarray(chunk["terminals"][:, 0], bool)
                                               | np.asarray(chunk["truncations"][:, 0], bool)))
            start += len(chunk["terminals"])
            for k in keys:
                parts[k].append(self._prepare(k, chunk[k]))
        self.data = {k: torch.from_numpy(np.concatenate(v) if v else np.zeros((0,))).to(self.device)
                     for k, v in parts.items()}
        self.size = len(self.data["actions"])
        if self.size == 0:
            raise DataValidationError("cannot train on an empty dataset")
        last = np.concatenate([*ends, [self.size - 1]])  # an unflagged last transition ends the data
        # the index of the last transition of each transition's episode
        self.episode_end = torch.from_numpy(last[np.searchsorted(last, np.arange(self.size))]).to(self.device)
        n = self.spec.n_agents
        self.agent_ids = torch.eye(n, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def _prepare(self, key: str, x: np.ndarray) -> np.ndarray:
        s = self.scaling
        if key in ("observations", "next_observations"):
            return s.obs(x)
        if key in ("states", "next_states"):
            return s.state(x.reshape(len(x), -1))
        if key == "actions":
            if self.spec.discrete:
                return x.astype(np.int64)
            return s.action_to_unit(x.reshape(x.shape[0], x.shape[1], -1))
        if key == "rewards":
            return (x * s.reward_scale).astype(np.float32)
        return x.astype(np.float32)  # terminals

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (int(batch_size),), device=self.device, generator=self.generator)
        batch = {k: v.index_select(0, idx) for k, v in self.data.items()}
        if self.n_step > 1:
            batch.update(self._windows(idx))
        return batch

    def _windows(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The n-step windows of transitions `idx`, cut at their episodes' ends (see the class docstring)."""
        end = self.episode_end[idx]
        k = torch.clamp(end - idx + 1, max=self.n_step)
        offsets = torch.arange(self.n_step, device=self.device)
        window = torch.minimum(idx[:, None] + offsets, end[:, None])  # (B, m): past the end, repeat the end
        inside = (offsets < k[:, None]).to(torch.float32)
        last = idx + k - 1
        return {"n_rewards": self.data["rewards"][window].transpose(1, 2) * inside[:, None, :],
                "n_next_observations": self.data["next_observations"].index_select(0, last),
                "n_terminals": self.data["terminals"].index_select(0, last), "n_steps": k}

    def with_agent_id(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n, d) -> (B, n, d + n): append each agent's one-hot id (parameter sharing)."""
        return torch.cat([obs, self.agent_ids.expand(obs.shape[0], -1, -1)], dim=-1)


def with_agent_id(obs: torch.Tensor) -> torch.Tensor:
    """(B, n, d) -> (B, n, d + n), for acting outside a loader."""
    n = obs.shape[1]
    eye = torch.eye(n, device=obs.device, dtype=obs.dtype)
    return torch.cat([obs, eye.expand(obs.shape[0], -1, -1)], dim=-1)
