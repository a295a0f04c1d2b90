"""Registration follows Gymnasium's conventions, and the envs layer never reaches up into policies.

- `import ogdata` registers every single-agent id with Gymnasium as `ogdata/<id>-v0`, as data
  ("module:function" entry points): nothing of an env family is imported until it is made.
- `gymnasium.make_vec` uses ogdata's own batched core (`vector_entry_point`).
- No module of `ogdata.envs` imports `ogdata.policies`, at module or function level.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ogdata
from ogdata.envs import env_spec, list_envs
from ogdata.envs.core import MarketEnv, MarketVectorEnv
from ogdata.envs.prices import real_package
from ogdata.errors import EnvError, InvalidIdError
from ogdata.policies import list_policies, make_policy

ROOT = Path(__file__).resolve().parent.parent
SINGLE = list_envs(multi_agent=False)
FAMILY_MODULES = ["ogdata.envs.core", "ogdata.envs.execution", "ogdata.envs.market_making",
                  "ogdata.envs.portfolio", "ogdata.envs.trading", "ogdata.envs.prices",
                  "ogdata.envs.option_exercise", "ogdata.envs.stat_arb", "ogdata.envs.chains",
                  "ogdata.envs.model_fits"]


def _fresh(code: str) -> dict:
    """Run `code` in a fresh interpreter (this checkout first on the path); it prints one JSON line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_gymnasium_make_after_import_ogdata_in_a_fresh_interpreter():
    res = _fresh(
        "import json, sys\n"
        "import ogdata\n"
        f"loaded = [m for m in {FAMILY_MODULES + ['ogdata.policies', 'torch']!r} if m in sys.modules]\n"
        "import gymnasium\n"
        "ids = sorted(k for k in gymnasium.registry if k.startswith('ogdata/'))\n"
        "env = gymnasium.make('ogdata/execution-ac-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "obs, r, te, tr, info = env.step(obs[:1] * 0 + 0.1)\n"
        "venv = gymnasium.make_vec('ogdata/execution-ac-v0', num_envs=5)\n"
        "vobs, _ = venv.reset(seed=0)\n"
        "print(json.dumps({'loaded': loaded, 'ids': ids, 'reward': float(r), 'vec': type(venv.unwrapped).__name__,"
        " 'vshape': list(vobs.shape), 'env': type(env.unwrapped).__name__}))\n")
    assert res["loaded"] == [], f"`import ogdata` imported {res['loaded']}: registration must be data only"
    assert res["ids"] == sorted(env_spec(i).gym_id for i in SINGLE)
    assert all(i.endswith("-v0") for i in res["ids"])
    assert res["env"] == "MarketEnv" and np.isfinite(res["reward"])
    assert res["vec"] == "MarketVectorEnv" and res["vshape"] == [5, 7]


def test_no_unversioned_gymnasium_ids_and_what_they_do():
    assert not any(k.startswith("ogdata/") and env_spec(k).gym_id != k for k in gymnasium.registry
                   if k.startswith("ogdata/"))
    # Gymnasium resolves an unversioned id to the latest version, with its own warning
    with pytest.warns(UserWarning, match="Using the latest versioned environment `ogdata/execution-ac-v0`"):
        env = gymnasium.make("ogdata/execution-ac")
    assert env.spec.id == "ogdata/execution-ac-v0"
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("ogdata/execution-ac-v1")


def test_multi_agent_ids_are_not_gymnasium_envs():
    for env_id in list_envs(multi_agent=True):
        assert env_spec(env_id).gym_id not in gymnasium.registry


@pytest.mark.parametrize("env_id", SINGLE)
def test_check_env_through_gymnasium_make(env_id):
    for extra in env_spec(env_id).extras:
        if extra == "realdata":
            pytest.importorskip("skfolio")
            pytest.importorskip("arch")
            pytest.importorskip(real_package(env_id))
    gym_id = env_spec(env_id).gym_id
    env = gymnasium.make(gym_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.unwrapped, MarketEnv) and env.unwrapped.ogdata_id == env_id
    # the wrapped env (order enforcing + passive checker) steps like the ogdata one, seed for seed
    own = ogdata.make_env(env_id)
    a, _ = env.reset(seed=5)
    b, _ = own.reset(seed=5)
    np.testing.assert_array_equal(a, b)
    env.action_space.seed(0)
    for _ in range(3):
        act = env.action_space.sample()
        ra, rb = env.step(act), own.step(act)
        np.testing.assert_array_equal(ra[0], rb[0])
        assert ra[1:4] == rb[1:4]
    # make_vec: ogdata's batched core, kwargs passed through
    venv = gymnasium.make_vec(gym_id, num_envs=3)
    assert isinstance(venv.unwrapped, MarketVectorEnv) and venv.unwrapped.core.num_envs == 3
    obs, _ = venv.reset(seed=1)
    assert venv.observation_space.contains(obs)


def test_gymnasium_kwargs_and_render_mode():
    env = gymnasium.make("ogdata/execution-ac-v0", sigma=0.0)
    assert env.unwrapped.core.sigma == 0.0 and env.spec.kwargs["sigma"] == 0.0
    venv = gymnasium.make_vec("ogdata/execution-ac-v0", num_envs=2, sigma=0.0)
    assert venv.unwrapped.core.sigma == 0.0
    with pytest.raises(EnvError, match="do not render"):
        gymnasium.make("ogdata/execution-ac-v0", render_mode="human")


def test_old_ids_and_gymnasium_ids_name_the_same_spec():
    for env_id in list_envs():
        spec = env_spec(env_id)
        assert spec.id == env_id and spec.version == 0
        assert env_spec(f"ogdata/{env_id}") is spec
        if not spec.multi_agent:
            assert env_spec(spec.gym_id) is spec
    with pytest.raises(InvalidIdError, match="Did you mean"):
        env_spec("execution-acc")
    with pytest.raises(InvalidIdError, match="is a string"):
        env_spec(None)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module or function level (absolute and relative)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["ogdata", "envs"][: 3 - node.level] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                found.add(str(node.args[0].value))
    return found


def test_envs_never_import_policies():
    files = sorted((ROOT / "ogdata" / "envs").glob("*.py"))
    assert len(files) >= 8
    for f in files:
        bad = sorted(m for m in _imports(f) if m == "ogdata.policies" or m.startswith("ogdata.policies."))
        assert not bad, f"{f.name} imports {bad}: the envs layer must not know the policies"
    # nor do the specs name policy code: references are policy names the policies layer resolves
    for env_id in list_envs():
        for name in env_spec(env_id).references.values():
            assert ":" not in name and name in list_policies()


def test_every_policy_name_resolves():
    """Each registered "module:attr" string imports (a typo would only show when that policy is used)."""
    from ogdata.policies.reference import _POLICIES, _resolve

    for name in _POLICIES:
        assert callable(_resolve(name)), name
    core = ogdata.envs.make_core("execution-ac", num_envs=2)
    obs, _ = core.reset(seed=0)
    assert make_policy("execution/twap", core)(obs, np.random.default_rng(0)).shape == (2, 1)
    with pytest.raises(InvalidIdError, match="Did you mean"):
        make_policy("execution/twapp", core)
