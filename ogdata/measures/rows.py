"""How a dataset becomes rows for the coverage measures, shared by SACo (`coverage.py`) and the
coarse grid (`coarse.py`).

A *row kind* ("view") lists the arrays whose columns make one row: single-agent "joint" is
observation ‖ action; multi-agent "joint" is global state (or every agent's observation) ‖ joint
action, and "agent:<name>" is that agent's observation ‖ action (for OACo). Datasets are duck-typed:
anything with `multi_agent`, `agents`, `metadata`, the spaces, `iter_chunks`, `path` and `__len__`
(an `ogdata.Dataset`) will do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DataValidationError, ReferenceMissingError
from ogdata.measures.binning import as_2d


def space_part(key: str, space, n_agents: int | None = None) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(kind, low, high) of a space's flattened columns; discrete ranges come from the space itself."""
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


def row_views(dataset) -> dict[str, list[tuple[str, str, Any]]]:
    """Which arrays make up each row kind: {"joint": [(part key, chunk key, agent index or None)], ...}."""
    if not dataset.multi_agent:
        return {"joint": [("observations", "observations", None), ("actions", "actions", None)]}
    joint_state = "states" if (dataset.metadata.get("state_space") or "states" in dataset.metadata.get("arrays", {})) \
        else "observations"
    out = {"joint": [(joint_state, joint_state, "all"), ("actions", "actions", "all")]}
    for i, name in enumerate(dataset.agents):
        out[f"agent:{name}"] = [("observations", "observations", i), ("actions", "actions", i)]
    return out


def take(chunk: dict[str, np.ndarray], ckey: str, agent) -> np.ndarray:
    """The (n, d) columns of one part of a view from a chunk (`agent`: None, "all", or an agent index)."""
    a = chunk[ckey]
    if agent is None:
        return as_2d(a)
    if agent == "all":
        return a.reshape(len(a), -1)
    return as_2d(a[:, agent])


def chunk_keys(views) -> tuple[str, ...]:
    """The chunk arrays the given views read."""
    return tuple(sorted({ck for parts in views.values() for _, ck, _ in parts}))


def part_space(dataset, key: str):
    """The space a part's columns come from."""
    if key == "actions":
        return dataset.action_space
    if key == "states":
        return dataset.state_space
    return dataset.observation_space


def check_reference(dataset, reference, measure: str) -> None:
    """Refuse a missing reference, or one of another kind (single/multi-agent) or another environment."""
    if reference is None:
        raise ReferenceMissingError(f"{measure} needs a reference (the env's Replay dataset); generate or download "
                                    "<env-id>/replay-v<N> and pass it as reference")
    if bool(dataset.multi_agent) != bool(reference.multi_agent):
        raise DataValidationError("dataset and reference must both be single-agent or both multi-agent")
    if dataset.env_id and reference.env_id and dataset.env_id != reference.env_id:
        raise DataValidationError(f"the reference is from env {reference.env_id!r} but the dataset is from "
                                  f"{dataset.env_id!r}; SACo compares datasets of one environment")


def same_dataset(dataset, reference) -> bool:
    """Whether `dataset` is the reference itself (the same object, or the same whole dataset on disk)."""
    return dataset is reference or (getattr(dataset, "_arrays", None) is None and "parent" not in dataset.metadata
                                    and dataset.path.resolve() == reference.path.resolve())


def per_agent(views, counts: dict, reference: dict | None = None) -> dict:
    """{agent: count} of the "agent:<name>" views, or {agent: count / reference count}."""
    return {v.split(":", 1)[1]: counts[v] / reference[v] if reference is not None else counts[v]
            for v in views if v.startswith("agent:")}


_REF_CACHE: dict[tuple, dict[str, int]] = {}


def reference_counts(reference, params: dict, views: list[str], exact: bool, chunk_size: int,
                     counter: Callable[..., dict[str, int]]) -> dict[str, int]:
    """The reference's unique-row counts, cached per (on-disk reference, params) so profiling many datasets
    of an env counts the reference once.

    `counter(reference, params, views, exact, chunk_size)` is `coverage.count_views` (SACo bin limits) or
    `coarse.count_coarse` (coarse SACo parameters)."""
    cacheable = "parent" not in reference.metadata and getattr(reference, "_arrays", None) is None
    key = (counter.__name__, str(reference.path.resolve()), len(reference), json.dumps(params, sort_keys=True),
           exact, tuple(views)) if cacheable else None
    if cacheable and key in _REF_CACHE:
        return _REF_CACHE[key]
    counts = counter(reference, params, views, exact, chunk_size)
    if cacheable:
        if len(_REF_CACHE) > 16:
            _REF_CACHE.clear()
        _REF_CACHE[key] = counts
    return counts
