"""The chunk cache of streamed datasets: whole shard files, verified, bounded in bytes.

Entries are named by their sha256 (content-addressed), so a shard is correct whatever URL or
revision it came from, two datasets sharing a file share one entry, and two processes fetching
the same shard at once both write the same bytes. A fetch streams into a hidden temp file
(`.<sha>.<size>.<pid>.<rand>.tmp`), hashing as it writes, and is renamed into place only when its
size and sha256 match the manifest: nothing corrupt is cached and nothing half-written is ever
visible under an entry's name.

The bound: before a fetch, least-recently-used entries (by mtime; every use touches it) are
deleted until the entries plus every fetch in flight (temp files count at their final size, read
from the name) fit `max_bytes`; where fetches in flight alone leave no room, the fetch waits for
them to land (they become entries, which can be evicted). Room is made, and fetches renamed into
place, under a file lock, so processes sharing a cache (Ray workers on one node) keep the bound together. A reader keeps a shard it has open even if
another process evicts it (an unlinked file stays readable on POSIX); it just fetches it again
next time.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from ogdata.errors import IntegrityError, InvalidArgumentError, StreamError
from ogdata.storage.writer import _pid_alive

TOUCH_EVERY_S = 1.0   # LRU time resolution per entry and process
ROOM_WAIT_S = 120.0   # how long a fetch waits for fetches in flight to free room before it gives up
_ENTRY = re.compile(r"^[0-9a-f]{64}$")
_TMP = re.compile(r"^\.(?P<sha>[0-9a-f]{64})\.(?P<size>\d+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")


class _HashingWriter:
    """A file-like sink that hashes what it writes and refuses more than `limit` bytes."""

    def __init__(self, f, limit: int, name: str):
        self.f, self.limit, self.name = f, limit, name
        self.h, self.n = hashlib.sha256(), 0

    def write(self, data) -> int:
        self.n += len(data)
        if self.n > self.limit:
            raise IntegrityError(f"{self.name}: the remote file is larger than the {self.limit} bytes the manifest "
                                 "records (corrupted or replaced); nothing was cached — report it to whoever "
                                 "publishes the dataset, or re-publish it")
        self.h.update(data)
        return self.f.write(data)


class ChunkCache:
    """Whole shard files under `root`, named by sha256, evicted least-recently-used beyond `max_bytes`."""

    def __init__(self, root: str | os.PathLike, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidArgumentError(f"cache_bytes must be a positive number of bytes, got {max_bytes!r}")
        self.root, self.max_bytes = Path(root), max_bytes
        self._lock = threading.Lock()
        self._touched: dict[str, tuple[float, Path]] = {}   # sha -> (when this process last touched it, its path)
        self.fetched = 0   # files this object brought in (tests and benchmarks read it)

    def __repr__(self) -> str:
        return f"ChunkCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    def path(self, sha: str) -> Path:
        return self.root / sha

    def lookup(self, sha: str, *, fresh: bool = False) -> Path | None:
        """The entry for `sha` if cached (touched: it becomes the most recently used), else None.

        Touched at most once a second per entry: a batch that reads six shards then costs no
        system calls. Between touches an entry another process evicted still reads correctly from
        a file this process holds open (contents are named by their hash), and is fetched again later.
        fresh=True: ask the file system now (for a caller about to open the file by its name).
        """
        now = time.monotonic()
        seen = self._touched.get(sha)
        if seen is not None and not fresh and now - seen[0] < TOUCH_EVERY_S:
            return seen[1]
        p = self.root / sha
        try:
            os.utime(p)
        except FileNotFoundError:
            self._touched.pop(sha, None)
            return None
        self._touched[sha] = (now, p)
        return p

    def get(self, sha: str, size: int, fetch: Callable[[_HashingWriter], None], name: str) -> Path:
        """The cached file with this sha256, fetched first if need be.

        `fetch(sink)` writes the remote bytes into `sink`; `name` (the dataset path of the shard)
        appears in errors. IntegrityError when what arrived is not the file the manifest describes.
        """
        hit = self.lookup(sha, fresh=True)
        if hit is not None:
            return hit
        if size > self.max_bytes:
            raise InvalidArgumentError(f"{name} is {size:,} bytes, more than the whole stream cache "
                                       f"({self.max_bytes:,} bytes); raise cache_bytes= (or OGDATA_STREAM_CACHE)")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{sha}.{size}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
        deadline = time.monotonic() + ROOM_WAIT_S
        while True:
            with self._lock, self._file_lock():
                if self._make_room(size):
                    tmp.touch()  # from now on other processes count it at `size`
                    break
            if time.monotonic() > deadline:
                raise StreamError(f"{name}: the stream cache at {self.root} ({self.max_bytes:,} bytes) stayed "
                                     f"full of fetches in flight for {ROOM_WAIT_S:.0f} s; raise cache_bytes= "
                                     "(or OGDATA_STREAM_CACHE), or run fewer readers on this cache")
            time.sleep(0.005)
        try:
            with open(tmp, "wb") as f:
                sink = _HashingWriter(f, size, name)
                fetch(sink)
                f.flush()
                os.fsync(f.fileno())
            if sink.n != size:
                raise IntegrityError(f"{name}: {sink.n:,} bytes arrived, the manifest records {size:,} (truncated "
                                     "or replaced); nothing was cached — retry, and if it persists report it to "
                                     "whoever publishes the dataset")
            got = sink.h.hexdigest()
            if got != sha:
                raise IntegrityError(f"{name}: checksum mismatch (sha256 {got[:12]}…, manifest {sha[:12]}…): the "
                                     "remote copy is corrupted; nothing was cached — report it to whoever publishes "
                                     "the dataset, or re-publish it")
            with self._lock, self._file_lock():   # a directory scan racing a rename may see neither name
                os.replace(tmp, self.root / sha)
            self._touched[sha] = (time.monotonic(), self.root / sha)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.fetched += 1
        return self.root / sha

    def rehash(self, sha: str) -> bool:
        """Check a cached entry against its name now; a mismatch is deleted (False)."""
        p = self.root / sha
        h = hashlib.sha256()
        try:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        except FileNotFoundError:
            return False
        if h.hexdigest() != sha:
            p.unlink(missing_ok=True)
            return False
        return True

    def usage(self) -> int:
        """Bytes of the cached entries (fetches in flight not included)."""
        return sum(size for _, size, _ in self._entries()[0])

    # -- bookkeeping ---------------------------------------------------------------------------
    def _file_lock(self) -> FileLock:
        return FileLock(str(self.root / ".lock"))

    def _entries(self) -> tuple[list[tuple[str, int, int]], int]:
        """([(sha, size, mtime_ns)] of the entries, bytes reserved by fetches in flight); removes the
        temp files of processes that died mid-fetch."""
        entries, inflight = [], 0
        try:
            it = list(os.scandir(self.root))
        except FileNotFoundError:
            return [], 0
        for e in it:
            if _ENTRY.match(e.name):
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                entries.append((e.name, st.st_size, st.st_mtime_ns))
            elif m := _TMP.match(e.name):
                if int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
                    Path(e.path).unlink(missing_ok=True)
                else:
                    inflight += int(m["size"])
        return entries, inflight

    def _make_room(self, size: int) -> bool:
        """Evict least-recently-used entries until `size` more bytes fit; False if the fetches in flight
        alone leave too little room (the caller waits for them)."""
        entries, inflight = self._entries()
        total = sum(s for _, s, _ in entries) + inflight
        for sha, s, _ in sorted(entries, key=lambda x: x[2]):
            if total + size <= self.max_bytes:
                break
            (self.root / sha).unlink(missing_ok=True)
            self._touched.pop(sha, None)
            total -= s
        return total + size <= self.max_bytes
