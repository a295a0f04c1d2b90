"""Dataset quality measures: TQ, SACo (joint SACo / per-agent OACo), coarse SACo and return/action statistics.

Definitions follow Schweighofer et al., "A Dataset Perspective on Offline RL" (CoLLAs 2022):
TQ(D) = (mean episode return of D − R_random) / (R_expert − R_random); SACo(D) = u(D) / u(D_ref),
u = number of unique binned state-action pairs, D_ref = the env's Replay dataset.

Pure functions of arrays and datasets (an `ogdata.Dataset`, or anything shaped like one): they read,
never write metadata, and never look up policies or reference returns — the caller passes those in
and records the results (ogdata.generate does). One concept a module:

- returns.py   TQ, reference returns, discounted returns, return / episode-length statistics
- actions.py   action statistics (entropy of discrete, spread of continuous actions)
- binning.py   bin limits (`Part`, `Limits`) and the binner: continuous columns → integer codes
- counter.py   the exact streaming count of distinct code rows (`UniqueCounter`, `count_unique`)
- hll.py       the HyperLogLog estimate (`exact=False`), for unique rows beyond memory
- rows.py      which arrays of a dataset make each kind of row (joint, per agent); reference counts cache
- coverage.py  SACo, joint SACo and OACo on datasets (`bin_limits`, `coverage`, `saco`, `oaco`)
- coarse.py    coarse SACo / OACo on a low-dimensional grid fitted on the reference
- summary.py   `profile`: every measure of one dataset as one JSON-ready dict
"""

from __future__ import annotations

from ogdata.measures.actions import action_stats, dataset_action_stats
from ogdata.measures.binning import DEFAULT_BINS, Limits, Part, bin_codes
from ogdata.measures.coarse import (
    COARSE_ACTION_K,
    COARSE_CANDIDATES,
    COARSE_CLIP_SIGMA,
    COARSE_K,
    COARSE_SATURATION,
    coarse_coverage,
    coarse_params,
    saco_coarse,
)
from ogdata.measures.counter import UniqueCounter, count_unique
from ogdata.measures.coverage import bin_limits, coverage, oaco, saco
from ogdata.measures.hll import HLL_PRECISION, HLL_STANDARD_ERROR, HyperLogLog
from ogdata.measures.returns import (
    agent_scores,
    behaviour_score,
    discounted_returns,
    length_stats,
    reference_returns_for,
    return_stats,
    tq,
)
from ogdata.measures.summary import profile, recorded_measures

__all__ = [
    "agent_scores",
    "COARSE_ACTION_K", "COARSE_CANDIDATES", "COARSE_CLIP_SIGMA", "COARSE_K", "COARSE_SATURATION", "DEFAULT_BINS",
    "HLL_PRECISION", "HLL_STANDARD_ERROR", "HyperLogLog", "Limits", "Part", "UniqueCounter", "action_stats",
    "behaviour_score", "bin_codes", "bin_limits", "coarse_coverage", "coarse_params", "count_unique", "coverage",
    "dataset_action_stats", "discounted_returns", "length_stats", "oaco", "profile", "recorded_measures",
    "reference_returns_for", "return_stats", "saco", "saco_coarse", "tq",
]
