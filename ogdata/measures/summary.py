"""Every measure of one dataset together, as one JSON-serialisable dict (fit for metadata["measures"]).

Pure: nothing here reads reference returns from anywhere but the arguments and the dataset's own
metadata, and nothing writes metadata. The caller records the result (ogdata.generate does, through
ogdata.storage.update_metadata); `recorded_measures` says what goes on the dataset and what on the
reference.
"""

from __future__ import annotations

from typing import Any

from ogdata.errors import ReferenceMissingError
from ogdata.measures.actions import dataset_action_stats
from ogdata.measures.binning import DEFAULT_BINS
from ogdata.measures.coarse import coarse_coverage
from ogdata.measures.coverage import coverage
from ogdata.measures.returns import (
    agent_scores,
    behaviour_score,
    length_stats,
    reference_returns_for,
    return_stats,
    tq,
)
from ogdata.measures.rows import same_dataset


def profile(dataset, reference=None, random_return: float | None = None, expert_return: float | None = None,
            bins: int = DEFAULT_BINS, exact: bool = True, limits: dict | None = None,
            progress: bool = False, coarse: bool = True, coarse_params: dict | None = None,
            reference_returns: dict[str, float] | None = None) -> dict[str, Any]:
    """Every measure of one dataset as a JSON-serialisable dict (fit for metadata["measures"]).

    TQ uses random_return / expert_return, else the dataset's recorded reference_returns, else
    `reference_returns` ({"random", "expert"}, e.g. the env's registered ones), and is None when none
    is known; SACo (and the coarse SACo, `coarse=True`) is None without a reference dataset.
    """
    returns = dataset.episode_returns()
    out: dict[str, Any] = {
        "dataset_id": dataset.dataset_id,
        "env_id": dataset.env_id,
        "tier": dataset.metadata.get("tier"),
        "multi_agent": dataset.multi_agent,
        "num_transitions": len(dataset),
        "num_episodes": dataset.num_episodes,
        "return_stats": return_stats(returns),
        "episode_length_stats": length_stats(dataset.episode_lengths),
        "action_stats": dataset_action_stats(dataset),
        "behaviour_normalised_score": behaviour_score(dataset.metadata),
    }
    try:
        r_rand, r_exp = reference_returns_for(dataset, random_return, expert_return, reference_returns)
        out["reference_returns"] = {"random": r_rand, "expert": r_exp}
        out["tq"] = tq(returns, r_rand, r_exp) if len(returns) else None
    except ReferenceMissingError:
        out["reference_returns"], out["tq"] = None, None
    if dataset.multi_agent:
        out.update(agent_scores(dataset.agent_episode_returns(), dataset.agents,
                                dataset.metadata.get("agent_reference_returns")))
    out["saco"] = None
    if reference is not None:
        out.update(coverage(dataset, reference, bins=bins, limits=limits, exact=exact, progress=progress))
    if coarse:
        out["saco_coarse"] = None
        if reference is not None:
            out.update(coarse_coverage(dataset, reference, coarse_params, exact=exact, progress=progress))
    return out


def recorded_measures(dataset, reference, prof: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What to record after `profile`: (the dataset's new measures, the reference's new measures or None).

    The dataset's measures are its current ones updated with `prof`. The bin limits and the coarse SACo
    parameters also go on the reference (once), so later datasets of the env reuse them; the (large) coarse
    parameters live on the reference only, other datasets record its id. The reference's measures are None
    when the reference is the dataset itself or needs nothing new.
    """
    is_ref = reference is not None and same_dataset(dataset, reference)
    measures = {**dataset.measures, **prof}
    if not is_ref:
        measures.pop("saco_coarse_params", None)
    if is_ref or reference is None:
        return measures, None
    add = {}
    if "saco_limits" in prof and "saco_limits" not in reference.measures:
        add["saco_limits"] = prof["saco_limits"]
    if prof.get("saco_coarse_params") is not None and \
            reference.measures.get("saco_coarse_params") != prof["saco_coarse_params"]:
        add["saco_coarse_params"] = prof["saco_coarse_params"]
    return measures, ({**reference.measures, **add} if add else None)
