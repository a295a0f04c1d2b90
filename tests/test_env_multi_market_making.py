"""multi-market-making-<n>: PettingZoo API, best-quote matching, team vs individual rewards, references."""

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import ogdata
from ogdata.envs.market_making import MultiMarketMaking
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import episode_returns, make_policy
from ogdata.policies.market_making import CooperativeAS

IDS = ["multi-market-making-2", "multi-market-making-3"]


def fixed(depths):
    d = np.asarray(depths, dtype=np.float32)          # (n, 2)
    return lambda obs, rng: np.broadcast_to(d, (obs.shape[0],) + d.shape).copy()


def rollout(core, policy, seed, steps=None):
    obs, info = core.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rec = {"obs": [obs], "act": [], "rew": [], "info": [info], "state": [core.state()]}
    for _ in range(steps or core.max_steps):
        a = policy(obs, rng)
        obs, r, te, tr, info = core.step(a)
        for k, v in zip(("obs", "act", "rew", "info", "state"), (obs, a, r, info, core.state())):
            rec[k].append(v)
    return rec


@pytest.mark.parametrize("env_id", IDS)
def test_parallel_api_and_state(env_id):
    assert env_id in ogdata.list_envs(multi_agent=True)
    env = ogdata.make_env(env_id)
    parallel_api_test(env, num_cycles=250)
    n = int(env_id.rsplit("-", 1)[1])
    obs, infos = env.reset(seed=0)
    assert env.agents == [f"maker_{i}" for i in range(n)]
    s = env.state()
    assert env.state_space.contains(s) and s.shape == (n + 1 + 4,)
    for a in env.agents:
        assert env.observation_space(a).contains(obs[a])
        assert env.action_space(a).shape == (2,)
        assert set(infos[a]) >= {"cash", "inventory", "pnl", "fills", "firm_inventory"}


def test_episode_ends_for_all_agents_and_determinism():
    def run(seed):
        env = ogdata.make_env("multi-market-making-3", n_steps=100, intensity=50.0)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for t in range(100):
            acts = {a: rng.uniform(0, 4, 2).astype(np.float32) for a in env.agents}
            obs, rew, term, trunc, info = env.step(acts)
            out.append([rew[a] for a in sorted(rew)])
            assert all(term.values()) == (t == 99) and not any(trunc.values())
        assert env.agents == []
        return np.array(out)

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_only_the_best_quote_fills():
    B, steps = 4000, 10
    core = MultiMarketMaking(num_envs=B, n_agents=3, max_inventory=1000)
    quotes = [[0.3, 1.5], [1.0, 0.2], [2.0, 2.0]]
    rec = rollout(core, fixed(quotes), seed=1, steps=steps)
    fills = np.stack([i["fills"] for i in rec["info"][1:]])                    # (T, B, n, 2)
    assert fills[..., 1:, 0].sum() == 0       # deeper bids never fill
    assert fills[..., 0, 1].sum() == 0 and fills[..., 2, 1].sum() == 0
    assert np.all(fills.sum(axis=2) <= 1)     # one unit per side per step
    p = core._lam_dt * np.exp(-core.kappa * np.array([0.3, 0.2]))
    freq = np.array([fills[..., 0, 0].mean(), fills[..., 1, 1].mean()])
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / (B * steps)))


def test_ties_split_randomly():
    B, steps = 4000, 10
    core = MultiMarketMaking(num_envs=B, n_agents=2, max_inventory=1000)
    rec = rollout(core, fixed([[0.5, 0.5], [0.5, 0.5]]), seed=2, steps=steps)
    fills = np.stack([i["fills"] for i in rec["info"][1:]])
    per_maker = fills.sum(axis=(0, 1, 3))
    total = per_maker.sum()
    assert abs(per_maker[0] - total / 2) < 5 * np.sqrt(total / 4)           # Binomial(total, 1/2)
    p = core._lam_dt * np.exp(-core.kappa * 0.5)
    assert abs(total / (B * steps * 2) - p) < 5 * np.sqrt(p * (1 - p) / (B * steps * 2))
    assert np.all(np.isin(fills, (0.0, 1.0)))                                # whole units only


def test_maker_at_bound_is_skipped_for_the_next_best():
    # λ·dt = 1: maker 0's bid at depth 0 fills at step 1 and hits its bound of 1
    core = MultiMarketMaking(num_envs=2000, n_agents=2, intensity=200.0, max_inventory=1, sigma=0.0)
    rec = rollout(core, fixed([[0.0, 4.0], [0.5, 4.0]]), seed=3, steps=2)
    f1, f2 = rec["info"][1]["fills"], rec["info"][2]["fills"]
    assert np.all(f1[:, 0, 0] == 1) and np.all(f1[:, 1, 0] == 0)
    full = rec["info"][1]["inventory"][:, 0] == 1            # (unless its deep ask also filled)
    assert full.mean() > 0.99
    assert np.all(f2[full, 0, 0] == 0)
    p = np.exp(-core.kappa * 0.5)
    assert abs(f2[full, 1, 0].mean() - p) < 5 * np.sqrt(p * (1 - p) / full.sum())


@pytest.mark.parametrize("mode", ["cooperative", "competitive"])
def test_reward_formulas(mode):
    core = MultiMarketMaking(num_envs=64, n_agents=3, mode=mode, n_steps=30, intensity=25.0,
                             running_penalty=0.4, terminal_penalty=3.0, max_inventory=4)
    rec = rollout(core, make_policy("random", core), seed=4)
    dt = core.dt
    for t in range(30):
        i0, i1 = rec["info"][t], rec["info"][t + 1]
        dw = i1["pnl"] - i0["pnl"]                                              # (B, n)
        q1 = i1["inventory"]
        coef = 0.4 * dt + 3.0 * (t == 29)
        np.testing.assert_allclose(i1["firm_inventory"], q1.sum(axis=1))
        if mode == "cooperative":
            team = dw.sum(axis=1) - coef * q1.sum(axis=1) ** 2
            np.testing.assert_allclose(rec["rew"][t], np.repeat(team[:, None], 3, axis=1), atol=1e-9)
        else:
            np.testing.assert_allclose(rec["rew"][t], dw - coef * q1 ** 2, atol=1e-9)
    assert np.abs(rec["info"][-1]["inventory"]).max() <= 4


def test_state_is_global_and_consistent_with_observations():
    core = MultiMarketMaking(num_envs=8, n_agents=3)
    rec = rollout(core, make_policy("random", core), seed=6, steps=20)
    obs, state = rec["obs"][-1], rec["state"][-1]
    np.testing.assert_allclose(state[:, :3], obs[:, :, 0])                   # every inventory
    np.testing.assert_allclose(state[:, 3:], obs[:, 0, 2:])                  # time left, moves
    firm = np.broadcast_to(obs[:, :, 0].sum(axis=1, keepdims=True) / 3, (8, 3))
    np.testing.assert_allclose(obs[:, :, 1], firm, rtol=1e-6)


def test_action_dict_errors():
    env = ogdata.make_env("multi-market-making-2")
    env.reset(seed=0)
    ok = np.float32([0.5, 0.5])
    with pytest.raises(InvalidActionError, match="missing"):
        env.step({"maker_0": ok})
    with pytest.raises(InvalidActionError, match="unexpected"):
        env.step({"maker_0": ok, "maker_1": ok, "maker_9": ok})
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step({"maker_0": ok, "maker_1": np.float32([np.nan, 0.5])})
    # negative / too deep depths are clipped to [0, max_depth]
    a = rollout(MultiMarketMaking(num_envs=4), fixed([[-3, 9], [0.5, -1]]), seed=0)
    b = rollout(MultiMarketMaking(num_envs=4), fixed([[0, 4], [0.5, 0]]), seed=0)
    np.testing.assert_array_equal(np.stack(a["rew"]), np.stack(b["rew"]))


@pytest.mark.parametrize("kwargs,match", [
    ({"n_agents": 0}, "n_agents"), ({"n_agents": 1.5}, "n_agents"), ({"mode": "selfish"}, "mode"),
    ({"kappa": 0}, "kappa"), ({"sigma": -1}, "sigma"), ({"n_steps": 0}, "n_steps"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(EnvError, match=match):
        ogdata.make_env("multi-market-making-2", **kwargs)


def test_cooperative_reference_quotes_through_one_maker_per_side():
    core = MultiMarketMaking(num_envs=1, n_agents=3)
    obs = np.zeros((1, 3, 7), dtype=np.float32)
    obs[0, :, 0] = np.array([2, -1, 5]) / 20
    obs[0, :, 2] = 0.5
    a = CooperativeAS(core)(obs, None)[0]
    single = make_policy("market-making/avellaneda-stoikov", core)
    firm = single(np.float32([[[6 / 20, 0, 0.5, 0, 0, 0, 0]]]), None)[0, 0]  # AS on Q = 6
    np.testing.assert_allclose(a[1, 0], firm[0], rtol=1e-6)                  # least inventory bids
    np.testing.assert_allclose(a[2, 1], firm[1], rtol=1e-6)                  # most inventory offers
    assert a[0, 0] == a[0, 1] == a[1, 1] == a[2, 0] == core.max_depth


@pytest.mark.parametrize("n", [2, 3])
def test_cooperative_reference_beats_independent_as(n):
    core = MultiMarketMaking(num_envs=300, n_agents=n)
    coop = episode_returns(core, make_policy("multi-market-making/cooperative-as", core), 300, seed=8)
    ind = episode_returns(core, make_policy("market-making/avellaneda-stoikov", core), 300, seed=8)
    diff = coop["returns"] - ind["returns"]          # paired: the market noise does not depend on actions
    assert diff.mean() > 3 * diff.std() / np.sqrt(len(diff))
    assert np.abs(coop["final_firm_inventory"]).mean() < np.abs(ind["final_firm_inventory"]).mean()


def test_competitive_mode_rewards_are_individual():
    core = MultiMarketMaking(num_envs=200, n_agents=2, mode="competitive")
    # each maker on its own PnL: marked general-sum, so reference scripts record every agent's own score
    assert core.general_sum and not MultiMarketMaking(num_envs=2, n_agents=2).general_sum
    rnd = episode_returns(core, make_policy("random", core), 200, seed=1)["returns"]
    ind = episode_returns(core, make_policy("market-making/avellaneda-stoikov", core), 200, seed=1)["returns"]
    assert ind.mean() > rnd.mean()


