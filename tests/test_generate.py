"""Dataset generation: episode boundaries, determinism, atomicity under a kill, tiers from recipes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import ogdata
from ogdata import catalogue
from ogdata.envs import registry
from ogdata.envs.core import VectorMarket
from ogdata.errors import DatasetExistsError, InvalidIdError
from ogdata.generate import evenly_spaced_episodes, generate, plan_shards, rebuild, rollout
from ogdata.policies.checkpoint import load_policy
from ogdata.policies.ppo import PPOConfig, PPOTrainer, build_actor_critic

ROOT = Path(__file__).resolve().parent.parent


class Countdown(VectorMarket):
    """obs = [t, episode uid]; reward = t + action; terminates w.p. 0.15 a step, truncates at 12 steps."""

    def __init__(self, num_envs=1):
        super().__init__(num_envs)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)
        self.max_steps = 12
        self.uid = np.zeros(num_envs)

    def _obs(self):
        return np.stack([self._t, self.uid], axis=1).astype(np.float32)

    def _reset(self, mask):
        self.uid = np.where(mask, self.rng.integers(0, 2**20, self.num_envs), self.uid)
        return self._obs(), {}

    def _step(self, a):
        r = self._t + a[:, 0].astype(np.float64)
        self._t += 1
        term = self.rng.random(self.num_envs) < 0.15
        trunc = (self._t >= self.max_steps) & ~term
        return self._obs(), r, term, trunc, {}


@pytest.fixture
def countdown(monkeypatch):
    spec = registry.EnvSpec(id="test-countdown", core=f"{__name__}:Countdown")
    monkeypatch.setitem(registry._REGISTRY, spec.id, spec)
    return spec.id


def _same(a, b):
    a, b = ogdata.load(a).arrays(), ogdata.load(b).arrays()
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def test_episode_boundaries_variable_lengths(countdown, tmp_path):
    ds = generate(countdown, "random", 3000, tmp_path / "d", progress=False, profile=False)
    assert 3000 <= len(ds) < 3000 + 12          # whole episodes, overshoot below one episode
    lens = ds.episode_lengths
    assert lens.min() >= 1 and lens.max() == 12 and len(np.unique(lens)) > 5
    uids = []
    for ep in ds.iter_episodes():
        T = len(ep)
        np.testing.assert_array_equal(ep.observations[:, 0], np.arange(T + 1))   # T+1 observations, in order
        assert (ep.observations[:, 1] == ep.observations[0, 1]).all()            # one market's episode
        np.testing.assert_allclose(ep.rewards, ep.observations[:-1, 0] + ep.actions[:, 0], rtol=1e-6)
        assert not ep.terminations[:-1].any() and not ep.truncations[:-1].any()
        assert ep.terminations[-1] != ep.truncations[-1]
        assert ep.terminations[-1] or T == 12            # truncated only at the 12-step limit
        uids.append(ep.observations[0, 1])
    assert len(set(uids)) == len(uids)


def test_rollout_quota_and_fixed_length_env():
    core = registry.make_core("market-making-as", 8)
    pol = ogdata.policies.make_policy("random", core)
    out = rollout(core, pol, 1000, env_seed=1, policy_seed=2)
    assert out["episode_lengths"].tolist() == [200] * 5        # exactly enough whole episodes
    obs = out["observations"]
    starts = np.concatenate([[0], np.cumsum(out["episode_lengths"] + 1)[:-1]])
    assert (obs[starts, 1] == 1.0).all() and (obs[starts + 200, 1] == 0.0).all()   # time left 1 -> 0
    assert out["terminations"].sum() == 5 and out["terminations"][199::200].all()


def test_deterministic_across_workers_and_seeded(tmp_path):
    kw = dict(progress=False, profile=False, shard_transitions=1000)
    a = generate("market-making-as", "random", 4000, tmp_path / "a", workers=1, seed=7, **kw)
    b = generate("market-making-as", "random", 4000, tmp_path / "b", workers=2, seed=7, **kw)
    c = generate("market-making-as", "random", 4000, tmp_path / "c", workers=1, seed=8, **kw)
    assert a.metadata["recipe"]["generation"]["shards"] == 4
    assert _same(a.path, b.path)
    assert {k: v["sha256"] for k, v in a.metadata["manifest"].items()} == \
           {k: v["sha256"] for k, v in b.metadata["manifest"].items()}       # identical files, too
    assert not _same(a.path, c.path)


def test_multi_agent_generation(tmp_path):
    ds = generate("multi-market-making-2", "random", 800, tmp_path / "m", progress=False, profile=False)
    arr = ds.arrays()
    assert ds.multi_agent and ds.agents == ["maker_0", "maker_1"]
    assert arr["actions"].shape == (800, 2, 2) and arr["rewards"].shape == (800, 2)
    assert arr["states"].shape == (804, 7) and arr["observations"].shape == (804, 2, 7)
    starts = np.concatenate([[0], np.cumsum(ds.episode_lengths + 1)[:-1]])
    assert (arr["states"][starts, 2] == 1.0).all() and (arr["states"][starts + 200, 2] == 0.0).all()
    # cooperative: both makers receive the team reward
    np.testing.assert_array_equal(arr["rewards"][:, 0], arr["rewards"][:, 1])


def _checkpoint(tmp_path, name, seed):
    tr = PPOTrainer("market-making-as", PPOConfig(num_envs=2, seed=seed))
    import torch

    torch.manual_seed(seed)
    model = build_actor_critic(tr.actor_in, tr.critic_in, tr.act_dim, tr.cfg.hidden, False, -0.5)
    for p in model.actor.parameters():
        torch.nn.init.normal_(p, std=0.5)
    from ogdata.policies.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path / name, tr.policy_tensors(model), tr.policy_config())


def test_checkpoint_tier_mixes_seeds_exactly(tmp_path):
    stems = [_checkpoint(tmp_path, f"p{s}", s) for s in (0, 1)]
    recipe = {"env_id": "market-making-as", "env_kwargs": {}, "version": 0,
              "tiers": {"good": {"noise": {"type": "gaussian", "value": 0.0}, "threshold": 80, "reached": False,
                                 "policies": [{"seed": s, "checkpoint": str(p), "score": 70.0 + s}
                                              for s, p in zip((0, 1), stems)]}}}
    ds = generate("market-making-as", "good", 800, tmp_path / "g", recipe=recipe, progress=False, profile=False)
    assert ds.metadata["recipe"]["behaviour"]["normalised_score"] == 70.5
    assert ds.metadata["recipe"]["reached"] is False
    arr = ds.arrays()
    obs_idx = np.arange(800) + np.repeat(np.arange(ds.num_episodes), ds.episode_lengths)
    obs = arr["observations"][obs_idx]
    for half, stem in zip((slice(0, 400), slice(400, 800)), stems):   # equal shares, in source order
        np.testing.assert_allclose(arr["actions"][half], load_policy(stem)(obs[half], None), atol=2e-5)
    assert not np.array_equal(load_policy(stems[0])(obs, None), load_policy(stems[1])(obs, None))


def test_replay_tier_from_training_runs_rebuilds_identically(tmp_path, _isolated_home):
    cfg = PPOConfig(total_steps=4096, num_envs=16, n_steps=32, checkpoints=1, early_checkpoints=0, eval_episodes=8)
    recipe = {"env_id": "market-making-as", "env_kwargs": {}, "version": 0,
              "reference_returns": {"random": -11.6, "expert": 37.5},
              "training": {"config": cfg.to_json(), "seeds": [0, 1], "record_envs": 2},
              "tiers": {"replay": {"transitions": 600}}}
    a = generate("market-making-as", "replay", 600, tmp_path / "a", recipe=recipe, progress=False)
    assert len(a) == 800 and a.num_episodes == 4                      # 300 per seed -> 2 whole episodes each
    assert [r["seed"] for r in a.metadata["recipe"]["replay"]] == [0, 1]
    assert a.measures["saco"] == 1.0 and a.measures["tq"] is not None  # the replay tier is its own reference
    rec = ogdata.load(_isolated_home / "training" / "market-making-as" / "seed-0" / "replay")
    np.testing.assert_array_equal(a.episode(0).actions, rec.episode(0).actions)
    import shutil

    shutil.rmtree(_isolated_home / "training")                          # offline rebuild: re-train, same data
    b = generate("market-making-as", "replay", 600, tmp_path / "b", recipe=recipe, progress=False)
    assert _same(a.path, b.path)


def test_evenly_spaced_episodes():
    lens = np.full(100, 10)
    idx = evenly_spaced_episodes(lens, 95)
    assert len(idx) == 10 and idx.tolist() == list(range(0, 100, 10))
    assert evenly_spaced_episodes(lens, 5000).tolist() == list(range(100))
    var = np.random.default_rng(0).integers(1, 30, 500)
    sel = evenly_spaced_episodes(var, 2000)
    assert var[sel].sum() >= 2000 and (np.diff(sel) > 0).all()


def test_plan_does_not_depend_on_workers_and_splits_sources():
    shards = plan_shards([{"s": 0}, {"s": 1}], 10_001, seed=3, tier="good", shard_transitions=2000)
    assert sum(s["quota"] for s in shards) == 10_001
    assert [s["source"] for s in shards] == [0] * 3 + [1] * 3
    assert len({s["env_seed"] for s in shards}) == 6


def test_killed_run_leaves_nothing_and_rerun_succeeds(tmp_path):
    target = tmp_path / "env" / "random-v0"
    code = ("from ogdata.generate import generate; "
            f"generate('market-making-as', 'random', 50_000_000, {str(target)!r}, workers=2, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not list(target.parent.glob(".random-v0.partial-*")) and time.time() < deadline:
            time.sleep(0.1)
        assert list(target.parent.glob(".random-v0.partial-*")), "the generator never started writing"
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not target.exists()
    ds = generate("market-making-as", "random", 400, target, progress=False, profile=False)
    from ogdata.storage import verify

    assert len(ds) == 400 and verify(target)["num_transitions"] == 400
    assert ds.dataset_id is None     # an ad-hoc size never claims the catalogue id
    assert [p.name for p in target.parent.iterdir()] == ["random-v0"]    # the stale staging dir is gone


def test_errors(tmp_path, countdown):
    with pytest.raises(InvalidIdError, match="tier"):
        generate("market-making-as", "great", 10, tmp_path / "x", progress=False)
    with pytest.raises(InvalidIdError, match="train_behaviour"):
        generate(countdown, "good", 10, tmp_path / "x", progress=False)
    generate(countdown, "random", 10, tmp_path / "y", progress=False, profile=False)
    with pytest.raises(DatasetExistsError):
        generate(countdown, "random", 10, tmp_path / "y", progress=False, profile=False)
    with pytest.raises(InvalidIdError):
        rebuild("market-making-as/great-v0", tmp_path / "z")


def test_ray_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    kw = dict(progress=False, profile=False, shard_transitions=1000, seed=4)
    a = generate("market-making-as", "random", 3000, tmp_path / "a", **kw)
    try:
        b = generate("market-making-as", "random", 3000, tmp_path / "b", ray_address="local", **kw)
    finally:
        ray.shutdown()
    assert b.metadata["recipe"]["generation"]["ray"] is True
    assert _same(a.path, b.path)


def test_rebuild_matches_catalogue_identity(tmp_path):
    from ogdata.catalogue import catalogue_ids, tier_recipe

    did = "market-making-as/good-v0"
    assert did in catalogue_ids()
    _, t = tier_recipe(did)
    ds = rebuild(did, tmp_path / "good-v0", progress=False)
    assert ds.dataset_id == did and len(ds) >= t["transitions"]
    assert ds.metadata["recipe"]["source"] == "ogdata/catalogue/market-making-as.json"
    assert catalogue.recipe_identity(ds.metadata) == catalogue.catalogue_identity(did)
    assert ds.measures["behaviour_normalised_score"] > 80


def _assert_close(a, b, rel=1e-7):
    """Nested equality with floats compared to a relative tolerance."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_close(a[k], b[k], rel)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_close(x, y, rel)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rel)
    else:
        assert a == b


def test_poor_tier_is_mixed_down_to_its_target_and_rebuilt_from_the_recipe(tmp_path):
    import copy

    from ogdata.catalogue import recipe
    from tests.scripts import load_script

    tb = load_script("train_behaviour")
    r = recipe("execution-ac")
    t = r["tiers"]["poor"]
    # the untrained actor already scores ~45 here, so each seed is mixed with the random policy
    assert t["reached"] and t["mixing"]["type"] == "uniform-random"
    for p in t["policies"]:
        assert p["checkpoint_score"] > 30 and 0 < p["random_prob"] < 1 and abs(p["score"] - 20) <= 2
    # the bisection is deterministic: redoing it from the checkpoints gives the committed recipe
    again = copy.deepcopy(r)
    assert tb.apply_mixing(again, "poor") == [p["random_prob"] for p in t["policies"]]
    # scores are re-measured on 1024 episodes: equal up to BLAS summation order (threads, CPU kernel)
    _assert_close(again["tiers"]["poor"], t)
    # a seed whose checkpoint is already near the target is left unmixed
    near = copy.deepcopy(r)
    near["tiers"]["poor"]["policies"][0]["checkpoint_score"] = 25.0
    assert tb.apply_mixing(near, "poor")[0] == 0.0
    assert "random_prob" not in near["tiers"]["poor"]["policies"][0]
    # generation rolls the mixed policy: recorded in the metadata, and it scores like the recipe says
    ds = rebuild("execution-ac/poor-v0", tmp_path / "poor-v0", progress=False)
    assert catalogue.recipe_identity(ds.metadata) == catalogue.catalogue_identity("execution-ac/poor-v0")
    assert [s["random_prob"] for s in ds.metadata["recipe"]["generation"]["sources"]] == \
        [p["random_prob"] for p in t["policies"]]
    rets = np.add.reduceat(ds.arrays()["rewards"], np.r_[0, np.cumsum(ds.episode_lengths)[:-1]])
    expected = np.mean([p["return_mean"] for p in t["policies"]])
    assert abs(rets.mean() - expected) < 4 * rets.std() / np.sqrt(len(rets))


def test_in_process_generation_runs_with_one_thread_and_restores_the_limits(tmp_path, monkeypatch):
    """Single-worker generation runs in this process: BLAS and torch get one thread while a shard
    rolls (threaded small matmuls are slower and change the last float bits), and the caller's
    limits come back afterwards."""
    import torch
    from threadpoolctl import threadpool_info

    import ogdata.generate as gen

    seen = []
    real = gen._run_shard

    def spy(spec):
        seen.append(({i["internal_api"]: i["num_threads"] for i in threadpool_info()}, torch.get_num_threads()))
        return real(spec)

    monkeypatch.setattr(gen, "_run_shard", spy)
    callers_torch = torch.get_num_threads()
    torch.set_num_threads(2)   # this sets OpenMP's pool too: read the limits to restore after it
    before_blas = {i["internal_api"]: i["num_threads"] for i in threadpool_info()}
    try:
        generate("market-making-as", "random", 3000, tmp_path / "d", workers=1, progress=False, profile=False,
                 shard_transitions=1000)
        assert len(seen) == 3
        for blas, torch_threads in seen:
            assert blas and set(blas.values()) == {1}
            assert torch_threads == 1
        assert {i["internal_api"]: i["num_threads"] for i in threadpool_info()} == before_blas
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(callers_torch)
