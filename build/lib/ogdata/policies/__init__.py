"""Behaviour and reference policies."""

from ogdata.policies.evaluate import episode_returns, normalised_score, reference_returns
from ogdata.policies.reference import RandomPolicy, list_policies, make_policy, register_policy

__all__ = ["RandomPolicy", "episode_returns", "list_policies", "make_policy", "normalised_score",
           "reference_returns", "register_policy"]
