"""Vectorised market cores and their thin Gymnasium / PettingZoo faces.

A core steps B independent markets as arrays (batch axis first). The Gymnasium `Env`
is a B=1 view of a core, `MarketVectorEnv` is Gymnasium's `VectorEnv` over a core, and
`MarketParallelEnv` is the PettingZoo face of a multi-agent core. Generation talks to
cores directly: no wrappers, no per-env Python loop.

Action convention, the same everywhere: Box actions are real numbers, and values outside the
bounds (however large, 1e39 included) are clipped to them; a NaN/inf action, an action of
another shape (never reshaped: a (1, 21, 1) action for a (21,) space raises), a string,
complex or object action, or a Discrete action that is not an integer in range raises
`InvalidActionError` (out-of-range values are reported as given, uint64 included).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
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
        self._stock: StockFeatures | None = None

    # -- public -------------------------------------------------------------------------
    def reset(self, seed: int | None = None, mask: np.ndarray | None = None):
        """Reset all markets (mask=None) or those where mask is True; returns (obs, info) for all B."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        self._t[mask] = 0
        if self._stock is None:
            return self._reset(mask)
        obs, info = self._reset(mask)
        return self._stock.reset(self, mask, obs), info

    def step(self, actions):
        """Step every market once; returns (obs, rewards, terminated, truncated, info)."""
        if self._stock is None:
            return self._step(self.check_actions(actions))
        obs, rew, term, trunc, info = self._step(self.check_actions(actions))
        return self._stock.step(self, obs, rew), rew, term, trunc, info

    def augment_stock(self, scale: float) -> None:
        """Append the stock features [tanh(reward so far / scale), steps left / max_steps] to every
        observation (`StockFeatures`); the families call it for `augment_stock=True`."""
        if self.multi_agent:
            raise EnvError(f"{type(self).__name__} is multi-agent; augment_stock is for single-agent envs")
        self._stock = StockFeatures(self, scale)

    def _action_check_setup(self):
        sp = self.action_space
        lead = (self.num_envs, len(self.agents)) if self.multi_agent else (self.num_envs,)
        want = lead + tuple(sp.shape or ())
        low = high = None
        size = int(np.prod(want))
        start = stop = 0
        if isinstance(sp, spaces.Box):
            low, high = sp.low.astype(sp.dtype), sp.high.astype(sp.dtype)
        elif isinstance(sp, spaces.Discrete):
            start, stop = int(sp.start), int(sp.start) + int(sp.n)  # Python ints: exact comparisons
        self._act_check = (sp, want, low, high, size, start, stop)
        return self._act_check

    def check_actions(self, actions) -> np.ndarray:
        """Validate a batch of actions of shape exactly (B, *action_shape) (multi-agent (B, n, ...)).

        Box: real numbers (float, int or bool arrays); values beyond the bounds, however large, are
        clipped to them; NaN/inf raise. Discrete: integers (or integral floats) in range. Anything
        else (strings, complex, objects, another shape) raises `InvalidActionError`.
        """
        sp, want, low, high, size, start, stop = getattr(self, "_act_check", None) or self._action_check_setup()
        try:
            a = np.asarray(actions)
        except (ValueError, TypeError, OverflowError) as e:  # ragged nested lists and the like
            raise InvalidActionError(f"action {_preview(actions)} is not an array of numbers ({e}); "
                                     f"pass an array of shape {want}") from None
        if low is not None:  # Box: the hot path, kept to a handful of numpy calls
            if a.dtype is not sp.dtype:  # (an equal dtype that is another object takes the exact slow path)
                return self._box_other_dtype(a, want)
            if a.shape != want:
                raise self._shape_error(a, want)
            # finiteness before any arithmetic (inf·0 in a dot product would warn "invalid value"
            # before the error): isfinite raises no floating-point flag, count_nonzero is no reduction
            if np.count_nonzero(np.isfinite(a)) != size:
                raise self._nan_error()
            return np.minimum(np.maximum(a, low), high)  # not clip: it keeps -0.0 at a 0 bound, this gives +0.0
        if isinstance(sp, spaces.Discrete):
            kind = a.dtype.kind
            if kind not in "fiub":
                raise InvalidActionError(f"discrete actions must be integers in [{start}, {stop - 1}], got "
                                         f"dtype {a.dtype} ({_preview(a)})")
            if a.shape != want:
                raise self._shape_error(a, want)
            if kind == "f":
                if not np.isfinite(a).all():
                    raise InvalidActionError("discrete action contains NaN or inf; pass integers "
                                             f"in [{start}, {stop - 1}]")
                if (a != np.round(a)).any():
                    raise InvalidActionError(f"discrete action {a[a != np.round(a)][:3]} is not an integer")
            if a.size:
                lo, hi = a.min(), a.max()
                if lo < start or hi >= stop:  # compared before any cast: uint64 / huge floats keep their value
                    raise InvalidActionError(f"discrete action out of range: got {int(lo)}..{int(hi)}, "
                                             f"expected integers in [{start}, {stop - 1}]")
            return a.astype(np.int64, copy=False)
        raise InvalidActionError(f"unsupported action space {sp}")

    def _shape_error(self, a: np.ndarray, want: tuple[int, ...]) -> InvalidActionError:
        return InvalidActionError(
            f"action batch has shape {a.shape}, expected {want} = (num_envs"
            f"{', agents' if self.multi_agent else ''}, *action_space.shape) with action_space.shape = "
            f"{self.action_space.shape}; actions are never reshaped")

    def _box_other_dtype(self, a: np.ndarray, want: tuple[int, ...]) -> np.ndarray:
        """Box actions of another dtype (float64 lists, ints, bools): checked and clipped in float64,
        then cast, so a finite value beyond the float32 range (1e39) is clipped like any other
        out-of-bounds value; for every finite input this equals casting first, then clipping."""
        sp = self.action_space
        if a.dtype.kind not in "fiub":
            raise InvalidActionError(f"actions must be real numbers, got dtype {a.dtype} "
                                     f"({_preview(a)}); pass {sp.dtype} values")
        if a.shape != want:
            raise self._shape_error(a, want)
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise self._nan_error()
        return np.minimum(np.maximum(a, sp.low.astype(np.float64)), sp.high.astype(np.float64)).astype(sp.dtype)

    def _nan_error(self) -> InvalidActionError:
        sp = self.action_space
        return InvalidActionError("action contains NaN or inf; pass finite values (out-of-bounds values are "
                                  f"clipped to [{sp.low.min()}, {sp.high.max()}])")

    def single_step(self):
        """A family's scalar fast path for one market (B = 1), or None: a function of one action of
        exactly the Box's dtype and shape returning that market's (obs, reward, terminated, truncated,
        info), equal bit for bit to `step` on the batch of one. `MarketEnv` uses it; at B = 1 a step is
        numpy's per-call overhead, and (B,) arrays of one scalar cost a call each."""
        return None

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


class StockFeatures:
    """The stock augmentation of risk-sensitive RL (Bäuerle & Ott 2011; distributional DP with stock
    augmentation, 2025): two bounded features appended to a single-agent observation,

        stock     tanh(c_t / scale),  c_t = Σ_{k<t} r_k   the undiscounted reward so far this episode
        time left (max_steps − t) / max_steps

    Objectives of the whole episode's return (CVaR, mean–CVaR) are not Markov in the market state
    alone; with (c_t, time left) they are (`baselines/sqriql.py`). tanh keeps the feature in (−1, 1)
    and is inverted exactly by c = scale · atanh(feature) until |c| nears 9 × scale. Rewards,
    dynamics and markets are unchanged (`ogdata.envs.registry.OBSERVATION_KWARGS`).
    """

    def __init__(self, core: VectorMarket, scale: float):
        try:
            self.scale = float(scale)
        except (TypeError, ValueError):
            raise EnvError(f"stock_scale must be a positive number, got {_preview(scale)}") from None
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise EnvError(f"stock_scale must be a positive finite number, got {_preview(scale)}")
        sp = core.observation_space
        if not isinstance(sp, spaces.Box) or len(sp.shape) != 1:
            raise EnvError(f"augment_stock needs a flat Box observation space, got {sp}")
        core.observation_space = spaces.Box(np.concatenate([sp.low, [-1.0, 0.0]]).astype(np.float32),
                                            np.concatenate([sp.high, [1.0, 1.0]]).astype(np.float32),
                                            dtype=np.float32)
        self.horizon = float(core.max_steps)
        self.acc = np.zeros(core.num_envs)

    def _append(self, core: VectorMarket, obs: np.ndarray) -> np.ndarray:
        left = np.clip((self.horizon - core._t) / self.horizon, 0.0, 1.0)
        feats = np.stack([np.tanh(self.acc / self.scale), left], axis=1).astype(np.float32)
        return np.concatenate([np.asarray(obs, dtype=np.float32), feats], axis=1)

    def reset(self, core: VectorMarket, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        self.acc = np.where(mask, 0.0, self.acc)
        return self._append(core, obs)

    def step(self, core: VectorMarket, obs: np.ndarray, rew: np.ndarray) -> np.ndarray:
        self.acc = self.acc + np.asarray(rew, dtype=np.float64)
        return self._append(core, obs)


def stock_from_features(feature, scale: float):
    """The reward so far c_t from the stock feature tanh(c_t / scale) (inverse of `StockFeatures`)."""
    f = np.clip(np.asarray(feature, dtype=np.float64), -1.0 + 1e-7, 1.0 - 1e-7)
    return scale * np.arctanh(f)


def _preview(x: Any) -> str:
    """A short repr of a bad action for an error message."""
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


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
        sp = core.action_space
        self._fast = core.single_step()  # taken for actions of exactly the Box's dtype and shape
        self._fast_dtype, self._fast_shape = getattr(sp, "dtype", None), getattr(sp, "shape", None)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.core.rng = np.random.default_rng(seed)
        obs, info = self.core.reset()
        return obs[0], _row(info)

    def step(self, action):
        if (self._fast is not None and type(action) is np.ndarray and action.dtype is self._fast_dtype
                and action.shape == self._fast_shape):
            return self._fast(action)
        try:
            batch = np.asarray(action)[None]
        except (ValueError, TypeError, OverflowError) as e:
            raise InvalidActionError(f"action {_preview(action)} is not an array of numbers ({e}); pass "
                                     f"one action of shape {self.action_space.shape}") from None
        obs, rew, term, trunc, info = self.core.step(batch)
        # .item() gives the Python float/bool straight from a size-1 array; the observation is a view
        # of the fresh (1, obs) array the core returned, not a copy
        return obs[0], rew.item(), term.item(), trunc.item(), _row(info)


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
        self._live = frozenset(self.possible_agents)

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
        """Per-agent info dicts of market 0: a value with an agent axis (B, n, ...) is split by agent (a
        (B, n) value into Python scalars, one `tolist` a key), the rest (B, ...) is shared. One row per
        key and one dict copy per agent (the face's cost: `python scripts/bench_multiagent.py --faces`)."""
        n = len(self.possible_agents)
        shared, split = {}, []
        for k, v in info.items():
            row = v[0]
            nd = getattr(v, "ndim", 0)
            if nd >= 2 and v.shape[1] == n:
                split.append((k, row.tolist() if nd == 2 else row))
            else:
                shared[k] = row
        out = {}
        for i, a in enumerate(self.possible_agents):
            d = shared.copy()
            for k, row in split:
                d[k] = row[i]
            out[a] = d
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, info = self.core.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._live = frozenset(self.agents)
        return dict(zip(self.possible_agents, obs[0], strict=True)), self._infos(info)

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise EnvError("step() called on a finished episode; call reset() first")
        if not isinstance(actions, Mapping):
            raise InvalidActionError(f"step() takes a dict {{agent: action}} of the live agents {self.agents}, "
                                     f"got {type(actions).__name__}")
        if actions.keys() != self._live:  # (a dict's keys view compares to a set without a copy)
            keys = set(actions)
            missing, extra = set(self.agents) - keys, keys - set(self.agents)
            if missing or extra:
                raise InvalidActionError(
                    f"action dict must have exactly one entry per live agent {self.agents}; "
                    f"missing {sorted(missing)}, unexpected {sorted(extra)}")
        ids = self.possible_agents
        try:
            batch = np.array([actions[a] for a in ids])[None]       # (np.stack costs 3x more at B=1)
        except (ValueError, TypeError, OverflowError) as e:
            raise InvalidActionError(f"the agents' actions do not form one array ({e}); pass one action of "
                                     f"shape {self.core.action_space.shape} per agent") from None
        obs, rew, term, trunc, info = self.core.step(batch)
        te_l, tr_l = term[0].tolist(), trunc[0].tolist()
        o = dict(zip(ids, list(obs[0]), strict=True))
        r = dict(zip(ids, rew[0].tolist(), strict=True))
        te = dict(zip(ids, te_l, strict=True))
        tr = dict(zip(ids, tr_l, strict=True))
        if any(te_l) or any(tr_l):
            self.agents = [a for a, x, y in zip(ids, te_l, tr_l, strict=True) if not (x or y)]
            self._live = frozenset(self.agents)
        return o, r, te, tr, self._infos(info)

    def state(self) -> np.ndarray:
        return self.core.state()[0]

    def render(self):
        return None

    def close(self):
        pass
