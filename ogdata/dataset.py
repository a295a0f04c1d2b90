"""The Dataset / Episode API over the native format.

Reads are lazy (zarr slices) for iteration and streaming; `sample` and the converters
pull the arrays into memory once (`arrays()`), because random gathers through zarr cost
25-100 ms a batch and numpy gathers on memory cost microseconds.

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

from ogdata.errors import (
    DatasetNotFoundError,
    DataValidationError,
    IntegrityError,
    InvalidArgumentError,
    MetadataError,
    OgdataError,
)
from ogdata.spaces import space_from_json
from ogdata.storage.format import DATA_DIR, DIGEST_KEY, OBS_KEYS, STEP_KEYS, read_metadata
from ogdata.storage.integrity import check_open, name_bad_file
from ogdata.storage.integrity import verify as verify_dataset

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
    """An ogdata dataset on disk (or a view of one in memory, from `filter_episodes`/`split`)."""

    def __init__(self, path: str | os.PathLike, *, verify: bool = False, _arrays: dict | None = None,
                 _metadata: dict | None = None):
        """Open the dataset folder `path`.

        Checks metadata.json and that every manifest file is there at its size; hashes every file
        once per copy (remembered in `.ogdata-verified.json`), or now with verify=True. Raises
        IntegrityError naming a missing, truncated or corrupted file.
        """
        self.path = Path(path)
        if _metadata is not None:
            self.metadata: dict[str, Any] = _metadata
        elif verify:
            self.metadata = verify_dataset(self.path)
        else:
            self.metadata = read_metadata(self.path)
            check_open(self.path, self.metadata)
        self._arrays: dict[str, np.ndarray] | None = _arrays
        self._group = None
        self._lengths: np.ndarray | None = None
        self._ep_of: np.ndarray | None = None

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
    def _zarr(self):
        if self._group is None:
            import zarr

            root = self.path / DATA_DIR
            if not root.is_dir():
                raise DatasetNotFoundError(f"{self.path}: the data directory is missing; re-download or "
                                           "regenerate the dataset")
            try:
                self._group = zarr.open_group(str(root), mode="r")
            except Exception as e:  # noqa: BLE001 - zarr's errors name no file
                raise name_bad_file(self.path, self.metadata["manifest"], [f"{DATA_DIR}/zarr.json"],
                                    "the zarr store", e) from e
        return self._group

    def _read(self, name: str, sl: slice | None = None) -> np.ndarray:
        if self._arrays is not None:
            a = self._arrays[name]
            return a if sl is None else a[sl]
        group = self._zarr()
        try:
            arr = group[name]
        except KeyError:
            raise MetadataError(f"{self.path}: array {name!r} is missing from the store; the dataset is "
                                "incomplete — re-download or regenerate it") from None
        except Exception as e:  # noqa: BLE001 - a corrupted zarr.json
            raise name_bad_file(self.path, self.metadata["manifest"], [f"{DATA_DIR}/{name}/zarr.json"],
                                f"array {name!r}", e) from e
        desc = self.metadata["arrays"].get(name)
        if desc and list(arr.shape) != list(desc["shape"]):
            raise MetadataError(f"{self.path}: array {name!r} has shape {list(arr.shape)} but metadata says "
                                f"{desc['shape']}; the dataset is inconsistent — re-download it")
        if sl is None and desc and desc.get("compressor") is None and "shard_rows" in desc:
            from ogdata.storage.shards import read_array

            fast = read_array(self.path / DATA_DIR / name, tuple(arr.shape), arr.dtype, desc["chunk_rows"],
                              desc["shard_rows"])
            if fast is not None:
                return fast
        self._check_shards(name, arr.shape, desc, sl)
        try:
            return arr[:] if sl is None else arr[sl]
        except OgdataError:
            raise
        except Exception as e:  # zarr's decode / checksum errors name no file: find it
            prefix = f"{DATA_DIR}/{name}/"
            rels = sorted(r for r in self.metadata["manifest"] if r.startswith(prefix))
            raise name_bad_file(self.path, self.metadata["manifest"], rels, f"array {name!r}", e) from e

    def _check_shards(self, name: str, shape, desc: dict | None, sl: slice | None) -> None:
        """A shard file the read touches that the manifest lists must exist (zarr would read zeros)."""
        rows = (desc or {}).get("shard_rows")
        n = int(shape[0]) if len(shape) else 0
        if not rows or not n:
            return
        a, b, _ = (sl or slice(None)).indices(n)
        if b <= a:
            return
        from ogdata.storage.shards import shard_file

        manifest = self.metadata["manifest"]
        for s in range(a // rows, (b - 1) // rows + 1):
            rel = shard_file(Path(DATA_DIR, name), s, len(shape)).as_posix()
            if rel in manifest and not (self.path / rel).is_file():
                raise IntegrityError(f"{self.path}: file {rel!r} listed in the manifest is missing; re-download "
                                     "or regenerate the dataset")

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
        ep_of = self._episode_of()
        n = self.num_transitions
        for a in range(0, n, chunk_size):
            b = min(n, a + chunk_size)
            oi = np.arange(a, b) + ep_of[a:b]
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
        arrs = self.arrays()
        idx = rng.integers(0, self.num_transitions, size=int(batch_size))
        oi = idx + self._episode_of()[idx]
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


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate arange(s, s+l) for every (s, l) without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(np.asarray(starts, dtype=np.int64) - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offs
