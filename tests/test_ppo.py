"""PPO / MAPPO behaviour-policy training and checkpoints, on tiny toy cores."""

import json

import numpy as np
import pytest
from gymnasium import spaces

from ogdata.envs.core import VectorMarket
from ogdata.errors import DatasetNotFoundError, MetadataError
from ogdata.policies.checkpoint import BehaviourPolicy, load_checkpoint, load_policy, save_checkpoint
from ogdata.policies.ppo import PPOConfig, PPOTrainer, checkpoint_iterations, train


class Target(VectorMarket):
    """Observe c ~ U[-1, 1]^2 each step; reward −(a0 − c0)² − (a1 + c1)²; 8 steps. Optimum: a = (c0, −c1)."""

    def __init__(self, num_envs=1):
        super().__init__(num_envs)
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Box(-2, 2, (2,), np.float32)
        self.max_steps = 8
        self.c = np.zeros((num_envs, 2), np.float32)

    def _draw(self):
        self.c = self.rng.uniform(-1, 1, (self.num_envs, 2)).astype(np.float32)
        return self.c.copy()

    def _reset(self, mask):
        return self._draw(), {}

    def _step(self, a):
        r = -((a[:, 0] - self.c[:, 0]) ** 2 + (a[:, 1] + self.c[:, 1]) ** 2)
        self._t += 1
        done = self._t >= self.max_steps
        return self._draw(), r.astype(np.float64), np.zeros_like(done), done, {}


class Sign(Target):
    """Discrete: 3 actions; reward 1 when the action is 0 for c0 < -1/3, 1 for |c0| <= 1/3, 2 for c0 > 1/3."""

    def __init__(self, num_envs=1):
        super().__init__(num_envs)
        self.action_space = spaces.Discrete(3)

    def _step(self, a):
        want = np.digitize(self.c[:, 0], [-1 / 3, 1 / 3])
        self._t += 1
        done = self._t >= self.max_steps
        return self._draw(), (a == want).astype(np.float64), done, np.zeros_like(done), {}


class Mirror(VectorMarket):
    """Two agents see the same c; agent 0 is paid for a = c, agent 1 for a = −c (needs the agent id)."""

    multi_agent = True
    agents = ("a0", "a1")

    def __init__(self, num_envs=1):
        super().__init__(num_envs)
        self.observation_space = spaces.Box(-1, 1, (1,), np.float32)
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)
        self.state_space = spaces.Box(-1, 1, (1,), np.float32)
        self.max_steps = 8
        self.c = np.zeros(num_envs, np.float32)

    def _obs(self):
        self.c = self.rng.uniform(-1, 1, self.num_envs).astype(np.float32)
        return np.repeat(self.c[:, None, None], 2, axis=1)

    def _reset(self, mask):
        return self._obs(), {}

    def _step(self, a):
        target = np.stack([self.c, -self.c], axis=1)
        r = -((a[..., 0] - target) ** 2)
        self._t += 1
        done = np.repeat((self._t >= self.max_steps)[:, None], 2, axis=1)
        return self._obs(), r.astype(np.float64), done, np.zeros_like(done), {}

    def state(self):
        return self.c[:, None].copy()


def small(**kw):
    base = dict(total_steps=40_000, num_envs=32, n_steps=32, checkpoints=3, early_checkpoints=0,
                eval_episodes=32, lr=3e-3)
    return PPOConfig(**{**base, **kw})


def test_ppo_improves_continuous():
    # random uniform on [-2, 2]: E[(a - c)^2] = 4/3 + 1/3 per dim -> 8 steps * 2 dims * 5/3
    refs = {"random": -8 * 2 * 5 / 3, "expert": 0.0}
    res = train(lambda b: Target(b), small(), references=refs, progress=False)
    first, last = res.checkpoints[0], res.checkpoints[-1]
    assert last["env_steps"] > 30_000
    assert last["score_deterministic"] > 90 > first["score_deterministic"] + 10
    assert last["score"] > 80   # with the tiers' rollout noise (σ = 0.1 on the [-1, 1] scale)


def test_ppo_improves_discrete():
    res = train(lambda b: Sign(b), small(ent_coef=0.01), references={"random": 8 / 3, "expert": 8.0},
                progress=False)
    assert res.checkpoints[0]["score_deterministic"] < 50
    assert res.checkpoints[-1]["score_deterministic"] > 85
    assert res.checkpoints[-1]["noise"] == 0.05   # ε-greedy default for Discrete


def test_mappo_uses_agent_id_and_central_critic():
    res = train(lambda b: Mirror(b), small(), references={"random": -8 * (1 / 3 + 1 / 3), "expert": 0.0},
                progress=False)
    tr = res.trainer
    assert tr.critic_in == 1 + 2 and tr.actor_in == 1 + 2   # state ‖ id and obs ‖ id
    assert res.checkpoints[-1]["score_deterministic"] > 85
    pol = tr.behaviour_policy(tr.model)
    a = pol(np.full((4, 2, 1), 0.5, np.float32), np.random.default_rng(0))
    assert a.shape == (4, 2, 1)
    assert a[:, 0, 0].mean() > 0.3 and a[:, 1, 0].mean() < -0.3   # same obs, opposite actions


def test_training_is_deterministic():
    cfg = small(total_steps=4096, checkpoints=1)
    t = [train(lambda b: Target(b), cfg, references=None, progress=False).trainer for _ in range(2)]
    w0, w1 = (x.policy_tensors(x.model) for x in t)
    assert w0.keys() == w1.keys() and all(np.array_equal(w0[k], w1[k]) for k in w0)


def test_checkpoints_round_trip(tmp_path):
    import torch

    res = train(lambda b: Target(b), small(total_steps=4096, checkpoints=2), references=None,
                out_dir=tmp_path, progress=False)
    tr = res.trainer
    stem = tmp_path / "ckpt-002"
    tensors, cfg = load_checkpoint(stem.with_suffix(".safetensors"))
    want = tr.policy_tensors(tr.model)
    assert sorted(tensors) == sorted(want)
    for k in want:
        assert tensors[k].dtype == want[k].dtype and np.array_equal(tensors[k], want[k]), k
    assert not any(k.startswith("critic") for k in tensors)   # behaviour policies ship the actor only
    assert cfg["format"] == "ogdata-policy" and cfg["training"]["iteration"] == res.checkpoints[-1]["iteration"]
    assert cfg["evaluation"]["score"] is None and cfg["action"]["type"] == "box"

    pol = load_policy(stem)
    obs = np.random.default_rng(1).uniform(-1, 1, (16, 2)).astype(np.float32)
    x = pol.forward(obs)
    with torch.no_grad():
        xin = torch.from_numpy(((obs - tr.obs_norm.mean) / np.sqrt(tr.obs_norm.var + 1e-8)).astype(np.float32))
        ref = tr.model.actor(xin).numpy()
    np.testing.assert_allclose(x, ref, atol=1e-6)
    a = pol(obs, np.random.default_rng(0))
    np.testing.assert_allclose(a, np.clip(ref, -1, 1) * 2.0, atol=1e-5)   # Box [-2, 2]: centre 0, scale 2
    # saving what was loaded gives the same files' content
    save_checkpoint(tmp_path / "copy", tensors, {k: v for k, v in cfg.items() if k not in ("format", "format_version")})
    t2, c2 = load_checkpoint(tmp_path / "copy")
    assert c2 == cfg and all(np.array_equal(t2[k], tensors[k]) for k in tensors)


def test_noise_is_seeded_and_scaled(tmp_path):
    tr = PPOTrainer(lambda b: Target(b), small())
    from ogdata.policies.ppo import build_actor_critic

    model = build_actor_critic(2, 2, 2, tr.cfg.hidden, False, -0.5)
    pol = BehaviourPolicy(tr.policy_tensors(model), tr.policy_config(), noise=0.1)
    obs = np.zeros((20_000, 2), np.float32)
    a1, a2 = pol(obs, np.random.default_rng(5)), pol(obs, np.random.default_rng(5))
    assert np.array_equal(a1, a2)
    base = BehaviourPolicy(tr.policy_tensors(model), tr.policy_config())(obs, None)
    # σ = 0.1 on the [-1, 1] scale is σ = 0.2 on the [-2, 2] action box
    assert abs((a1 - base).std() - 0.2) < 0.01


def test_epsilon_greedy_rate():
    tr = PPOTrainer(lambda b: Sign(b), small())
    from ogdata.policies.ppo import build_actor_critic

    model = build_actor_critic(2, 2, 3, tr.cfg.hidden, True, 0.0)
    det = BehaviourPolicy(tr.policy_tensors(model), tr.policy_config())
    eps = BehaviourPolicy(tr.policy_tensors(model), tr.policy_config(), noise=0.3)
    obs = np.random.default_rng(0).uniform(-1, 1, (30_000, 2)).astype(np.float32)
    changed = (det(obs, None) != eps(obs, np.random.default_rng(1))).mean()
    assert abs(changed - 0.3 * 2 / 3) < 0.015   # a uniform draw equals the greedy action 1/3 of the time
    assert det(obs, None).dtype == np.int64


def test_checkpoint_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="safetensors"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "x", {"w": np.zeros(2, np.float32)}, {"a": 1})
    cfg = json.loads((tmp_path / "x.json").read_text())
    cfg["format"] = "something-else"
    (tmp_path / "x.json").write_text(json.dumps(cfg))
    with pytest.raises(MetadataError, match="ogdata-policy"):
        load_checkpoint(tmp_path / "x")
    with pytest.raises(ValueError, match="noise"):
        BehaviourPolicy({}, {}, noise=-1)


def test_checkpoint_schedule():
    assert checkpoint_iterations(100, 4, 3) == [0, 1, 2, 4, 25, 50, 75, 100]
    assert checkpoint_iterations(3, 1, 6) == [0, 1, 2, 3]


def test_random_mixing_rate_bounds_and_no_draws_when_off():
    tr = PPOTrainer(lambda b: Target(b), small())
    from ogdata.policies.ppo import build_actor_critic

    model = build_actor_critic(2, 2, 2, tr.cfg.hidden, False, -0.5)
    tensors, cfg = tr.policy_tensors(model), tr.policy_config()
    obs = np.zeros((40_000, 2), np.float32)
    base = BehaviourPolicy(tensors, cfg, noise=0.1)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    # p = 0 is the unmixed policy, draw for draw (unmixed tiers stay byte-identical)
    assert np.array_equal(base(obs, rng_a), BehaviourPolicy(tensors, cfg, noise=0.1, random_prob=0.0)(obs, rng_b))
    assert rng_a.random() == rng_b.random()
    mixed = BehaviourPolicy(tensors, cfg, noise=0.1, random_prob=0.4)(obs, np.random.default_rng(4))
    unchanged = BehaviourPolicy(tensors, cfg, noise=0.1)(obs, np.random.default_rng(4))
    assert np.all((mixed >= -2.0) & (mixed <= 2.0))   # the Box is [-2, 2]
    changed = np.any(mixed != unchanged, axis=1)
    assert abs(changed.mean() - 0.4) < 0.01
    # the replaced actions are uniform over the box: mean 0, variance (4^2)/12 per dimension
    rand = BehaviourPolicy(tensors, cfg, random_prob=1.0)(obs, np.random.default_rng(5))
    assert np.all(np.abs(rand.mean(axis=0)) < 0.03) and np.all(np.abs(rand.var(axis=0) - 16 / 12) < 0.03)
    with pytest.raises(ValueError, match="random_prob must be a probability"):
        BehaviourPolicy(tensors, cfg, random_prob=1.5)


def test_random_mixing_discrete_rate():
    tr = PPOTrainer(lambda b: Sign(b), small())
    from ogdata.policies.ppo import build_actor_critic

    model = build_actor_critic(2, 2, 3, tr.cfg.hidden, True, 0.0)
    det = BehaviourPolicy(tr.policy_tensors(model), tr.policy_config())
    mix = BehaviourPolicy(tr.policy_tensors(model), tr.policy_config(), random_prob=0.6)
    obs = np.random.default_rng(0).uniform(-1, 1, (30_000, 2)).astype(np.float32)
    changed = (det(obs, None) != mix(obs, np.random.default_rng(1))).mean()
    assert abs(changed - 0.6 * 2 / 3) < 0.015
