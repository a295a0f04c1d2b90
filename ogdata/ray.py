"""A dataset as a Ray Data dataset, read in parallel by shard (`ray` is an optional extra, imported on use).

Each read task is a `ShardRead`: the dataset's source spec (where to find it — a folder, a URL
pinned to a commit — never its arrays) and a shard number. The worker reopens the source,
takes `Dataset.shard(index, count)` and reads it in chunks, so a streamed dataset's workers each
fetch only their own shards into their node's chunk cache. `ShardRead` works without Ray
(tests call it directly, and it is the piece to reuse for another engine).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ogdata.dataset import Dataset
from ogdata.errors import InvalidArgumentError, MissingExtraError
from ogdata.storage.reopen import open_source

UNITS = ("transitions", "episodes")
TRANSITION_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "truncations")


@dataclass(frozen=True)
class ShardRead:
    """Read shard `index` of `count` of the dataset `spec` describes, as batches of columns."""

    spec: dict[str, Any]
    index: int
    count: int
    unit: str = "transitions"
    batch_rows: int = 1 << 16

    def dataset(self) -> Dataset:
        return Dataset(open_source(self.spec)).shard(self.index, self.count)

    def __call__(self) -> Iterator[dict[str, np.ndarray]]:
        ds = self.dataset()
        if self.unit == "transitions":
            keys = TRANSITION_KEYS + (("states", "next_states") if "states" in ds.metadata["arrays"] else ())
            yield from ds.iter_chunks(self.batch_rows, keys=keys)
            return
        first = ds.metadata["window"]["episodes"][0]  # episode ids are the whole dataset's, not the shard's
        rows: list = []
        for ep in ds.iter_episodes():
            rows.append(ep)
            if len(rows) * max(1, len(ep)) >= self.batch_rows:
                yield _episode_batch(rows, first)
                rows = []
        if rows:
            yield _episode_batch(rows, first)


def _episode_batch(eps: list, first: int) -> dict[str, np.ndarray]:
    """One row per episode: its id and length, and each array whole (object columns: lengths differ)."""
    out: dict[str, np.ndarray] = {"episode_id": np.array([first + e.id for e in eps], dtype=np.int64),
                                  "length": np.array([len(e) for e in eps], dtype=np.int64)}
    names = ["observations", "actions", "rewards", "terminations", "truncations"]
    if eps[0].states is not None:
        names.append("states")
    for name in names:
        col = np.empty(len(eps), dtype=object)
        for i, e in enumerate(eps):
            col[i] = getattr(e, name)
        out[name] = col
    return out


def read_tasks(ds, unit: str = "transitions", count: int | None = None, batch_rows: int = 1 << 16
               ) -> list[ShardRead]:
    """One `ShardRead` per shard (default: one per 64k transitions, at most one per episode)."""
    if unit not in UNITS:
        raise InvalidArgumentError(f"unit must be one of {list(UNITS)}, got {unit!r}")
    if ds.source is None:
        raise InvalidArgumentError("this dataset lives only in this process's memory (select_episodes, split, "
                                   "filter_episodes), so workers cannot read it; write it with "
                                   "ogdata.create_dataset(path, ...) and pass the dataset opened from there")
    if count is None:
        count = max(1, min(ds.num_episodes, -(-ds.num_transitions // batch_rows)))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidArgumentError(f"count must be a positive number of shards, got {count!r}")
    spec = ds.source.spec()
    return [ShardRead(spec, i, count, unit, batch_rows) for i in range(count)]


def to_ray_dataset(ds, unit: str = "transitions", count: int | None = None, batch_rows: int = 1 << 16):
    """A lazy `ray.data.Dataset` of `ds`: rows are transitions (columns observations, actions, rewards,
    next_observations, terminals, truncations) or whole episodes; one read task per shard.

    count: shards (read tasks); default: Ray's requested parallelism, at most one per episode.
    """
    try:
        import ray.data
        from ray.data.block import BlockAccessor, BlockMetadata
        from ray.data.datasource import Datasource, ReadTask
    except ImportError as e:
        raise MissingExtraError(f"to_ray_dataset needs Ray Data ({e}); pip install 'ogdata[ray]' (or 'ray[data]')") from None
    read_tasks(ds, unit, 1, batch_rows)  # the argument checks, before Ray plans anything
    row_bytes = sum(int(np.prod(d["shape"][1:], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize
                    for k, d in ds.metadata["arrays"].items() if k != "episode_lengths")

    class _Shards(Datasource):
        def estimate_inmemory_data_size(self):
            return ds.num_transitions * row_bytes

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            k = count or max(1, min(parallelism, ds.num_episodes))
            tasks = []
            for r in read_tasks(ds, unit, k, batch_rows):
                part = ds.shard(r.index, k)  # sizes from the driver's copy: no remote reads to plan
                rows = len(part) if unit == "transitions" else part.num_episodes
                meta = BlockMetadata(num_rows=rows, size_bytes=int(len(part) * row_bytes), input_files=None,
                                     exec_stats=None)
                tasks.append(ReadTask(lambda r=r: (BlockAccessor.batch_to_block(b) for b in r()), meta,
                                      per_task_row_limit=per_task_row_limit))
            return tasks

    return ray.data.read_datasource(_Shards())
