"""Dataset quality measures: TQ, SACo (joint SACo / per-agent OACo) and return/action statistics.

Definitions follow Schweighofer et al., "A Dataset Perspective on Offline RL" (CoLLAs 2022):

- TQ(D) = (mean episode return of D − R_random) / (R_expert − R_random); undiscounted by
  default, as in the paper's code.
- SACo(D) = u(D) / u(D_ref), u = number of unique (binned) state-action pairs, D_ref = the
  env's Replay dataset.

What ogdata does differently from the paper's code, on purpose:

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
- Exact counting instead of HyperLogLog. Codes are packed into integer keys: one uint64 by
  mixed radix when the row fits in 64 bits (then the key is the row); otherwise the row's
  codes are laid out as bytes and read as several uint64 words, keyed by a 64-bit hash, and
  every pair of rows that share a hash is compared word by word — hash collisions are
  resolved exactly, so the count is exact, not probabilistic. Rows are counted streaming
  over chunks into one buffer of packed records (8 B hash + the packed row: 48 B for 32 obs
  + 4 action dims, against 144 B of float32 input), sized min(rows, 1 GiB); whenever it
  fills it is deduplicated in place and keeps only unique rows (growing if those need
  more), so memory is bounded by the unique rows, never a copy of the input. `exact=False` switches
  to HyperLogLog (2^14 registers, standard error 1.04/sqrt(2^14) ≈ 0.8% per count, so
  ≈ 1.15% on a SACo ratio) for datasets whose unique rows do not fit in memory.
  Measured (scripts/bench_saco.py, 10M × 36 float32): ~7-8M transitions/s on one core,
  58-89× the paper's string-set approach, 0.7 GB peak beyond the 1.44 GB input.

Multi-agent: joint SACo uses (global state ‖ joint action); per-agent OACo uses each
agent's (observation, action) with that agent's own limits and is averaged over agents.

Coarse SACo (`saco_coarse`, multi-agent also `oaco_coarse`): an addition of ogdata, because on
continuous observations of 7-221 dimensions 100 bins per dimension make nearly every transition
its own cell, so SACo ≈ N / N_ref ≈ 1 for every tier and cannot separate them (OG-MARL's joint
SACo fails the same way). Same ratio u(D) / u(D_ref), on a coarse grid fitted on the reference
alone (`coarse_params`):

- the state block (single-agent obs; multi-agent global state, or one agent's obs for OACo)
  and the continuous action block (joint action for multi-agent) are each standardised with
  the reference's mean / std and projected on their own top principal components of the
  reference: action_k = 2 for the action (its own projection, so action diversity counts even
  next to a 221-dimensional state), k − 2 = 4 for the state (k = 6 in all). Discrete actions
  stay as codes (one of the k dimensions each; then the state gets k − 1 = 5).
- each projected column is cut into b equal bins over ±3 reference standard deviations of
  that component (values beyond fall into the edge bins), b being the largest of
  (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64) for which the reference's unique cells
  are ≤ 50% of its transitions — so the reference does not saturate its own grid.
- mean, std, components, variances, limits and b are stored in the reference's metadata
  under measures["saco_coarse_params"] and reused for every dataset of the env; other
  datasets record `saco_coarse_reference`. Counting is the exact streaming counter above.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ogdata.errors import DataValidationError, MetadataError, ReferenceMissingError

DEFAULT_BINS = 100
HLL_PRECISION = 14
HLL_STANDARD_ERROR = 1.04 / math.sqrt(2**HLL_PRECISION)

_U64 = np.uint64
_K = _U64(0x9E3779B97F4A7C15)
_C1 = _U64(0xFF51AFD7ED558CCD)
_C2 = _U64(0xC4CEB9FE1A85EC53)
_S33 = _U64(33)
_CHUNK_ROWS = 1 << 20          # rows reserved in the record buffer at a time
_BUDGET_BYTES = 1 << 30     # default record-buffer budget of an exact counter (grows if uniques need more)


# ----------------------------------------------------------------------------------------
# TQ and return statistics (array level first, Dataset wrappers below)
# ----------------------------------------------------------------------------------------

def discounted_returns(rewards: np.ndarray, episode_lengths: np.ndarray, discount: float) -> np.ndarray:
    """Per-episode sum of discount^t · r_t over flat, time-major rewards (multi-agent: mean over agents)."""
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim > 1:
        r = r.mean(axis=tuple(range(1, r.ndim)))
    lengths = np.asarray(episode_lengths, dtype=np.int64)
    if lengths.sum() != len(r):
        raise DataValidationError(f"episode lengths sum to {int(lengths.sum())} but there are {len(r)} rewards")
    if not len(lengths):
        return np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    t = np.arange(len(r)) - np.repeat(starts, lengths)
    w = r * np.power(float(discount), t)
    out = np.zeros(len(lengths))
    nz = lengths > 0
    out[nz] = np.add.reduceat(w, starts[nz]) if len(w) else 0.0
    return out


def reference_returns_for(dataset, random_return: float | None = None,
                          expert_return: float | None = None) -> tuple[float, float]:
    """(R_random, R_expert): the given values, else the dataset's recorded ones, else the env's registered ones."""
    if random_return is not None and expert_return is not None:
        return float(random_return), float(expert_return)
    refs = None
    if dataset is not None:
        refs = dataset.metadata.get("reference_returns") or None
        if not (refs and refs.get("random") is not None and refs.get("expert") is not None):
            refs = None
            if dataset.env_id:
                from ogdata.policies.evaluate import reference_returns

                refs = reference_returns(dataset.env_id)   # raises ReferenceMissingError
    if refs is None:
        raise ReferenceMissingError("TQ needs the random and expert reference returns: pass random_return= "
                                    "and expert_return=, or use a dataset whose metadata records "
                                    "reference_returns")
    r = float(random_return if random_return is not None else refs["random"])
    e = float(expert_return if expert_return is not None else refs["expert"])
    return r, e


def tq(dataset_or_returns, random_return: float | None = None, expert_return: float | None = None,
       discount: float | None = None) -> float:
    """Trajectory quality: (mean episode return − R_random) / (R_expert − R_random).

    `dataset_or_returns` is a Dataset or an array of episode returns. The references default to
    the dataset's recorded reference_returns (then the env's registered ones). Those are
    undiscounted, so a discounted TQ needs references computed with the same discount passed
    explicitly.
    """
    ds = None if isinstance(dataset_or_returns, (np.ndarray, list, tuple)) else dataset_or_returns
    if discount is not None and (random_return is None or expert_return is None):
        raise ReferenceMissingError(f"a discounted TQ (discount={discount}) needs reference returns computed "
                                    "with the same discount: pass random_return= and expert_return=")
    r_rand, r_exp = reference_returns_for(ds, random_return, expert_return)
    if not np.isfinite([r_rand, r_exp]).all() or r_exp == r_rand:
        raise ReferenceMissingError(f"TQ is undefined for reference returns random={r_rand}, expert={r_exp}: "
                                    "they must be finite and differ; recompute the references")
    if ds is None:
        if discount is not None:
            raise ValueError("discount needs per-step rewards: pass a Dataset, or discount the returns yourself "
                             "with ogdata.measures.discounted_returns")
        returns = np.asarray(dataset_or_returns, dtype=np.float64)
    elif discount is None:
        returns = ds.episode_returns()
    else:
        returns = discounted_returns(_read_all(ds, "rewards"), ds.episode_lengths, discount)
    if returns.size == 0:
        raise DataValidationError("TQ of an empty dataset is undefined: it has no episodes")
    return float((returns.mean() - r_rand) / (r_exp - r_rand))


def _none_if_nan(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def return_stats(returns: np.ndarray | Sequence[float]) -> dict[str, float | int | None]:
    """mean, std (ddof=1), min, max, median, q25, q75, IQR, skew and excess kurtosis of episode returns.

    Skew and kurtosis are the moment estimators g1 = m3/m2^1.5 and g2 = m4/m2^2 − 3 (scipy's
    defaults); undefined values (a constant or single-episode sample) are None, so the result
    stays JSON-serialisable.
    """
    x = np.asarray(returns, dtype=np.float64).ravel()
    n = int(x.size)
    if n == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None, "median": None,
                "q25": None, "q75": None, "iqr": None, "skew": None, "kurtosis": None}
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    d = x - x.mean()
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    flat = m2 <= 1e-24 * max(1.0, float(np.abs(x).max()) ** 2)
    return {
        "count": n,
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if n > 1 else None,
        "min": float(x.min()),
        "max": float(x.max()),
        "median": float(med),
        "q25": float(q25),
        "q75": float(q75),
        "iqr": float(q75 - q25),
        "skew": None if flat else _none_if_nan(m3 / m2**1.5),
        "kurtosis": None if flat else _none_if_nan(m4 / m2**2 - 3.0),
    }


def length_stats(lengths: np.ndarray | Sequence[int]) -> dict[str, float | int | None]:
    """Episode-length summary: count, total, mean, std, min, max, median."""
    x = np.asarray(lengths, dtype=np.int64).ravel()
    if x.size == 0:
        return {"count": 0, "total": 0, "mean": None, "std": None, "min": None, "max": None, "median": None}
    return {"count": int(x.size), "total": int(x.sum()), "mean": float(x.mean()),
            "std": float(x.std(ddof=1)) if x.size > 1 else None, "min": int(x.min()), "max": int(x.max()),
            "median": float(np.median(x))}


class _ActionAccumulator:
    """Streaming action statistics for one (per-agent) action space."""

    def __init__(self, space):
        from gymnasium import spaces

        self.discrete = isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary))
        if isinstance(space, spaces.Discrete):
            self.low, self.n = np.array([int(space.start)]), np.array([int(space.n)])
        elif isinstance(space, spaces.MultiDiscrete):
            self.n = np.asarray(space.nvec, dtype=np.int64).ravel()
            self.low = np.zeros_like(self.n)
        elif isinstance(space, spaces.MultiBinary):
            self.n = np.full(int(np.prod(space.n)), 2, dtype=np.int64)
            self.low = np.zeros_like(self.n)
        self.count = 0
        self.counts = [np.zeros(int(k), dtype=np.int64) for k in self.n] if self.discrete else None
        self.s1 = self.s2 = self.lo = self.hi = None

    def add(self, a: np.ndarray) -> None:
        a = a.reshape(len(a), -1)
        self.count += len(a)
        if self.discrete:
            for d, c in enumerate(self.counts):
                v = a[:, d].astype(np.int64) - self.low[d]
                if len(v) and (v.min() < 0 or v.max() >= len(c)):
                    raise DataValidationError(f"discrete action values outside the action space (dimension {d}: "
                                              f"{int(v.min() + self.low[d])}..{int(v.max() + self.low[d])}, "
                                              f"space has {len(c)} values from {int(self.low[d])})")
                c += np.bincount(v, minlength=len(c))
            return
        a = a.astype(np.float64)
        if self.s1 is None:
            z = np.zeros(a.shape[1])
            self.s1, self.s2 = z.copy(), z.copy()
            self.lo, self.hi = np.full_like(z, np.inf), np.full_like(z, -np.inf)
        if len(a):
            self.s1 += a.sum(axis=0)
            self.s2 += (a * a).sum(axis=0)
            np.minimum(self.lo, a.min(axis=0), out=self.lo)
            np.maximum(self.hi, a.max(axis=0), out=self.hi)

    def result(self) -> dict[str, Any]:
        if self.discrete:
            out: dict[str, Any] = {"type": "discrete", "count": self.count, "dims": []}
            for c, low in zip(self.counts, self.low):
                p = c / max(c.sum(), 1)
                nz = p[p > 0]
                h = float(-(nz * np.log(nz)).sum()) if nz.size else 0.0
                out["dims"].append({"n": len(c), "start": int(low), "entropy": h,
                                    "normalised_entropy": h / math.log(len(c)) if len(c) > 1 else 0.0,
                                    "frequencies": p.tolist() if len(c) <= 64 else None})
            out["entropy"] = float(sum(d["entropy"] for d in out["dims"]))
            return out
        if self.s1 is None or self.count == 0:
            return {"type": "continuous", "count": 0, "mean": [], "std": [], "min": [], "max": []}
        mean = self.s1 / self.count
        var = np.maximum(self.s2 / self.count - mean**2, 0.0)
        std = np.sqrt(var)
        return {"type": "continuous", "count": self.count, "mean": mean.tolist(), "std": std.tolist(),
                "min": self.lo.tolist(), "max": self.hi.tolist(), "mean_std": float(std.mean())}


def action_stats(actions: np.ndarray, space=None) -> dict[str, Any]:
    """Action statistics of one action array: entropy (nats) per dimension for discrete spaces,
    per-dimension mean / std / min / max (the spread) for continuous ones.

    `space` defaults to Discrete(max+1) for 1-D integer actions, else a Box.
    """
    a = np.asarray(actions)
    if space is None:
        from gymnasium import spaces

        if a.dtype.kind in "iub" and a.ndim == 1:
            space = spaces.Discrete(int(a.max()) + 1 if a.size else 1)
        else:
            space = spaces.Box(-np.inf, np.inf, shape=a.shape[1:] or (1,))
    acc = _ActionAccumulator(space)
    acc.add(a.reshape(len(a), -1) if a.ndim != 1 else a[:, None])
    return acc.result()


def dataset_action_stats(dataset, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Action statistics of a dataset, streamed; multi-agent: one entry per agent."""
    space = dataset.action_space
    if dataset.multi_agent:
        agents = dataset.agents
        accs = [_ActionAccumulator(space) for _ in agents]
        for ch in dataset.iter_chunks(chunk_size, keys=("actions",)):
            a = ch["actions"]
            for i, acc in enumerate(accs):
                acc.add(a[:, i])
        return {"per_agent": {name: acc.result() for name, acc in zip(agents, accs)}}
    acc = _ActionAccumulator(space)
    for ch in dataset.iter_chunks(chunk_size, keys=("actions",)):
        a = ch["actions"]
        acc.add(a[:, None] if a.ndim == 1 else a)
    return acc.result()


# ----------------------------------------------------------------------------------------
# Binning
# ----------------------------------------------------------------------------------------

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
            a2 = _as_2d(np.asarray(a))
            if isinstance(disc, tuple):
                lo, hi = np.full(a2.shape[1], disc[0], dtype=np.float64), np.full(a2.shape[1], disc[1], dtype=float)
                out.append(Part(key, "discrete", lo, hi))
                continue
            if not len(a2):
                raise DataValidationError(f"cannot take bin limits of {key!r}: the reference has no rows")
            lo, hi = _colminmax(a2)
            out.append(Part(key, "discrete" if disc else "continuous", lo, hi))
        return cls(tuple(out), int(bins))


def _as_2d(a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        return a[:, None]
    return a.reshape(len(a), -1) if a.ndim != 2 else a


def _colminmax(a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = a2.min(axis=0).astype(np.float64)
    hi = a2.max(axis=0).astype(np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise DataValidationError("the reference holds NaN or infinite values; SACo bin limits need finite data")
    return lo, hi


def _code_dtype(radices: np.ndarray) -> np.dtype:
    top = int(radices.max()) if radices.size else 1
    if top <= 1 << 8:
        return np.dtype(np.uint8)
    if top <= 1 << 16:
        return np.dtype(np.uint16)
    if top <= 1 << 32:
        return np.dtype(np.uint32)
    raise DataValidationError(f"a discrete dimension has {top} values; at most 2^32 are supported")


class _Binner:
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
    arrays = [_as_2d(np.asarray(a)) for a in arrays]
    out = np.zeros((len(arrays[0]), limits.width), dtype=_code_dtype(limits.radices()))
    _Binner(limits).bin_into(arrays, out)
    return out


# ----------------------------------------------------------------------------------------
# Exact streaming unique count
# ----------------------------------------------------------------------------------------

def _fmix64(h: np.ndarray, tmp: np.ndarray) -> None:
    """MurmurHash3's 64-bit finaliser, in place."""
    np.right_shift(h, _S33, out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, _C1, out=h)
    np.right_shift(h, _S33, out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, _C2, out=h)
    np.right_shift(h, _S33, out=tmp)
    np.bitwise_xor(h, tmp, out=h)


def _dedup(records: list, need_rows: bool = True):
    """Deduplicate records [h (n,) uint64, packed rows (n, W) uint64 or None] exactly.

    `records` is emptied, so the caller's buffers are freed as soon as dedup drops them.
    Injective keys (rows=None) need only a sorted unique; hashed rows go to `_dedup_block`.
    (Splitting large inputs into cache-sized hash partitions first was measured here: no
    faster on 10M rows with 5M duplicates, so the simple form stays.)
    Returns (h_unique, rows_unique) or, with need_rows=False, the number of unique rows.
    """
    h, rows = records
    records.clear()
    if rows is None:
        u = np.unique(h)
        return (u, None) if need_rows else len(u)
    return _dedup_block(h, rows, need_rows)


def _dedup_block(h: np.ndarray, rows: np.ndarray, need_rows: bool = True):
    """Exact dedup of hashed records.

    Records are ordered by `high bits of h | position` (one fast numpy sort of uint64 — SIMD
    on x86 — no argsort) and grouped by equal truncated hash; every adjacent pair in a group
    is compared word by word. Groups whose rows all agree keep one record; groups holding a
    hash collision are resolved exactly by np.unique over their (few) rows.
    """
    n = len(h)
    if n == 0:
        return (h, rows) if need_rows else 0
    b = max(1, (n - 1).bit_length())
    if b <= 40:
        mask = _U64((1 << b) - 1)
        ar = np.arange(n, dtype=_U64)
        key = np.bitwise_and(h, ~mask)
        key |= ar
        key.sort()
        order = np.bitwise_and(key, mask, out=ar).view(np.int64)     # reuses the arange's memory
        key >>= _U64(b)
        g = key
    else:                                # beyond 2^40 records: argsort the full hash
        order = np.argsort(h)
        g = h.take(order)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    del g
    keep = new
    dup = np.flatnonzero(~new)
    bad: list[np.ndarray] = []
    for s in range(0, len(dup), 1 << 20):
        d = dup[s:s + (1 << 20)]
        a = np.take(rows, order.take(d - 1), axis=0)
        np.bitwise_xor(a, np.take(rows, order.take(d), axis=0), out=a)
        diff = a[:, 0].copy()
        for j in range(1, rows.shape[1]):
            diff |= a[:, j]
        if diff.any():
            bad.append(d[diff != 0])
    del dup
    if bad:                              # hash collisions: resolve those groups exactly
        starts = np.flatnonzero(new)
        gi = np.unique(np.searchsorted(starts, np.concatenate(bad), side="right") - 1)
        lo = starts[gi]
        hi = np.append(starts, n)[gi + 1]
        pos = np.concatenate([np.arange(x, y) for x, y in zip(lo.tolist(), hi.tolist())])
        gid = np.repeat(gi, hi - lo).astype(_U64)
        m = np.column_stack([gid, np.take(rows, order.take(pos), axis=0)])
        _, first = np.unique(m, axis=0, return_index=True)
        keep = new.copy()
        keep[pos] = False
        keep[pos[first]] = True
    if not need_rows:
        return int(np.count_nonzero(keep))
    sel = order[keep]
    return h.take(sel), np.take(rows, sel, axis=0)


class UniqueCounter:
    """Exact (or HyperLogLog) streaming count of distinct rows of integer codes.

    `radices[d]` is the number of values column d can take. Rows whose mixed-radix value fits
    in 64 bits are keyed by it directly (injective, no hash). Wider rows are laid out as bytes
    (uint8/uint16/uint32 codes, zero-padded to whole uint64 words) and keyed by a 64-bit hash
    with exact collision checks (see _dedup).

    Streaming: rows are binned and hashed chunk by chunk into one buffer of packed records
    (8 B hash + the packed words); when it fills, it is deduplicated in place and the unique
    records stay at its front (the buffer doubles if they take more than half of it). So
    memory is ~ capacity × record size, with capacity ≥ 2 × the number of unique rows, never
    a copy of the input. `capacity` defaults to `budget_bytes` worth of records (or
    the row count, when `add_*` is told it up front through `expected_rows`).
    """

    def __init__(self, radices: Sequence[int] | np.ndarray, exact: bool = True,
                 budget_bytes: int = _BUDGET_BYTES, expected_rows: int | None = None,
                 hll_precision: int = HLL_PRECISION):
        self.radices = np.asarray(radices, dtype=np.int64)
        if (self.radices < 1).any():
            raise ValueError("every radix must be >= 1")
        self.width = len(self.radices)
        self.code_dtype = _code_dtype(self.radices)
        self.exact = bool(exact)
        total = math.prod(int(r) for r in self.radices)
        self.single = total <= 1 << 64
        itemsize = self.code_dtype.itemsize
        self.padded_width = max(self.width, 1) if self.single else -(-self.width * itemsize // 8) * 8 // itemsize
        self.words = 0 if self.single else self.padded_width * itemsize // 8
        self.record_bytes = 8 * (1 + self.words)
        cap = max(int(budget_bytes) // self.record_bytes, 1024)
        if expected_rows is not None:
            cap = min(cap, max(int(expected_rows), 1))
        self.capacity = cap
        self._horner = [(d, _U64(int(r))) for d, r in enumerate(self.radices) if r > 1]
        self._h: np.ndarray | None = None       # (capacity,) keys
        self._rows: np.ndarray | None = None    # (capacity, padded_width) codes (multi-word mode only)
        self._n = 0                             # records in the buffer
        self._unique = 0                        # the first _unique records are known to be distinct
        self.rows_seen = 0
        self._final: int | None = None
        self._scratch: np.ndarray | None = None
        self._codes: np.ndarray | None = None   # single-word mode: one block of codes
        if not self.exact:
            self.p = int(hll_precision)
            self.registers = np.zeros(1 << self.p, dtype=np.uint8)

    # -- buffers -----------------------------------------------------------------------
    def block_rows(self) -> int:
        return int(np.clip((1 << 17) // max(self.padded_width, 1), 256, 8192))

    def _reserve(self, m: int) -> None:
        """Make room for m more records: compact (dedup) when full, grow when mostly unique."""
        if self._h is None:
            self._alloc(max(self.capacity, m))
            return
        if self._n + m <= len(self._h):
            return
        if self._n > self._unique:
            self._compact()
        if self._n + m > len(self._h) or self._n > len(self._h) // 2:
            self._alloc(max(2 * len(self._h), self._n + m))

    def _alloc(self, cap: int) -> None:
        h = np.empty(cap, dtype=_U64)
        rows = None if self.single else np.zeros((cap, self.padded_width), dtype=self.code_dtype)
        if self._h is not None and self._n:
            h[:self._n] = self._h[:self._n]
            if rows is not None:
                rows[:self._n] = self._rows[:self._n]
        self._h, self._rows = h, rows

    def _compact(self) -> None:
        n = self._n
        rows = None if self.single else self._rows[:n].view(_U64)
        hu, ru = _dedup([self._h[:n], rows], need_rows=True)
        del rows
        u = len(hu)
        self._h[:u] = hu
        if ru is not None:
            self._rows[:u] = ru.view(self.code_dtype)
        self._n = self._unique = u

    # -- keys --------------------------------------------------------------------------
    def _keys(self, codes: np.ndarray, h: np.ndarray) -> None:
        """h = key of every row of a block of codes."""
        if self._scratch is None:
            self._scratch = np.empty(self.block_rows(), dtype=_U64)
        t = self._scratch[:len(h)]
        if self.single:
            h[:] = 0
            for d, r in self._horner:
                np.multiply(h, r, out=h)
                np.add(h, codes[:, d], out=h, casting="unsafe")
            if not self.exact:
                _fmix64(h, t)
            return
        w = codes.view(_U64)
        np.multiply(w[:, 0], _K, out=h)
        for j in range(1, self.words):
            np.bitwise_xor(h, w[:, j], out=h)
            np.multiply(h, _K, out=h)
        if not self.exact:                   # HyperLogLog needs well-mixed low bits too; sorting needs the top ones
            _fmix64(h, t)

    # -- feeding -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._final is not None:
            raise RuntimeError("this UniqueCounter has been counted already; start a new one to add rows")

    def add_codes(self, codes: np.ndarray) -> UniqueCounter:
        """Count the rows of an (n, width) integer code matrix (values in [0, radix))."""
        self._check_open()
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.width:
            raise DataValidationError(f"codes must be (n, {self.width}), got {codes.shape}")
        if len(codes) and ((codes < 0).any() or (codes >= self.radices).any()):
            raise DataValidationError("codes outside [0, radix)")

        def fill(dst: np.ndarray, s: int, t: int) -> None:
            dst[:, :self.width] = codes[s:t]

        self._feed(len(codes), fill)
        return self

    def add_values(self, arrays: Sequence[np.ndarray], binner: _Binner) -> UniqueCounter:
        """Bin rows given as one (n, d_k) array per part and count them (block-wise, in cache)."""
        self._check_open()
        arrays = [_as_2d(a) for a in arrays]
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise DataValidationError(f"parts have different row counts {[len(a) for a in arrays]}")
        self._feed(n, lambda dst, s, t: binner.bin_into([x[s:t] for x in arrays], dst))
        return self

    def _feed(self, n: int, fill) -> None:
        B = self.block_rows()
        if not self.exact:
            codes = np.zeros((B, self.padded_width), dtype=self.code_dtype)
            h = np.empty(B, dtype=_U64)
            for s in range(0, n, B):
                t = min(n, s + B)
                fill(codes[:t - s], s, t)
                self._keys(codes[:t - s], h[:t - s])
                self._hll_add(h[:t - s])
            self.rows_seen += n
            return
        step = min(_CHUNK_ROWS, max(self.capacity // 4, B))
        for a in range(0, n, step):
            e = min(n, a + step)
            self._reserve(e - a)
            k = self._n
            for s in range(a, e, B):
                t = min(e, s + B)
                hb = self._h[k + s - a:k + t - a]
                if self.single:
                    if self._codes is None:
                        self._codes = np.zeros((B, self.padded_width), dtype=self.code_dtype)
                    cb = self._codes[:t - s]
                else:
                    cb = self._rows[k + s - a:k + t - a]
                fill(cb, s, t)
                self._keys(cb, hb)
            self._n += e - a
            self.rows_seen += e - a

    # -- results -----------------------------------------------------------------------
    def count(self) -> int:
        """Number of distinct rows seen (an estimate, rounded, when exact=False).

        The final pass only counts (it does not compact the buffer), so an exact counter is
        finished after `count()`: adding more rows raises, counting again is free.
        """
        if not self.exact:
            return self._hll_estimate()
        if self._final is None:
            if self._n == self._unique:
                self._final = self._n
            else:                            # hand the buffers over, so dedup can free them once copied
                records = [self._h[:self._n], None if self.single else self._rows[:self._n].view(_U64)]
                self._h = self._rows = self._codes = None
                self._final = int(_dedup(records, need_rows=False))
            self._h = self._rows = self._codes = None
        return self._final

    # -- HyperLogLog -------------------------------------------------------------------
    def _hll_add(self, h: np.ndarray) -> None:
        p = self.p
        idx = (h >> _U64(64 - p)).astype(np.intp)
        v = (h << _U64(p)) >> _U64(11)       # the remaining 64-p bits, top-aligned, cut to 53 bits (exact in float64)
        e = np.frexp(v.astype(np.float64))[1]
        rho = np.minimum(54 - e, 64 - p + 1).astype(np.uint8)   # leading zeros + 1
        np.maximum.at(self.registers, idx, rho)

    def _hll_estimate(self) -> int:
        m = float(len(self.registers))
        alpha = 0.7213 / (1 + 1.079 / m)
        est = alpha * m * m / np.ldexp(1.0, -self.registers.astype(np.int64)).sum()
        zeros = int((self.registers == 0).sum())
        if est <= 2.5 * m and zeros:
            est = m * math.log(m / zeros)
        return int(round(est))


def count_unique(arrays: np.ndarray | Sequence[np.ndarray], limits: Limits, exact: bool = True) -> int:
    """Number of distinct binned rows of in-memory arrays (one array, or one per part of `limits`)."""
    arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
    c = UniqueCounter(limits.radices(), exact=exact, expected_rows=len(arrays[0]))
    c.add_values(arrays, _Binner(limits))
    return c.count()


# ----------------------------------------------------------------------------------------
# SACo / OACo on datasets
# ----------------------------------------------------------------------------------------

def _space_part(key: str, space, n_agents: int | None = None) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(kind, low, high) of a space's flattened columns; discrete ranges come from the space itself."""
    from gymnasium import spaces

    reps = n_agents or 1
    if isinstance(space, spaces.Discrete):
        lo, hi = np.array([space.start]), np.array([space.start + space.n - 1])
    elif isinstance(space, spaces.MultiDiscrete):
        nv = np.asarray(space.nvec, dtype=np.int64).ravel()
        lo, hi = np.zeros_like(nv), nv - 1
    elif isinstance(space, spaces.MultiBinary):
        k = int(np.prod(space.n))
        lo, hi = np.zeros(k, dtype=np.int64), np.ones(k, dtype=np.int64)
    elif isinstance(space, spaces.Box):
        return "continuous", None, None
    else:
        raise DataValidationError(f"SACo supports Box, Discrete, MultiDiscrete and MultiBinary spaces; {key!r} is "
                                  f"{type(space).__name__}")
    return "discrete", np.tile(lo, reps).astype(np.float64), np.tile(hi, reps).astype(np.float64)


def _views(dataset) -> dict[str, list[tuple[str, str, Any]]]:
    """Which arrays make up each row kind: {"joint": [(part key, chunk key, agent index or None)], ...}."""
    if not dataset.multi_agent:
        return {"joint": [("observations", "observations", None), ("actions", "actions", None)]}
    joint_state = "states" if (dataset.metadata.get("state_space") or "states" in dataset.metadata.get("arrays", {})) \
        else "observations"
    out = {"joint": [(joint_state, joint_state, "all"), ("actions", "actions", "all")]}
    for i, name in enumerate(dataset.agents):
        out[f"agent:{name}"] = [("observations", "observations", i), ("actions", "actions", i)]
    return out


def _slice(chunk: dict[str, np.ndarray], ckey: str, agent) -> np.ndarray:
    a = chunk[ckey]
    if agent is None:
        return _as_2d(a)
    if agent == "all":
        return a.reshape(len(a), -1)
    return _as_2d(a[:, agent])


def _chunk_keys(views) -> tuple[str, ...]:
    return tuple(sorted({ck for parts in views.values() for _, ck, _ in parts}))


def _part_space(dataset, key: str):
    if key == "actions":
        return dataset.action_space
    if key == "states":
        return dataset.state_space
    return dataset.observation_space


def bin_limits(reference, bins: int = DEFAULT_BINS, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Per-dimension bin limits (min/max of obs ‖ action over the reference), JSON-ready.

    Multi-agent: "joint" (state ‖ joint action) plus one entry per agent ("agent:<name>").
    Discrete dimensions take their range from the space. Stored under
    measures["saco_limits"] so every dataset of the env is binned the same way.
    """
    views = _views(reference)
    n_agents = len(reference.agents) if reference.multi_agent else None
    lo: dict[tuple[str, str], np.ndarray] = {}
    hi: dict[tuple[str, str], np.ndarray] = {}
    rows = 0
    for ch in reference.iter_chunks(chunk_size, keys=_chunk_keys(views)):
        for view, parts in views.items():
            for pkey, ckey, agent in parts:
                a = _slice(ch, ckey, agent)
                if not len(a):
                    continue
                l, h = _colminmax(a)
                k = (view, pkey)
                lo[k] = l if k not in lo else np.minimum(lo[k], l)
                hi[k] = h if k not in hi else np.maximum(hi[k], h)
        rows += len(next(iter(ch.values())))
    if rows == 0:
        raise DataValidationError("the reference dataset has no transitions; SACo needs a non-empty Replay dataset")
    out: dict[str, Any] = {"bins": int(bins), "reference": reference.dataset_id or str(reference.path)}
    for view, parts in views.items():
        ps = []
        for pkey, _, agent in parts:
            reps = n_agents if agent == "all" and pkey != "states" else None
            kind, dlo, dhi = _space_part(pkey, _part_space(reference, pkey), reps)
            if kind == "discrete":
                ps.append(Part(pkey, "discrete", dlo, dhi))
            else:
                ps.append(Part(pkey, "continuous", lo[(view, pkey)], hi[(view, pkey)]))
        out[view] = Limits(tuple(ps), int(bins)).to_json()
    return out


def _limits_for(reference, bins: int, limits: dict | None) -> dict[str, Any]:
    if limits is not None:
        return limits
    stored = reference.measures.get("saco_limits") if reference is not None else None
    if stored and int(stored.get("bins", -1)) == int(bins) and "joint" in stored:
        return stored
    return bin_limits(reference, bins)


def _count_views(dataset, limits: dict[str, Any], views: Iterable[str], exact: bool,
                 chunk_size: int, progress: bool = False) -> dict[str, int]:
    """Unique binned rows of each requested view, in one streaming pass over the dataset."""
    all_views = _views(dataset)
    views = list(views)
    missing = [v for v in views if v not in limits]
    if missing:
        raise MetadataError(f"the saco limits have no entry for {missing}; they were computed for a different "
                            "kind of dataset — recompute them with ogdata.measures.bin_limits(reference)")
    lims = {v: Limits.from_json(limits[v]) for v in views}
    counters = {v: UniqueCounter(lims[v].radices(), exact=exact, expected_rows=len(dataset)) for v in views}
    binners = {v: _Binner(lims[v]) for v in views}
    keys = _chunk_keys({v: all_views[v] for v in views})
    it = dataset.iter_chunks(chunk_size, keys=keys)
    if progress and len(dataset) > 4 * chunk_size:          # a bar only where the wait is noticeable
        from tqdm.auto import tqdm

        it = tqdm(it, total=-(-len(dataset) // chunk_size), desc="SACo", unit="chunk", leave=False)
    for ch in it:
        for v in views:
            arrays = [_slice(ch, ckey, agent) for _, ckey, agent in all_views[v]]
            counters[v].add_values(arrays, binners[v])
    return {v: int(c.count()) for v, c in counters.items()}


_REF_CACHE: dict[tuple, dict[str, int]] = {}


def _ref_counts(reference, limits: dict, views: list[str], exact: bool, chunk_size: int,
                counter=_count_views) -> dict[str, int]:
    """Reference counts, cached per (on-disk reference, limits) so profiling many datasets counts it once.

    `counter` is `_count_views` (SACo limits) or `_count_coarse` (coarse SACo parameters)."""
    import json

    cacheable = "parent" not in reference.metadata and getattr(reference, "_arrays", None) is None
    key = (counter.__name__, str(reference.path.resolve()), len(reference), json.dumps(limits, sort_keys=True),
           exact, tuple(views))
    if cacheable and key in _REF_CACHE:
        return _REF_CACHE[key]
    counts = counter(reference, limits, views, exact, chunk_size)
    if cacheable:
        if len(_REF_CACHE) > 16:
            _REF_CACHE.clear()
        _REF_CACHE[key] = counts
    return counts


def _same_dataset(dataset, reference) -> bool:
    """Whether `dataset` is the reference itself (the same object, or the same whole dataset on disk)."""
    return dataset is reference or (getattr(dataset, "_arrays", None) is None and "parent" not in dataset.metadata
                                    and dataset.path.resolve() == reference.path.resolve())


def _per_agent(views, counts: dict, reference: dict | None = None) -> dict:
    """{agent: count} of the "agent:<name>" views, or {agent: count / reference count}."""
    return {v.split(":", 1)[1]: counts[v] / reference[v] if reference is not None else counts[v]
            for v in views if v.startswith("agent:")}


def coverage(dataset, reference, bins: int = DEFAULT_BINS, limits: dict | None = None, exact: bool = True,
             chunk_size: int = 1 << 20, progress: bool = False) -> dict[str, Any]:
    """SACo (and, multi-agent, per-agent OACo) of `dataset` against `reference`, with the raw counts.

    Returns {"saco", "unique_state_actions", "reference_unique_state_actions", "bins", "exact",
    "saco_limits", ["oaco", "oaco_per_agent", "unique_obs_actions"]}.
    """
    if reference is None:
        raise ReferenceMissingError("SACo needs a reference (the env's Replay dataset); generate or download "
                                    "<env-id>/replay-v<N> and pass it as reference")
    if bool(dataset.multi_agent) != bool(reference.multi_agent):
        raise DataValidationError("dataset and reference must both be single-agent or both multi-agent")
    if dataset.env_id and reference.env_id and dataset.env_id != reference.env_id:
        raise DataValidationError(f"the reference is from env {reference.env_id!r} but the dataset is from "
                                  f"{dataset.env_id!r}; SACo compares datasets of one environment")
    lim = _limits_for(reference, bins, limits)
    views = list(_views(dataset))
    u = _count_views(dataset, lim, views, exact, chunk_size, progress)
    same = _same_dataset(dataset, reference)
    ur = u if same else _ref_counts(reference, lim, views, exact, chunk_size)
    if ur["joint"] == 0:
        raise ReferenceMissingError("the reference dataset has no transitions; regenerate the Replay dataset")
    out: dict[str, Any] = {
        "saco": u["joint"] / ur["joint"],
        "unique_state_actions": u["joint"],
        "reference_unique_state_actions": ur["joint"],
        "bins": int(lim.get("bins", bins)),
        "exact": bool(exact),
        "reference": lim.get("reference"),
        "saco_limits": lim,
    }
    if not exact:
        out["relative_error"] = HLL_STANDARD_ERROR * math.sqrt(2)
    if dataset.multi_agent:
        per = _per_agent(views, u, ur)
        out["oaco_per_agent"] = per
        out["oaco"] = float(np.mean(list(per.values()))) if per else None
        out["unique_obs_actions"] = _per_agent(views, u)
        out["reference_unique_obs_actions"] = _per_agent(views, ur)
    return out


def saco(dataset, reference, bins: int = DEFAULT_BINS, limits: dict | None = None, exact: bool = True,
         chunk_size: int = 1 << 20) -> float:
    """State-action coverage u(dataset) / u(reference); multi-agent: the joint SACo (state ‖ joint action)."""
    return float(coverage(dataset, reference, bins, limits, exact, chunk_size)["saco"])


def oaco(dataset, reference, bins: int = DEFAULT_BINS, limits: dict | None = None, exact: bool = True,
         chunk_size: int = 1 << 20) -> float:
    """Observation-action coverage of a multi-agent dataset: per-agent SACo, averaged over agents."""
    if not dataset.multi_agent:
        raise DataValidationError("OACo is for multi-agent datasets; use saco() for single-agent ones")
    return float(coverage(dataset, reference, bins, limits, exact, chunk_size)["oaco"])


# ----------------------------------------------------------------------------------------
# Coarse SACo: coverage on a low-dimensional grid fitted on the reference
# ----------------------------------------------------------------------------------------

COARSE_K = 6
COARSE_ACTION_K = 2
COARSE_CLIP_SIGMA = 3.0
COARSE_SATURATION = 0.5
COARSE_CANDIDATES = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


def _coarse_settings(k: int, action_k: int, clip_sigma: float, saturation: float,
                     candidates: Sequence[int]) -> dict[str, Any]:
    cands = sorted({int(b) for b in candidates})
    if not cands or cands[0] < 1 or cands[-1] > 65536:
        raise ValueError(f"coarse bin candidates must be in [1, 65536], got {list(candidates)}")
    if int(k) < 1 or int(action_k) < 0 or not clip_sigma > 0 or not 0 < saturation <= 1:
        raise ValueError(f"need k >= 1, action_k >= 0, clip_sigma > 0 and 0 < saturation <= 1; got k={k}, "
                         f"action_k={action_k}, clip_sigma={clip_sigma}, saturation={saturation}")
    return {"k": int(k), "action_k": int(action_k), "clip_sigma": float(clip_sigma),
            "saturation": float(saturation), "candidates": cands}


class _Moments:
    """Streaming mean and covariance of a block of columns (sums shifted by the first chunk's mean)."""

    def __init__(self):
        self.n = 0
        self.shift = self.s1 = self.s2 = None

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        if not len(x):
            return
        if not np.isfinite(x).all():
            raise DataValidationError("the reference holds NaN or infinite values; coarse SACo needs finite data")
        if self.shift is None:
            self.shift = x.mean(axis=0)
            self.s1 = np.zeros(x.shape[1])
            self.s2 = np.zeros((x.shape[1], x.shape[1]))
        d = x - self.shift
        self.n += len(d)
        self.s1 += d.sum(axis=0)
        self.s2 += d.T @ d

    def block(self, key: str, k: int) -> dict[str, Any]:
        """Standardise with the reference's mean / std, then keep the top-k principal components."""
        m = self.s1 / self.n
        cov = self.s2 / self.n - np.outer(m, m)
        mean = self.shift + m
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0 / np.where(std > 0, std, 1.0), 0.0)
        c = cov * np.outer(scale, scale)
        lam, vec = np.linalg.eigh((c + c.T) / 2)
        order = np.argsort(lam)[::-1][:k]
        lam, vec = np.maximum(lam[order], 0.0), vec[:, order]
        lam[lam <= 1e-12 * max(float(np.trace(c)), 1e-300)] = 0.0     # numerically flat directions: one bin
        flip = np.sign(vec[np.argmax(np.abs(vec), axis=0), np.arange(vec.shape[1])])
        vec = vec * np.where(flip == 0, 1.0, flip)                      # deterministic sign
        return {"key": key, "kind": "continuous", "mean": mean.tolist(), "scale": scale.tolist(),
                "components": vec.tolist(), "variance": lam.tolist()}


class _CoarseView:
    """Projects one kind of row (state ‖ action) onto the coarse grid's columns, from stored parameters."""

    def __init__(self, view: dict[str, Any], bins: int | None = None):
        try:
            self.blocks = []
            for name in ("state", "action"):
                b = view.get(name)
                if b is None:
                    continue
                if b["kind"] == "continuous":
                    w = np.asarray(b["components"], dtype=np.float64).reshape(len(b["mean"]), -1)
                    self.blocks.append((b["kind"], np.asarray(b["mean"], np.float64),
                                        np.asarray(b["scale"], np.float64), w))
                else:
                    self.blocks.append((b["kind"], np.asarray(b["low"], np.float64), np.asarray(b["high"], np.float64),
                                        None))
            low, high = np.asarray(view["low"], np.float64), np.asarray(view["high"], np.float64)
            parts = [Part("projection", "continuous", low, high)] if len(low) else []
            parts += [Part("actions", "discrete", lo, hi) for kind, lo, hi, _ in self.blocks if kind == "discrete"]
            self.limits = Limits(tuple(parts), int(bins if bins is not None else view["bins"]))
        except (KeyError, TypeError, ValueError) as e:
            raise MetadataError(f"the coarse SACo parameters are malformed ({e}); refit them with "
                                "ogdata.measures.coarse_params(reference)") from e

    def arrays(self, state: np.ndarray, action: np.ndarray) -> list[np.ndarray]:
        """[projected continuous columns (n, k) float64, discrete action codes (n, a)] for the binner."""
        z, disc = [], []
        for (kind, a, b, w), x in zip(self.blocks, (state, action)):
            if kind == "discrete":
                disc.append(x)
                continue
            if x.shape[1] != len(a):
                raise DataValidationError(f"rows have {x.shape[1]} columns but the coarse SACo parameters expect "
                                          f"{len(a)}; they belong to a different environment")
            z.append(((x.astype(np.float64) - a) * b) @ w)
        out = [np.concatenate(z, axis=1)] if z else []
        return out + disc


def _coarse_rows(ch: dict[str, np.ndarray], parts) -> tuple[np.ndarray, np.ndarray]:
    (_, sk, sa), (_, ak, aa) = parts
    return _slice(ch, sk, sa), _slice(ch, ak, aa)


def coarse_params(reference, k: int = COARSE_K, action_k: int = COARSE_ACTION_K,
                  clip_sigma: float = COARSE_CLIP_SIGMA, saturation: float = COARSE_SATURATION,
                  candidates: Sequence[int] = COARSE_CANDIDATES, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Fit the coarse SACo grid on the reference alone (two streaming passes), JSON-ready.

    Per row kind ("joint"; multi-agent also "agent:<name>"): the state block (obs, or the global
    state) and a continuous action block are each standardised with the reference's mean/std and
    projected on their own top principal components — action_k for the action (so action
    diversity always counts, however wide the state), the rest of k for the state; discrete
    actions stay as codes and take one of the k dimensions each. Each projected column is cut
    into b bins over ±clip_sigma reference standard deviations (values beyond go to the edge
    bins), b being the largest candidate whose reference grid has at most `saturation` × its
    transitions unique cells, so the reference itself does not saturate the grid.
    """
    cfg = _coarse_settings(k, action_k, clip_sigma, saturation, candidates)
    views = _views(reference)
    n_agents = len(reference.agents) if reference.multi_agent else None
    moments = {v: (_Moments(), _Moments()) for v in views}
    disc: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for v, parts in views.items():
        pkey, _, agent = parts[1]
        kind, lo, hi = _space_part(pkey, reference.action_space, n_agents if agent == "all" else None)
        disc[v] = (lo, hi) if kind == "discrete" else None
    keys = _chunk_keys(views)
    rows = 0
    for ch in reference.iter_chunks(chunk_size, keys=keys):
        for v, parts in views.items():
            s, a = _coarse_rows(ch, parts)
            moments[v][0].add(s)
            if disc[v] is None:
                moments[v][1].add(a)
        rows += len(next(iter(ch.values())))
    if rows == 0:
        raise DataValidationError("the reference dataset has no transitions; coarse SACo needs a non-empty Replay "
                                  "dataset")
    fitted: dict[str, dict[str, Any]] = {}
    for v, parts in views.items():
        ms, ma = moments[v]
        d_s = len(ms.s1)
        if disc[v] is not None:
            lo, hi = disc[v]
            ka, n_disc = 0, len(lo)
            action = {"key": "actions", "kind": "discrete", "low": lo.astype(int).tolist(),
                      "high": hi.astype(int).tolist()}
        else:
            ka, n_disc = min(cfg["action_k"], len(ma.s1)), 0
            action = ma.block("actions", ka) if ka else None
        ks = min(max(cfg["k"] - ka - n_disc, 1), d_s)
        state = ms.block(parts[0][0], ks)
        sd = np.sqrt(np.asarray(state["variance"] + (action["variance"] if action and ka else [])))
        fitted[v] = {"state": state, "action": action, "low": (-cfg["clip_sigma"] * sd).tolist(),
                     "high": (cfg["clip_sigma"] * sd).tolist()}
    # second pass: the reference's unique cells for every candidate b, to pick b per row kind
    projs = {v: _CoarseView(fitted[v], bins=1) for v in views}
    counters = {(v, b): UniqueCounter(Limits(projs[v].limits.parts, b).radices(), expected_rows=rows)
                for v in views for b in cfg["candidates"]}
    binners = {(v, b): _Binner(Limits(projs[v].limits.parts, b)) for v in views for b in cfg["candidates"]}
    for ch in reference.iter_chunks(chunk_size, keys=keys):
        for v, parts in views.items():
            arrays = projs[v].arrays(*_coarse_rows(ch, parts))
            for b in cfg["candidates"]:
                counters[(v, b)].add_values(arrays, binners[(v, b)])
    for v in views:
        u = {b: counters[(v, b)].count() for b in cfg["candidates"]}
        ok = [b for b in cfg["candidates"] if u[b] <= cfg["saturation"] * rows]
        b = max(ok) if ok else cfg["candidates"][0]
        fitted[v].update(bins=int(b), dims=int(len(fitted[v]["low"]) + (0 if disc[v] is None else len(disc[v][0]))),
                         reference_unique=u[b], reference_unique_by_bins=[int(u[c]) for c in cfg["candidates"]])
    return {"method": "standardise + per-block PCA + grid", **cfg,
            "reference": reference.dataset_id or str(reference.path), "reference_transitions": int(rows),
            "views": fitted}


_COARSE_FIT_CACHE: dict[tuple, dict[str, Any]] = {}


def _same_settings(params: dict[str, Any], cfg: dict[str, Any]) -> bool:
    return all(params.get(k) == v for k, v in cfg.items())


def _coarse_params_for(reference, params: dict | None, cfg: dict[str, Any], chunk_size: int) -> dict[str, Any]:
    """Given params, else the reference's stored ones (same settings), else a fit (cached per reference)."""
    if params is not None:
        return params
    stored = reference.measures.get("saco_coarse_params")
    if isinstance(stored, dict) and _same_settings(stored, cfg) and "joint" in (stored.get("views") or {}) \
            and stored.get("reference_transitions") == len(reference):
        return stored
    import json

    cacheable = "parent" not in reference.metadata and getattr(reference, "_arrays", None) is None
    key = (str(reference.path.resolve()), len(reference), json.dumps(cfg, sort_keys=True))
    if cacheable and key in _COARSE_FIT_CACHE:
        return _COARSE_FIT_CACHE[key]
    fitted = coarse_params(reference, chunk_size=chunk_size, **cfg)
    if cacheable:
        if len(_COARSE_FIT_CACHE) > 16:
            _COARSE_FIT_CACHE.clear()
        _COARSE_FIT_CACHE[key] = fitted
    return fitted


def _count_coarse(dataset, params: dict[str, Any], views: Iterable[str], exact: bool, chunk_size: int,
                  progress: bool = False) -> dict[str, int]:
    """Unique coarse cells of each requested row kind, in one streaming pass over the dataset."""
    all_views = _views(dataset)
    views = list(views)
    stored = params.get("views") or {}
    missing = [v for v in views if v not in stored]
    if missing:
        raise MetadataError(f"the coarse SACo parameters have no entry for {missing}; they were fitted on a "
                            "different kind of dataset — refit them with ogdata.measures.coarse_params(reference)")
    projs = {v: _CoarseView(stored[v]) for v in views}
    counters = {v: UniqueCounter(projs[v].limits.radices(), exact=exact, expected_rows=len(dataset)) for v in views}
    binners = {v: _Binner(projs[v].limits) for v in views}
    it = dataset.iter_chunks(chunk_size, keys=_chunk_keys({v: all_views[v] for v in views}))
    if progress and len(dataset) > 4 * chunk_size:
        from tqdm.auto import tqdm

        it = tqdm(it, total=-(-len(dataset) // chunk_size), desc="coarse SACo", unit="chunk", leave=False)
    for ch in it:
        for v in views:
            counters[v].add_values(projs[v].arrays(*_coarse_rows(ch, all_views[v])), binners[v])
    return {v: int(c.count()) for v, c in counters.items()}


def coarse_coverage(dataset, reference, params: dict | None = None, exact: bool = True, k: int = COARSE_K,
                    action_k: int = COARSE_ACTION_K, clip_sigma: float = COARSE_CLIP_SIGMA,
                    saturation: float = COARSE_SATURATION, candidates: Sequence[int] = COARSE_CANDIDATES,
                    chunk_size: int = 1 << 20, progress: bool = False) -> dict[str, Any]:
    """Coarse SACo (multi-agent: and coarse OACo) of `dataset` against `reference`.

    Same ratio as SACo — unique cells of the dataset ÷ unique cells of the reference — on the
    grid of `coarse_params` (fitted on the reference, or taken from `params` / the reference's
    measures["saco_coarse_params"]), so it stays informative when SACo saturates at ≈ 1.
    Returns {"saco_coarse", "unique_coarse_cells", "reference_unique_coarse_cells", "coarse_bins",
    "coarse_dims", "saco_coarse_reference", "saco_coarse_params", ["oaco_coarse", ...]}.
    """
    if reference is None:
        raise ReferenceMissingError("coarse SACo needs a reference (the env's Replay dataset); generate or "
                                    "download <env-id>/replay-v<N> and pass it as reference")
    if bool(dataset.multi_agent) != bool(reference.multi_agent):
        raise DataValidationError("dataset and reference must both be single-agent or both multi-agent")
    if dataset.env_id and reference.env_id and dataset.env_id != reference.env_id:
        raise DataValidationError(f"the reference is from env {reference.env_id!r} but the dataset is from "
                                  f"{dataset.env_id!r}; SACo compares datasets of one environment")
    cfg = _coarse_settings(k, action_k, clip_sigma, saturation, candidates)
    params = _coarse_params_for(reference, params, cfg, chunk_size)
    views = list(_views(dataset))
    u = _count_coarse(dataset, params, views, exact, chunk_size, progress)
    same = _same_dataset(dataset, reference)
    ur = u if same else _ref_counts(reference, params, views, exact, chunk_size, counter=_count_coarse)
    if ur["joint"] == 0:
        raise ReferenceMissingError("the reference dataset has no transitions; regenerate the Replay dataset")
    pv = params["views"]
    out: dict[str, Any] = {
        "saco_coarse": u["joint"] / ur["joint"],
        "unique_coarse_cells": u["joint"],
        "reference_unique_coarse_cells": ur["joint"],
        "coarse_bins": int(pv["joint"]["bins"]),
        "coarse_dims": int(pv["joint"].get("dims", len(pv["joint"]["low"]))),
        "saco_coarse_reference": params.get("reference"),
        "saco_coarse_params": params,
    }
    if not exact:
        out["saco_coarse_relative_error"] = HLL_STANDARD_ERROR * math.sqrt(2)
    if dataset.multi_agent:
        per = _per_agent(views, u, ur)
        out["oaco_coarse_per_agent"] = per
        out["oaco_coarse"] = float(np.mean(list(per.values()))) if per else None
    return out


def saco_coarse(dataset, reference, params: dict | None = None, exact: bool = True, **kwargs) -> float:
    """Coarse state-action coverage (see `coarse_coverage`); multi-agent: state ‖ joint action."""
    return float(coarse_coverage(dataset, reference, params, exact, **kwargs)["saco_coarse"])


# ----------------------------------------------------------------------------------------
# Everything together
# ----------------------------------------------------------------------------------------

_SCORE_KEYS = ("behaviour_normalised_score", "normalised_score", "normalized_score", "behaviour_score", "score")


def behaviour_score(metadata: dict[str, Any]) -> float | None:
    """The behaviour policy's normalised score, if the metadata or its recipe records one.

    Looks at the top level, then breadth-first through the recipe (nested dicts, depth <= 3),
    preferring the most specific key name.
    """
    level: list[Any] = [metadata, metadata.get("recipe")]
    for _depth in range(4):
        for key in _SCORE_KEYS:
            for d in level:
                v = d.get(key) if isinstance(d, dict) else None
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    return float(v)
        level = [v for d in level if isinstance(d, dict) for k, v in d.items()
                 if isinstance(v, dict) and k not in ("measures", "manifest", "arrays")]
    return None


def _read_all(dataset, key: str) -> np.ndarray:
    return np.concatenate([c[key] for c in dataset.iter_chunks(keys=(key,))]) if len(dataset) else np.zeros(0)


def profile(dataset, reference=None, random_return: float | None = None, expert_return: float | None = None,
            bins: int = DEFAULT_BINS, exact: bool = True, limits: dict | None = None,
            progress: bool = False, coarse: bool = True, coarse_params: dict | None = None) -> dict[str, Any]:
    """Every measure of one dataset as a JSON-serialisable dict (fit for metadata["measures"]).

    TQ is None when no reference returns are known; SACo (and the coarse SACo, `coarse=True`)
    is None without a reference dataset.
    """
    returns = dataset.episode_returns()
    out: dict[str, Any] = {
        "dataset_id": dataset.dataset_id,
        "env_id": dataset.env_id,
        "tier": dataset.metadata.get("tier"),
        "multi_agent": dataset.multi_agent,
        "num_transitions": len(dataset),
        "num_episodes": dataset.num_episodes,
        "return_stats": return_stats(returns),
        "episode_length_stats": length_stats(dataset.episode_lengths),
        "action_stats": dataset_action_stats(dataset),
        "behaviour_normalised_score": behaviour_score(dataset.metadata),
    }
    try:
        r_rand, r_exp = reference_returns_for(dataset, random_return, expert_return)
        out["reference_returns"] = {"random": r_rand, "expert": r_exp}
        out["tq"] = tq(returns, r_rand, r_exp) if len(returns) else None
    except ReferenceMissingError:
        out["reference_returns"], out["tq"] = None, None
    out["saco"] = None
    if reference is not None:
        out.update(coverage(dataset, reference, bins=bins, limits=limits, exact=exact, progress=progress))
    if coarse:
        out["saco_coarse"] = None
        if reference is not None:
            out.update(coarse_coverage(dataset, reference, coarse_params, exact=exact, progress=progress))
    return out


def record_measures(dataset, reference=None, **kwargs) -> dict[str, Any]:
    """Compute `profile` and store it in the dataset's metadata["measures"] (atomically); the bin limits
    and the coarse SACo parameters are also stored on the reference so later datasets of the env reuse
    them. The (large) coarse parameters live on the reference only; other datasets record its id."""
    from ogdata.storage import update_metadata

    prof = profile(dataset, reference, **kwargs)
    is_ref = reference is not None and _same_dataset(dataset, reference)
    measures = {**dataset.measures, **prof}
    if not is_ref:
        measures.pop("saco_coarse_params", None)
    update_metadata(dataset.path, measures=measures)
    dataset.metadata["measures"] = measures
    if is_ref:
        if reference is not dataset:
            reference.metadata["measures"] = measures
    elif reference is not None:
        add = {}
        if "saco_limits" in prof and "saco_limits" not in reference.measures:
            add["saco_limits"] = prof["saco_limits"]
        if prof.get("saco_coarse_params") is not None and \
                reference.measures.get("saco_coarse_params") != prof["saco_coarse_params"]:
            add["saco_coarse_params"] = prof["saco_coarse_params"]
        if add:
            rm = {**reference.measures, **add}
            update_metadata(reference.path, measures=rm)
            reference.metadata["measures"] = rm
    return prof
