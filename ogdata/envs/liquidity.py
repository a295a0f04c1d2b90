"""Execution parameters calibrated from real daily OHLCV: `ExecutionMarket(calibration="sp500")`.

The execution family's defaults are Almgren & Chriss's (2000) made-up example stock. A named
calibration replaces them with figures measured on a real series, so that shortfall (in bp of the
arrival value) is in the units of that market. Sources: `arch.data.sp500` and `arch.data.nasdaq`
(the S&P 500 and NASDAQ Composite indices; NCSA licence; Yahoo Finance daily OHLC and volume), over
CALIBRATION_WINDOW, the last training year of the real-price trading ids (nothing held out is used).
An index is not a stock: its "volume" is the summed share volume of its members and the spread is
an estimate from daily highs and lows; read the result as a very liquid asset at the index's price.

Rules (Almgren & Chriss's own rules of thumb, section 4, applied to measured inputs):

    price S0        the last close of the window                               ($)
    sigma           std of daily close-to-close changes ΔS                     ($/√day)
    V               mean daily volume (ADV)                                    (shares/day)
    s               mean Corwin–Schultz (2012) high-low spread estimate, as a fraction of price
    half_spread     ε = s·S0 / 2                                                ($)
    eta             trading 1 % of V in a day costs one spread: η = s·S0 / (0.01 V)
    gamma           trading 10 % of V moves the price one spread: γ = s·S0 / (0.1 V)
    shares          X = 0.2 V over 5 days in 20 steps (the example's 1e6 of 5e6 ADV): 4 % participation
    risk_aversion   λ with the example's urgency κT (κ² = λσ²/η̃, η̃ = η − γτ/2), so the AC schedule
                    has the paper's shape and only the market's scale changes
    unsold_penalty  2 % of S0 a share (the example's $1 on $50)

The daily volume profile is summarised (ADV and its 10/50/90 % quantiles, recorded); the intraday
profile is not in daily bars, and the core's impact stays constant in time so the Almgren–Chriss
schedule stays its exact optimum. Regenerate `execution-calibration.json` with
`python -m ogdata.envs.liquidity` (needs the `realdata` extra).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from ogdata.envs.prices import _require
from ogdata.errors import EnvError

EXECUTION_CALIBRATION_FILE = Path(__file__).resolve().with_name("execution-calibration.json")
SOURCES = {"sp500": "arch.data.sp500", "nasdaq": "arch.data.nasdaq"}
CALIBRATION_WINDOW = ("2014-01-01", "2014-12-31")
PARTICIPATION = 0.04  # X / (V · horizon)
HORIZON, STEPS = 5.0, 20
# the Almgren–Chriss example's urgency κ·T: σ = 0.95, η = 2.5e-6, γ = 2.5e-7, λ = 1e-6, τ = 1/4, T = 5
_AC_KAPPA2 = 1e-6 * 0.95 ** 2 / (2.5e-6 - 0.5 * 2.5e-7 * 0.25)


def corwin_schultz(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Corwin & Schultz's (2012) bid-ask spread estimates (fractions of price), one per pair of
    consecutive days, from daily highs and lows; negative estimates are set to 0 (their advice)."""
    hl = np.log(high / low) ** 2
    beta = hl[:-1] + hl[1:]
    gamma = np.log(np.maximum(high[:-1], high[1:]) / np.minimum(low[:-1], low[1:])) ** 2
    k = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    s = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return np.maximum(s, 0.0)


def measure(name: str) -> dict:
    """The calibration of one source from its OHLCV (module docstring); needs `arch`."""
    df = _require(SOURCES[name], f"the {name} OHLCV (execution calibration)").load()
    df = df.loc[CALIBRATION_WINDOW[0]:CALIBRATION_WINDOW[1]]
    close, high, low = (df[c].to_numpy(np.float64) for c in ("Close", "High", "Low"))
    vol = df["Volume"].to_numpy(np.float64)
    s0 = float(close[-1])
    sigma = float(np.diff(close).std(ddof=1))
    adv = float(vol.mean())
    spread = float(corwin_schultz(high, low).mean())
    tau = HORIZON / STEPS
    eta = spread * s0 / (0.01 * adv)
    gamma = spread * s0 / (0.1 * adv)
    lam = _AC_KAPPA2 * (eta - 0.5 * gamma * tau) / sigma ** 2
    q10, q50, q90 = (float(q) for q in np.quantile(vol, [0.1, 0.5, 0.9]))
    return {
        "source": f"{SOURCES[name]}.load()", "window": list(CALIBRATION_WINDOW), "days": int(len(df)),
        "measured": {"price": s0, "sigma_per_sqrt_day": sigma, "sigma_annual_fraction": sigma * math.sqrt(252) / s0,
                     "adv": adv, "volume_q10": q10, "volume_q50": q50, "volume_q90": q90,
                     "spread_fraction": spread, "participation": PARTICIPATION},
        "kwargs": {"shares": PARTICIPATION * adv * HORIZON, "steps": STEPS, "horizon": HORIZON, "price": s0,
                   "sigma": sigma, "eta": eta, "gamma": gamma, "half_spread": 0.5 * spread * s0,
                   "risk_aversion": lam, "unsold_penalty": 0.02 * s0},
    }


@functools.cache
def _committed() -> dict:
    return json.loads(EXECUTION_CALIBRATION_FILE.read_text())


def calibrated_kwargs(name: str) -> dict:
    """The execution kwargs of a named calibration (from the committed file; no extra needed)."""
    cals = _committed()
    if name not in cals:
        raise EnvError(f"unknown execution calibration {name!r}; pass one of {sorted(cals)} (or None for the "
                       "Almgren–Chriss example)")
    return dict(cals[name]["kwargs"])


def main() -> None:
    cals = {name: measure(name) for name in SOURCES}
    EXECUTION_CALIBRATION_FILE.write_text(json.dumps(cals, indent=1, sort_keys=True) + "\n")
    for name, c in cals.items():
        m = c["measured"]
        print(f"{name}: S0 {m['price']:.2f}, σ {m['sigma_per_sqrt_day']:.3f} $/√day ({m['sigma_annual_fraction']:.1%}"
              f" a year), ADV {m['adv']:.3g}, spread {m['spread_fraction']:.4%}")
    print(f"wrote {EXECUTION_CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
