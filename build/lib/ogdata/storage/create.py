"""create_dataset: users' own arrays -> the native format, validated first."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError
from ogdata.storage.writer import ColumnStore, StagedDirectory, base_metadata, check_finite, finish


def infer_space(a: np.ndarray, per_row_axes: int = 1) -> spaces.Space:
    """A space describing the rows of `a`: Discrete for 1-D integers, else a Box (actions: data bounds)."""
    shape = a.shape[per_row_axes:]
    if a.dtype.kind in "iu" and shape == ():
        lo = int(a.min()) if a.size else 0
        hi = int(a.max()) if a.size else 0
        if lo < 0:
            raise DataValidationError(f"integer actions must be >= 0 to form a Discrete space, got min {lo}")
        return spaces.Discrete(hi + 1)
    dtype = a.dtype if a.dtype.kind == "f" else np.float32
    return spaces.Box(-np.inf, np.inf, shape=shape, dtype=dtype)


def episodes_from_flags(done: np.ndarray) -> np.ndarray:
    """Episode lengths when episodes end at each flagged step and at the last step."""
    n = len(done)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(done)
    if not len(ends) or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    return np.diff(ends, prepend=-1).astype(np.int64)


def create_dataset(path: str | os.PathLike, *, observations, actions, rewards, terminations, truncations,
                   episode_lengths=None, states=None, next_observations=None, next_states=None,
                   metadata: dict[str, Any] | None = None, observation_space: spaces.Space | None = None,
                   action_space: spaces.Space | None = None, state_space: spaces.Space | None = None,
                   agents=None, overwrite: bool = False):
    """Write arrays you already have as an ogdata dataset at `path` and return it.

    Two layouts are accepted:
    - T+1: observations (N+E, ...) with episode_lengths (E,) — or without them, in which
      case episodes end at every terminated/truncated step and at the last step;
    - flat: observations (N, ...) plus next_observations (N, ...) (the D4RL way); an episode
      also ends wherever next_observations[t] != observations[t+1].
    Multi-agent: pass `agents`, arrays with an agent axis after time, and `states`.
    """
    from ogdata.dataset import Dataset

    obs = np.asarray(observations)
    act = np.asarray(actions)
    rew = np.asarray(rewards)
    term = np.asarray(terminations)
    trunc = np.asarray(truncations)
    ma = bool(agents)
    n = len(act)
    for name, a in (("rewards", rew), ("terminations", term), ("truncations", trunc)):
        if len(a) != n:
            raise DataValidationError(f"{name} has {len(a)} rows but actions has {n}; every per-step array "
                                      "needs one row per transition")
    for name, a in (("terminations", term), ("truncations", trunc)):
        if a.dtype != bool and not np.isin(a, (0, 1)).all():
            raise DataValidationError(f"{name} must be boolean (or 0/1), got values {np.unique(a)[:5]}")
    term, trunc = term.astype(bool), trunc.astype(bool)
    if ma:
        k = len(agents)
        for name, a in (("observations", obs), ("actions", act), ("rewards", rew), ("terminations", term),
                        ("truncations", trunc)):
            if a.ndim < 2 or a.shape[1] != k:
                raise DataValidationError(f"{name} has shape {a.shape}; multi-agent arrays need the agent "
                                          f"axis ({k} agents) right after time")
        if states is None:
            raise DataValidationError("multi-agent datasets need `states` (the global state per observation)")
        done = (term | trunc).all(axis=1)
        if ((term | trunc).any(axis=1) != done).any():
            raise DataValidationError("an episode must end for all agents at the same step")
    else:
        done = term | trunc
    for name, a in (("observations", obs), ("actions", act), ("rewards", rew)):
        check_finite(name, a)

    if next_observations is not None:
        nxt = np.asarray(next_observations)
        if nxt.shape != obs.shape or len(obs) != n:
            raise DataValidationError(f"flat layout needs observations and next_observations of equal shape "
                                      f"with one row per transition; got {obs.shape}, {nxt.shape}, {n} actions")
        check_finite("next_observations", nxt)
        cont = np.ones(n, dtype=bool)
        if n > 1:
            cont[:-1] = (nxt[:-1] == obs[1:]).reshape(n - 1, -1).all(axis=1)
        cont[-1:] = False
        split = (~cont) | done
        if episode_lengths is None:
            episode_lengths = episodes_from_flags(split)
        lengths = np.asarray(episode_lengths, dtype=np.int64)
        ends = np.cumsum(lengths) - 1

        obs_full = np.empty((n + len(lengths),) + obs.shape[1:], dtype=obs.dtype)
        pos = np.arange(n) + np.repeat(np.arange(len(lengths)), lengths)
        obs_full[pos] = obs
        obs_full[ends + np.arange(len(lengths)) + 1] = nxt[ends]
        obs = obs_full
        if states is not None:
            st, nst = np.asarray(states), np.asarray(next_states)
            st_full = np.empty((n + len(lengths),) + st.shape[1:], dtype=st.dtype)
            st_full[pos] = st
            st_full[ends + np.arange(len(lengths)) + 1] = nst[ends]
            states = st_full
    elif episode_lengths is None:
        episode_lengths = episodes_from_flags(done)
    lengths = np.asarray(episode_lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 1).any():
        raise DataValidationError("episode_lengths must be a 1-D array of positive integers")
    if int(lengths.sum()) != n:
        raise DataValidationError(f"episode_lengths sum to {int(lengths.sum())} but there are {n} transitions")
    e = len(lengths)
    if len(obs) != n + e:
        raise DataValidationError(
            f"observations has {len(obs)} rows; with {n} transitions in {e} episodes the T+1 layout needs "
            f"{n + e} (each episode's final observation included), or pass next_observations for the flat layout")
    interior = np.ones(n, dtype=bool)
    interior[np.cumsum(lengths) - 1] = False
    if (done & interior).any():
        t = int(np.flatnonzero(done & interior)[0])
        raise DataValidationError(f"step {t} is flagged terminated/truncated but is not the last step of its "
                                  "episode; fix episode_lengths or the flags")
    if states is not None:
        states = np.asarray(states)
        check_finite("states", states)
        if len(states) != n + e:
            raise DataValidationError(f"states has {len(states)} rows; expected {n + e} (T+1 per episode)")

    lead = 2 if ma else 1
    obs_space = observation_space or infer_space(obs, lead)
    act_space = action_space or infer_space(act, lead)
    if ma and state_space is None:
        state_space = infer_space(states, 1)
    if isinstance(act_space, spaces.Discrete):
        act = act.astype(np.int64)
    meta = base_metadata(obs_space, act_space, agents=agents, state_space=state_space, extra=metadata)
    stage = StagedDirectory(path, overwrite=overwrite)
    try:
        store = ColumnStore(stage.path)
        store.append("observations", obs)
        if states is not None:
            store.append("states", states)
        store.append("actions", act)
        store.append("rewards", rew.astype(np.float32, copy=False))
        store.append("terminations", term)
        store.append("truncations", trunc)
        store.append("episode_lengths", lengths)
        final = finish(stage, store, meta, n, e)
    except BaseException:
        stage.abort()
        raise
    return Dataset(final)
