"""Vectorised market cores and their thin Gymnasium / PettingZoo faces.

A core steps B independent markets as arrays (batch axis first). The Gymnasium `Env`
is a B=1 view of a core, `MarketVectorEnv` is Gymnasium's `VectorEnv` over a core, and
`MarketParallelEnv` is the PettingZoo face of a multi-agent core. Generation talks to
cores directly: no wrappers, no per-env Python loop.

Action convention, the same everywhere: Box actions outside the bounds are clipped to
them; a NaN/inf action, an action of the wrong shape or a Discrete action out of range
raises `InvalidActionError`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from ogdata.errors import EnvError, InvalidActionError


class VectorMarket(ABC):
    """B markets stepped together. Subclasses set the spaces and implement `_reset` / `_step`.

    Stepping a market that has already ended must not fail (clamp indices): the vector
    face steps every market, then resets the ended ones, which discards that step.

    Single-agent: observations (B, *obs_shape), actions (B, *act_shape), rewards (B,),
    terminated/truncated (B,). Multi-agent (`multi_agent = True`): an agent axis after
    the batch axis: observations (B, n, *obs_shape), actions (B, n, *act_shape),
    rewards/terminated/truncated (B, n), and `state()` (B, *state_shape).
    `info` is a dict of (B, ...) arrays (wealth, inventory, costs, ...).
    """

    multi_agent: bool = False
    observation_space: spaces.Space
    action_space: spaces.Space
    state_space: spaces.Space | None = None
    agents: tuple[str, ...] = ()
    max_steps: int

    def __init__(self, num_envs: int = 1):
        if int(num_envs) < 1:
            raise EnvError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.rng = np.random.default_rng()
        self._t = np.zeros(self.num_envs, dtype=np.int64)

    # -- public -------------------------------------------------------------------------
    def reset(self, seed: int | None = None, mask: np.ndarray | None = None):
        """Reset all markets (mask=None) or those where mask is True; returns (obs, info) for all B."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        self._t[mask] = 0
        return self._reset(mask)

    def step(self, actions):
        """Step every market once; returns (obs, rewards, terminated, truncated, info)."""
        return self._step(self.check_actions(actions))

    def _action_check_setup(self):
        sp = self.action_space
        lead = (self.num_envs, len(self.agents)) if self.multi_agent else (self.num_envs,)
        want = lead + tuple(sp.shape or ())
        low = high = None
        if isinstance(sp, spaces.Box):
            low, high = sp.low.astype(sp.dtype), sp.high.astype(sp.dtype)
        self._act_check = (sp, want, int(np.prod(want)), low, high)
        return self._act_check

    def check_actions(self, actions) -> np.ndarray:
        """Validate a batch of actions: clip Box actions, reject NaN, wrong shapes and bad discrete values."""
        sp, want, size, low, high = getattr(self, "_act_check", None) or self._action_check_setup()
        if low is not None:  # Box: the hot path, kept to a handful of numpy calls
            a = np.asarray(actions, dtype=sp.dtype)
            if a.shape != want:
                a = self._reshape(a, want, size)
            flat = a.reshape(-1)
            if not math.isfinite(flat.dot(flat)):  # one BLAS call; an overflow falls through to the exact check
                if not np.isfinite(a).all():
                    raise InvalidActionError("action contains NaN or inf; pass finite values "
                                             f"within [{sp.low.min()}, {sp.high.max()}]")
            return np.minimum(np.maximum(a, low), high)
        a = np.asarray(actions)
        if a.shape != want:
            a = self._reshape(a, want, size)
        if isinstance(sp, spaces.Discrete):
            if a.dtype.kind == "f":
                if not np.isfinite(a).all():
                    raise InvalidActionError("discrete action contains NaN or inf; pass integers "
                                             f"in [{sp.start}, {sp.start + sp.n - 1}]")
                if (a != np.round(a)).any():
                    raise InvalidActionError(f"discrete action {a[a != np.round(a)][:3]} is not an integer")
            elif a.dtype.kind not in "iub":
                raise InvalidActionError(f"discrete actions must be integers, got dtype {a.dtype}")
            a = a.astype(np.int64, copy=False)
            if a.size and (a.min() < sp.start or a.max() >= sp.start + sp.n):
                raise InvalidActionError(f"discrete action out of range: got {a.min()}..{a.max()}, "
                                         f"expected integers in [{sp.start}, {sp.start + sp.n - 1}]")
            return a
        raise InvalidActionError(f"unsupported action space {sp}")

    def _reshape(self, a: np.ndarray, want: tuple[int, ...], size: int) -> np.ndarray:
        if a.size == size:
            return a.reshape(want)
        raise InvalidActionError(
            f"action batch has shape {a.shape}, expected {want} "
            f"(num_envs{', agents' if self.multi_agent else ''}, *action_space.shape)")

    def state(self) -> np.ndarray:
        """Global state (B, *state_shape) for centralised critics (multi-agent cores)."""
        raise EnvError(f"{type(self).__name__} has no global state")

    # -- what a family implements -------------------------------------------------------
    @abstractmethod
    def _reset(self, mask: np.ndarray):
        """Re-initialise the markets where mask is True; return (obs, info) for all B."""

    @abstractmethod
    def _step(self, actions: np.ndarray):
        """Advance every market one step with validated actions; return (obs, rew, term, trunc, info)."""


def _row(info: dict[str, np.ndarray], i: int = 0) -> dict[str, Any]:
    return {k: v[i] for k, v in info.items()}


class MarketEnv(gymnasium.Env):
    """A single market: the Gymnasium face of a core with B=1."""

    metadata = {"render_modes": []}

    def __init__(self, core: VectorMarket, spec_id: str | None = None):
        if core.num_envs != 1:
            raise EnvError("MarketEnv wraps a core with num_envs=1; use MarketVectorEnv for batches")
        self.core = core
        self.observation_space = core.observation_space
        self.action_space = core.action_space
        self.ogdata_id = spec_id

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.core.rng = np.random.default_rng(seed)
        obs, info = self.core.reset()
        return obs[0], _row(info)

    def step(self, action):
        obs, rew, term, trunc, info = self.core.step(np.asarray(action)[None])
        return obs[0], float(rew[0]), bool(term[0]), bool(trunc[0]), _row(info)


class MarketVectorEnv(gymnasium.vector.VectorEnv):
    """Gymnasium VectorEnv over one core, with Gymnasium 1.0's next-step autoreset."""

    metadata = {"autoreset_mode": "next_step"}

    def __init__(self, core: VectorMarket):
        self.core = core
        self.num_envs = core.num_envs
        self.single_observation_space = core.observation_space
        self.single_action_space = core.action_space
        self.observation_space = gymnasium.vector.utils.batch_space(core.observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(core.action_space, self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._obs = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.core.reset(seed=seed)
        self._needs_reset[:] = False
        self._obs = obs
        return obs, info

    def step(self, actions):
        if self._needs_reset.any():
            # next-step autoreset: markets that ended last step are reset and ignore their action
            mask = self._needs_reset.copy()
            obs, rew, term, trunc, info = self.core.step(actions)
            robs, rinfo = self.core.reset(mask=mask)
            obs = np.where(mask.reshape((-1,) + (1,) * (obs.ndim - 1)), robs, obs)
            info = {k: np.where(mask.reshape((-1,) + (1,) * (np.ndim(v) - 1)), rinfo[k], v)
                    if k in rinfo else v for k, v in info.items()}
            rew = np.where(mask, 0.0, rew)
            term = np.where(mask, False, term)
            trunc = np.where(mask, False, trunc)
        else:
            obs, rew, term, trunc, info = self.core.step(actions)
        self._needs_reset = term | trunc
        return obs, rew, term, trunc, info


class MarketParallelEnv(ParallelEnv):
    """PettingZoo ParallelEnv face of a multi-agent core with B=1."""

    metadata = {"render_modes": [], "name": "ogdata_market", "is_parallelizable": True}
    render_mode = None

    def __init__(self, core: VectorMarket, spec_id: str | None = None):
        if not core.multi_agent:
            raise EnvError(f"{type(core).__name__} is single-agent; use MarketEnv")
        if core.num_envs != 1:
            raise EnvError("MarketParallelEnv wraps a core with num_envs=1")
        self.core = core
        self.possible_agents = list(core.agents)
        self.agents: list[str] = []
        self.observation_spaces = {a: core.observation_space for a in self.possible_agents}
        self.action_spaces = {a: core.action_space for a in self.possible_agents}
        self.state_space = core.state_space
        self.ogdata_id = spec_id

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    def _infos(self, info: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        out = {}
        for i, a in enumerate(self.possible_agents):
            out[a] = {k: (v[0, i] if np.ndim(v) >= 2 and np.shape(v)[1] == len(self.possible_agents) else v[0])
                      for k, v in info.items()}
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, info = self.core.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return {a: obs[0, i] for i, a in enumerate(self.possible_agents)}, self._infos(info)

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise EnvError("step() called on a finished episode; call reset() first")
        keys = set(actions)
        missing, extra = set(self.agents) - keys, keys - set(self.agents)
        if missing or extra:
            raise InvalidActionError(
                f"action dict must have exactly one entry per live agent {self.agents}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}")
        batch = np.stack([np.asarray(actions[a]) for a in self.possible_agents])[None]
        obs, rew, term, trunc, info = self.core.step(batch)
        ids = self.possible_agents
        o = {a: obs[0, i] for i, a in enumerate(ids)}
        r = {a: float(rew[0, i]) for i, a in enumerate(ids)}
        te = {a: bool(term[0, i]) for i, a in enumerate(ids)}
        tr = {a: bool(trunc[0, i]) for i, a in enumerate(ids)}
        infos = self._infos(info)
        self.agents = [a for a in ids if not (te[a] or tr[a])]
        return o, r, te, tr, infos

    def state(self) -> np.ndarray:
        return self.core.state()[0]

    def render(self):
        return None

    def close(self):
        pass
