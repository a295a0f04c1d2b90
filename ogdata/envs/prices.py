"""Price sources for the portfolio and trading envs, and the per-market return paths the cores index.

Real prices come only from files their packages ship (the `ogdata[realdata]` extra, imported
or located lazily, no network). Each universe, its source, licence, span and known biases:

- "sp500": the 20 stocks of `skfolio.datasets.load_sp500_dataset()` (BSD-3; the data marked for
  examples, not commercial use), daily adjusted closes (dividends reinvested), 1990-01-02 →
  2022-12-28. Survivorship: 20 large caps picked with hindsight (still listed and large in 2022),
  so any long-only policy looks better than it could have been in real time.
- "sp500-index": the S&P 500 index of `arch.data.sp500.load()` (NCSA licence; Yahoo Finance),
  daily, 1999-01-04 → 2018-12-31; "Adj Close" of an index is its price level: price only, no
  dividends (about 2 % a year missing), and the index itself is survivorship-free by construction.
- "ff": the Fama–French 3 factors + risk-free rate of `arch.data.frenchdata.load()` (the CSV is
  read from the arch package; Kenneth French's data library), monthly, 1926-07 → 2018-11, in
  percent. Mkt-RF, SMB and HML are *excess* (long-short) returns of value-weighted portfolios of
  all CRSP stocks (no survivorship: delisted firms stay in), before any trading costs; RF is the
  one-month T-bill rate. Each factor i becomes an asset whose simple return is RF + F_i (the factor
  held on T-bill collateral) and cash earns RF, so risky weights w give the portfolio return
  r_p = RF + Σ w_i F_i whatever the cash weight (see `portfolio.py`).
- "wti": West Texas Intermediate spot crude, $/barrel (`arch.data.wti`, FRED series DCOILWTICO),
  daily, 1986-01-02 → 2019-01-03, missing days dropped. A spot price, not a tradable total return:
  futures roll yield and storage are absent.
- "eurusd": gym-anytrading's FOREX_EURUSD_1H_ASK (MIT), hourly ask bars of EUR/USD, 2017-01-01 22:00
  → 2017-12-29 21:00, 6,225 bars (Close is used; the file is read from the installed package, not
  through its loader, which guesses the day-first dates). Small: one year, one trending regime
  (the euro rose 14 %); weekends are single steps; ask prices only (the spread is a cost kwarg).

Synthetic prices need no extra: their models are calibrated on the *training* years of the
real data (never the evaluation years) and the calibration ships as `calibration.json`
beside this module. Two models:

- "gbm": correlated geometric Brownian motion; daily log returns iid N(μ, Σ) with the
  sample mean and covariance of the training-years log returns.
- "regime": a two-state Gaussian hidden Markov model (a calm and a turbulent regime, each
  with its own μ_k and Σ_k, and a Markov transition matrix) fitted to the same returns by
  EM (Baum–Welch). Paths start in the stationary distribution of the regime chain.

Regenerate the calibration with `python -m ogdata.envs.prices` (needs the extra).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ogdata.envs.registry import env_spec
from ogdata.errors import EnvError, MissingExtraError, closest

REALDATA_HINT = "pip install ogdata[realdata]"
CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"

# Each observation feature is a daily log return in percent (×100), so features are O(1);
# clipped to ±FEATURE_BOUND (a factor e^10 in a day: only a data error gets there), which
# gives the observation space finite bounds.
FEATURE_SCALE = 100.0
FEATURE_BOUND = 1000.0

# Named periods per universe (inclusive calendar dates). "eval" is the held-out period.
# A price dated d belongs to the period holding d; the one return that spans two periods is in neither.
PERIODS: dict[str, dict[str, tuple[str, str]]] = {
    "sp500": {"train": ("1990-01-01", "2014-12-31"), "eval": ("2015-01-01", "2022-12-31")},
    "sp500-index": {"train": ("1999-01-01", "2014-12-31"), "eval": ("2015-01-01", "2018-12-31")},
    # 1926-07 → 1989-12 (762 months) and 1990-02 → 2018-11 (347 months; January 1990 spans the boundary):
    # the conventional pre-/post-1990 split of the factor-timing literature, 70/30 of the months
    "ff": {"train": ("1926-01-01", "1989-12-31"), "eval": ("1990-01-01", "2018-12-31")},
    # 26 years to learn on (the 1986 crash, the 1990 and 2008 spikes), 7 held out (the 2014–16 collapse)
    "wti": {"train": ("1986-01-01", "2011-12-31"), "eval": ("2012-01-01", "2019-12-31")},
    # ten months to learn on, the last two held out (about 1,040 hours): the only year there is
    "eurusd": {"train": ("2017-01-01", "2017-10-31"), "eval": ("2017-11-01", "2017-12-31")},
}
# the package each universe's data ships in (tests skip an id whose package is missing)
PACKAGES = {"sp500": "skfolio", "sp500-index": "arch", "ff": "arch", "wti": "arch", "eurusd": "gym_anytrading"}


def real_package(env_id: str) -> str:
    """The package a real-price id's data ships in (tests skip an id whose package is missing)."""
    kw = env_spec(env_id).kwargs
    return PACKAGES[kw.get("universe", "sp500" if "portfolio" in env_spec(env_id).core else "sp500-index")]
SYNTHETIC = ("gbm", "regime")


# -- real prices ------------------------------------------------------------------------
@dataclass(frozen=True)
class PriceHistory:
    """Prices of one universe: dates (T,) datetime64 (days; minutes for intraday), prices (T, N)
    float64 > 0, and `cash` (T,), the value of one unit of cash (None: cash earns nothing)."""

    universe: str
    names: tuple[str, ...]
    dates: np.ndarray
    prices: np.ndarray
    cash: np.ndarray | None = None


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{what} needs the `{module.split('.')[0]}` package, which is not "
                                f"installed ({e}); run `{REALDATA_HINT}`, or use a synthetic id "
                                "(portfolio-synth, trading-synth), which needs no extra") from None


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@functools.cache
def sp500_stocks() -> PriceHistory:
    """The 20 stocks of skfolio's `load_sp500_dataset()` (cached per process)."""
    ds = _require("skfolio.datasets", "the S&P 500 stock prices (portfolio-sp500)")
    df = ds.load_sp500_dataset()
    return PriceHistory("sp500", tuple(str(c) for c in df.columns),
                        _frozen(df.index.to_numpy().astype("datetime64[D]")),
                        _frozen(df.to_numpy(dtype=np.float64)))


@functools.cache
def sp500_index() -> PriceHistory:
    """The S&P 500 index of `arch.data.sp500.load()`, adjusted close (cached per process)."""
    mod = _require("arch.data.sp500", "the S&P 500 index prices (trading-sp500)")
    df = mod.load()
    return PriceHistory("sp500-index", ("SP500",), _frozen(df.index.to_numpy().astype("datetime64[D]")),
                        _frozen(df["Adj Close"].to_numpy(dtype=np.float64)[:, None]))


def _package_file(package: str, name: str, what: str) -> Path:
    """A data file inside an installed package, located without importing it (importing
    gym_anytrading registers its own Gymnasium envs and parses both of its CSVs)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        _require(package, what)  # raises MissingExtraError with the install hint
    path = Path(list(spec.submodule_search_locations)[0]) / name
    if not path.is_file():
        raise MissingExtraError(f"{what}: {path} is missing from the installed {package}; reinstall it "
                                f"(`{REALDATA_HINT}`)")
    return path


@functools.cache
def ff_factors() -> PriceHistory:
    """The Fama–French factors as three assets on T-bill collateral plus cash earning RF (monthly).

    Prices are the cumulated simple returns 1 + (RF + F_i)/100, dated at month ends, from 1.0 on
    1926-06-30; cash cumulates 1 + RF/100 (cached per process)."""
    import pandas as pd

    _require("arch.data.frenchdata", "the Fama–French factors (portfolio-ff)")
    df = pd.read_csv(_package_file("arch", "data/frenchdata/frenchdata.csv.gz", "portfolio-ff"))
    months = pd.to_datetime(df["Date"].astype(str), format="%Y%m").to_numpy().astype("datetime64[M]")
    ends = (np.concatenate([months[:1] - 1, months]) + 1).astype("datetime64[D]") - 1
    f = df[["Mkt-RF", "SMB", "HML"]].to_numpy(np.float64) / 100.0
    rf = df["RF"].to_numpy(np.float64) / 100.0
    prices = np.vstack([np.ones((1, 3)), np.cumprod(1.0 + rf[:, None] + f, axis=0)])
    cash = np.concatenate([[1.0], np.cumprod(1.0 + rf)])
    return PriceHistory("ff", ("Mkt-RF", "SMB", "HML"), _frozen(ends), _frozen(prices), _frozen(cash))


@functools.cache
def wti() -> PriceHistory:
    """WTI spot crude of `arch.data.wti.load()` (daily; days without a price dropped; cached per process)."""
    mod = _require("arch.data.wti", "the WTI crude prices (trading-wti)")
    s = mod.load()["DCOILWTICO"].dropna()
    return PriceHistory("wti", ("WTI",), _frozen(s.index.to_numpy().astype("datetime64[D]")),
                        _frozen(s.to_numpy(dtype=np.float64)[:, None]))


@functools.cache
def eurusd() -> PriceHistory:
    """EUR/USD hourly ask closes of gym-anytrading's FOREX_EURUSD_1H_ASK (cached per process)."""
    import pandas as pd

    df = pd.read_csv(_package_file("gym_anytrading", "datasets/data/FOREX_EURUSD_1H_ASK.csv",
                                   "the EUR/USD hourly prices (trading-eurusd)"))
    t = pd.to_datetime(df["Time"], format="%d.%m.%Y %H:%M:%S.%f").to_numpy().astype("datetime64[m]")
    return PriceHistory("eurusd", ("EURUSD",), _frozen(t), _frozen(df["Close"].to_numpy(np.float64)[:, None]))


UNIVERSES = {"sp500": sp500_stocks, "sp500-index": sp500_index}  # the calibrated ones (calibration.json)
LOADERS = {**UNIVERSES, "ff": ff_factors, "wti": wti, "eurusd": eurusd}  # every real universe


def excess_log_returns(universe: str, assets=None, period: str = "train") -> np.ndarray:
    """(T, N) per-step log returns of a real universe's assets in excess of its cash over `period`
    (the training period by default: what a policy may be fitted on)."""
    hist = LOADERS[universe]()
    cols = select_assets(hist.names, assets)
    i0, i1, _, _ = period_rows(hist, period)
    lr = np.diff(np.log(hist.prices[i0:i1 + 1][:, cols]), axis=0)
    if hist.cash is not None:
        lr = lr - np.diff(np.log(hist.cash[i0:i1 + 1]))[:, None]
    return lr


def select_assets(names: tuple[str, ...], assets) -> np.ndarray:
    """Column indices of `assets` (None: all) in `names`; EnvError naming an unknown asset."""
    if assets is None:
        return np.arange(len(names))
    if isinstance(assets, str):
        assets = (assets,)
    assets = tuple(assets)
    if not assets:
        raise EnvError(f"assets is empty; pass a non-empty subset of {list(names)} (or None for all)")
    idx = []
    for a in assets:
        if a not in names:
            raise EnvError(f"unknown asset {a!r}.{closest(str(a), names)} Available: {list(names)}")
        idx.append(names.index(a))
    if len(set(idx)) != len(idx):
        raise EnvError(f"assets {list(assets)} contains duplicates")
    return np.asarray(idx)


def _date(s, what: str) -> np.datetime64:
    try:
        return np.datetime64(str(s), "D")
    except ValueError:
        raise EnvError(f"{what}={s!r} is not a date; pass 'YYYY-MM-DD'") from None


def period_rows(hist: PriceHistory, period: str, start=None, end=None) -> tuple[int, int, str, str]:
    """Row range [i0, i1] (inclusive) of the period in `hist`, and its start/end dates.

    `period` names one of PERIODS[universe] ("train", "eval"); explicit `start` / `end`
    ('YYYY-MM-DD') override its bounds and must lie within the data.
    """
    named = PERIODS[hist.universe]
    if period not in named:
        raise EnvError(f"unknown period {period!r}; pass one of {sorted(named)} or explicit start/end dates")
    first, last = hist.dates[0].astype("datetime64[D]"), hist.dates[-1].astype("datetime64[D]")
    lo = _date(named[period][0], "period start") if start is None else _date(start, "start")
    hi = _date(named[period][1], "period end") if end is None else _date(end, "end")
    for given, d in (("start", start), ("end", end)):
        if d is not None and not (first <= _date(d, given) <= last):
            raise EnvError(f"{given}={d!r} is outside the {hist.universe} data ({first} → {last}); "
                           "pass a date within it")
    if lo > hi:
        raise EnvError(f"start {lo} is after end {hi}" + ("" if start is not None and end is not None else
                       f" (the {period!r} period runs {named[period][0]} → {named[period][1]}; pass both "
                       "start= and end=, or another period)"))
    unit = hist.dates.dtype  # whole days: an intraday end date takes every bar of that day
    i0 = int(np.searchsorted(hist.dates, lo.astype(unit), side="left"))
    i1 = int(np.searchsorted(hist.dates, (hi + 1).astype(unit), side="left")) - 1
    return i0, i1, str(lo), str(hi)


# -- synthetic prices -------------------------------------------------------------------
@functools.cache
def calibration() -> dict:
    """The committed calibration (moments and regime model per universe)."""
    return json.loads(CALIBRATION_FILE.read_text())


class SyntheticModel:
    """Gaussian daily log returns, iid ("gbm") or driven by a 2-state Markov regime ("regime")."""

    def __init__(self, kind: str, universe: str, assets=None):
        if kind not in SYNTHETIC:
            raise EnvError(f"unknown synthetic model {kind!r}; pass one of {list(SYNTHETIC)}")
        cal = calibration()[universe]
        self.kind = kind
        names = tuple(cal["names"])
        cols = select_assets(names, assets)
        self.names = tuple(names[i] for i in cols)
        block = cal[kind]
        mean = np.asarray(block["mean"], dtype=np.float64)
        cov = np.asarray(block["cov"], dtype=np.float64)
        if kind == "gbm":
            mean, cov = mean[None], cov[None]
            self.transition = np.ones((1, 1))
            self.stationary = np.ones(1)
        else:
            self.transition = np.asarray(block["transition"], dtype=np.float64)
            self.stationary = np.asarray(block["stationary"], dtype=np.float64)
        self.mean = mean[:, cols]  # (K, N)
        cov = cov[:, cols][:, :, cols]
        self.chol = np.linalg.cholesky(cov)  # (K, N, N)

    def regimes(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """(n, length) regime labels of a stationary Markov chain, drawn without a time loop.

        Sojourn lengths are geometric with the leave probability of their regime; the
        regimes alternate (K = 2), so the label at t is the parity of the sojourns ended by t.
        """
        if len(self.stationary) == 1:
            return np.zeros((n, length), dtype=np.int64)
        s0 = (rng.random(n) < self.stationary[1]).astype(np.int64)
        leave = np.array([self.transition[0, 1], self.transition[1, 0]])
        seq = (s0[:, None] + np.arange(length)) % 2
        ends = np.cumsum(rng.geometric(leave[seq]), axis=1)  # end (exclusive) of each sojourn
        switch = np.zeros((n, length + 1), dtype=np.int64)
        rows, cols = np.nonzero(ends < length)
        switch[rows, ends[rows, cols]] = 1
        return (s0[:, None] + np.cumsum(switch[:, :length], axis=1)) % 2

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """(n, length, N) daily log returns, float32 (the synthetic market is defined by them).

        Drawing the normals is most of the cost of a fresh path (N per market-day), so they
        are drawn in float32; both regimes' transforms are computed and the chain picks one.
        """
        z = rng.standard_normal((n, length, len(self.names)), dtype=np.float32)
        chol, mean = self.chol.astype(np.float32), self.mean.astype(np.float32)
        out = z @ chol[0].T
        out += mean[0]
        if len(mean) == 1:
            return out
        turbulent = (self.regimes(rng, n, length) == 1)[..., None]
        alt = z @ chol[1].T
        alt += mean[1]
        return np.where(turbulent, alt, out)


# -- the per-market paths a core indexes --------------------------------------------------
class ReturnPaths:
    """Log-return rows the cores index as `start + t`, shared by the portfolio and trading cores.

    Row k holds the return from day k to day k+1: `gross[k]` (M, N+1) the gross simple
    returns P_{k+1}/P_k with a last column for cash (1.0, or the universe's cash rate), and `features[k]` (M, N) the log
    returns in percent. `windows[k]` (a strided view, no copy) is the window of the
    `window` rows ending at row k inclusive, flattened time-major, oldest first. A market at
    row d observes `windows[d - 1]` (returns up to day d, nothing later), earns `gross[d]`
    and then observes `windows[d]`.

    Real prices: one history shared by every market; each reset draws a start row uniformly
    among those whose whole episode lies inside the period (the observation window may
    reach back before the period start: the past is known). Synthetic prices: market b
    owns the block of rows [b·L, (b+1)·L), L = window + n_steps, redrawn at each reset.
    """

    def __init__(self, num_envs: int, *, source: str, universe: str, n_steps: int, window: int,
                 assets=None, period: str = "train", start=None, end=None, prices=None):
        self.num_envs, self.n_steps, self.window = num_envs, n_steps, window
        self.synthetic = prices is None and source in SYNTHETIC
        if prices is not None:
            self._custom(np.asarray(prices, dtype=np.float64), assets, period, start, end)
        elif self.synthetic:
            if start is not None or end is not None or period != "train":
                raise EnvError(f"synthetic prices ({source!r}) have no dates; drop period/start/end "
                               "(every reset draws fresh paths)")
            self.model = SyntheticModel(source, universe, assets)
            self.names = self.model.names
            self.dates = None
            L = window + n_steps
            self.block = L
            self._alloc(num_envs * L)
            self.start = np.arange(num_envs, dtype=np.int64) * L + window
            self.lo = self.hi = None
            self.period = None
        elif source == "real":
            if universe not in LOADERS:
                raise EnvError(f"unknown universe {universe!r}; pass one of {sorted(LOADERS)}")
            hist = LOADERS[universe]()
            cols = select_assets(hist.names, assets)
            i0, i1, d0, d1 = period_rows(hist, period, start, end)
            lo = max(0, i0 - window)
            p = hist.prices[lo:i1 + 1][:, cols]
            self.names = tuple(hist.names[i] for i in cols)
            self.dates = hist.dates[lo:i1 + 1]
            self.period = (d0, d1)
            cash = None if hist.cash is None else hist.cash[lo:i1 + 1]
            self._fixed(p, first=i0 - lo, where=f"{hist.universe} {d0} → {d1}", cash=cash)
        else:
            raise EnvError(f"unknown price source {source!r}; pass 'real' or one of {list(SYNTHETIC)}")

    def _custom(self, p, assets, period, start, end):
        if p.ndim == 1:
            p = p[:, None]
        if p.ndim != 2 or not np.isfinite(p).all() or (p <= 0).any():
            raise EnvError("prices must be a finite, positive (T, N) array")
        if start is not None or end is not None or period != "train":
            raise EnvError("custom prices have no dates; drop period/start/end")
        names = tuple(f"asset{i}" for i in range(p.shape[1]))
        cols = select_assets(names, assets)
        self.names = tuple(names[i] for i in cols)
        self.dates = None
        self.period = None
        self._fixed(p[:, cols], first=0, where="the given prices")

    def _alloc(self, rows: int):
        n, w = len(self.names), self.window
        self.gross = np.ones((rows, n + 1), dtype=np.float64)
        buf = np.zeros((rows + w - 1, n), dtype=np.float32)  # w-1 leading rows: never observed
        self.features = buf[w - 1:]
        self.windows = sliding_window_view(buf.reshape(-1), w * n)[::n]

    def _fixed(self, p: np.ndarray, first: int, where: str, cash: np.ndarray | None = None):
        lr = np.diff(np.log(p), axis=0)
        self._alloc(len(lr))
        self.gross[:, :-1] = np.exp(lr)
        if cash is not None:  # cash earns its rate (the factors' RF); otherwise nothing
            self.gross[:, -1] = cash[1:] / cash[:-1]
        self.features[:] = np.clip(lr * FEATURE_SCALE, -FEATURE_BOUND, FEATURE_BOUND)
        self.gross.setflags(write=False)
        self.features.setflags(write=False)
        self.features.base.setflags(write=False)
        self.lo = max(self.window, first)
        self.hi = len(lr) - self.n_steps
        if self.hi < self.lo:
            raise EnvError(f"{where} has {len(lr) - first} daily returns, too few for episodes of "
                           f"n_steps={self.n_steps} with window={self.window}; shorten n_steps or "
                           "widen the period")
        self.start = np.full(self.num_envs, self.lo, dtype=np.int64)

    pinned: np.ndarray | None = None  # (num_envs,) start rows every reset uses (real prices only)

    def pin_starts(self, rows) -> None:
        """Make every later reset start market b at row `rows[b]` (fixed evaluation markets,
        `ogdata.envs.markets`); rows must be valid start rows of the period, one per market."""
        if self.synthetic:
            raise EnvError("synthetic paths have no start dates to pin; fix the reset seed instead")
        r = np.asarray(rows)
        if r.shape != (self.num_envs,) or r.dtype.kind not in "iu":
            raise EnvError(f"pin_starts needs {self.num_envs} integer start rows (one per market), got "
                           f"shape {r.shape} of dtype {r.dtype}")
        if len(r) and (r.min() < self.lo or r.max() > self.hi):
            raise EnvError(f"start rows must lie in [{self.lo}, {self.hi}] (whole episodes inside the period), "
                           f"got {int(r.min())}..{int(r.max())}")
        self.pinned = r.astype(np.int64)

    def padded_windows(self, extra: int) -> np.ndarray | None:
        """(M, window·N + extra) float32, row k = windows[k] then `extra` zeros: for a fixed history
        one row gather then builds a whole observation (about 25 % faster than a concatenate at
        B=1024). None for synthetic paths, where a table per market would be too large."""
        if self.synthetic:
            return None
        k = self.windows.shape[1]
        table = np.zeros((len(self.windows), k + extra), dtype=np.float32)
        table[:, :k] = self.windows
        table.setflags(write=False)
        return table

    @property
    def num_starts(self) -> int | None:
        """How many distinct start dates a real-price episode can have (None for synthetic)."""
        return None if self.synthetic else self.hi - self.lo + 1

    def reset(self, rng: np.random.Generator, mask: np.ndarray) -> None:
        """New paths (synthetic) or new start dates (real) for the markets in `mask`."""
        k = int(mask.sum())
        if k == 0:
            return
        if not self.synthetic:
            self.start[mask] = rng.integers(self.lo, self.hi + 1, size=k)
            if self.pinned is not None:  # fixed evaluation markets: the same start rows at every reset
                self.start[mask] = self.pinned[mask]
            return
        L, n = self.block, len(self.names)
        gross = self.gross.reshape(self.num_envs, L, n + 1)
        feats = self.features.reshape(self.num_envs, L, n)
        which = np.flatnonzero(mask)
        for i in range(0, k, 256):  # chunks of markets bound the temporaries (~40 MB)
            b = which[i:i + 256]
            lr = self.model.sample(rng, len(b), L)
            gross[b, :, :n] = np.exp(lr, dtype=np.float64)
            feats[b] = np.clip(lr * FEATURE_SCALE, -FEATURE_BOUND, FEATURE_BOUND)


# -- calibration (offline; needs the extra) -------------------------------------------------
def _log_gauss(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log density of N(mean, cov) at the rows of x."""
    c = np.linalg.cholesky(cov)
    z = np.linalg.solve(c, (x - mean).T)
    return -0.5 * (z * z).sum(0) - np.log(np.diag(c)).sum() - 0.5 * x.shape[1] * math.log(2 * math.pi)


def fit_regimes(x: np.ndarray, n_iter: int = 200, tol: float = 1e-7) -> dict:
    """Two-state Gaussian HMM (full covariances) on the rows of x by EM; regime 0 is the calmer.

    Initialised by splitting days on the 21-day rolling volatility of the equal-weight
    return (top 30 % = turbulent). The forward-backward pass is scaled; a small ridge keeps
    covariances positive definite.
    """
    T, n = x.shape
    ew = x.mean(1)
    vol = np.sqrt(np.convolve(ew ** 2, np.ones(21) / 21, mode="same"))
    gamma = np.stack([vol <= np.quantile(vol, 0.7), vol > np.quantile(vol, 0.7)], 1).astype(float)
    A = np.array([[0.98, 0.02], [0.05, 0.95]])
    pi = np.array([0.5, 0.5])
    ridge = 1e-10 * np.eye(n)
    prev = -np.inf
    for it in range(n_iter):  # noqa: B007 (it is reported after the loop)
        # M-step
        w = gamma.sum(0)
        mean = (gamma.T @ x) / w[:, None]
        cov = np.stack([((x - mean[k]).T * gamma[:, k]) @ (x - mean[k]) / w[k] + ridge for k in range(2)])
        # E-step (scaled forward-backward)
        logb = np.stack([_log_gauss(x, mean[k], cov[k]) for k in range(2)], 1)
        shift = logb.max(1, keepdims=True)
        b = np.exp(logb - shift)
        alpha = np.empty((T, 2))
        c = np.empty(T)
        a = pi * b[0]
        c[0] = a.sum()
        alpha[0] = a / c[0]
        for t in range(1, T):
            a = (alpha[t - 1] @ A) * b[t]
            c[t] = a.sum()
            alpha[t] = a / c[t]
        beta = np.empty((T, 2))
        beta[-1] = 1.0
        for t in range(T - 2, -1, -1):
            beta[t] = A @ (b[t + 1] * beta[t + 1]) / c[t + 1]
        gamma = alpha * beta
        gamma /= gamma.sum(1, keepdims=True)
        xi = (alpha[:-1, :, None] * A[None] * (b[1:] * beta[1:])[:, None, :]) / c[1:, None, None]
        A = xi.sum(0)
        A /= A.sum(1, keepdims=True)
        pi = gamma[0]
        loglik = float(np.log(c).sum() + shift.sum())
        if loglik - prev < tol * abs(loglik):
            break
        prev = loglik
    w = gamma.sum(0)
    mean = (gamma.T @ x) / w[:, None]
    cov = np.stack([((x - mean[k]).T * gamma[:, k]) @ (x - mean[k]) / w[k] + ridge for k in range(2)])
    order = np.argsort([np.trace(cv) for cv in cov])  # calm first
    mean, cov, A = mean[order], cov[order], A[np.ix_(order, order)]
    evals, evecs = np.linalg.eig(A.T)
    stat = np.real(evecs[:, np.argmin(np.abs(evals - 1))])
    stat = stat / stat.sum()
    return {"mean": mean.tolist(), "cov": cov.tolist(), "transition": A.tolist(), "stationary": stat.tolist(),
            "loglik": loglik, "iterations": it + 1}


def calibrate() -> dict:
    """Moments and regime models of the training-years daily log returns of each universe."""
    out = {}
    for universe, loader in UNIVERSES.items():
        hist = loader()
        i0, i1, d0, d1 = period_rows(hist, "train")
        lr = np.diff(np.log(hist.prices[i0:i1 + 1]), axis=0)
        out[universe] = {
            "names": list(hist.names), "period": [d0, d1], "num_returns": int(len(lr)),
            "source": {"sp500": "skfolio.datasets.load_sp500_dataset()",
                       "sp500-index": "arch.data.sp500.load()['Adj Close']"}[universe],
            "gbm": {"mean": lr.mean(0).tolist(), "cov": np.atleast_2d(np.cov(lr, rowvar=False)).tolist()},
            "regime": fit_regimes(lr),
        }
    return out


def main() -> None:
    cal = calibrate()
    CALIBRATION_FILE.write_text(json.dumps(cal, indent=1, sort_keys=True) + "\n")
    for u, c in cal.items():
        r = c["regime"]
        print(f"{u}: {c['num_returns']} returns {c['period']}, regime transition {np.round(r['transition'], 4)}, "
              f"stationary {np.round(r['stationary'], 3)}, EM iterations {r['iterations']}")
    print(f"wrote {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
