"""Binning: continuous columns → integer codes on one fixed grid per environment.

- One set of bin limits per environment. Every continuous dimension is cut into `bins`
  equal-width bins between the per-dimension min and max *of the reference* (obs ‖ action
  over the Replay dataset). The limits are stored in the reference's metadata under
  measures["saco_limits"] and reused for every dataset of the env, so SACo values of one
  env are comparable. (The paper sometimes used each dataset's own limits.)
- Binning rule: code = floor((x − low) · bins / (high − low)), computed in float32 for
  float32 (and narrower) data, float64 otherwise, then clipped to [0, bins − 1]. So
  x == high lands in the last bin and values outside the reference's limits are clipped
  into the first/last bin (they still count, but cannot create new bins beyond the edges).
  A dimension that is constant in the reference contributes a single bin. Discrete
  dimensions (Discrete / MultiDiscrete / MultiBinary spaces) are used as-is, not binned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ogdata.errors import DataValidationError, MetadataError

DEFAULT_BINS = 100


@dataclass(frozen=True)
class Part:
    """One block of columns of a state-action row (e.g. the observation, or the action).

    continuous parts are binned between low and high; discrete parts hold integer values in
    [low, high] and are used as-is (code = value − low).
    """

    key: str
    kind: str            # "continuous" | "discrete"
    low: np.ndarray      # (d,) float64
    high: np.ndarray     # (d,) float64

    def __post_init__(self):
        if len(self.low) == 0:
            raise DataValidationError(f"{self.key!r} has zero columns (an empty observation or action); SACo "
                                      "needs at least one column in every part: give it a dimension or leave it out")

    @property
    def width(self) -> int:
        return len(self.low)

    def radices(self, bins: int) -> np.ndarray:
        if self.kind == "discrete":
            return (self.high - self.low + 1).astype(np.int64)
        return np.where(self.high > self.low, bins, 1).astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        conv = (lambda v: int(v)) if self.kind == "discrete" else (lambda v: float(v))
        return {"key": self.key, "kind": self.kind, "low": [conv(v) for v in self.low],
                "high": [conv(v) for v in self.high]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Part:
        try:
            low = np.asarray(d["low"], dtype=np.float64)
            high = np.asarray(d["high"], dtype=np.float64)
            if d["kind"] not in ("continuous", "discrete") or low.shape != high.shape or low.ndim != 1:
                raise ValueError("bad kind or shapes")
            if not (np.isfinite(low).all() and np.isfinite(high).all() and (high >= low).all()):
                raise ValueError("limits must be finite with high >= low")
            return cls(str(d["key"]), d["kind"], low, high)
        except (KeyError, TypeError, ValueError) as e:
            raise MetadataError(f"saco limits part {d!r} is malformed ({e}); recompute the limits with "
                                "ogdata.measures.bin_limits(reference)") from e


@dataclass(frozen=True)
class Limits:
    """Bin limits for one kind of row (joint state-action, or one agent's observation-action)."""

    parts: tuple[Part, ...]
    bins: int = DEFAULT_BINS

    def __post_init__(self):
        if not 1 <= int(self.bins) <= 65536:
            raise ValueError(f"bins must be in [1, 65536], got {self.bins}")

    @property
    def width(self) -> int:
        return sum(p.width for p in self.parts)

    def radices(self) -> np.ndarray:
        if not self.parts:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([p.radices(self.bins) for p in self.parts])

    def to_json(self) -> dict[str, Any]:
        return {"bins": int(self.bins), "parts": [p.to_json() for p in self.parts]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Limits:
        try:
            return cls(tuple(Part.from_json(p) for p in d["parts"]), int(d["bins"]))
        except (KeyError, TypeError) as e:
            raise MetadataError(f"saco limits {d!r} are malformed ({e}); recompute them with "
                                "ogdata.measures.bin_limits(reference)") from e

    @classmethod
    def from_arrays(cls, parts: Sequence[np.ndarray], bins: int = DEFAULT_BINS,
                    discrete: Sequence[bool | tuple[int, int] | None] | None = None,
                    keys: Sequence[str] | None = None) -> Limits:
        """Limits from in-memory arrays: per-column min/max of each continuous part.

        discrete[i]: False/None for a continuous part, True for a discrete part with the data's
        own min/max, or (low, high) to give the value range explicitly.
        """
        discrete = list(discrete) if discrete is not None else [None] * len(parts)
        keys = list(keys) if keys is not None else [f"part{i}" for i in range(len(parts))]
        out = []
        for a, disc, key in zip(parts, discrete, keys):
            a2 = as_2d(np.asarray(a))
            if isinstance(disc, tuple):
                lo, hi = np.full(a2.shape[1], disc[0], dtype=np.float64), np.full(a2.shape[1], disc[1], dtype=float)
                out.append(Part(key, "discrete", lo, hi))
                continue
            if not len(a2):
                raise DataValidationError(f"cannot take bin limits of {key!r}: the reference has no rows")
            lo, hi = colminmax(a2)
            out.append(Part(key, "discrete" if disc else "continuous", lo, hi))
        return cls(tuple(out), int(bins))


def as_2d(a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        return a[:, None]
    return a.reshape(len(a), -1) if a.ndim != 2 else a


def colminmax(a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = a2.min(axis=0).astype(np.float64)
    hi = a2.max(axis=0).astype(np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise DataValidationError("the reference holds NaN or infinite values; SACo bin limits need finite data")
    return lo, hi


def code_dtype(radices: np.ndarray) -> np.dtype:
    top = int(radices.max()) if radices.size else 1
    if top <= 1 << 8:
        return np.dtype(np.uint8)
    if top <= 1 << 16:
        return np.dtype(np.uint16)
    if top <= 1 << 32:
        return np.dtype(np.uint32)
    raise DataValidationError(f"a discrete dimension has {top} values; at most 2^32 are supported")


class Binner:
    """Turns the parts of a row into integer codes, block by block (vectorised, in place).

    Hot path: every continuous part is copied into one zero-padded float row buffer (one
    memcpy per row, via a void view), then subtract / multiply / clip / NaN-check / cast run
    once over the flat block against per-column constants tiled to the block's size — long
    contiguous SIMD loops instead of short per-row ones. Discrete parts are written as exact
    integer codes afterwards (their float columns stay 0).
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._cols: list[tuple[int, int]] = []
        col = 0
        for p in limits.parts:
            self._cols.append((col, p.width))
            col += p.width
        low = np.zeros(col)
        scale = np.zeros(col)
        for p, (c0, w) in zip(limits.parts, self._cols):
            if p.kind == "continuous":
                width = p.high - p.low
                low[c0:c0 + w] = p.low
                # a constant dimension gets scale 0, so every finite value lands in its single bin 0
                scale[c0:c0 + w] = np.where(width > 0, limits.bins / np.where(width > 0, width, 1.0), 0.0)
        self._low, self._scale = low, scale
        self._tiles: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _tiled(self, dtype: np.dtype, rows: int, wp: int):
        """(zeroed float buffer, tiled lows, tiled scales) for blocks of up to `rows` rows of `wp` columns."""
        key = (dtype, wp)
        t = self._tiles.get(key)
        if t is None or len(t[0]) < rows:
            rows = max(rows, 256)
            pad = wp - len(self._low)
            low = np.tile(np.concatenate([self._low, np.zeros(pad)]).astype(dtype), rows)
            scale = np.tile(np.concatenate([self._scale, np.zeros(pad)]).astype(dtype), rows)
            t = self._tiles[key] = (np.zeros((rows, wp), dtype=dtype), low, scale)
        return t

    def bin_into(self, arrays: Sequence[np.ndarray], out: np.ndarray) -> None:
        """Write the codes of `arrays` (one (n, d_k) array per part) into out[:, :width] (out C-contiguous)."""
        n, wp = out.shape
        parts = self.limits.parts
        for p, x in zip(parts, arrays):
            if x.shape[1] != p.width:
                raise DataValidationError(f"{p.key!r} has {x.shape[1]} columns but the bin limits have "
                                          f"{p.width}; the limits belong to a different environment")
        cont = [i for i, p in enumerate(parts) if p.kind == "continuous"]
        if cont and n:
            ct = np.result_type(*(arrays[i].dtype for i in cont), np.float32)
            ct = np.dtype(np.float64 if ct not in (np.float32, np.float64) else ct)
            buf, low, scale = self._tiled(ct, n, wp)
            buf = buf[:n]
            for i in cont:
                c0, w = self._cols[i]
                _copy_columns(arrays[i], buf, c0, w)
            flat = buf.reshape(-1)
            np.subtract(flat, low[:flat.size], out=flat)
            np.multiply(flat, scale[:flat.size], out=flat)
            np.clip(flat, ct.type(0), ct.type(self.limits.bins - 1), out=flat)   # scalar bounds: SIMD
            if np.isnan(np.add.reduce(flat)):
                raise DataValidationError(f"{[parts[i].key for i in cont]} contain NaN (or inf in a constant "
                                          "dimension); SACo needs finite values")
            np.copyto(out.reshape(-1), flat, casting="unsafe")
        for p, x, (c0, w) in zip(parts, arrays, self._cols):
            if p.kind == "continuous":
                continue
            if x.dtype.kind not in "iub" and not np.array_equal(x, np.round(x)):
                raise DataValidationError(f"{p.key!r} is discrete but holds non-integer values")
            v = x.astype(np.int64) - p.low.astype(np.int64)
            if n and (v.min() < 0 or (v > (p.high - p.low).astype(np.int64)).any()):
                raise DataValidationError(f"{p.key!r} holds values outside the discrete range "
                                          f"{p.low.astype(int).tolist()}..{p.high.astype(int).tolist()}")
            np.copyto(out[:, c0:c0 + w], v, casting="unsafe")


def _copy_columns(x: np.ndarray, buf: np.ndarray, c0: int, w: int) -> None:
    """buf[:, c0:c0+w] = x, as one memcpy per row when dtypes match (void views), else a casting copy."""
    if x.dtype == buf.dtype and x.flags.c_contiguous and buf.flags.c_contiguous and len(x):
        item = np.dtype((np.void, w * x.itemsize))
        dst = np.ndarray((len(x),), dtype=item, buffer=buf, offset=c0 * buf.itemsize, strides=(buf.strides[0],))
        np.copyto(dst, x.view(item).reshape(len(x)))
    else:
        np.copyto(buf[:, c0:c0 + w], x, casting="unsafe")


def bin_codes(arrays: np.ndarray | Sequence[np.ndarray], limits: Limits) -> np.ndarray:
    """The (n, width) integer code matrix of rows given as one array or one array per part."""
    arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
    arrays = [as_2d(np.asarray(a)) for a in arrays]
    out = np.zeros((len(arrays[0]), limits.width), dtype=code_dtype(limits.radices()))
    Binner(limits).bin_into(arrays, out)
    return out
