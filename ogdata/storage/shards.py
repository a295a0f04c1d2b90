"""Raw zarr v3 shards, written and read at the speed of the disk.

For uncompressed arrays ogdata writes the `sharding_indexed` shard files itself: the inner
chunks back to back (the last one zero-padded, as zarr stores edge chunks), then the index
of (offset, nbytes) pairs as little-endian uint64 and its crc32c — exactly the zarr v3
sharding codec layout, so any zarr reader opens the store (tested). Writing skips zarr's
per-chunk encode/copy pipeline; reading `readinto`s straight into the result array, which
is what `np.load` does. Compressed arrays still go through zarr.

ogdata writes every shard of a raw array, so a shard file that is missing, shorter than its
rows, or whose index fails its crc32c is an IntegrityError naming the file — never zeros.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import google_crc32c
import numpy as np

from ogdata.errors import IntegrityError

MISSING = np.uint64(2**64 - 1)


def shard_file(array_dir: Path, shard_index: int, ndim: int) -> Path:
    """Path of shard `shard_index` (chunk key encoding "default", separator "/")."""
    return Path(array_dir, "c", str(shard_index), *(["0"] * (ndim - 1)))


def write_shard(path: Path, rows: np.ndarray, chunk_rows: int, chunks_per_shard: int) -> tuple[str, int]:
    """Write one shard of `rows` (<= shard rows); returns (sha256, size) of the file."""
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
        step = 1 << 24
        for i in range(0, len(body), step):
            part = body[i:i + step]
            h.update(part)
            f.write(part)
        h.update(tail)
        f.write(tail)
    return h.hexdigest(), len(body) + len(tail)


def read_array(array_dir: Path, shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int,
               shard_rows: int) -> np.ndarray | None:
    """The whole array, read shard by shard into one buffer; None if the layout is not the
    plain one (then the caller reads through zarr)."""
    dtype = np.dtype(dtype)
    out = np.empty(shape, dtype=dtype)
    n = shape[0]
    if n == 0:
        return out
    row_bytes = out[0].nbytes
    chunk_bytes = chunk_rows * row_bytes
    flat = out.reshape(n, -1).view(np.uint8).reshape(-1)
    n_inner = shard_rows // chunk_rows
    for s, start in enumerate(range(0, n, shard_rows)):
        rows = min(shard_rows, n - start)
        f = shard_file(array_dir, s, len(shape))
        try:
            fh = open(f, "rb", buffering=0)
        except FileNotFoundError:
            raise IntegrityError(f"{f}: shard {s} of {array_dir.name} is missing; re-download or regenerate "
                                 "the dataset") from None
        with fh:
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
