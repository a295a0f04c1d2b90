"""Combining and splitting local datasets, with Minari's names where the meaning is the same.

`combine_datasets` writes one new dataset holding every episode of its inputs (same spaces, agents
and env required); `split_dataset` cuts one into in-memory parts by episode counts or fractions.
A combined dataset is not made by any catalogue recipe, so it never carries a catalogue id: its
metadata records its parents instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ogdata.dataset import Dataset
from ogdata.errors import DataValidationError, InvalidArgumentError
from ogdata.spaces import space_from_json
from ogdata.storage.format import STEP_KEYS
from ogdata.writing import create_dataset

_SAME = ("observation_space", "action_space", "state_space", "multi_agent", "agents")


def combine_datasets(datasets: Sequence[Dataset | str | os.PathLike], path: str | os.PathLike, *,
                     overwrite: bool = False) -> Dataset:
    """One dataset at `path` with every episode of `datasets`, in order (the arrays are concatenated).

    All inputs must share spaces and agents; differing env ids or kwargs are allowed only when
    every input agrees (else the result records env_id None). Returns the new Dataset.
    """
    parts = [d if isinstance(d, Dataset) else Dataset(d) for d in datasets]
    if len(parts) < 1:
        raise InvalidArgumentError("combine_datasets needs at least one dataset")
    first = parts[0].metadata
    for p in parts[1:]:
        for k in _SAME:
            if p.metadata.get(k) != first.get(k):
                raise DataValidationError(f"cannot combine {p.path} with {parts[0].path}: their {k} differ; "
                                          "only datasets of the same spaces and agents combine")
    arrs = [p.arrays() for p in parts]
    keys = ["observations", *STEP_KEYS, "episode_lengths"] + (["states"] if "states" in arrs[0] else [])
    cat = {k: np.concatenate([a[k] for a in arrs]) for k in keys}
    same_env = all((p.env_id, p.metadata.get("env_kwargs")) == (parts[0].env_id, first.get("env_kwargs"))
                   for p in parts)
    meta: dict[str, Any] = {
        "dataset_id": None,
        "env_id": parts[0].env_id if same_env else None,
        "env_kwargs": first.get("env_kwargs") or {} if same_env else {},
        "tier": None,
        "reference_returns": first.get("reference_returns") or {} if same_env else {},
        "combined_from": [{"path": str(p.path), "dataset_id": p.dataset_id, "episodes": p.num_episodes}
                          for p in parts],
    }
    if same_env and first.get("agent_reference_returns"):
        meta["agent_reference_returns"] = first["agent_reference_returns"]
    ma = bool(first.get("multi_agent"))
    ds = create_dataset(
        path, observations=cat["observations"], actions=cat["actions"], rewards=cat["rewards"],
        terminations=cat["terminations"], truncations=cat["truncations"], episode_lengths=cat["episode_lengths"],
        states=cat.get("states"), metadata=meta, observation_space=space_from_json(first["observation_space"]),
        action_space=space_from_json(first["action_space"]),
        state_space=space_from_json(first["state_space"]) if ma else None,
        agents=first.get("agents") if ma else None, overwrite=overwrite)
    return ds if isinstance(ds, Dataset) else Dataset(ds)


def split_dataset(dataset: Dataset | str | os.PathLike, sizes: Sequence[int | float], seed: int | None = 0,
                  by: str = "episode") -> list[Dataset]:
    """In-memory parts of `dataset` by episode counts (ints, as Minari) or fractions (floats summing to 1).

    Episodes are shuffled with `seed` first (by="episode"), or kept in stored order (by="time").
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    e = ds.num_episodes
    if not sizes:
        raise InvalidArgumentError("split_dataset needs at least one size")
    if all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in sizes):
        if any(s < 1 for s in sizes) or sum(sizes) > e:
            raise InvalidArgumentError(f"episode counts {list(sizes)} must be positive and sum to at most the "
                                       f"dataset's {e} episodes")
        fractions = [s / e for s in sizes]
        rest = 1.0 - sum(fractions)
        parts = ds.split([*fractions, rest] if rest > 1e-12 else fractions, by=by, rng=seed)
        return parts[:len(sizes)]
    fr = np.asarray(sizes, dtype=float)
    if not np.isfinite(fr).all() or (fr <= 0).any() or not np.isclose(fr.sum(), 1.0):
        raise InvalidArgumentError(f"fractions must be positive and sum to 1, got {list(sizes)}")
    return ds.split(list(fr), by=by, rng=seed)
