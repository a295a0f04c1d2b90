"""Model parameters of the option-exercise and stat-arb envs, fitted to real data that PyPI packages ship.

The envs themselves are synthetic and need no extra: the fit ships as `model-fits.json` beside this
module, and `python -m ogdata.envs.model_fits` re-derives it (needs the `realdata` extra, no network):

- `rate`: the risk-free rate, the mean of 12·log(1 + RF) over the monthly one-month T-bill returns RF
  of the Fama–French file in `arch.data.frenchdata`, on the S&P 500 index's training years 1999–2014
  (≈ 2.0 % a year; continuously compounded).
- `sigma`: the S&P 500 index's volatility, the sample std of its daily log returns (`arch.data.sp500`,
  the same training years as `trading-sp500`) times √252 (≈ 20 % a year).
- `heston` (κ, θ, ξ, ρ): the variance dynamics fitted to the VIX of `arch.data.vix` (the only VIX
  arch ships: 2014-01-03 → 2019-01-03, daily). VIX² is taken as the spot variance v (a risk-neutral
  variance, as a pricing model wants, though it is the 30-day expectation, not the spot); κ, θ, ξ
  from the Euler regression of the square-root process, (v' − v)/√v = κθΔ/√v − κΔ√v + ξ√Δ ε;
  ρ = the correlation of the index's daily log return with the day's change in VIX².
- `ou` (θ, μ, σ): an Ornstein–Uhlenbeck process for the Brent − WTI spread ($/bbl) of
  `arch.data.crude` (monthly, 1987-05 → 2014-12; 2015–2020 are left out, as held-out years):
  the exact AR(1) discretisation x' = μ + φ(x − μ) + e fitted by least squares, θ = −log φ / Δ,
  σ = sd(e)·√(2θ / (1 − φ²)). The fit spans the 2011–2013 dislocation of the spread (up to
  $27), so its mean reversion is slow: a half-life of about 16 months.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

FITS_FILE = Path(__file__).resolve().with_name("model-fits.json")
TRAIN = ("1999-01-01", "2014-12-31")       # the S&P 500 index's training years (prices.PERIODS)
CRUDE_TRAIN = ("1987-01-01", "2014-12-31")  # every month of arch's crude file up to the same end
TRADING_DAYS = 252


@functools.cache
def model_fits() -> dict:
    """The committed fit (what the envs read; no extra needed)."""
    return json.loads(FITS_FILE.read_text())


def _load(module: str, what: str):
    from ogdata.envs.prices import _require

    return _require(module, what).load()


def _months(index) -> np.ndarray:
    """YYYYMM of a monthly index. arch's Fama–French loader parses the file's YYYYMM integers as
    nanoseconds since 1970 (pandas reads the number as a timestamp), so those are decoded back."""
    if getattr(index, "dtype", None) is not None and index.dtype.kind == "M" and index.year.max() == 1970:
        return np.asarray(index.astype("int64"))
    return np.asarray(index.year * 100 + index.month)


def risk_free_rate() -> dict:
    ff = _load("arch.data.frenchdata", "the Fama–French risk-free rate (model fits)")
    ym = _months(ff.index)
    lo, hi = (int(d[:4]) * 100 + int(d[5:7]) for d in TRAIN)
    rf = ff["RF"].to_numpy(dtype=np.float64)[(ym >= lo) & (ym <= hi)] / 100.0
    return {"rate": float(12.0 * np.mean(np.log1p(rf))), "months": int(len(rf)), "period": list(TRAIN),
            "source": "arch.data.frenchdata.load()['RF'] (monthly %, one-month T-bill)"}


def sp500_volatility() -> dict:
    from ogdata.envs.prices import period_rows, sp500_index

    hist = sp500_index()
    i0, i1, d0, d1 = period_rows(hist, "train")
    lr = np.diff(np.log(hist.prices[i0:i1 + 1, 0]))
    return {"sigma": float(lr.std(ddof=1) * math.sqrt(TRADING_DAYS)), "returns": int(len(lr)), "period": [d0, d1],
            "source": "arch.data.sp500.load()['Adj Close']"}


def heston_from_vix() -> dict:
    import pandas as pd

    vix = _load("arch.data.vix", "the VIX (model fits)")["vix"].dropna()
    spx = _load("arch.data.sp500", "the S&P 500 index (model fits)")["Adj Close"]
    v = (vix.to_numpy(dtype=np.float64) / 100.0) ** 2
    dt = 1.0 / TRADING_DAYS
    y = np.diff(v) / np.sqrt(v[:-1])
    X = np.stack([1.0 / np.sqrt(v[:-1]), np.sqrt(v[:-1])], axis=1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    res = y - X @ coef
    kappa = -coef[1] / dt
    theta = coef[0] / (kappa * dt)
    xi = res.std(ddof=2) / math.sqrt(dt)
    both = pd.concat([np.log(spx).diff().rename("r"), (vix / 100.0).pow(2).diff().rename("dv")], axis=1).dropna()
    rho = float(np.corrcoef(both["r"], both["dv"])[0, 1])
    return {"kappa": float(kappa), "theta": float(theta), "xi": float(xi), "rho": rho, "days": int(len(v)),
            "pairs_for_rho": int(len(both)), "period": [str(vix.index[0])[:10], str(vix.index[-1])[:10]],
            "feller_ratio": float(2 * kappa * theta / xi ** 2),
            "source": "arch.data.vix.load()['vix'] squared; rho with arch.data.sp500 daily log returns"}


def ou_from_crude() -> dict:
    crude = _load("arch.data.crude", "the Brent and WTI prices (model fits)")
    s = (crude["Brent"] - crude["WTI"]).loc[CRUDE_TRAIN[0]:CRUDE_TRAIN[1]].dropna()
    x = s.to_numpy(dtype=np.float64)
    dt = 1.0 / 12.0
    phi, c = np.polyfit(x[:-1], x[1:], 1)
    e = x[1:] - (phi * x[:-1] + c)
    sd = float(e.std(ddof=2))
    theta = -math.log(phi) / dt
    return {"theta": float(theta), "mu": float(c / (1.0 - phi)), "sigma": sd * math.sqrt(2 * theta / (1 - phi ** 2)),
            "phi": float(phi), "residual_sd": sd, "dt": dt, "months": int(len(x)),
            "period": [str(s.index[0])[:10], str(s.index[-1])[:10]], "half_life_months": float(math.log(2) / -math.log(phi)),
            "source": "arch.data.crude.load(): Brent − WTI, $/bbl, monthly"}


def fit() -> dict:
    return {"rate": risk_free_rate(), "sp500": sp500_volatility(), "heston": heston_from_vix(),
            "ou": ou_from_crude()}


def main() -> None:
    out = fit()
    FITS_FILE.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    h, o = out["heston"], out["ou"]
    print(f"r = {out['rate']['rate']:.5f}, sigma = {out['sp500']['sigma']:.5f}; Heston kappa {h['kappa']:.3f} "
          f"theta {h['theta']:.5f} xi {h['xi']:.4f} rho {h['rho']:.4f}; OU theta {o['theta']:.4f} mu {o['mu']:.4f} "
          f"sigma {o['sigma']:.4f} (half-life {o['half_life_months']:.1f} months)")
    print(f"wrote {FITS_FILE}")


if __name__ == "__main__":
    main()
