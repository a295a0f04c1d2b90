"""SACo, joint SACo and OACo: exact coverage of binned state-action pairs against the env's Replay dataset.

SACo(D) = u(D) / u(D_ref) (Schweighofer et al., CoLLAs 2022), u = number of unique binned
state-action pairs, D_ref = the env's Replay dataset; bins as in `binning.py`, counts by the exact
streaming counter of `counter.py` (or its HyperLogLog estimate, `exact=False`). Multi-agent: joint
SACo uses (global state ‖ joint action); per-agent OACo uses each agent's (observation, action)
with that agent's own limits and is averaged over agents.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ogdata.errors import DataValidationError, MetadataError, ReferenceMissingError
from ogdata.measures.binning import DEFAULT_BINS, Binner, Limits, Part, colminmax
from ogdata.measures.counter import UniqueCounter
from ogdata.measures.hll import HLL_STANDARD_ERROR
from ogdata.measures.rows import (
    check_reference,
    chunk_keys,
    part_space,
    per_agent,
    reference_counts,
    row_views,
    same_dataset,
    space_part,
    take,
)
from ogdata.progress import progress_bar


def bin_limits(reference, bins: int = DEFAULT_BINS, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Per-dimension bin limits (min/max of obs ‖ action over the reference), JSON-ready.

    Multi-agent: "joint" (state ‖ joint action) plus one entry per agent ("agent:<name>").
    Discrete dimensions take their range from the space. Stored under
    measures["saco_limits"] so every dataset of the env is binned the same way.
    """
    views = row_views(reference)
    n_agents = len(reference.agents) if reference.multi_agent else None
    lo: dict[tuple[str, str], np.ndarray] = {}
    hi: dict[tuple[str, str], np.ndarray] = {}
    rows = 0
    for ch in reference.iter_chunks(chunk_size, keys=chunk_keys(views)):
        for view, parts in views.items():
            for pkey, ckey, agent in parts:
                a = take(ch, ckey, agent)
                if not len(a):
                    continue
                l, h = colminmax(a)
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
            kind, dlo, dhi = space_part(pkey, part_space(reference, pkey), reps)
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


def count_views(dataset, limits: dict[str, Any], views: Iterable[str], exact: bool,
                 chunk_size: int, progress: bool = False) -> dict[str, int]:
    """Unique binned rows of each requested view, in one streaming pass over the dataset."""
    all_views = row_views(dataset)
    views = list(views)
    missing = [v for v in views if v not in limits]
    if missing:
        raise MetadataError(f"the saco limits have no entry for {missing}; they were computed for a different "
                            "kind of dataset — recompute them with ogdata.measures.bin_limits(reference)")
    lims = {v: Limits.from_json(limits[v]) for v in views}
    counters = {v: UniqueCounter(lims[v].radices(), exact=exact, expected_rows=len(dataset)) for v in views}
    binners = {v: Binner(lims[v]) for v in views}
    keys = chunk_keys({v: all_views[v] for v in views})
    it = dataset.iter_chunks(chunk_size, keys=keys)
    if progress and len(dataset) > 4 * chunk_size:          # a bar only where the wait is noticeable
        it = progress_bar(it, total=-(-len(dataset) // chunk_size), desc="SACo", unit="chunk", leave=False)
    for ch in it:
        for v in views:
            arrays = [take(ch, ckey, agent) for _, ckey, agent in all_views[v]]
            counters[v].add_values(arrays, binners[v])
    return {v: int(c.count()) for v, c in counters.items()}


def coverage(dataset, reference, bins: int = DEFAULT_BINS, limits: dict | None = None, exact: bool = True,
             chunk_size: int = 1 << 20, progress: bool = False) -> dict[str, Any]:
    """SACo (and, multi-agent, per-agent OACo) of `dataset` against `reference`, with the raw counts.

    Returns {"saco", "unique_state_actions", "reference_unique_state_actions", "bins", "exact",
    "saco_limits", ["oaco", "oaco_per_agent", "unique_obs_actions"]}.
    """
    check_reference(dataset, reference, "SACo")
    lim = _limits_for(reference, bins, limits)
    views = list(row_views(dataset))
    u = count_views(dataset, lim, views, exact, chunk_size, progress)
    same = same_dataset(dataset, reference)
    ur = u if same else reference_counts(reference, lim, views, exact, chunk_size, count_views)
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
        per = per_agent(views, u, ur)
        out["oaco_per_agent"] = per
        out["oaco"] = float(np.mean(list(per.values()))) if per else None
        out["unique_obs_actions"] = per_agent(views, u)
        out["reference_unique_obs_actions"] = per_agent(views, ur)
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
