"""Intervals for the v1 tables, through rliable (Agarwal et al. 2021) rather than hand-written bootstraps.

- per dataset: the mean over training seeds with a 95 % percentile-bootstrap interval
  (rliable's stratified bootstrap with one task is the plain iid bootstrap over seeds);
- across datasets: the interquartile mean (IQM) with stratified-bootstrap intervals (seeds
  resampled within each dataset) and performance profiles (the share of runs scoring above τ).

Every std shown is a sample std (ddof = 1). rliable is the `eval` extra; it is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np

CONFIDENCE = 0.95
REPS = 5000


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the v1 tables need rliable: pip install 'ogdata[eval]' (rliable 1.2.0, arch < 8)") from e
    return library, metrics


@contextmanager
def _seeded(seed: int):
    """rliable 1.2.0's StratifiedBootstrap draws its resamples from numpy's *global* generator (np.random.choice),
    whatever `random_state` it is given (which arch 7 only uses for its own draws, and deprecates). Seed the global
    generator for the call and put its state back: intervals are reproducible, the caller's random stream untouched."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def std1(x) -> float:
    """Sample standard deviation (ddof = 1); NaN for fewer than two values."""
    x = np.asarray(x, dtype=np.float64)
    return float(x.std(ddof=1)) if x.size > 1 else float("nan")


def mean_ci(x, confidence: float = CONFIDENCE, reps: int = REPS, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the sample mean and its percentile-bootstrap interval over the values of `x`."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"mean_ci needs a non-empty sample of finite values, got {x.size} values")
    if x.size == 1:
        return float(x[0]), float("nan"), float("nan")
    library, _ = _rliable()
    with _seeded(seed):
        point, ci = library.get_interval_estimates({"x": x[:, None]}, lambda s: np.array([s.mean()]), reps=reps,
                                                   confidence_interval_size=confidence)
    return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def iqm_ci(scores: Mapping[str, np.ndarray], confidence: float = CONFIDENCE, reps: int = REPS,
           seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Per algorithm, (IQM, low, high) over a (runs, datasets) score matrix, with rliable's
    stratified bootstrap (runs resampled within each dataset)."""
    library, metrics = _rliable()
    mats = {k: _matrix(v, k) for k, v in scores.items()}
    with _seeded(seed):
        point, ci = library.get_interval_estimates(mats, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps,
                                                   confidence_interval_size=confidence)
    return {k: (float(point[k][0]), float(ci[k][0, 0]), float(ci[k][1, 0])) for k in mats}


def performance_profiles(scores: Mapping[str, np.ndarray], taus, reps: int = 2000, seed: int = 0) -> dict:
    """Per algorithm, the share of runs with a score above each τ and its stratified-bootstrap band:
    {algo: {"tau", "share", "low", "high"}}."""
    library, _ = _rliable()
    taus = np.asarray(taus, dtype=np.float64)
    mats = {k: _matrix(v, k) for k, v in scores.items()}
    with _seeded(seed):
        share, cis = library.create_performance_profile(mats, taus, reps=reps)
    return {k: {"tau": taus.tolist(), "share": np.asarray(share[k]).tolist(),
                "low": np.asarray(cis[k][0]).tolist(), "high": np.asarray(cis[k][1]).tolist()} for k in mats}


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) averaged over datasets, ties counted half: rliable's `metrics.probability_of_improvement` (the
    Mann–Whitney U over runs / (n·m), per dataset) as one vectorised comparison, cheap enough to bootstrap."""
    gt = (x[:, None, :] > y[None, :, :]).mean((0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean((0, 1))
    return np.array([float((gt + 0.5 * eq).mean())])


def improvement_ci(x, y, confidence: float = CONFIDENCE, reps: int = 2000,
                   seed: int = 0) -> tuple[float, float, float]:
    """(P(X > Y), low, high) of two (runs, datasets) score matrices over the same datasets (Agarwal et al. 2021):
    the chance that a run of X beats a run of Y on a dataset drawn at random, with rliable's stratified bootstrap
    (each side's runs resampled within each dataset, independently). 0.5: no difference; an interval above 0.5
    is an improvement a reviewer can read without comparing score scales across datasets."""
    library, _ = _rliable()
    x, y = _matrix(x, "x"), _matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must cover the same datasets: {x.shape[1]} vs {y.shape[1]} columns")
    with _seeded(seed):
        point, ci = library.get_interval_estimates({"p": [x, y]}, _improvement, reps=reps,
                                                   confidence_interval_size=confidence)
    return float(point["p"][0]), float(ci["p"][0, 0]), float(ci["p"][1, 0])


def _matrix(v, name: str) -> np.ndarray:
    m = np.asarray(v, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1 or not np.isfinite(m).all():
        raise ValueError(f"{name}: scores must be a finite (runs, datasets) matrix, got shape {m.shape}")
    return m
