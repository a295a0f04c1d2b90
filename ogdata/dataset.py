"""The Dataset / Episode API over the native format.

A Dataset reads through a shard source (ogdata/storage/source.py) and knows nothing of where
it is: a folder, a URL streamed through fsspec, a window of episodes of either (`shard`).
Reads are lazy (zarr slices) for iteration; on a folder `sample` and the converters pull the
arrays into memory once (`arrays()`), because random gathers through zarr cost 25-100 ms a
batch and numpy gathers on memory cost microseconds. A streamed dataset never holds the whole
arrays: `sample` gathers from the cached shards its batch touches (memory maps); on a folder
larger than RAM, `Dataset(path, mmap=True)` gathers from memory maps of its raw shards likewise.

Opening checks what `ogdata.storage.integrity` describes: metadata.json against its digest and
every manifest file present at its size on every open; the full sha256 once per copy
(remembered beside the data), or now with `verify=True`. A shard that is missing or fails to
decode while reading is an IntegrityError naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError, InvalidArgumentError, MetadataError
from ogdata.spaces import space_from_json
from ogdata.storage.format import DIGEST_KEY, OBS_KEYS, STEP_KEYS
from ogdata.storage.source import FolderSource, Source, WindowSource

MAX_SAMPLE = 1 << 24   # transitions in one `sample` batch


@dataclass
class Episode:
    """One episode: T+1 observations (and states), T of everything else."""

    id: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    states: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def total_reward(self) -> float:
        r = self.rewards
        return float(r.mean(axis=1).sum() if r.ndim > 1 else r.sum())


class Dataset:
    """An ogdata dataset read through a shard source: a folder on disk, a streamed URL, a window of
    either (`shard`) — or a view held in memory (from `select_episodes`, `filter_episodes`, `split`)."""

    def __init__(self, path: str | os.PathLike | Source, *, verify: bool = False, mmap: bool = False,
                 _arrays: dict | None = None, _metadata: dict | None = None):
        """Open the dataset folder `path` (or read through the `Source` given instead).

        Checks metadata.json and that every manifest file is there at its size; hashes every file
        once per copy (remembered in `.ogdata-verified.json`), or now with verify=True. Raises
        IntegrityError naming a missing, truncated or corrupted file. A streamed source checks
        each shard when it is fetched; verify=True checks every file now. mmap=True (a folder):
        `sample` gathers from memory maps of the raw shards instead of reading every array into memory.
        """
        self.source: Source | None
        if isinstance(path, Source):
            self.source = path
            if verify and hasattr(path, "verify_all"):  # a window is checked through its parent: not here
                path.verify_all()
        elif _arrays is not None:
            self.source = None
        else:
            self.source = FolderSource(path, verify=verify, metadata=_metadata, mmap=mmap)
        if isinstance(path, Source):
            path = getattr(path, "path", None) or path.where
        self.path: Path | str = path if isinstance(path, str) and "://" in path else Path(path)
        self.metadata: dict[str, Any] = _metadata if _metadata is not None else self.source.metadata
        self._arrays: dict[str, np.ndarray] | None = _arrays
        self._lengths: np.ndarray | None = None
        self._ep_of: np.ndarray | None = None
        self._ends: np.ndarray | None = None

    @property
    def streamed(self) -> bool:
        """True when rows are fetched on demand (a URL) rather than read from a folder or memory."""
        return self._arrays is None and self.source is not None and self.source.streamed

    @property
    def _gathers(self) -> bool:
        """True when `sample` gathers through the source (streamed, or memory maps) rather than holding the arrays."""
        return self._arrays is None and self.source is not None and self.source.gathers

    # -- description ------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"Dataset({self.metadata.get('dataset_id') or str(self.path)!r}, transitions={len(self)}, "
                f"episodes={self.num_episodes})")

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def num_transitions(self) -> int:
        return int(self.episode_lengths.sum()) if self._arrays is not None else int(self.metadata["num_transitions"])

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def measures(self) -> dict[str, Any]:
        return self.metadata.get("measures") or {}

    @property
    def multi_agent(self) -> bool:
        return bool(self.metadata.get("multi_agent"))

    @property
    def agents(self) -> list[str]:
        return list(self.metadata.get("agents") or [])

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def dataset_id(self) -> str | None:
        return self.metadata.get("dataset_id")

    @property
    def observation_space(self) -> spaces.Space:
        return space_from_json(self.metadata["observation_space"])

    @property
    def action_space(self) -> spaces.Space:
        return space_from_json(self.metadata["action_space"])

    @property
    def state_space(self) -> spaces.Space | None:
        s = self.metadata.get("state_space")
        return space_from_json(s) if s else None

    # -- storage access ---------------------------------------------------------------
    def _read(self, name: str, sl: slice | None = None) -> np.ndarray:
        if self._arrays is not None:
            a = self._arrays[name]
            return a if sl is None else a[sl]
        return self.source.read(name, sl)

    def _has(self, name: str) -> bool:
        return name in (self._arrays if self._arrays is not None else self.metadata["arrays"])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every stored array, in memory (read once, then cached)."""
        if self._arrays is None:
            names = [n for n in self.metadata["arrays"]]
            self._arrays = {n: self._read(n) for n in names}
            self._check_counts(self._arrays)
        return self._arrays

    def _check_counts(self, arrs: dict[str, np.ndarray]) -> None:
        lengths = arrs["episode_lengths"]
        n, e = int(lengths.sum()), len(lengths)
        for k in STEP_KEYS:
            if k in arrs and len(arrs[k]) != n:
                raise MetadataError(f"{self.path}: {k} has {len(arrs[k])} rows, episodes sum to {n}")
        for k in OBS_KEYS:
            if k in arrs and len(arrs[k]) != n + e:
                raise MetadataError(f"{self.path}: {k} has {len(arrs[k])} rows, expected {n + e} "
                                    "(T+1 per episode)")

    @property
    def episode_lengths(self) -> np.ndarray:
        if self._lengths is None:
            self._lengths = np.asarray(self._read("episode_lengths"), dtype=np.int64)
        return self._lengths

    @property
    def episode_starts(self) -> np.ndarray:
        """Index of each episode's first transition."""
        return np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]]).astype(np.int64)

    def _episode_of(self) -> np.ndarray:
        """Episode index of every transition (int32 when it fits)."""
        if self._ep_of is None:
            dt = np.int32 if self.num_episodes < 2**31 else np.int64
            self._ep_of = np.repeat(np.arange(self.num_episodes, dtype=dt), self.episode_lengths)
        return self._ep_of

    def _episodes_at(self, idx: np.ndarray) -> np.ndarray:
        """Episode index of the transitions `idx`: from the dataset's `_episode_of` array when it is held in
        memory anyway (a folder, a view), else by binary search on the episode ends, so a streamed or
        memory-mapped dataset keeps O(episodes) memory rather than 4 bytes a transition."""
        if not self._gathers:
            return self._episode_of()[idx]
        if self._ends is None:
            self._ends = np.cumsum(self.episode_lengths, dtype=np.int64)
        return np.searchsorted(self._ends, idx, side="right")

    # -- episodes ---------------------------------------------------------------------
    def episode(self, i: int) -> Episode:
        e = self.num_episodes
        if not -e <= i < e:
            raise IndexError(f"episode {i} out of range: the dataset has {e} episodes")
        i %= e
        t0 = int(self.episode_starts[i]) if e else 0
        T = int(self.episode_lengths[i])
        o0 = t0 + i
        return self._make_episode(i, t0, T, o0, lambda n, s: self._read(n, s))

    def _make_episode(self, i, t0, T, o0, read) -> Episode:
        return Episode(
            id=i,
            observations=read("observations", slice(o0, o0 + T + 1)),
            actions=read("actions", slice(t0, t0 + T)),
            rewards=read("rewards", slice(t0, t0 + T)),
            terminations=read("terminations", slice(t0, t0 + T)),
            truncations=read("truncations", slice(t0, t0 + T)),
            states=read("states", slice(o0, o0 + T + 1)) if self._has("states") else None,
        )

    def iter_episodes(self, block_transitions: int = 1 << 18) -> Iterator[Episode]:
        """Episodes in order, streamed in blocks of about `block_transitions` (memory stays bounded)."""
        lengths, starts = self.episode_lengths, self.episode_starts
        e, i = len(lengths), 0
        while i < e:
            j = i + 1
            while j < e and starts[j] + lengths[j] - starts[i] <= block_transitions:
                j += 1
            t0, t1 = int(starts[i]), int(starts[j - 1] + lengths[j - 1])
            o0, o1 = t0 + i, t1 + j
            block = {n: self._read(n, slice(o0, o1)) for n in OBS_KEYS if self._has(n)}
            block.update({n: self._read(n, slice(t0, t1)) for n in STEP_KEYS})
            for k in range(i, j):
                ts = int(starts[k]) - t0
                os_ = ts + (k - i)
                yield self._make_episode(k, ts, int(lengths[k]), os_, lambda n, s, b=block: b[n][s])
            i = j

    def __iter__(self) -> Iterator[Episode]:
        return self.iter_episodes()

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode (multi-agent: per step, the mean over agents)."""
        r = np.asarray(self.arrays()["rewards"] if self._arrays is not None else self._read("rewards"),
                       dtype=np.float64)
        if r.ndim > 1:
            r = r.mean(axis=tuple(range(1, r.ndim)))
        if not len(r):
            return np.zeros(0)
        return np.add.reduceat(r, self.episode_starts) if self.num_episodes else np.zeros(0)

    def agent_episode_returns(self) -> np.ndarray:
        """(episodes, n) undiscounted return of every agent in every episode (multi-agent datasets only;
        their mean over agents is `episode_returns()`)."""
        if not self.multi_agent:
            raise InvalidArgumentError("agent_episode_returns() is for multi-agent datasets; this one is "
                                       "single-agent: use episode_returns()")
        r = np.asarray(self.arrays()["rewards"] if self._arrays is not None else self._read("rewards"),
                       dtype=np.float64)
        r = r.reshape(len(r), -1)
        if not len(r) or not self.num_episodes:
            return np.zeros((0, r.shape[1]))
        return np.add.reduceat(r, self.episode_starts, axis=0)

    # -- transitions ------------------------------------------------------------------
    def iter_chunks(self, chunk_size: int = 1 << 20, keys: Sequence[str] = ("observations", "actions")
                    ) -> Iterator[dict[str, np.ndarray]]:
        """Per-transition arrays in chunks, streamed from disk.

        keys: observations (the obs each action was taken in), next_observations, actions,
        rewards, terminations, truncations, terminals (= terminations), states, next_states.
        """
        known = ("observations", "next_observations", "actions", "rewards", "terminations", "truncations",
                 "terminals", "states", "next_states")
        if isinstance(keys, str) or any(k not in known for k in keys):
            raise InvalidArgumentError(f"iter_chunks keys={keys!r}: pass a sequence of names from {list(known)}")
        if not self._has("states") and any(k in ("states", "next_states") for k in keys):
            raise InvalidArgumentError("this dataset has no global states (a single-agent dataset); "
                                       "drop 'states' / 'next_states' from keys")
        n = self.num_transitions
        for a in range(0, n, chunk_size):
            b = min(n, a + chunk_size)
            rows = np.arange(a, b)
            oi = rows + self._episodes_at(rows)
            out: dict[str, np.ndarray] = {}
            for base, cur, nxt in (("observations", "observations", "next_observations"),
                                   ("states", "states", "next_states")):
                if cur in keys or nxt in keys:
                    lo, hi = int(oi[0]), int(oi[-1]) + 2
                    blk = self._read(base, slice(lo, hi))
                    local = oi - lo
                    if cur in keys:
                        out[cur] = np.take(blk, local, axis=0)
                    if nxt in keys:
                        out[nxt] = np.take(blk, local + 1, axis=0)
            for k in keys:
                if k in STEP_KEYS:
                    out[k] = self._read(k, slice(a, b))
                elif k == "terminals":
                    out[k] = self._read("terminations", slice(a, b))
            yield out

    def sample(self, batch_size: int, rng: int | np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """A batch of transitions drawn uniformly with replacement.

        next_observations is the true next observation at every step, including the last
        step of truncated episodes; `terminals` is the termination flag of that step.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or not (
                1 <= batch_size <= MAX_SAMPLE):
            raise DataValidationError(f"batch_size must be an integer from 1 to {MAX_SAMPLE}, got {batch_size!r}; "
                                      "draw several batches for more")
        if self.num_transitions == 0:
            raise DataValidationError("cannot sample from an empty dataset")
        if rng is not None and not isinstance(rng, np.random.Generator | int | np.integer):
            raise DataValidationError(f"rng must be a seed (int), a numpy Generator or None, got {type(rng).__name__}")
        try:
            rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        except ValueError as e:
            raise DataValidationError(f"rng seed {rng!r} is not usable ({e}); pass a non-negative integer") from None
        idx = rng.integers(0, self.num_transitions, size=int(batch_size))
        oi = idx + self._episodes_at(idx)
        if self._gathers:
            return self._sample_gathered(idx, oi)
        arrs = self.arrays()
        obs = arrs["observations"]
        batch = {
            "observations": obs[oi],
            "actions": arrs["actions"][idx],
            "rewards": arrs["rewards"][idx],
            "next_observations": obs[oi + 1],
            "terminals": arrs["terminations"][idx],
            "truncations": arrs["truncations"][idx],
        }
        if "states" in arrs:
            batch["states"] = arrs["states"][oi]
            batch["next_states"] = arrs["states"][oi + 1]
        return batch

    def _sample_gathered(self, idx: np.ndarray, oi: np.ndarray) -> dict[str, np.ndarray]:
        """The same batch as `sample` on the arrays, gathered from only the shards it touches (one gather
        for observations and next observations)."""
        src = self.source
        both = np.concatenate([oi, oi + 1])
        wanted = [("observations", both), ("actions", idx), ("rewards", idx), ("terminations", idx),
                  ("truncations", idx)] + ([("states", both)] if self._has("states") else [])
        src.prefetch(wanted)
        k = len(idx)
        obs = src.take("observations", both)
        batch = {"observations": obs[:k], "actions": src.take("actions", idx), "rewards": src.take("rewards", idx),
                 "next_observations": obs[k:], "terminals": src.take("terminations", idx),
                 "truncations": src.take("truncations", idx)}
        if self._has("states"):
            st = src.take("states", both)
            batch["states"], batch["next_states"] = st[:k], st[k:]
        return batch

    # -- shards for distributed training ----------------------------------------------
    def shard(self, index: int, count: int) -> Dataset:
        """Part `index` of `count`: a contiguous run of whole episodes, read in place (not copied).

        Every transition is in exactly one part; cuts fall at the episode end nearest each
        multiple of N/count, so a part's size is within one episode length of N/count (parts are
        empty only when there are fewer episodes than parts). Deterministic: every worker computes
        the same cuts, and a streamed part fetches only its own shards.
        """
        for what, v in (("index", index), ("count", count)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise InvalidArgumentError(f"shard {what} must be an integer, got {v!r}")
        if not 0 <= index < count:
            raise InvalidArgumentError(f"shard(index={index}, count={count}): need count >= 1 and 0 <= index < count")
        cuts = shard_cuts(self.episode_lengths, int(count))
        e0, e1 = int(cuts[index]), int(cuts[index + 1])
        if self.source is None:
            view = self.select_episodes(np.arange(e0, e1))
            view.metadata["window"] = {"parent": self.dataset_id or str(self.path), "episodes": [e0, e1]}
            return view
        return Dataset(WindowSource(self.source, e0, e1, lengths=self.episode_lengths))

    # -- views ------------------------------------------------------------------------
    def select_episodes(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """An in-memory dataset of the given episodes (in the given order)."""
        idx = np.asarray(indices, dtype=np.int64)
        arrs = self.arrays()
        lengths = self.episode_lengths[idx]
        starts = self.episode_starts[idx]
        t_idx = _ranges(starts, lengths)
        o_idx = _ranges(starts + idx, lengths + 1)
        out = {k: arrs[k][t_idx] for k in STEP_KEYS}
        out["observations"] = arrs["observations"][o_idx]
        if "states" in arrs:
            out["states"] = arrs["states"][o_idx]
        out["episode_lengths"] = lengths.copy()
        meta = {k: v for k, v in self.metadata.items() if k != DIGEST_KEY}  # a view: not the file's content
        meta["num_transitions"], meta["num_episodes"] = int(lengths.sum()), len(idx)
        meta["parent"] = {"path": str(self.path), "dataset_id": self.dataset_id, "episodes": len(idx)}
        return Dataset(self.path, _arrays=out, _metadata=meta)

    def filter_episodes(self, fn: Callable[[Episode], bool]) -> Dataset:
        """The episodes for which fn(episode) is true, as an in-memory dataset."""
        keep = [ep.id for ep in self.iter_episodes() if fn(ep)]
        return self.select_episodes(keep)

    def split(self, fractions: Sequence[float] = (0.8, 0.2), by: str = "episode",
              rng: int | np.random.Generator | None = 0) -> list[Dataset]:
        """Split into parts with the given fractions of episodes.

        by="episode": episodes shuffled with `rng` then cut; by="time": episodes kept in
        stored (generation) order, so earlier episodes land in earlier parts.
        """
        try:
            fr = np.asarray(fractions, dtype=float)
        except (TypeError, ValueError):
            fr = np.zeros(0)
        if fr.ndim != 1 or not len(fr) or not np.isfinite(fr).all() or (fr <= 0).any() or not np.isclose(fr.sum(), 1.0):
            raise DataValidationError(f"fractions must be positive and sum to 1, got {fractions!r}")
        if by not in ("episode", "time"):
            raise DataValidationError(f"by must be 'episode' or 'time', got {by!r}")
        e = self.num_episodes
        order = np.arange(e)
        if by == "episode":
            rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            order = rng.permutation(e)
        cuts = np.round(np.cumsum(fr)[:-1] * e).astype(int)
        parts = np.split(order, cuts)
        return [self.select_episodes(np.sort(p) if by == "episode" else p) for p in parts]

    # -- conversions ------------------------------------------------------------------
    def to_d3rlpy(self):
        """A d3rlpy MDPDataset with every step kept.

        d3rlpy drops steps after the last terminal/timeout and rejects a step flagged as
        both, so each episode's last step is flagged terminal if it terminated, else
        timeout; action_space and action_size are passed explicitly.
        """
        from ogdata.storage.convert import to_d3rlpy

        return to_d3rlpy(self)

    def to_hdf5(self, path: str | os.PathLike) -> Path:
        """Write a D4RL-keyed HDF5 file (plus ogdata's episode lengths and metadata)."""
        from ogdata.storage.convert import to_hdf5

        return to_hdf5(self, path)

    def recover_env(self, **kwargs):
        """The environment this dataset was generated from (same id and kwargs)."""
        from ogdata.envs import make_env

        if not self.env_id:
            raise MetadataError(f"{self.path}: metadata has no env_id; this dataset was not generated "
                                "by ogdata, so there is no environment to recover")
        return make_env(self.env_id, **{**(self.metadata.get("env_kwargs") or {}), **kwargs})


def shard_cuts(lengths: np.ndarray, count: int) -> np.ndarray:
    """Episode indices 0 = c_0 <= c_1 <= ... <= c_count = E cutting `lengths` into `count` contiguous parts
    of about equal transitions: c_k is the episode end nearest k*N/count (ties: the earlier end)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.concatenate([[0], np.cumsum(lengths)])          # ends[j]: transitions before episode j
    targets = np.arange(count + 1, dtype=np.float64) * (ends[-1] / count)
    hi = np.clip(np.searchsorted(ends, targets, side="left"), 0, len(ends) - 1)
    lo = np.clip(hi - 1, 0, len(ends) - 1)
    cuts = np.where(np.abs(ends[lo] - targets) <= np.abs(ends[hi] - targets), lo, hi)
    cuts[0], cuts[-1] = 0, len(lengths)
    return np.maximum.accumulate(cuts)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate arange(s, s+l) for every (s, l) without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(np.asarray(starts, dtype=np.int64) - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offs
