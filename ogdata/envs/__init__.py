"""Market environments: vectorised numpy cores with Gymnasium and PettingZoo faces.

Importing this package registers every built-in id (`builtin.SPECS`, data only) with ogdata and,
single-agent ids, with Gymnasium as `ogdata/<id>-v0`; no family module is imported until an env
is made. Reference policies live in `ogdata.policies`, which this package never imports.
"""

from ogdata.envs.builtin import SPECS as _BUILTIN_SPECS
from ogdata.envs.registry import EnvSpec, env_spec, list_envs, make_core, make_env, make_vector_env, register

for _spec in _BUILTIN_SPECS:
    register(_spec)
del _spec

__all__ = ["EnvSpec", "env_spec", "list_envs", "make_core", "make_env", "make_vector_env", "register"]
