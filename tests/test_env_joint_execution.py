"""Multi-agent joint execution: PettingZoo API, shared impact, cooperative vs greedy desks."""

import numpy as np
import pytest
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test

import ogdata.envs as E
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import episode_returns, make_policy

IDS = ["joint-execution-2", "joint-execution-4"]


def test_registered_as_parallel_envs():
    for env_id in IDS:
        assert env_id in E.list_envs(multi_agent=True)
        env = E.make_env(env_id)
        assert isinstance(env, ParallelEnv)
        n = int(env_id.rsplit("-", 1)[1])
        assert env.possible_agents == [f"desk_{i}" for i in range(n)]
        assert env.state_space.shape == (2 + 2 * n + 5,)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("kwargs", [{}, {"mode": "competitive", "observe_others": True}])
def test_parallel_api(env_id, kwargs):
    parallel_api_test(E.make_env(env_id, **kwargs), num_cycles=30)


def test_observations_and_global_state():
    env = E.make_env("joint-execution-2", observe_others=True)
    obs, _ = env.reset(seed=0)
    assert obs["desk_0"].shape == (2 + 5 + 1,)
    obs, *_ = env.step({"desk_0": np.array([0.5], np.float32), "desk_1": np.array([0.25], np.float32)})
    assert obs["desk_0"][0] == pytest.approx(0.5) and obs["desk_1"][0] == pytest.approx(0.75)
    assert obs["desk_0"][-1] == pytest.approx(0.25) and obs["desk_1"][-1] == pytest.approx(0.5)  # others' last
    s = env.state()
    assert s.shape == env.state_space.shape and env.state_space.contains(s)
    np.testing.assert_allclose(s[:6], [0.625, 19 / 20, 0.5, 0.75, 0.5, 0.25], rtol=1e-6)
    np.testing.assert_array_equal(s[6:], obs["desk_0"][2:7])  # the same mid moves everyone sees


def test_deterministic_under_seed():
    def roll(seed):
        env = E.make_env("joint-execution-4")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs["desk_3"]]
        while env.agents:
            obs, rew, *_ = env.step({a: rng.uniform(0, 0.3, 1).astype(np.float32) for a in env.agents})
            out += [obs["desk_3"], [rew["desk_0"]], [env.state()[0]]]
        return np.concatenate(out)

    np.testing.assert_array_equal(roll(11), roll(11))
    assert not np.array_equal(roll(11), roll(12))


def _paths(core, actions):
    core.reset(seed=3)
    mids, cash, rews = [], [], []
    for a in actions:
        _, r, *_, info = core.step(a)
        mids.append(info["mid"])
        cash.append(np.reshape(info["cash"], (core.num_envs, -1)).sum(axis=1))
        rews.append(r)
    return np.array(mids), np.array(cash), np.array(rews)


def test_coupling_two_desks_selling_x_equal_one_desk_selling_2x():
    """Shared impact: two desks selling x each move the price exactly as one desk selling 2x."""
    B = 64
    fr = np.random.default_rng(0).uniform(0, 0.4, (20, B)).astype(np.float32)
    joint = E.make_core("joint-execution-2", num_envs=B)
    single = E.make_core("execution-ac", num_envs=B)
    mj, cj, rj = _paths(joint, np.repeat(fr[:, :, None, None], 2, axis=2))  # each desk: fraction of its X/2
    ms, cs, rs = _paths(single, fr[:, :, None])
    np.testing.assert_array_equal(mj, ms)
    np.testing.assert_array_equal(cj, cs)
    np.testing.assert_array_equal(rj[..., 0], rs)  # the team reward is the single desk's reward
    np.testing.assert_array_equal(rj[..., 1], rs)
    # unequal desks: only the total matters (desk fractions a, b of X/2 == one desk's (a+b)/2 of X)
    # (dyadic fractions, so the float32 action (a + b) / 2 is exact)
    fa, fb = np.random.default_rng(1).integers(0, 32, (2, 1, B)) / 64
    mj, cj, _ = _paths(joint, np.stack([fa, fb], axis=2)[..., None])
    ms, cs, _ = _paths(single, ((fa + fb) / 2)[..., None])
    np.testing.assert_allclose(mj, ms, rtol=1e-12)
    np.testing.assert_allclose(cj, cs, rtol=1e-12)


def test_execution_price_depends_on_the_total_rate():
    core = E.make_core("joint-execution-2", num_envs=2, sigma=0.0)
    core.reset(seed=0)
    _, _, _, _, info = core.step(np.array([[[0.25], [0.0]], [[0.25], [0.25]]]))
    q = 0.25 * core.X / 2
    per_share = info["costs"][:, 0] / q
    np.testing.assert_allclose(per_share, [core.eps + core.eta * q / core.tau,
                                           core.eps + core.eta * 2 * q / core.tau], rtol=1e-12)
    np.testing.assert_allclose(info["mid"], core.S0 - core.gamma * np.array([q, 2 * q]), rtol=1e-15)


def test_one_desk_joint_core_is_the_single_agent_env():
    B = 8
    fr = np.random.default_rng(2).uniform(0, 0.3, (20, B))
    _, cj, rj = _paths(E.make_core("joint-execution-2", num_envs=B, n_agents=1), fr[:, :, None, None])
    _, cs, rs = _paths(E.make_core("execution-ac", num_envs=B), fr[:, :, None])
    np.testing.assert_array_equal(cj, cs)
    np.testing.assert_array_equal(rj[..., 0], rs)


def test_cooperative_and_competitive_rewards():
    B, n = 16, 4
    acts = np.random.default_rng(3).uniform(0, 0.5, (20, B, n, 1))
    _, _, coop = _paths(E.make_core("joint-execution-4", num_envs=B, risk_aversion=0.0), acts)
    _, _, comp = _paths(E.make_core("joint-execution-4", num_envs=B, risk_aversion=0.0, mode="competitive"), acts)
    assert (coop == coop[..., :1]).all()  # one team reward
    assert not np.allclose(comp, comp[..., :1])  # each desk its own
    # with equal splits and no risk charge the desks' shortfalls add up to the firm's
    np.testing.assert_allclose(comp.mean(axis=-1), coop[..., 0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("env_id", IDS)
def test_cooperative_reference_beats_independent_greedy(env_id):
    core = E.make_core(env_id, num_envs=500)
    coop = episode_returns(core, make_policy("execution/joint-ac", core), 500, seed=1)["returns"]
    greedy = episode_returns(core, make_policy("execution/independent-greedy", core), 500, seed=1)["returns"]
    diff = coop - greedy  # paired: the same price noise
    assert diff.mean() > 5 * diff.std() / np.sqrt(diff.size)
    assert diff.mean() > 50  # bp of the parent order: a large effect, not a rounding one


def test_bad_action_dicts():
    env = E.make_env("joint-execution-2")
    env.reset(seed=0)
    good = np.array([0.1], np.float32)
    with pytest.raises(InvalidActionError, match=r"missing \['desk_1'\]"):
        env.step({"desk_0": good})
    with pytest.raises(InvalidActionError, match=r"unexpected \['desk_9'\]"):
        env.step({"desk_0": good, "desk_1": good, "desk_9": good})
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step({"desk_0": good, "desk_1": np.array([np.nan], np.float32)})
    a, b = E.make_env("joint-execution-2"), E.make_env("joint-execution-2")
    a.reset(seed=0)
    b.reset(seed=0)
    oa = a.step({"desk_0": np.array([7.0], np.float32), "desk_1": np.array([-2.0], np.float32)})[0]
    ob = b.step({"desk_0": np.array([1.0], np.float32), "desk_1": np.array([0.0], np.float32)})[0]
    np.testing.assert_array_equal(oa["desk_0"], ob["desk_0"])  # clipped into [0, 1]
    np.testing.assert_array_equal(oa["desk_1"], ob["desk_1"])
    while b.agents:
        b.step({ag: good for ag in b.agents})
    with pytest.raises(EnvError, match="reset"):
        b.step({"desk_0": good, "desk_1": good})


@pytest.mark.parametrize("kwargs, match", [
    ({"n_agents": 0}, "n_agents must be an integer >= 1"),
    ({"n_agents": 2.0}, "n_agents must be an integer >= 1"),
    ({"mode": "selfish"}, "mode must be one of"),
    ({"split": [0.5, 0.5, 0.0, 1.0]}, "split must be 4 positive"),
    ({"split": [1, 1]}, "split must be 4 positive"),
    ({"eta": -1.0}, "eta must be >= 0"),
    ({"shares": 0}, "shares must be > 0"),
    ({"steps": 0}, "steps must be"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(EnvError, match=match):
        E.make_env("joint-execution-4", **kwargs)


def test_unequal_split():
    env = E.make_env("joint-execution-2", split=[3, 1], sigma=0.0)
    env.reset(seed=0)
    *_, infos = env.step({"desk_0": np.array([0.0], np.float32), "desk_1": np.array([0.0], np.float32)})
    assert infos["desk_0"]["inventory"] == 750_000 and infos["desk_1"]["inventory"] == 250_000
