"""A dataset folder behind an fsspec URL, read without downloading it.

Opening reads metadata.json alone (bounded and validated like a local one). Rows are then read
from whole shard files — shards are the integrity unit — fetched on first use into the
`ChunkCache`, each checked against the manifest's sha256 before anything reads it. Only the
shards a read touches are fetched: a `sample` batch fetches the shards its rows fall in (all at
once when they fit the cache, else one at a time), `iter_chunks` walks them in order.

This module knows fsspec, not the Hub: the resolver hands it an `hf://` URL pinned to a commit
with the Hub's options (endpoint, token, streaming reads); `file://`, `memory://`, `s3://` …
work the same way. Failures of the remote mid-read are a StreamError naming the file; the
partial download is removed, shards already cached stay.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ogdata import config
from ogdata.errors import (
    DatasetNotFoundError,
    InvalidArgumentError,
    MetadataError,
    OgdataError,
    StreamCacheWarning,
    StreamError,
)
from ogdata.storage.cache import ChunkCache
from ogdata.storage.format import DATA_DIR, DIGEST_KEY, MAX_METADATA_BYTES, METADATA_FILE, parse_metadata
from ogdata.storage.shards import ShardFile, shard_file
from ogdata.storage.source import Source

READ_BYTES = 4 << 20   # one read from the remote file
FETCH_THREADS = 4      # shards of one batch fetched at once
SECRET_OPTIONS = ("token", "key", "secret", "password", "client_kwargs")  # never put in a spec()


def _fail(where: str, what: str, e: BaseException) -> StreamError:
    text = str(e).strip().splitlines()
    return StreamError(f"reading {what} from {where} failed ({type(e).__name__}: {text[0][:200] if text else ''}); "
                       "nothing half-read was kept (shards already cached stay) — check the connection or the "
                       "URL and retry")


class FsspecSource(Source):
    """A streamed dataset: metadata now, shards on demand through a bounded, verified chunk cache."""

    streamed = True
    gathers = True

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None,
                 open_options: dict[str, Any] | None = None, cache_dir: str | None = None,
                 cache_bytes: int | None = None, metadata: dict[str, Any] | None = None):
        import fsspec

        self.url = url.rstrip("/")
        self.where = self.url
        self.storage_options = dict(storage_options or {})
        self.open_options = dict(open_options or {})
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ValueError, ImportError) as e:
            raise InvalidArgumentError(f"cannot open {self.url!r} with fsspec ({e}); pass a URL such as "
                                       "'hf://datasets/<org>/<env-id>/<tier>-v<N>', 'file:///path' or "
                                       "'s3://bucket/path' (with its fsspec package installed)") from None
        self.cache = ChunkCache(cache_dir or config.stream_cache_dir(),
                                cache_bytes if cache_bytes is not None else config.stream_cache_bytes())
        self.metadata = metadata if metadata is not None else self._read_metadata()
        self._check_streamable()
        self._open: dict[str, ShardFile] = {}
        self._warned = False   # StreamCacheWarning given
        self._rels: dict[tuple[str, int], str] = {}

    def spec(self) -> dict[str, Any]:
        return {"kind": "fsspec", "url": self.url, "cache_dir": str(self.cache.root),
                "cache_bytes": self.cache.max_bytes, "open_options": self.open_options,
                "storage_options": {k: v for k, v in self.storage_options.items() if k not in SECRET_OPTIONS},
                "metadata_sha256": self.metadata.get(DIGEST_KEY)}

    # -- opening --------------------------------------------------------------------------------
    def _remote(self, rel: str) -> str:
        return str(PurePosixPath(self.root, rel))

    def _read_metadata(self) -> dict[str, Any]:
        where = f"{self.url}/{METADATA_FILE}"
        try:
            with self.fs.open(self._remote(METADATA_FILE), "rb", **self.open_options) as f:
                raw = f.read(MAX_METADATA_BYTES + 1)
        except FileNotFoundError:
            raise DatasetNotFoundError(f"no ogdata dataset at {self.url}: {METADATA_FILE} is missing; check the "
                                       "URL (it names the tier folder, e.g. .../good-v0)") from None
        except OgdataError:
            raise
        except Exception as e:  # noqa: BLE001 - any backend's network error
            raise _fail(self.url, METADATA_FILE, e) from e
        return parse_metadata(raw, where=where)

    def _check_streamable(self) -> None:
        manifest, biggest = self.metadata["manifest"], 0
        for name, desc in self.metadata["arrays"].items():
            if not desc.get("shard_rows") or not desc.get("chunk_rows"):
                raise MetadataError(f"{self.url}: array {name!r} records no shard layout (written by an older "
                                    "ogdata), so it cannot be streamed; download the dataset instead")
        for entry in manifest.values():
            biggest = max(biggest, int(entry.get("size") or 0))
        if biggest > self.cache.max_bytes:
            raise InvalidArgumentError(f"{self.url}: its largest shard is {biggest:,} bytes, more than the stream "
                                       f"cache's {self.cache.max_bytes:,}; raise cache_bytes= (or "
                                       "OGDATA_STREAM_CACHE) to at least that")

    # -- shards ---------------------------------------------------------------------------------
    def _rel(self, name: str, s: int) -> str:
        key = (name, s)
        rel = self._rels.get(key)
        if rel is None:
            desc = self.metadata["arrays"][name]
            rel = self._rels[key] = shard_file(Path(DATA_DIR, name), s, len(desc["shape"])).as_posix()
        return rel

    def _fetch(self, rel: str) -> Path:
        entry = self.metadata["manifest"][rel]
        name = f"{self.url}/{rel}"

        def pull(sink) -> None:
            try:
                with self.fs.open(self._remote(rel), "rb", **self.open_options) as f:
                    while chunk := f.read(READ_BYTES):
                        sink.write(chunk)
            except OgdataError:
                raise
            except FileNotFoundError:
                raise StreamError(f"{name} is listed in the manifest but the remote does not have it; the remote "
                                  "copy is incomplete — report it to whoever publishes the dataset") from None
            except Exception as e:  # noqa: BLE001 - any backend's network error
                raise _fail(self.url, rel, e) from e

        return self.cache.get(entry["sha256"], int(entry["size"]), pull, name)

    def _shard(self, name: str, s: int) -> ShardFile | None:
        """Shard `s` of `name`, opened from the cache (fetched first if need be); None when the manifest
        has no such file (zarr wrote none: every chunk held only the fill value, 0)."""
        rel = self._rel(name, s)
        entry = self.metadata["manifest"].get(rel)
        if entry is None:
            return None
        f = self._open.get(rel)
        if f is not None and self.cache.lookup(entry["sha256"]) is not None:
            return f
        desc = self.metadata["arrays"][name]
        rows = min(desc["shard_rows"], desc["shape"][0] - s * desc["shard_rows"])
        for attempt in range(3):  # another process sharing the cache may evict the file between fetch and open
            path = self._fetch(rel)
            try:
                f = ShardFile(path, rows, tuple(desc["shape"][1:]), desc["dtype"], desc["chunk_rows"],
                              desc["shard_rows"], desc.get("compressor") is not None, name=f"{self.url}/{rel}")
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise StreamError(f"{self.url}/{rel}: the stream cache evicted it three times before it could be "
                                      "opened; give the cache more room (its bound) or fewer processes") from None
        self._open[rel] = f
        for other in [r for r in self._open if r != rel]:  # close what the cache no longer holds
            sha = self.metadata["manifest"][other]["sha256"]
            if not self.cache.path(sha).exists():
                self._open.pop(other).close()
        return f

    def _desc(self, name: str) -> dict[str, Any]:
        desc = self.metadata["arrays"].get(name)
        if desc is None:
            raise MetadataError(f"{self.url}: array {name!r} is not in this dataset's metadata")
        return desc

    def _groups(self, name: str, idx: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
        """[(shard, mask of the idx in it or None for all)] for rows `idx` of array `name`."""
        desc = self._desc(name)
        rows = desc["shard_rows"]
        if desc["shape"][0] <= rows or not len(idx):
            return [(0, None)]
        s = idx // rows
        lo, hi = int(s.min()), int(s.max())
        if lo == hi:
            return [(lo, None)]
        return [(int(u), s == u) for u in np.unique(s)]

    # -- reads ----------------------------------------------------------------------------------
    def read(self, name: str, sl: slice | None = None) -> np.ndarray:
        desc = self._desc(name)
        n, rows = desc["shape"][0], desc["shard_rows"]
        a, b, _ = (sl or slice(None)).indices(n)
        b = max(a, b)
        out = np.empty((b - a,) + tuple(desc["shape"][1:]), np.dtype(desc["dtype"]))
        for s in range(a // rows, (b - 1) // rows + 1 if b > a else 0):
            lo, hi = max(a, s * rows), min(b, (s + 1) * rows)
            f = self._shard(name, s)
            out[lo - a:hi - a] = 0 if f is None else f.rows(lo - s * rows, hi - s * rows)
        return out

    def take(self, name: str, idx: np.ndarray) -> np.ndarray:
        desc = self._desc(name)
        idx = np.asarray(idx, dtype=np.int64)
        groups = self._groups(name, idx)
        if len(groups) == 1 and len(idx):  # one shard: no copying through masks
            f = self._shard(name, groups[0][0])
            local = idx - groups[0][0] * desc["shard_rows"] if groups[0][0] else idx
            if f is not None:
                return f.take(local)
        out = np.empty((len(idx),) + tuple(desc["shape"][1:]), np.dtype(desc["dtype"]))
        if not len(idx):
            return out
        for s, m in groups:
            f = self._shard(name, s)
            sel = idx if m is None else idx[m]
            part = 0 if f is None else f.take(sel - s * desc["shard_rows"])
            if m is None:
                out[:] = part
            else:
                out[m] = part
        return out

    def prefetch(self, wanted: list[tuple[str, np.ndarray]]) -> None:
        """Fetch the shards these rows fall in, in parallel, when together they fit the cache.

        When they do not (a batch touches more shard bytes than the cache holds), every batch evicts
        shards the next one needs again: the read still works, one shard at a time, and a
        StreamCacheWarning (once per source) says how large the cache would have to be.
        """
        need: dict[str, int] = {}
        touched = 0
        manifest = self.metadata["manifest"]
        for name, idx in wanted:
            for s, _ in self._groups(name, np.asarray(idx)):
                entry = manifest.get(self._rel(name, s))
                if entry is None:
                    continue
                touched += int(entry["size"])
                if self.cache.lookup(entry["sha256"]) is None:
                    need[self._rel(name, s)] = int(entry["size"])
        if touched > self.cache.max_bytes and not self._warned:
            self._warned = True
            warnings.warn(f"{self.url}: one batch reads {touched:,} bytes of shards, more than the stream cache's "
                          f"{self.cache.max_bytes:,}, so every batch fetches shards again; raise cache_bytes= (or "
                          f"OGDATA_STREAM_CACHE) to at least {touched:,}, or sample from Dataset.shard(i, n) parts "
                          "that fit it", StreamCacheWarning, stacklevel=4)
        if len(need) < 2 or sum(need.values()) > self.cache.max_bytes:
            return  # nothing to overlap, or they could not all stay: `take` fetches one at a time
        with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(need))) as ex:
            list(ex.map(self._fetch, need))

    def verify_all(self) -> None:
        """Every file of the manifest checked now: cached ones re-hashed, the rest fetched (and checked)."""
        for rel, entry in self.metadata["manifest"].items():
            if not self.cache.rehash(entry["sha256"]):
                self._fetch(rel)
