"""create_dataset: users' own arrays -> the native format, validated first; returns the folder's Path.

Every array must hold numbers (bool, integer or float) that match the space it is recorded
under: rows of the space's shape, values castable to its dtype without leaving its kind (and,
for Discrete, inside its range). Inferred spaces describe the data as it is stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError
from ogdata.storage.writer import ColumnStore, StagedDirectory, base_metadata, check_finite, finish

MAX_INFERRED_DISCRETE = 1 << 20   # integer actions above this are not taken for category indices


def as_array(name: str, x: Any, ndim_min: int = 1) -> np.ndarray:
    """`x` as a numeric numpy array (bool, int or float), or a DataValidationError saying what is wrong."""
    if x is None:
        raise DataValidationError(f"{name} is None; pass an array")
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise DataValidationError(f"{name} cannot be made into an array ({str(e)[:160]}); pass a rectangular "
                                  "numeric array (every row the same shape)") from None
    if a.dtype.kind not in "biuf":
        raise DataValidationError(f"{name} has dtype {a.dtype} ({_KIND.get(a.dtype.kind, 'not numeric')}); "
                                  "ogdata stores numbers only (bool, integers, floats) — convert it first, "
                                  f"e.g. np.asarray({name}, dtype=np.float32)")
    if a.ndim < ndim_min:
        raise DataValidationError(f"{name} has shape {a.shape}; it needs at least {ndim_min} axis "
                                  "(one row per step)")
    return a


_KIND = {"O": "Python objects", "U": "strings", "S": "bytes", "c": "complex numbers", "M": "datetimes",
         "m": "timedeltas", "V": "raw records"}


def check_row_width(name: str, a: np.ndarray, lead: int) -> None:
    if any(d == 0 for d in a.shape[lead:]):
        raise DataValidationError(f"{name} rows have shape {a.shape[lead:]}: zero-width rows hold no data; "
                                  "drop the empty axis or add the missing features")


def infer_space(a: np.ndarray, per_row_axes: int = 1, what: str = "actions") -> spaces.Space:
    """A space describing the rows of `a` as stored: Discrete for 1-D integer actions, else a Box of
    the array's dtype (floats unbounded, integers and bools over their dtype's range)."""
    shape = a.shape[per_row_axes:]
    if what == "actions" and a.dtype.kind in "iub" and shape == ():
        lo = int(a.min()) if a.size else 0
        hi = int(a.max()) if a.size else 0
        if lo < 0:
            raise DataValidationError(f"integer actions must be >= 0 to form a Discrete space, got min {lo}; "
                                      "pass action_space= explicitly")
        if hi >= MAX_INFERRED_DISCRETE:
            raise DataValidationError(f"integer actions go up to {hi}, which would make Discrete({hi + 1}); "
                                      f"inferred Discrete spaces stop at {MAX_INFERRED_DISCRETE} actions — pass "
                                      "action_space= explicitly, or float actions if they are not category indices")
        return spaces.Discrete(hi + 1)
    if a.dtype.kind == "f":
        return spaces.Box(-np.inf, np.inf, shape=shape, dtype=a.dtype)
    if a.dtype.kind == "b":
        return spaces.Box(0, 1, shape=shape, dtype=np.bool_)
    info = np.iinfo(a.dtype)
    return spaces.Box(info.min, info.max, shape=shape, dtype=a.dtype)


def conform(name: str, a: np.ndarray, space: spaces.Space, lead: int) -> np.ndarray:
    """`a` cast to the dtype `space` records, after checking its rows have the space's shape and its
    values fit (a Discrete range, a float dtype's finite range)."""
    row = a.shape[lead:]
    if isinstance(space, spaces.Discrete):
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            raise DataValidationError(f"{name} holds non-integer values ({a.dtype}), but {space} needs integer "
                                      "actions")
        if row != ():
            raise DataValidationError(f"{name} rows have shape {row}, but {space} needs one integer per step")
        if a.size:
            lo, hi = a.min(), a.max()
            start, n = int(space.start), int(space.n)
            if not (start <= lo and hi < start + n):
                raise DataValidationError(f"{name} range from {_num(lo)} to {_num(hi)}, outside {space} "
                                          f"({start}..{start + n - 1}); fix the actions or the space")
        return a.astype(np.int64, copy=False)
    shape = getattr(space, "shape", None)
    if shape is not None and tuple(row) != tuple(shape):
        raise DataValidationError(f"{name} rows have shape {tuple(row)}, but the space they are recorded under "
                                  f"({space}) has shape {tuple(shape)}")
    dtype = getattr(space, "dtype", None)
    if dtype is None or np.dtype(dtype) == a.dtype:
        return a
    dtype = np.dtype(dtype)
    if dtype.kind in "iub" and a.dtype.kind == "f":
        raise DataValidationError(f"{name} holds floats ({a.dtype}) but {space} records {dtype}; pass integer "
                                  "data or a float space")
    if dtype.kind in "iu" and a.size:
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise DataValidationError(f"{name} has values from {_num(a.min())} to {_num(a.max())}, outside "
                                      f"{dtype}; pass a wider dtype in the space")
    with np.errstate(over="ignore"):
        out = a.astype(dtype, copy=False)
    if dtype.kind == "f":
        check_finite(f"{name} (cast to {dtype} as its space records)", out)
    return out


def _num(x) -> str:
    return str(x.item() if hasattr(x, "item") else x)


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
                   agents=None, overwrite: bool = False) -> Path:
    """Write arrays you already have as an ogdata dataset at `path`; returns the folder's Path
    (`ogdata.create_dataset` returns it opened as a Dataset).

    Two layouts are accepted:
    - T+1: observations (N+E, ...) with episode_lengths (E,) — or without them, in which
      case episodes end at every terminated/truncated step and at the last step;
    - flat: observations (N, ...) plus next_observations (N, ...) (the D4RL way); an episode
      also ends wherever next_observations[t] != observations[t+1].
    Multi-agent: pass `agents`, arrays with an agent axis after time, and `states`.
    Arrays are stored in the dtype of the space they are recorded under (given or inferred).
    `overwrite=True` replaces an existing ogdata dataset at `path`, never anything else.
    """
    ma = bool(agents)
    lead = 2 if ma else 1
    obs = as_array("observations", observations, lead)
    act = as_array("actions", actions, lead)
    rew = as_array("rewards", rewards, lead)
    term = as_array("terminations", terminations, lead)
    trunc = as_array("truncations", truncations, lead)
    n = len(act)
    for name, a in (("rewards", rew), ("terminations", term), ("truncations", trunc)):
        if len(a) != n:
            raise DataValidationError(f"{name} has {len(a)} rows but actions has {n}; every per-step array "
                                      "needs one row per transition")
    for name, a in (("terminations", term), ("truncations", trunc)):
        if a.dtype != bool and not np.isin(a, (0, 1)).all():
            raise DataValidationError(f"{name} must be boolean (or 0/1), got values {np.unique(a)[:5]}")
    term, trunc = term.astype(bool), trunc.astype(bool)
    for name, a in (("observations", obs), ("actions", act)):
        check_row_width(name, a, lead)
    if ma:
        k = len(agents)
        for name, a in (("observations", obs), ("actions", act), ("rewards", rew), ("terminations", term),
                        ("truncations", trunc)):
            if a.ndim < 2 or a.shape[1] != k:
                raise DataValidationError(f"{name} has shape {a.shape}; multi-agent arrays need the agent "
                                          f"axis ({k} agents) right after time")
        for name, a in (("rewards", rew), ("terminations", term), ("truncations", trunc)):
            if a.ndim != 2:
                raise DataValidationError(f"{name} has shape {a.shape}; multi-agent datasets need one value per "
                                          f"step and agent, shape (N, {k})")
        if states is None:
            raise DataValidationError("multi-agent datasets need `states` (the global state per observation)")
        done = (term | trunc).all(axis=1)
        if ((term | trunc).any(axis=1) != done).any():
            t = int(np.flatnonzero((term | trunc).any(axis=1) != done)[0])
            raise DataValidationError(f"step {t}: some agents end there and others do not; an episode must end "
                                      "for all agents at the same step")
    else:
        for name, a in (("rewards", rew), ("terminations", term), ("truncations", trunc)):
            if a.ndim != 1:
                raise DataValidationError(f"{name} has shape {a.shape}; a single-agent dataset needs one value "
                                          f"per step, shape ({n},) — for several agents pass agents=[...]")
        done = term | trunc
    for name, a in (("observations", obs), ("actions", act), ("rewards", rew)):
        check_finite(name, a)

    if next_observations is not None:
        nxt = as_array("next_observations", next_observations, lead)
        if nxt.shape != obs.shape or len(obs) != n:
            raise DataValidationError(f"flat layout needs observations and next_observations of equal shape "
                                      f"with one row per transition; got {obs.shape}, {nxt.shape}, {n} actions")
        if nxt.dtype != obs.dtype:
            nxt = nxt.astype(np.result_type(obs, nxt))
            obs = obs.astype(nxt.dtype, copy=False)
        check_finite("next_observations", nxt)
        cont = np.ones(n, dtype=bool)
        if n > 1:
            cont[:-1] = (nxt[:-1] == obs[1:]).reshape(n - 1, -1).all(axis=1)
        cont[-1:] = False
        split = (~cont) | done
        if episode_lengths is None:
            episode_lengths = episodes_from_flags(split)
        lengths = _lengths(episode_lengths, n)
        ends = np.cumsum(lengths) - 1

        obs_full = np.empty((n + len(lengths),) + obs.shape[1:], dtype=obs.dtype)
        pos = np.arange(n) + np.repeat(np.arange(len(lengths)), lengths)
        obs_full[pos] = obs
        obs_full[ends + np.arange(len(lengths)) + 1] = nxt[ends]
        obs = obs_full
        if states is not None:
            st = as_array("states", states)
            nst = as_array("next_states", next_states)
            if nst.shape != st.shape or len(st) != n:
                raise DataValidationError(f"flat layout needs states and next_states of equal shape with one "
                                          f"row per transition; got {st.shape}, {nst.shape}, {n} actions")
            st_full = np.empty((n + len(lengths),) + st.shape[1:], dtype=np.result_type(st, nst))
            st_full[pos] = st
            st_full[ends + np.arange(len(lengths)) + 1] = nst[ends]
            states = st_full
    elif episode_lengths is None:
        episode_lengths = episodes_from_flags(done)
    lengths = _lengths(episode_lengths, n)
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
        states = as_array("states", states)
        check_row_width("states", states, 1)
        check_finite("states", states)
        if len(states) != n + e:
            raise DataValidationError(f"states has {len(states)} rows; expected {n + e} (T+1 per episode)")

    obs_space = observation_space or infer_space(obs, lead, "observations")
    act_space = action_space or infer_space(act, lead, "actions")
    if ma and state_space is None:
        state_space = infer_space(states, 1, "states")
    obs = conform("observations", obs, obs_space, lead)
    act = conform("actions", act, act_space, lead)
    if states is not None and state_space is not None:
        states = conform("states", states, state_space, 1)
    rew = rew.astype(np.float32, copy=False)
    check_finite("rewards (as float32)", rew)
    meta = base_metadata(obs_space, act_space, agents=agents, state_space=state_space, extra=metadata)
    stage = StagedDirectory(path, overwrite=overwrite)
    store = None
    try:
        store = ColumnStore(stage.path, stage.target)
        store.append("observations", obs)
        if states is not None:
            store.append("states", states)
        store.append("actions", act)
        store.append("rewards", rew)
        store.append("terminations", term)
        store.append("truncations", trunc)
        store.append("episode_lengths", lengths)
        return finish(stage, store, meta, n, e)
    except BaseException:
        if store is not None:
            store.abort()
        stage.abort()
        raise


def _lengths(episode_lengths: Any, n: int) -> np.ndarray:
    lengths = np.asarray(episode_lengths) if not isinstance(episode_lengths, np.ndarray) else episode_lengths
    if lengths.size == 0:
        lengths = np.zeros(0, dtype=np.int64)
    if lengths.dtype.kind not in "iu" or lengths.ndim != 1 or (lengths < 1).any():
        raise DataValidationError("episode_lengths must be a 1-D array of positive integers, got "
                                  f"{lengths.dtype} of shape {lengths.shape}")
    if lengths.size and int(lengths.max()) > n:
        raise DataValidationError(f"episode_lengths holds an episode of {int(lengths.max())} steps but there are "
                                  f"only {n} transitions")
    lengths = lengths.astype(np.int64)
    if int(lengths.sum()) != n:
        raise DataValidationError(f"episode_lengths sum to {int(lengths.sum())} but there are {n} transitions")
    return lengths
