"""TQ and return statistics (array level first, Dataset wrappers below).

TQ(D) = (mean episode return of D − R_random) / (R_expert − R_random) (Schweighofer et al., "A Dataset
Perspective on Offline RL", CoLLAs 2022); undiscounted by default, as in the paper's code. The reference
returns are passed in, or read from the dataset's metadata: measures never look them up themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ogdata.errors import DataValidationError, ReferenceMissingError


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


def _complete(refs) -> bool:
    return isinstance(refs, dict) and refs.get("random") is not None and refs.get("expert") is not None


def reference_returns_for(dataset, random_return: float | None = None, expert_return: float | None = None,
                          fallback: dict[str, float] | None = None) -> tuple[float, float]:
    """(R_random, R_expert): the given values, else the dataset's recorded metadata["reference_returns"],
    else `fallback` (the caller's choice, e.g. the env's registered ones: ogdata.policies.reference_returns)."""
    if random_return is not None and expert_return is not None:
        return float(random_return), float(expert_return)
    refs = None
    if dataset is not None:
        refs = dataset.metadata.get("reference_returns") or None
        if not _complete(refs):
            refs = fallback if _complete(fallback) else None
    elif _complete(fallback):
        refs = fallback
    if refs is None:
        raise ReferenceMissingError("TQ needs the random and expert reference returns: pass random_return= "
                                    "and expert_return=, or use a dataset whose metadata records "
                                    "reference_returns (an env's registered ones are "
                                    "ogdata.policies.reference_returns(env_id))")
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


def agent_scores(agent_returns: np.ndarray, agents: Sequence[str],
                 agent_refs: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Each agent's own episode-return statistics, and its own TQ where per-agent references are known.

    agent_returns (episodes, n); agent_refs {agent: {"random", "expert"}}: that agent's mean return under the
    joint random and expert reference policies (recorded for general-sum ids). Returns
    {"agent_return_stats": {agent: return_stats}, "agent_tq": {agent: TQ} or None}. On a general-sum id a
    tier is defined by the joint score (the mean over agents); these say how it is shared out.
    """
    a = np.asarray(agent_returns, dtype=np.float64)
    names = [str(x) for x in agents]
    if a.ndim != 2 or a.shape[1] != len(names):
        raise DataValidationError(f"agent returns of shape {a.shape} do not match the {len(names)} agents {names}")
    out: dict[str, Any] = {"agent_return_stats": {n: return_stats(a[:, i]) for i, n in enumerate(names)},
                           "agent_tq": None}
    if agent_refs and len(a) and all(n in agent_refs for n in names):
        tqs = {}
        for i, n in enumerate(names):
            lo, hi = float(agent_refs[n]["random"]), float(agent_refs[n]["expert"])
            tqs[n] = float((a[:, i].mean() - lo) / (hi - lo)) if np.isfinite([lo, hi]).all() and hi != lo else None
        out["agent_tq"] = tqs
    return out


def length_stats(lengths: np.ndarray | Sequence[int]) -> dict[str, float | int | None]:
    """Episode-length summary: count, total, mean, std, min, max, median."""
    x = np.asarray(lengths, dtype=np.int64).ravel()
    if x.size == 0:
        return {"count": 0, "total": 0, "mean": None, "std": None, "min": None, "max": None, "median": None}
    return {"count": int(x.size), "total": int(x.sum()), "mean": float(x.mean()),
            "std": float(x.std(ddof=1)) if x.size > 1 else None, "min": int(x.min()), "max": int(x.max()),
            "median": float(np.median(x))}


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
