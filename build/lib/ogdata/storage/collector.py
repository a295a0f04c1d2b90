"""DatasetWriter: collects steps from B parallel environments into the native format.

Steps arrive step-major from a vectorised core, with episodes of different lengths
interleaved across environments. Every `flush_rows` rows the buffer is reordered in one
`np.lexsort` by (env, step): finished episodes go to disk contiguously, each with its
final observation; unfinished tails wait for the next flush.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError
from ogdata.storage.writer import ColumnStore, StagedDirectory, base_metadata, check_finite, finish


def _dtype_of(space: spaces.Space):
    if isinstance(space, spaces.Discrete):
        return np.int64
    return space.dtype


class DatasetWriter:
    """Append steps of B parallel environments; `close()` commits the dataset atomically.

    add(obs, actions, rewards, terminations, truncations, next_obs[, states, next_states]):
    single-agent arrays are (B, ...); multi-agent ones (B, n_agents, ...), with states (B, ...).
    `obs` at a step must equal `next_obs` of the previous step for every environment that
    did not end (checked: a missed reset would silently corrupt episodes otherwise).
    """

    def __init__(self, path: str | os.PathLike, observation_space: spaces.Space, action_space: spaces.Space,
                 num_envs: int, metadata: dict[str, Any] | None = None, agents=None,
                 state_space: spaces.Space | None = None, overwrite: bool = False,
                 flush_rows: int = 1 << 16, check_continuity: bool = True):
        self.B = int(num_envs)
        self.agents = list(agents) if agents else []
        self.multi_agent = bool(self.agents)
        if self.multi_agent and state_space is None:
            raise DataValidationError("multi-agent datasets need state_space (the global state)")
        self.obs_space, self.act_space, self.state_space = observation_space, action_space, state_space
        self.meta = base_metadata(observation_space, action_space, agents=self.agents,
                                  state_space=state_space, extra=metadata)
        self.stage = StagedDirectory(path, overwrite=overwrite)
        self.store = ColumnStore(self.stage.path)
        self.flush_rows = max(int(flush_rows), self.B)
        self.check_continuity = check_continuity
        self._steps: list[dict[str, np.ndarray]] = []
        self._finals: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._pending: dict[str, np.ndarray] | None = None
        self._step = 0
        self._last_next: np.ndarray | None = None
        self._last_done = np.ones(self.B, dtype=bool)
        self._last_next_state: np.ndarray | None = None
        self.n = 0
        self.e = 0
        self._closed = False

    # ---------------------------------------------------------------------------------
    def add(self, obs, actions, rewards, terminations, truncations, next_obs, states=None, next_states=None):
        B = self.B
        lead = (B, len(self.agents)) if self.multi_agent else (B,)
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        actions = np.asarray(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        term = np.asarray(terminations, dtype=bool)
        trunc = np.asarray(truncations, dtype=bool)
        for name, a in (("obs", obs), ("next_obs", next_obs), ("actions", actions), ("rewards", rewards),
                        ("terminations", term), ("truncations", trunc)):
            if a.shape[: len(lead)] != lead:
                raise DataValidationError(f"{name} has shape {a.shape}; expected leading axes {lead} "
                                          f"(num_envs{', n_agents' if self.multi_agent else ''})")
        for name, a in (("obs", obs), ("next_obs", next_obs), ("actions", actions), ("rewards", rewards)):
            check_finite(name, a)
        if self.multi_agent:
            if states is None or next_states is None:
                raise DataValidationError("multi-agent steps need states and next_states (the global state)")
            states, next_states = np.asarray(states), np.asarray(next_states)
            done_any, done_all = (term | trunc).any(axis=1), (term | trunc).all(axis=1)
            if (done_any != done_all).any():
                raise DataValidationError("an episode must end for all agents at the same step; some agents "
                                          "ended while others did not")
            done = done_all
        else:
            done = term | trunc
        if self.check_continuity and self._last_next is not None:
            live = ~self._last_done
            if live.any() and not np.array_equal(obs[live], self._last_next[live]):
                b = int(np.flatnonzero(live & ~np.all(
                    (obs == self._last_next).reshape(B, -1), axis=1))[0])
                raise DataValidationError(
                    f"env {b}: obs at step {self._step} differs from next_obs of its previous step although "
                    "that episode did not end; pass the reset observation only after a step flagged "
                    "terminated/truncated")
        row = {"obs": obs.astype(_dtype_of(self.obs_space), copy=False),
               "actions": actions.astype(_dtype_of(self.act_space), copy=False),
               "rewards": rewards, "terminations": term, "truncations": trunc, "done": done}
        if self.multi_agent:
            row["states"] = states
        self._steps.append(row)
        if done.any():
            idx = np.flatnonzero(done)
            self._finals.append((idx, np.full(len(idx), self._step), next_obs[idx],
                                 next_states[idx] if self.multi_agent else None))
        self._last_next, self._last_done = next_obs, done
        self._last_next_state = next_states if self.multi_agent else None
        self._step += 1
        if len(self._steps) * B >= self.flush_rows:
            self._flush()

    # ---------------------------------------------------------------------------------
    def _flush(self, final: bool = False) -> None:
        if not self._steps and not (final and self._pending is not None):
            return
        K, B = len(self._steps), self.B
        cols: dict[str, np.ndarray] = {}
        if K:
            for k in self._steps[0]:
                stacked = np.stack([s[k] for s in self._steps])
                cols[k] = stacked.reshape((K * B,) + stacked.shape[2:])
            cols["env"] = np.tile(np.arange(B), K)
            cols["step"] = np.repeat(np.arange(self._step - K, self._step), B)
        self._steps = []
        if self._pending is not None:
            cols = {k: np.concatenate([self._pending[k], cols[k]]) if k in cols else self._pending[k]
                    for k in self._pending}
            self._pending = None
        if final:  # unfinished episodes end here, flagged as truncated by the end of collection
            last = np.full(B, -1)
            np.maximum.at(last, cols["env"], cols["step"])
            cut = (cols["step"] == last[cols["env"]]) & ~cols["done"]
            if cut.any():
                cols["done"] = cols["done"] | cut
                tr = cols["truncations"]
                cols["truncations"] = (tr | (cut[:, None] if tr.ndim > 1 else cut))
                idx = cols["env"][cut]
                self._finals.append((idx, cols["step"][cut], self._last_next[idx],
                                     self._last_next_state[idx] if self.multi_agent else None))
        done = cols["done"]
        last_done = np.full(B, -1)
        np.maximum.at(last_done, cols["env"][done], cols["step"][done])
        complete = cols["step"] <= last_done[cols["env"]]
        if not complete.all():
            self._pending = {k: v[~complete] for k, v in cols.items()}
        sel = np.flatnonzero(complete)
        if not len(sel):
            return
        order = sel[np.lexsort((cols["step"][sel], cols["env"][sel]))]
        out = {k: v[order] for k, v in cols.items()}
        f_env = np.concatenate([f[0] for f in self._finals])
        f_step = np.concatenate([f[1] for f in self._finals])
        f_ord = np.lexsort((f_step, f_env))
        finals_obs = np.concatenate([f[2] for f in self._finals])[f_ord]
        finals_state = np.concatenate([f[3] for f in self._finals])[f_ord] if self.multi_agent else None
        self._finals = []
        d = out["done"]
        n_rows, n_eps = len(d), int(d.sum())
        ends_before = np.cumsum(d) - d
        pos = np.arange(n_rows) + ends_before
        fpos = pos[d] + 1
        self._put_obs("observations", out["obs"], finals_obs.astype(out["obs"].dtype, copy=False), pos, fpos)
        if self.multi_agent:
            self._put_obs("states", out["states"], finals_state.astype(out["states"].dtype, copy=False),
                          pos, fpos)
        for k in ("actions", "rewards", "terminations", "truncations"):
            self.store.append(k, out[k])
        ends = np.flatnonzero(d)
        self.store.append("episode_lengths", np.diff(ends, prepend=-1).astype(np.int64))
        self.n += n_rows
        self.e += n_eps

    def _put_obs(self, name, rows, finals, pos, fpos):
        buf = np.empty((len(rows) + len(finals),) + rows.shape[1:], dtype=rows.dtype)
        buf[pos] = rows
        buf[fpos] = finals
        self.store.append(name, buf)

    # ---------------------------------------------------------------------------------
    def close(self, incomplete: str = "truncate"):
        """Commit. Unfinished episodes are kept and flagged truncated (`incomplete="truncate"`)
        or left out (`"drop"`). Returns the loaded Dataset."""
        from ogdata.dataset import Dataset

        if self._closed:
            raise DataValidationError("this DatasetWriter is already closed")
        if incomplete not in ("truncate", "drop"):
            raise DataValidationError(f"incomplete must be 'truncate' or 'drop', got {incomplete!r}")
        try:
            if incomplete == "drop":
                self._flush()
                self._pending = None
            else:
                self._flush(final=True)
            self._ensure_empty_arrays()
            path = finish(self.stage, self.store, self.meta, self.n, self.e)
        except BaseException:
            self.stage.abort()
            raise
        self._closed = True
        return Dataset(path)

    def _ensure_empty_arrays(self):
        n_lead = (len(self.agents),) if self.multi_agent else ()
        self.store.ensure("observations", n_lead + self.obs_space.shape, _dtype_of(self.obs_space))
        self.store.ensure("actions", n_lead + self.act_space.shape, _dtype_of(self.act_space))
        self.store.ensure("rewards", n_lead, np.float32)
        self.store.ensure("terminations", n_lead, bool)
        self.store.ensure("truncations", n_lead, bool)
        self.store.ensure("episode_lengths", (), np.int64)
        if self.multi_agent:
            self.store.ensure("states", self.state_space.shape, self.state_space.dtype)

    def abort(self) -> None:
        self.stage.abort()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()
        return False

    @property
    def path(self) -> Path:
        return self.stage.target
