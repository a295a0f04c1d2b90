"""Integer draws by inversion of tabulated CDFs: the order book's counts from one uniform each.

Why: numpy's per-element binomial and Poisson samplers cost ~60 ns a draw and were 3/4 of an
order-book step (`scripts/bench_lob.py`). Every count the book draws has a rate from a small set
(a level's cancellation probability and its queue size, a level's arrival rate, the market-order
rate), so its CDF can be tabulated once and each draw is a table look-up on one uniform 64-bit
integer v (numpy's `Generator.integers` over the full uint64 range: one PCG64 output each).

The rule (inversion): for a row r with CDF F_r, thresholds C[r, k] = floor(F_r(k) · 2^64) (capped at
2^64 − 1) and X = #{k : C[r, k] <= v}, clamped to the row's support. Then P(X <= k) = P(v < C[r, k])
= C[r, k] / 2^64: the tabulated float64 CDF to within 2^-64, every draw exact for it (no
approximation beyond float64 arithmetic in the table; a Poisson row stops where its float64 CDF
rounds to 1, a tail below 1e-16). A guide table (Chen & Asau 1974, "On generating random variates
from an empirical distribution", AIIE Transactions 6(2)) of 2^BITS buckets of v per row holds X
wherever no threshold falls inside the bucket, so nearly every draw is one gather; the rare draws
in an ambiguous bucket count their row's thresholds directly. `draw` (vectorised) and `draw_one`
(scalar, for the sequential oracle) give the same X for the same (row, v), so the oracle replays
the book's path exactly. tests/test_env_lob.py checks the draws against the binomial and Poisson
laws (chi-square goodness of fit, fixed seed).
"""

from __future__ import annotations

import math

import numpy as np

BITS = 12                       # guide buckets per row: 2^BITS
_SHIFT = 64 - BITS
AMBIGUOUS = np.uint16(0xFFFF)   # a guide entry whose bucket holds a threshold: search the row
_TOP = np.uint64(2**64 - 1)


def binomial_cdf(n: int, p: float) -> np.ndarray:
    """CDF of Binomial(n, p) at 0..n (float64; the last value exactly 1), from log-gamma pmfs."""
    n = int(n)
    if n == 0 or p <= 0.0:
        return np.ones(n + 1)
    if p >= 1.0:
        out = np.zeros(n + 1)
        out[-1] = 1.0
        return out
    lp, lq, lg = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    pmf = [math.exp(lg - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq) for k in range(n + 1)]
    cdf = np.minimum(np.cumsum(pmf), 1.0)
    cdf[-1] = 1.0
    return cdf


def poisson_cdf(rate: float) -> np.ndarray:
    """CDF of Poisson(rate) at 0..N, N the first count past the mode where the float64 CDF is 1."""
    rate = float(rate)
    if rate <= 0.0:
        return np.ones(1)
    lr, pmf, k = math.log(rate), [], 0
    while True:
        pmf.append(math.exp(-rate + k * lr - math.lgamma(k + 1)))
        if k > rate and (pmf[-1] < 1e-18 or math.fsum(pmf) >= 1.0):
            break
        k += 1
    cdf = np.minimum(np.cumsum(pmf), 1.0)
    cdf[-1] = 1.0
    return cdf


def thresholds(cdf: np.ndarray) -> np.ndarray:
    """floor(F · 2^64) as uint64, capped at 2^64 − 1 (F = 1 and values within 2^-64 of it)."""
    x = np.asarray(cdf, dtype=np.float64) * 2.0**64
    out = np.full(x.shape, _TOP, dtype=np.uint64)
    ok = x < 2.0**64
    out[ok] = x[ok].astype(np.uint64)          # float64 values >= 2^53 are integers: exact
    return out


class InverseCDF:
    """Rows of tabulated CDFs; `draw(rows, v)` inverts them (module docstring)."""

    def __init__(self, cdfs: list[np.ndarray]):
        R, N = len(cdfs), max(len(c) for c in cdfs)
        if N >= int(AMBIGUOUS):
            raise ValueError(f"a CDF row of {N} values is too long for 16-bit guide entries")
        C = np.full((R, N), _TOP, dtype=np.uint64)
        last = np.empty(R, dtype=np.int64)
        guide = np.empty((R, 1 << BITS), dtype=np.uint16)
        lo = np.arange(1 << BITS, dtype=np.uint64) << np.uint64(_SHIFT)
        hi = lo + np.uint64((1 << _SHIFT) - 1)
        for r, F in enumerate(cdfs):
            C[r, :len(F)] = thresholds(F)
            last[r] = len(F) - 1
            x_lo = np.searchsorted(C[r], lo, side="right")
            x_hi = np.searchsorted(C[r], hi, side="right")
            guide[r] = np.where(x_lo == x_hi, x_lo, int(AMBIGUOUS))
        self.C, self.last, self.rows = C, last, R
        self._guide = guide.ravel()

    def draw(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        """X (int64, the shape of rows) for int64 row indices and uint64 uniforms of the same shape."""
        return self.draw_keyed(np.left_shift(rows, BITS), v)

    def draw_keyed(self, keys: np.ndarray, v: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
        """`draw` with the rows given as keys = row << BITS (int64, C-contiguous) and an optional uint64
        scratch array of their shape: what the book's step calls, with no large temporaries."""
        idx = np.right_shift(v, np.uint64(_SHIFT), out=scratch).view(np.int64)
        idx |= keys
        x = self._guide.take(idx)
        out = x.astype(np.int64)
        amb = np.flatnonzero(x == AMBIGUOUS)
        if amb.size:
            at = np.unravel_index(amb, keys.shape)
            r, vv = keys[at] >> BITS, v[at]
            cnt = (self.C[r] <= vv[:, None]).sum(axis=1)
            out[at] = np.minimum(cnt, self.last[r])
        return out

    def draw_one(self, row: int, v: int) -> int:
        """The same X for one (row, v): what the sequential oracle calls."""
        x = int(self._guide[(int(row) << BITS) | (int(v) >> _SHIFT)])
        if x != int(AMBIGUOUS):
            return x
        return min(int(np.searchsorted(self.C[row], np.uint64(v), side="right")), int(self.last[row]))


def unit(v: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) from uint64 uniforms: the top 53 bits / 2^53 (numpy's own rule)."""
    return (v >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def poisson_inverse(rate: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Poisson(rate) by sequential inversion for rates that are not tabulated (Hawkes intensities):
    X = #{k : F_rate(k) <= u}, u = unit(v), the CDF summed term by term. Elementwise, so a book
    and the oracle calling it on arrays of the same shape get the same X."""
    u = unit(v)
    rate = np.asarray(rate, dtype=np.float64)
    pmf = np.exp(-rate)
    F = pmf.copy()
    x = np.zeros(rate.shape, dtype=np.int64)
    more = F <= u
    k = 0
    while more.any() and k < 10_000:
        k += 1
        pmf = np.where(more, pmf * rate / k, pmf)
        F = np.where(more, F + pmf, F)
        x += more
        more &= F <= u
        more &= pmf > 0.0
    return x
