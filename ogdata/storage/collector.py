"""DatasetWriter: collects steps from B parallel environments into the native format.

Steps arrive step-major from a vectorised core, with episodes of different lengths
interleaved across environments. Every `flush_rows` rows the buffer is reordered in one
`np.lexsort` by (env, step): finished episodes go to disk contiguously, each with its
final observation; unfinished tails wait for the next flush.

Gymnasium vector envs reset ended sub-environments themselves (`autoreset`):
- "next_step" (Gymnasium 1.x's default, `ogdata.make_vector_env`): the step after a done
  returns the reset observation with reward 0 and ignores the action; the writer skips that
  step for every env that ended on the previous `add`;
- "same_step": the done step returns the reset observation and the final one in
  `infos["final_obs"]`; pass `infos=` to `add` and the writer stores the final one;
- "manual" (default): you reset ended envs yourself and pass the reset observation as the next
  `obs`. An `obs` equal to the previous final observation (what next-step autoreset produces)
  is refused with an error saying what to do.
`DatasetWriter.for_env(path, env)` reads the spaces, num_envs and autoreset mode from a vector env:

    w = ogdata.DatasetWriter.for_env("mine/", env)      # env = ogdata.make_vector_env(id, 16)
    obs, _ = env.reset(seed=0)
    for _ in range(1000):
        a = policy(obs)
        nobs, r, term, trunc, infos = env.step(a)
        w.add(obs, a, r, term, trunc, nobs, infos=infos)
        obs = nobs
    ds = w.close()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError, OgdataError
from ogdata.storage.create import as_array
from ogdata.storage.writer import ColumnStore, StagedDirectory, base_metadata, check_finite, finish

AUTORESET_MODES = ("manual", "next_step", "same_step")


def _dtype_of(space: spaces.Space):
    if isinstance(space, spaces.Discrete):
        return np.int64
    return space.dtype


def autoreset_mode(mode: Any) -> str:
    """'manual', 'next_step' or 'same_step' from ogdata's names or Gymnasium's (str or AutoresetMode)."""
    key = str(getattr(mode, "value", mode)).lower().replace("_", "").replace("-", "").replace(" ", "")
    found = {"manual": "manual", "disabled": "manual", "none": "manual", "nextstep": "next_step",
             "samestep": "same_step"}.get(key)
    if found is None:
        raise DataValidationError(f"autoreset must be one of {AUTORESET_MODES} (or Gymnasium's NextStep/SameStep/"
                                  f"Disabled), got {mode!r}")
    return found


class DatasetWriter:
    """Append steps of B parallel environments; `close()` commits the dataset atomically.

    add(obs, actions, rewards, terminations, truncations, next_obs[, states, next_states, infos]):
    single-agent arrays are (B, ...); multi-agent ones (B, n_agents, ...), with states (B, ...).
    `obs` at a step must equal `next_obs` of the previous step for every environment that
    did not end (checked: a missed reset would silently corrupt episodes otherwise).
    `autoreset` says how ended environments come back (see the module docstring); use
    `DatasetWriter.for_env(path, vector_env)` to take it from a Gymnasium vector env.
    """

    def __init__(self, path: str | os.PathLike, observation_space: spaces.Space, action_space: spaces.Space,
                 num_envs: int, metadata: dict[str, Any] | None = None, agents=None,
                 state_space: spaces.Space | None = None, overwrite: bool = False,
                 flush_rows: int = 1 << 16, check_continuity: bool = True, autoreset: str = "manual"):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise DataValidationError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.B = int(num_envs)
        self.agents = list(agents) if agents else []
        self.multi_agent = bool(self.agents)
        self.autoreset = autoreset_mode(autoreset)
        if self.multi_agent and state_space is None:
            raise DataValidationError("multi-agent datasets need state_space (the global state)")
        if self.multi_agent and self.autoreset == "same_step":
            raise DataValidationError("autoreset='same_step' is not supported for multi-agent writers (the final "
                                      "global state is not in infos); reset ended envs yourself, or use next_step")
        for name, sp in (("observation_space", observation_space), ("action_space", action_space)):
            if not isinstance(sp, spaces.Space):
                raise DataValidationError(f"{name} must be a gymnasium space, got {type(sp).__name__}")
        self.obs_space, self.act_space, self.state_space = observation_space, action_space, state_space
        self.meta = base_metadata(observation_space, action_space, agents=self.agents,
                                  state_space=state_space, extra=metadata)
        self.stage = StagedDirectory(path, overwrite=overwrite)
        try:
            self.store = ColumnStore(self.stage.path, self.stage.target)
        except BaseException:
            self.stage.abort()
            raise
        self.flush_rows = max(int(flush_rows), self.B)
        self.check_continuity = check_continuity
        self._steps: list[dict[str, np.ndarray]] = []
        self._finals: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._pending: dict[str, np.ndarray] | None = None
        self._step = 0
        self._last_next: np.ndarray | None = None
        self._last_done = np.ones(self.B, dtype=bool)   # no continuity check before the first step
        self._ended = np.zeros(self.B, dtype=bool)      # envs whose episode ended on the previous add
        self._last_next_state: np.ndarray | None = None
        self.n = 0
        self.e = 0
        self._closed = False

    @classmethod
    def for_env(cls, path: str | os.PathLike, env, **kwargs):
        """A writer for a Gymnasium vector env: its single-env spaces, num_envs and autoreset mode."""
        if not hasattr(env, "single_observation_space") or not hasattr(env, "num_envs"):
            raise DataValidationError(f"for_env takes a Gymnasium vector env (with single_observation_space and "
                                      f"num_envs), got {type(env).__name__}; for one env use "
                                      "DatasetWriter(path, obs_space, act_space, num_envs=1)")
        mode = (getattr(env, "metadata", None) or {}).get("autoreset_mode", "next_step")  # Gymnasium 1.x default
        kwargs.setdefault("autoreset", mode)
        return cls(path, env.single_observation_space, env.single_action_space, env.num_envs, **kwargs)

    # ---------------------------------------------------------------------------------
    def _check_shape(self, name: str, a: np.ndarray, row: tuple[int, ...] | None) -> None:
        lead = (self.B, len(self.agents)) if self.multi_agent else (self.B,)
        want = lead + tuple(row) if row is not None else None
        if a.shape[: len(lead)] != lead or (want is not None and a.shape != want):
            raise DataValidationError(f"{name} has shape {a.shape}; expected "
                                      f"{want if want is not None else str(lead) + ' + ...'} "
                                      f"(num_envs{', n_agents' if self.multi_agent else ''}"
                                      f"{', *space shape' if row else ''})")

    def add(self, obs, actions, rewards, terminations, truncations, next_obs, states=None, next_states=None,
            infos=None):
        if self._closed:
            raise DataValidationError("this DatasetWriter is closed; create a new one to write more steps")
        B = self.B
        ndim = 2 if self.multi_agent else 1
        obs, next_obs = as_array("obs", obs, ndim), as_array("next_obs", next_obs, ndim)
        actions = as_array("actions", actions, ndim)
        rewards = as_array("rewards", rewards, ndim).astype(np.float32, copy=False)
        term = as_array("terminations", terminations, ndim)
        trunc = as_array("truncations", truncations, ndim)
        obs_row = getattr(self.obs_space, "shape", None)
        self._check_shape("obs", obs, obs_row)
        self._check_shape("next_obs", next_obs, obs_row)
        self._check_shape("actions", actions, getattr(self.act_space, "shape", None))
        for name, a in (("rewards", rewards), ("terminations", term), ("truncations", trunc)):
            self._check_shape(name, a, ())
        for name, a in (("terminations", term), ("truncations", trunc)):
            if a.dtype != bool and not np.isin(a, (0, 1)).all():
                raise DataValidationError(f"{name} must be boolean (or 0/1), got values {np.unique(a)[:5]}")
        term, trunc = term.astype(bool, copy=False), trunc.astype(bool, copy=False)
        for name, a in (("obs", obs), ("next_obs", next_obs), ("actions", actions), ("rewards", rewards)):
            check_finite(name, a)
        if isinstance(self.act_space, spaces.Discrete):
            lo, hi = int(self.act_space.start), int(self.act_space.start + self.act_space.n)
            if actions.dtype.kind not in "iub" or (actions.size and (actions.min() < lo or actions.max() >= hi)):
                raise DataValidationError(f"actions must be integers in {lo}..{hi - 1} for {self.act_space}, got "
                                          f"{actions.dtype} from {actions.min()} to {actions.max()}")
        if self.multi_agent:
            if states is None or next_states is None:
                raise DataValidationError("multi-agent steps need states and next_states (the global state)")
            states, next_states = as_array("states", states), as_array("next_states", next_states)
            for name, a in (("states", states), ("next_states", next_states)):
                if a.shape != (B,) + tuple(self.state_space.shape):
                    raise DataValidationError(f"{name} has shape {a.shape}; expected "
                                              f"{(B,) + tuple(self.state_space.shape)} (num_envs, *state shape)")
                check_finite(name, a)
            done_any, done_all = (term | trunc).any(axis=1), (term | trunc).all(axis=1)
            if (done_any != done_all).any():
                b = int(np.flatnonzero(done_any != done_all)[0])
                raise DataValidationError(f"env {b}: some agents ended at step {self._step} while others did not; "
                                          "an episode must end for all agents at the same step")
            done = done_all
        else:
            done = term | trunc
        skip = None
        if self.autoreset == "next_step":
            skip = self._ended   # Gymnasium's reset step of envs that ended on the previous add: not a transition
            if (done & skip).any():
                b = int(np.flatnonzero(done & skip)[0])
                raise DataValidationError(
                    f"env {b}: the step right after its episode ended is flagged terminated/truncated; with "
                    "autoreset='next_step' that step is the environment's reset step and never ends — is the env "
                    "using same-step autoreset? Pass autoreset='same_step' (and infos=) or use for_env(path, env)")
        elif self.autoreset == "same_step" and done.any():
            next_obs = self._final_obs_from_infos(infos, done, next_obs)
        if self.check_continuity and self._last_next is not None:
            live = ~self._last_done
            if live.any() and not np.array_equal(obs[live], self._last_next[live]):
                b = int(np.flatnonzero(live & ~np.all(
                    (obs == self._last_next).reshape(B, -1), axis=1))[0])
                raise DataValidationError(
                    f"env {b}: obs at step {self._step} differs from next_obs of its previous step although "
                    "that episode did not end; pass the reset observation only after a step flagged "
                    "terminated/truncated")
            if self.autoreset == "manual" and self._ended.any():
                ended = np.flatnonzero(self._ended)
                same = np.all((obs[ended] == self._last_next[ended]).reshape(len(ended), -1), axis=1)
                if same.any():
                    b = int(ended[np.flatnonzero(same)[0]])
                    raise DataValidationError(
                        f"env {b}: obs at step {self._step} is the final observation of the episode that ended at "
                        f"step {self._step - 1}, not a reset observation. This is what a vector env with next-step "
                        "autoreset (Gymnasium's default, ogdata.make_vector_env) returns: create the writer with "
                        "DatasetWriter.for_env(path, env) or autoreset='next_step' so the reset step is skipped. "
                        "If you reset envs yourself, pass the reset observation as obs; if reset observations "
                        "really equal final ones, pass check_continuity=False")
        row = {"obs": obs.astype(_dtype_of(self.obs_space), copy=False),
               "actions": actions.astype(_dtype_of(self.act_space), copy=False),
               "rewards": rewards, "terminations": term, "truncations": trunc, "done": done}
        if self.multi_agent:
            row["states"] = states
        if skip is not None:
            row["keep"] = ~skip
        self._steps.append(row)
        if done.any():
            idx = np.flatnonzero(done)
            self._finals.append((idx, np.full(len(idx), self._step), next_obs[idx],
                                 next_states[idx] if self.multi_agent else None))
        self._last_next, self._last_done, self._ended = next_obs, done, done
        self._last_next_state = next_states if self.multi_agent else None
        self._step += 1
        if len(self._steps) * B >= self.flush_rows:
            try:
                self._flush()
            except OgdataError:
                self.abort()
                raise

    def _final_obs_from_infos(self, infos, done: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """next_obs with the final observations of ended envs taken from same-step autoreset's infos."""
        key = next((k for k in ("final_obs", "final_observation") if isinstance(infos, dict) and k in infos), None)
        if key is None:
            raise DataValidationError(
                "autoreset='same_step': an episode ended but infos has no 'final_obs'; pass the step's infos "
                "(w.add(obs, a, r, term, trunc, next_obs, infos=infos)) so the writer stores each ended episode's "
                "final observation — next_obs holds the reset observation there")
        final = infos[key]
        out = np.array(next_obs, copy=True)
        for b in np.flatnonzero(done):
            fb = final[b]
            if fb is None:
                raise DataValidationError(f"env {b} ended but infos[{key!r}][{b}] is None; pass the infos of "
                                          "the same step")
            out[b] = as_array(f"infos[{key!r}][{b}]", fb, 0)
        check_finite(f"infos[{key!r}]", out)
        return out

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
        keep = cols.get("keep")  # next-step autoreset: False on the reset steps, which are not transitions
        if final:  # unfinished episodes end here, flagged as truncated by the end of collection
            last = np.full(B, -1)
            if keep is None:
                np.maximum.at(last, cols["env"], cols["step"])
            else:
                np.maximum.at(last, cols["env"][keep], cols["step"][keep])
            cut = (cols["step"] == last[cols["env"]]) & ~cols["done"]
            if keep is not None:
                cut &= keep
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
        if keep is not None:
            complete &= keep
            rest = ~complete & keep
        else:
            rest = ~complete
        if rest.any():
            self._pending = {k: v[rest] for k, v in cols.items()}
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
    def close(self, incomplete: str = "truncate") -> Path:
        """Commit. Unfinished episodes are kept and flagged truncated (`incomplete="truncate"`)
        or left out (`"drop"`). Returns the dataset's Path (`ogdata.DatasetWriter` returns the
        opened Dataset)."""
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
            self.abort()
            raise
        self._closed = True
        return path

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
        """Throw the staged steps away; nothing appears at the path."""
        self.store.abort()
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
