"""Which algorithms exist, what they run on, and which ones apply to a dataset."""

from __future__ import annotations

from dataclasses import dataclass

from ogdata.errors import InvalidIdError, closest


@dataclass(frozen=True)
class AlgoInfo:
    name: str
    multi_agent: bool
    action_types: tuple[str, ...]
    implementation: str
    description: str


ALGORITHMS: dict[str, AlgoInfo] = {a.name: a for a in (
    AlgoInfo("bc", False, ("discrete", "continuous"), "d3rlpy BC / DiscreteBC", "behaviour cloning"),
    AlgoInfo("cql", False, ("discrete", "continuous"), "d3rlpy CQL / DiscreteCQL", "conservative Q-learning"),
    AlgoInfo("iql", False, ("continuous",), "d3rlpy IQL", "implicit Q-learning"),
    AlgoInfo("td3bc", False, ("continuous",), "d3rlpy TD3PlusBC", "TD3 with a behaviour-cloning term"),
    AlgoInfo("bcq", False, ("discrete",), "d3rlpy DiscreteBCQ", "batch-constrained Q-learning"),
    AlgoInfo("mabc", True, ("discrete", "continuous"), "baselines/mabc.py",
             "shared-parameter BC with a one-hot agent id"),
    AlgoInfo("icql", True, ("discrete",), "baselines/icql.py", "independent CQL"),
    AlgoInfo("itd3bc", True, ("continuous",), "baselines/itd3bc.py", "independent TD3+BC"),
    AlgoInfo("matd3bc", True, ("continuous",), "baselines/matd3bc.py",
             "TD3+BC with a centralised critic on the global state and joint action"),
    AlgoInfo("iiql", True, ("discrete", "continuous"), "baselines/iiql.py", "independent IQL"),
)}


def dataset_kind(ds) -> tuple[bool, str]:
    """(multi_agent, "discrete" | "continuous") of a dataset."""
    from gymnasium import spaces

    return ds.multi_agent, "discrete" if isinstance(ds.action_space, spaces.Discrete) else "continuous"


def applicable(ds) -> list[str]:
    """The algorithms that can train on `ds`, in table order."""
    return applicable_to(*dataset_kind(ds))


def applicable_to(multi_agent: bool, kind: str) -> list[str]:
    """The algorithms for multi- or single-agent data with "discrete" or "continuous" actions."""
    return [a.name for a in ALGORITHMS.values() if a.multi_agent == multi_agent and kind in a.action_types]


def env_kind(env_id: str, env_kwargs: dict | None = None) -> tuple[bool, str]:
    """(multi_agent, action kind) of an environment, without any dataset."""
    from gymnasium import spaces

    from ogdata.envs import make_core

    core = make_core(env_id, num_envs=1, **(env_kwargs or {}))
    return core.multi_agent, "discrete" if isinstance(core.action_space, spaces.Discrete) else "continuous"


def check(name: str, ds) -> AlgoInfo:
    """The algorithm `name`, or a clear error saying why it cannot train on `ds` and what can."""
    info = ALGORITHMS.get(name)
    if info is None:
        raise InvalidIdError(f"unknown algorithm {name!r}.{closest(name, ALGORITHMS)} "
                             "`python -m baselines list` shows them all")
    ma, kind = dataset_kind(ds)
    if info.multi_agent != ma or kind not in info.action_types:
        what = f"{'multi' if ma else 'single'}-agent {kind}-action"
        mine = f"{'multi' if info.multi_agent else 'single'}-agent, {' or '.join(info.action_types)} actions"
        raise InvalidIdError(f"{name} ({mine}) cannot train on {ds.dataset_id or ds.path}, a {what} dataset; "
                             f"these can: {', '.join(applicable(ds))}")
    return info
