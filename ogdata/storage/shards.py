"""Raw zarr v3 shards, written and read at the speed of the disk.

For uncompressed arrays ogdata writes the `sharding_indexed` shard files itself: the inner
chunks back to back (the last one zero-padded, as zarr stores edge chunks), then the index
of (offset, nbytes) pairs as little-endian uint64 and its crc32c — exactly the zarr v3
sharding codec layout, so any zarr reader opens the store (tested). Writing skips zarr's
per-chunk encode/copy pipeline; reading `readinto`s straight into the result array, which
is what `np.load` does. Compressed arrays still go through zarr.

ogdata writes every shard of a raw array, so a shard file that is missing, shorter than its
rows, or whose index fails its crc32c is an IntegrityError naming the file — never zeros.

Because a raw shard's rows lie back to back from offset 0, each shard file is also a plain
row-major array that `map_array` memory-maps: sampling from a dataset larger than RAM. A
compressed array cannot be mapped (its bytes are blosc blocks); those are read into memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import sys
from functools import cache
from pathlib import Path

import google_crc32c
import numpy as np

from ogdata.errors import IntegrityError

MISSING = np.uint64(2**64 - 1)


def shard_file(array_dir: Path, shard_index: int, ndim: int) -> Path:
    """Path of shard `shard_index` (chunk key encoding "default", separator "/")."""
    return Path(array_dir, "c", str(shard_index), *(["0"] * (ndim - 1)))


SYNC_FILE_RANGE_WRITE = 2   # <linux/fs.h>: start writeback of the range's dirty pages, do not wait


@cache
def _sync_file_range():
    """libc's sync_file_range on Linux (Python's os module has no binding), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages to disk now, without waiting.

    Only a head start: durability is the commit's fsync of every file before the rename. Writing
    back each shard while the next is hashed keeps the disk busy during the CPU work, instead of
    leaving all of it to that final fsync; an fsync per shard would do the same but block the
    writer thread and force a journal commit per file. A no-op where sync_file_range is missing."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, 0, 0, SYNC_FILE_RANGE_WRITE)   # a failure (EINVAL on some filesystems) only loses the head start


def _write_all(f, data: memoryview) -> None:
    """An unbuffered write may take fewer bytes than offered (a signal, a nearly full disk): write the rest."""
    while len(data):
        n = f.write(data)
        if not n:
            raise OSError(f"no bytes written to {f.name} with {len(data)} left")
        data = data[n:]


def write_shard(path: Path, rows: np.ndarray, chunk_rows: int, chunks_per_shard: int) -> tuple[str, int]:
    """Write one shard of `rows` (<= shard rows); returns (sha256, size) of the file.

    The digest is taken over memoryviews of the very blocks written (no copies), each block hashed
    and then written while it is still in the CPU cache. The file's writeback is started, not
    waited for (`start_writeback`): the commit fsyncs every file before the rename."""
    rows = np.ascontiguousarray(rows)
    row_bytes = rows[0].nbytes if len(rows) else 0
    chunk_bytes = chunk_rows * row_bytes
    n_chunks = -(-len(rows) // chunk_rows)
    index = np.full((chunks_per_shard, 2), MISSING, dtype="<u8")  # chunks past the array's end: absent
    index[:n_chunks, 0] = np.arange(n_chunks, dtype=np.uint64) * np.uint64(chunk_bytes)
    index[:n_chunks, 1] = chunk_bytes
    pad = n_chunks * chunk_rows - len(rows)
    ib = index.tobytes()
    tail = bytes(pad * row_bytes) + ib + np.uint32(google_crc32c.value(ib)).astype("<u4").tobytes()
    body = memoryview(rows.reshape(-1).view(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with open(path, "wb", buffering=0) as f:
        step = 1 << 18   # hashed, then written while still in the CPU cache
        for i in range(0, len(body), step):
            part = body[i:i + step]
            h.update(part)
            _write_all(f, part)
        h.update(tail)
        _write_all(f, memoryview(tail))
        start_writeback(f.fileno())
    return h.hexdigest(), len(body) + len(tail)


def read_array(array_dir: Path, shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int,
               shard_rows: int) -> np.ndarray | None:
    """The whole array, read shard by shard into one buffer; None if the layout is not the
    plain one (then the caller reads through zarr)."""
    dtype = np.dtype(dtype)
    out = _half_page_array(shape, dtype)
    n = shape[0]
    if n == 0:
        return out
    row_bytes = out[0].nbytes
    chunk_bytes = chunk_rows * row_bytes
    flat = out.reshape(n, -1).view(np.uint8).reshape(-1)
    for s, start in enumerate(range(0, n, shard_rows)):
        rows = min(shard_rows, n - start)
        f = shard_file(array_dir, s, len(shape))
        fh = _open_shard(f, s, array_dir)
        with fh:
            if not _plain_layout(fh, f, rows, chunk_rows, shard_rows // chunk_rows, chunk_bytes):
                return None
            fh.seek(0)
            want = rows * row_bytes
            view = memoryview(flat[start * row_bytes:start * row_bytes + want])
            got = 0
            while got < want:
                k = fh.readinto(view[got:])
                if not k:
                    raise IntegrityError(f"{f}: ends after {got} of its {want} data bytes (truncated); "
                                         "re-download or regenerate the dataset")
                got += k
    return out


def read_rows(array_dir: Path, shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int, shard_rows: int,
              start: int, stop: int) -> np.ndarray | None:
    """Rows [start, stop) of a raw array, read straight from the shard files they lie in (an episode:
    a few hundred KiB from one or two files, no zarr decode); each shard's index is checked as
    `read_array` checks it. None if a touched shard's layout is not the plain one."""
    dtype = np.dtype(dtype)
    n = shape[0]
    start, stop = max(0, min(start, n)), max(0, min(stop, n))
    out = np.empty((max(0, stop - start),) + tuple(shape[1:]), dtype=dtype)
    if stop <= start:
        return out
    row_bytes = out[0].nbytes
    flat = out.reshape(len(out), -1).view(np.uint8).reshape(-1)
    for s in range(start // shard_rows, (stop - 1) // shard_rows + 1):
        s0 = s * shard_rows
        rows = min(shard_rows, n - s0)
        a, b = max(start, s0), min(stop, s0 + rows)
        f = shard_file(array_dir, s, len(shape))
        with _open_shard(f, s, array_dir) as fh:
            if not _plain_layout(fh, f, rows, chunk_rows, shard_rows // chunk_rows, chunk_rows * row_bytes):
                return None
            fh.seek((a - s0) * row_bytes)
            view = memoryview(flat[(a - start) * row_bytes:(b - start) * row_bytes])
            got = 0
            while got < len(view):   # _plain_layout checked the size: only a file cut meanwhile ends early
                k = fh.readinto(view[got:])
                if not k:
                    raise IntegrityError(f"{f}: ends before its {rows} rows (truncated); re-download or "
                                         "regenerate the dataset")
                got += k
    return out


PAGE = 4096


def _half_page_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An empty array whose data starts half a page past a page boundary.

    Shard data starts at file offset 0, so the kernel copies it out of page-aligned page-cache
    pages; on x86 (rep movsb, measured on AMD EPYC) that copy runs ~3x slower when the destination
    sits at almost the same offset within its page — as a fresh large numpy array does (16 bytes
    in). Half a page apart it runs at full speed (np.load's 128-byte header gets this by accident).
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + PAGE, dtype=np.uint8)
    shift = (PAGE // 2 - raw.ctypes.data) % PAGE
    return raw[shift:shift + nbytes].view(dtype).reshape(shape)


def _open_shard(f: Path, s: int, array_dir: Path):
    try:
        return open(f, "rb", buffering=0)
    except FileNotFoundError:
        raise IntegrityError(f"{f}: shard {s} of {array_dir.name} is missing; re-download or regenerate "
                             "the dataset") from None


def _plain_layout(fh, f: Path, rows: int, chunk_rows: int, n_inner: int, chunk_bytes: int) -> bool:
    """Whether shard `fh` holds its `rows` as full chunks back to back from offset 0 (what ogdata
    writes); IntegrityError if its index is truncated or fails its crc32c."""
    size = os.fstat(fh.fileno()).st_size
    idx_bytes = n_inner * 16 + 4
    if size < idx_bytes:
        raise IntegrityError(f"{f}: shard of {size} bytes is too short to hold its index (truncated); "
                             "re-download or regenerate the dataset")
    fh.seek(size - idx_bytes)
    raw = fh.read(idx_bytes)
    ib = raw[:-4]
    if np.frombuffer(raw[-4:], "<u4")[0] != google_crc32c.value(ib):
        raise IntegrityError(f"{f}: the shard index fails its crc32c (the file is corrupted); "
                             "re-download or regenerate the dataset")
    index = np.frombuffer(ib, "<u8").reshape(n_inner, 2)
    used = -(-rows // chunk_rows)
    expect = np.arange(used, dtype=np.uint64) * np.uint64(chunk_bytes)
    if not (np.array_equal(index[:used, 0], expect) and (index[:used, 1] == chunk_bytes).all()):
        return False
    if size < used * chunk_bytes + idx_bytes:
        raise IntegrityError(f"{f}: ends before its {rows} rows (truncated); re-download or regenerate the dataset")
    return True


class MappedRows:
    """A raw sharded array as read-only memory maps, one per shard; `a[idx]` gathers rows.

    Only the pages a gather touches are read (and stay in the page cache, which the kernel
    reclaims under pressure): the dataset can be far larger than RAM."""

    def __init__(self, maps: list[np.ndarray], shape: tuple[int, ...], dtype: np.dtype, shard_rows: int):
        self.maps, self.shape, self.dtype, self.shard_rows = maps, shape, dtype, shard_rows

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise TypeError("MappedRows gathers rows by a 1-D integer array")
        if len(self.maps) == 1:
            return self.maps[0].take(idx, axis=0)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        shard, row = np.divmod(idx, self.shard_rows)
        out = np.empty((len(idx),) + self.shape[1:], dtype=self.dtype)
        for k in np.unique(shard).tolist():   # the shards this gather touches: at most len(idx)
            sel = np.flatnonzero(shard == k)
            out[sel] = self.maps[k].take(row[sel], axis=0)
        return out


def map_array(array_dir: Path, shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int,
              shard_rows: int) -> MappedRows | None:
    """Memory-map every shard of a raw array (checked as `read_array` checks them); None if the
    layout is not the plain one."""
    dtype = np.dtype(dtype)
    n = shape[0]
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    maps = []
    for s, start in enumerate(range(0, n, shard_rows)):
        rows = min(shard_rows, n - start)
        f = shard_file(array_dir, s, len(shape))
        with _open_shard(f, s, array_dir) as fh:
            if not _plain_layout(fh, f, rows, chunk_rows, shard_rows // chunk_rows, chunk_rows * row_bytes):
                return None
        # a plain ndarray over the map (it keeps the map alive): np.memmap's Python-level
        # __getitem__ would cost more than a 256-row gather
        maps.append(np.memmap(f, dtype=dtype, mode="r", shape=(rows,) + tuple(shape[1:])).view(np.ndarray))
    return MappedRows(maps, tuple(shape), dtype, shard_rows)


class ShardFile:
    """One complete shard file opened for row reads (a streamed dataset's cached shard).

    The index is read and its crc32c checked once; a raw shard in the plain layout is a memory
    map (rows and gathers cost what numpy's cost on memory, and only touched pages are resident);
    anything else — blosc-compressed chunks, chunks zarr left out because they held only the fill
    value — is decoded chunk by chunk, the last few decoded chunks kept.
    """

    KEEP_DECODED = 8   # decoded inner chunks kept per file (each ~1 MiB, the writer's chunk size)

    def __init__(self, path: Path, rows: int, row_shape: tuple[int, ...], dtype, chunk_rows: int,
                 shard_rows: int, compressed: bool, name: str):
        self.path, self.name, self.rows_in_file = Path(path), name, rows
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype).newbyteorder("<")
        self.chunk_rows, self.compressed = chunk_rows, compressed
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        n_inner = max(1, shard_rows // chunk_rows)
        self.mm = np.asarray(np.memmap(self.path, mode="r", dtype=np.uint8))  # plain arrays over the map
        idx_bytes = n_inner * 16 + 4
        if len(self.mm) < idx_bytes:
            raise IntegrityError(f"{name}: shard of {len(self.mm)} bytes is too short to hold its index; "
                                 "the cached copy is damaged — delete the stream cache and retry")
        raw = bytes(self.mm[len(self.mm) - idx_bytes:])
        if np.frombuffer(raw[-4:], "<u4")[0] != google_crc32c.value(raw[:-4]):
            raise IntegrityError(f"{name}: the shard index fails its crc32c (the file is corrupted); "
                                 "re-download or regenerate the dataset")
        self.index = np.frombuffer(raw[:-4], "<u8").reshape(n_inner, 2)
        used = -(-rows // chunk_rows)
        chunk_bytes = chunk_rows * self.row_bytes
        plain = (not compressed and np.array_equal(self.index[:used, 0],
                                                   np.arange(used, dtype=np.uint64) * np.uint64(chunk_bytes))
                 and bool((self.index[:used, 1] == chunk_bytes).all()))
        self.view = (self.mm[:rows * self.row_bytes].view(self.dtype).reshape((rows,) + self.row_shape)
                     if plain else None)
        self._decoded: dict[int, np.ndarray] = {}

    def _chunk(self, k: int) -> np.ndarray:
        got = self._decoded.pop(k, None)
        if got is None:
            off, nbytes = (int(x) for x in self.index[k])
            shape = (self.chunk_rows,) + self.row_shape
            if self.index[k, 0] == MISSING:  # zarr writes no chunk that holds only the fill value (0)
                got = np.zeros(shape, self.dtype)
            else:
                buf = self.mm[off:off + nbytes]
                if self.compressed:
                    import numcodecs

                    buf = np.frombuffer(numcodecs.Blosc().decode(bytes(buf)), np.uint8)
                if len(buf) != self.chunk_rows * self.row_bytes:
                    raise IntegrityError(f"{self.name}: inner chunk {k} holds {len(buf)} bytes, expected "
                                         f"{self.chunk_rows * self.row_bytes}; the file is not the layout its "
                                         "metadata describes — re-download or regenerate the dataset")
                got = np.frombuffer(buf, self.dtype).reshape(shape)
            if len(self._decoded) >= self.KEEP_DECODED:
                self._decoded.pop(next(iter(self._decoded)))
        self._decoded[k] = got
        return got

    def rows(self, a: int, b: int) -> np.ndarray:
        """Rows a:b of this shard, copied out."""
        if self.view is not None:
            return np.array(self.view[a:b])
        out = np.empty((b - a,) + self.row_shape, self.dtype)
        c = self.chunk_rows
        for k in range(a // c, (b - 1) // c + 1 if b > a else a // c):
            lo, hi = max(a, k * c), min(b, (k + 1) * c)
            out[lo - a:hi - a] = self._chunk(k)[lo - k * c:hi - k * c]
        return out

    def take(self, local: np.ndarray) -> np.ndarray:
        """Rows at `local` (indices into this shard), in that order."""
        if self.view is not None:
            return self.view[local]
        out = np.empty((len(local),) + self.row_shape, self.dtype)
        ks = local // self.chunk_rows
        for k in np.unique(ks):
            m = ks == k
            out[m] = self._chunk(int(k))[local[m] - int(k) * self.chunk_rows]
        return out

    def close(self) -> None:
        """Drop the map (it is unmapped once no returned view still refers to it)."""
        self.view = self.mm = None
        self._decoded.clear()
