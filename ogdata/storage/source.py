"""Shard sources: where a Dataset's arrays come from — a local folder, a remote URL, a window of either.

`Dataset` reads only through this interface, so it knows nothing of folders, fsspec or the Hub:
- `FolderSource`: a dataset folder on disk, read through zarr (whole raw arrays and ranges of them —
  an episode — straight from the shard files), checked on open as `storage.integrity` describes;
  with `mmap=True` its gathers come from memory maps of the raw shards (datasets larger than RAM);
- `FsspecSource` (storage/remote.py): a dataset folder behind any fsspec URL, whole shards fetched
  on demand into the verified, bounded `ChunkCache`;
- `WindowSource`: a contiguous range of episodes of another source (`Dataset.shard`).
Every source has a `spec()`: a small JSON dict from which `storage.reopen.open_source` opens the
same source in another process (a Ray worker), so data never travels by pickle, only where to find it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ogdata.errors import (
    DatasetNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    MetadataError,
    OgdataError,
)
from ogdata.storage.format import DATA_DIR, DIGEST_KEY, OBS_KEYS, STEP_KEYS, read_metadata
from ogdata.storage.integrity import check_open, name_bad_file
from ogdata.storage.integrity import verify as verify_dataset
from ogdata.storage.shards import map_array, read_array, read_rows, shard_file

MAPPABLE = {np.dtype(t).name for t in "?bhilqBHILQefd"}   # dtypes a raw shard may be read or mapped as
SMALL_BYTES = 1 << 26  # compressed arrays up to this size (flags: 1 byte a step) are decoded whole for slicing


def _count(v, least: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _sharded(desc) -> bool:
    """Whether an (untrusted) array description states ogdata's raw sharded layout: no compressor, whole
    chunks per shard."""
    return (isinstance(desc, dict) and desc.get("compressor") is None and _count(desc.get("chunk_rows"))
            and _count(desc.get("shard_rows")) and desc["shard_rows"] % desc["chunk_rows"] == 0)


def _shape_ok(desc: dict) -> bool:
    shape = desc.get("shape")
    return isinstance(shape, list) and bool(shape) and all(_count(x, 0) for x in shape)


def _numeric(desc: dict) -> bool:
    return isinstance(desc.get("dtype"), str) and desc["dtype"] in MAPPABLE


class Source(ABC):
    """Rows of a dataset's arrays. `metadata` is validated by whoever built the source."""

    metadata: dict[str, Any]
    where: str          # a path or URL, for messages
    streamed = False    # True: arrays are fetched on demand and never all held in memory
    gathers = False     # True: `sample` should gather through `take` rather than hold the arrays

    @abstractmethod
    def read(self, name: str, sl: slice | None = None) -> np.ndarray:
        """Rows `sl` (all rows for None) of array `name`."""

    def take(self, name: str, idx: np.ndarray) -> np.ndarray:
        """Rows at `idx`, in that order (a streamed source fetches only the shards they fall in)."""
        return self.read(name)[idx]

    def prefetch(self, wanted: list[tuple[str, np.ndarray]]) -> None:
        """A hint that rows `idx` of each named array are about to be taken (a streamed source fetches
        their shards together)."""
        return None   # a source that fetches nothing ahead ignores the hint

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """How to open this same source elsewhere (JSON; no data, no secrets)."""


# -- a folder on disk -----------------------------------------------------------------------------

class FolderSource(Source):
    """A dataset folder: metadata.json checked and every manifest file present at its size on open;
    the full sha256 once per copy (remembered), or now with `verify=True`. `mmap=True`: `take` gathers
    from read-only memory maps of the raw shards — only the pages a batch touches are read — and the
    compressed arrays (flags, episode lengths: the small ones) are read into memory."""

    def __init__(self, path: str | os.PathLike, *, verify: bool = False, metadata: dict[str, Any] | None = None,
                 mmap: bool = False):
        self.path = Path(path)
        self.where = str(self.path)
        self.gathers = self.mmap = bool(mmap)
        self._mapped: dict[str, Any] = {}
        self._small: dict[str, np.ndarray] = {}   # small compressed arrays, decoded once for slicing
        if metadata is not None:
            self.metadata = metadata
        elif verify:
            self.metadata = verify_dataset(self.path)
        else:
            self.metadata = read_metadata(self.path)
            check_open(self.path, self.metadata)
        self._group = None

    def verify_all(self) -> None:
        """Every file against the manifest now (`Dataset(source, verify=True)`)."""
        verify_dataset(self.path)

    def spec(self) -> dict[str, Any]:
        return {"kind": "folder", "path": str(self.path.absolute()), "mmap": self.mmap,
                "metadata_sha256": self.metadata.get(DIGEST_KEY)}

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

    def _raw(self, name: str) -> dict | None:
        """The array's description if it is raw (uncompressed, sharded) and of a numeric dtype — the dtype is
        untrusted metadata, and bytes read into an object array would be pointers — else None."""
        desc = self.metadata["arrays"].get(name)
        return desc if _sharded(desc) and _shape_ok(desc) and _numeric(desc) else None

    def take(self, name: str, idx: np.ndarray) -> np.ndarray:
        if not self.mmap:
            return self.read(name)[idx]
        if name not in self._mapped:
            desc, m = self._raw(name), None
            if desc is not None and desc["shape"][0]:
                m = map_array(self.path / DATA_DIR / name, tuple(desc["shape"]), np.dtype(desc["dtype"]),
                              desc["chunk_rows"], desc["shard_rows"])
            self._mapped[name] = m if m is not None else self.read(name)
        return self._mapped[name][np.asarray(idx)]

    def read(self, name: str, sl: slice | None = None) -> np.ndarray:
        desc = self._raw(name)
        if sl is not None and sl.step in (None, 1) and desc is not None:
            # a range of a raw array (an episode): straight from the shard files it lies in
            shape = tuple(desc["shape"])
            a, b, _ = sl.indices(shape[0])
            fast = read_rows(self.path / DATA_DIR / name, shape, np.dtype(desc["dtype"]), desc["chunk_rows"],
                             desc["shard_rows"], a, b)
            if fast is not None:
                return fast
        if sl is not None and name in self._small:
            return self._small[name][sl].copy()   # a copy: the caller may write to it
        desc = self.metadata["arrays"].get(name)
        if (sl is not None and isinstance(desc, dict) and desc.get("compressor") is not None and _numeric(desc)
                and _shape_ok(desc)
                and int(np.prod(desc["shape"], dtype=np.int64)) * np.dtype(desc["dtype"]).itemsize <= SMALL_BYTES):
            # a compressed array is decoded whole once: zarr's per-slice decode costs ms per episode
            self._small[name] = self.read(name)
            return self._small[name][sl].copy()
        group = self._zarr()
        try:
            arr = group[name]
        except KeyError:
            raise MetadataError(f"{self.path}: array {name!r} is missing from the store; the dataset is "
                                "incomplete — re-download or regenerate it") from None
        except Exception as e:  # noqa: BLE001 - a corrupted zarr.json
            raise name_bad_file(self.path, self.metadata["manifest"], [f"{DATA_DIR}/{name}/zarr.json"],
                                f"array {name!r}", e) from e
        if desc and list(arr.shape) != list(desc["shape"]):
            raise MetadataError(f"{self.path}: array {name!r} has shape {list(arr.shape)} but metadata says "
                                f"{desc['shape']}; the dataset is inconsistent — re-download it")
        if sl is None and _sharded(desc):
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
        manifest = self.metadata["manifest"]
        for s in range(a // rows, (b - 1) // rows + 1):
            rel = shard_file(Path(DATA_DIR, name), s, len(shape)).as_posix()
            if rel in manifest and not (self.path / rel).is_file():
                raise IntegrityError(f"{self.path}: file {rel!r} listed in the manifest is missing; re-download "
                                     "or regenerate the dataset")


# -- a window of episodes -------------------------------------------------------------------------

class WindowSource(Source):
    """Episodes e0:e1 of another source, read in place: what `Dataset.shard` hands each worker."""

    def __init__(self, parent: Source, e0: int, e1: int, lengths: np.ndarray | None = None):
        lengths = np.asarray(parent.read("episode_lengths") if lengths is None else lengths, dtype=np.int64)
        if not 0 <= e0 <= e1 <= len(lengths):
            raise InvalidArgumentError(f"episode window {e0}:{e1} is outside the dataset's {len(lengths)} episodes")
        self.parent, self.e0, self.e1 = parent, int(e0), int(e1)
        self.t0 = int(lengths[:e0].sum())
        self.n = int(lengths[e0:e1].sum())
        self.where = f"{parent.where} (episodes {e0}:{e1})"
        self.streamed, self.gathers = parent.streamed, parent.gathers
        meta = {k: v for k, v in parent.metadata.items() if k != DIGEST_KEY}  # a view: not the file's content
        meta["num_transitions"], meta["num_episodes"] = self.n, self.e1 - self.e0
        meta["window"] = {"parent": parent.metadata.get("dataset_id") or parent.where, "episodes": [self.e0, self.e1]}
        self.metadata = meta

    def spec(self) -> dict[str, Any]:
        return {"kind": "window", "parent": self.parent.spec(), "episodes": [self.e0, self.e1]}

    def _offset_rows(self, name: str) -> tuple[int, int]:
        """(first row in the parent, rows) of array `name` inside the window."""
        if name in OBS_KEYS:
            return self.t0 + self.e0, self.n + (self.e1 - self.e0)
        if name in STEP_KEYS:
            return self.t0, self.n
        if name == "episode_lengths":
            return self.e0, self.e1 - self.e0
        raise MetadataError(f"{self.where}: array {name!r} is neither per step nor per episode, so a window of "
                            "episodes cannot cut it; read the whole dataset")

    def read(self, name: str, sl: slice | None = None) -> np.ndarray:
        off, n = self._offset_rows(name)
        a, b, _ = (sl or slice(None)).indices(n)
        return self.parent.read(name, slice(off + a, off + max(a, b)))

    def take(self, name: str, idx: np.ndarray) -> np.ndarray:
        off, _ = self._offset_rows(name)
        return self.parent.take(name, np.asarray(idx) + off)

    def prefetch(self, wanted: list[tuple[str, np.ndarray]]) -> None:
        self.parent.prefetch([(name, np.asarray(idx) + self._offset_rows(name)[0]) for name, idx in wanted])
