"""Market environments: vectorised numpy cores with Gymnasium and PettingZoo faces."""

from ogdata.envs.registry import EnvSpec, env_spec, list_envs, make_core, make_env, make_vector_env, register

__all__ = ["EnvSpec", "env_spec", "list_envs", "make_core", "make_env", "make_vector_env", "register"]
