"""The HyperLogLog estimate of a number of distinct rows (`exact=False` in the coverage measures).

For datasets whose unique rows do not fit in memory: 2^14 one-byte registers, standard error
1.04 / sqrt(2^14) ≈ 0.8% per count, so ≈ 1.15% on a SACo ratio (two counts). Small counts switch
to linear counting (the usual correction), which is close to exact there. The exact counter in
`counter.py` feeds this with 64-bit row keys mixed by `fmix64`.
"""

from __future__ import annotations

import math

import numpy as np

HLL_PRECISION = 14
HLL_STANDARD_ERROR = 1.04 / math.sqrt(2**HLL_PRECISION)

_U64 = np.uint64
_C1 = _U64(0xFF51AFD7ED558CCD)
_C2 = _U64(0xC4CEB9FE1A85EC53)
_S33 = _U64(33)


def fmix64(h: np.ndarray, tmp: np.ndarray) -> None:
    """MurmurHash3's 64-bit finaliser, in place (`tmp`: scratch of the same shape)."""
    np.right_shift(h, _S33, out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, _C1, out=h)
    np.right_shift(h, _S33, out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, _C2, out=h)
    np.right_shift(h, _S33, out=tmp)
    np.bitwise_xor(h, tmp, out=h)


class HyperLogLog:
    """HyperLogLog registers over well-mixed 64-bit hashes (the top `precision` bits pick the register)."""

    def __init__(self, precision: int = HLL_PRECISION):
        if not 4 <= int(precision) <= 24:
            raise ValueError(f"HyperLogLog precision must be in [4, 24], got {precision}")
        self.p = int(precision)
        self.registers = np.zeros(1 << self.p, dtype=np.uint8)

    @property
    def standard_error(self) -> float:
        return 1.04 / math.sqrt(len(self.registers))

    def add(self, h: np.ndarray) -> None:
        """Add a block of uint64 hashes."""
        p = self.p
        idx = (h >> _U64(64 - p)).astype(np.intp)
        v = (h << _U64(p)) >> _U64(11)       # the remaining 64-p bits, top-aligned, cut to 53 bits (exact in float64)
        e = np.frexp(v.astype(np.float64))[1]
        rho = np.minimum(54 - e, 64 - p + 1).astype(np.uint8)   # leading zeros + 1
        np.maximum.at(self.registers, idx, rho)

    def estimate(self) -> int:
        """The estimated number of distinct hashes added, rounded."""
        m = float(len(self.registers))
        alpha = 0.7213 / (1 + 1.079 / m)
        est = alpha * m * m / np.ldexp(1.0, -self.registers.astype(np.int64)).sum()
        zeros = int((self.registers == 0).sum())
        if est <= 2.5 * m and zeros:
            est = m * math.log(m / zeros)
        return int(round(est))
