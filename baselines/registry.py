"""Which algorithms exist, what they run on, and which ones apply to a dataset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from baselines import multi, native, single
from baselines.single import D3rlpyAlgo
from ogdata.errors import InvalidArgumentError, InvalidIdError, closest


@dataclass(frozen=True)
class AlgoInfo:
    name: str  # the --algo name
    multi_agent: bool  # trains on multi-agent (True) or single-agent (False) datasets
    action_types: tuple[str, ...]  # "discrete" and/or "continuous"
    implementation: str  # where the code is: "d3rlpy <Algo>" or "baselines/<file>.py"
    description: str  # a few words
    in_suites: bool = True  # run by scripts/reproduce.py's suites by default (else only when named in --algos)
    needs_stock: bool = False  # reads the stock features: trains on the dataset's stock-augmented copy


def _single_agent(a: D3rlpyAlgo) -> AlgoInfo:
    return AlgoInfo(a.name, False, tuple(a.action_types), a.implementation, a.description)


def _torch(cls, multi_agent: bool = True) -> AlgoInfo:
    return AlgoInfo(cls.name, getattr(cls, "multi_agent", multi_agent), tuple(cls.action_types),
                    cls.__module__.replace(".", "/") + ".py", cls.description, getattr(cls, "in_suites", True),
                    getattr(cls, "needs_stock_features", False))


# Derived from the algorithms themselves (baselines.single.ALGORITHMS, the classes in baselines.multi,
# the single-agent ones of our own in baselines.native).
ALGORITHMS: dict[str, AlgoInfo] = {a.name: a for a in (*map(_single_agent, single.ALGORITHMS),
                                                       *map(_torch, multi.CLASSES),
                                                       *(_torch(c, multi_agent=False) for c in native.CLASSES))}


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


def takes_hl_gauss(name: str) -> bool:
    """Whether algorithm `name` takes `value_loss="hl_gauss"`: a d3rlpy config with a critic factory, or a torch
    config with the field (what baselines/single.py and the torch files accept)."""
    for a in single.ALGORITHMS:
        if a.name == name:
            return any(single.hl_gauss_config(c) is not None for c in a.configs.values())
    return "value_loss" in _torch_config_fields(name)


def _torch_config_fields(name: str) -> set[str]:
    """The fields of the config of one of our torch learners (baselines/<name>.py)."""
    return {f.name for f in dataclasses.fields({**multi.ALGOS, **native.ALGOS}[name].config_class)}


SIZE_FIELDS = ("hidden", "layers", "batch_size")  # set by --hidden/--layers/--batch-size, not by --set


def config_fields(name: str, kind: str) -> set[str]:
    """The config fields `--set KEY=VALUE` may change for algorithm `name` on `kind` ("discrete"/"continuous")
    actions: the d3rlpy config's fields (with the HL-Gauss ones where it has a critic), else the torch config's."""
    if name in single.ALGOS:
        from baselines.console import import_d3rlpy

        cls_name = single.ALGOS[name].configs[kind]
        fields = {f.name for f in dataclasses.fields(getattr(import_d3rlpy().algos, cls_name))}
        if single.hl_gauss_config(cls_name) is not None:
            fields |= set(single.HL_GAUSS_FIELDS)
        return fields
    return _torch_config_fields(name) - set(SIZE_FIELDS)


def check_overrides(name: str, kind: str, overrides: dict | None) -> None:
    """A clear error for a `--set` key that algorithm `name` has no field for (rather than a TypeError deep
    inside its config class), naming the nearest field and, for the HL-Gauss ones, the algorithms that take them."""
    fields = config_fields(name, kind)
    for key in sorted(set(overrides or {}) - fields):
        if key in SIZE_FIELDS:
            hint = f" Pass it as --{key.replace('_', '-')} instead."
        elif key in single.HL_GAUSS_FIELDS:
            hint = (f" {name} has no critic to classify; value_loss='hl_gauss' is for "
                    f"{', '.join(a for a in ALGORITHMS if takes_hl_gauss(a))}.")
        else:
            hint = closest(key, fields)
        raise InvalidArgumentError(f"--set {key}: {name} has no config field {key!r}.{hint} Its fields: "
                                   f"{', '.join(sorted(fields))}")
