"""market-making-as: API, determinism, exact accounting, fill statistics, bounds and the AS expert."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ogdata
from ogdata.envs.market_making import MarketMaking
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import episode_returns, make_policy
from ogdata.policies.market_making import as_depths

ID = "market-making-as"


def rollout(core, policy, seed, steps=None):
    """Run a core for `steps` (default: one episode); returns stacked per-step records."""
    obs, info = core.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rec = {"obs": [obs], "act": [], "rew": [], "term": [], "trunc": [], "info": [info]}
    for _ in range(steps or core.max_steps):
        a = policy(obs, rng)
        obs, r, te, tr, info = core.step(a)
        for k, v in zip(("obs", "act", "rew", "term", "trunc", "info"), (obs, a, r, te, tr, info)):
            rec[k].append(v)
    return rec


def test_registered_and_gymnasium_checks():
    assert ID in ogdata.list_envs(multi_agent=False)
    env = ogdata.make_env(ID)
    check_env(env, skip_render_check=True)
    genv = gymnasium.make(f"ogdata/{ID}-v0")
    obs, info = genv.reset(seed=0)
    assert genv.observation_space.contains(obs)
    assert set(info) >= {"cash", "inventory", "pnl", "wealth", "fills", "mid"}


def test_episode_length_spaces_and_termination():
    env = ogdata.make_env(ID, n_steps=50, intensity=50.0)
    obs, _ = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape == (6,) and obs.dtype == np.float32
    assert obs[1] == 1.0  # time left
    for t in range(50):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert not trunc and term == (t == 49)
        assert obs[1] == pytest.approx((49 - t) / 50)


def test_deterministic_under_seed():
    pol = make_policy("random", MarketMaking(num_envs=8))
    a = rollout(MarketMaking(num_envs=8), pol, seed=3)
    b = rollout(MarketMaking(num_envs=8), pol, seed=3)
    c = rollout(MarketMaking(num_envs=8), pol, seed=4)
    np.testing.assert_array_equal(np.stack(a["obs"]), np.stack(b["obs"]))
    np.testing.assert_array_equal(np.stack(a["rew"]), np.stack(b["rew"]))
    assert not np.array_equal(np.stack(a["rew"]), np.stack(c["rew"]))


def test_no_fills_no_volatility_means_zero_pnl():
    core = MarketMaking(num_envs=16, sigma=0.0, intensity=0.0)
    rec = rollout(core, make_policy("random", core), seed=0)
    assert np.all(np.stack(rec["rew"]) == 0.0)
    info = rec["info"][-1]
    assert np.all(info["pnl"] == 0) and np.all(info["inventory"] == 0) and np.all(info["cash"] == 0)
    assert np.all(info["mid"] == 100.0)


def test_accounting_and_reward_formula_exact():
    """cash, inventory and reward follow the documented formulas step by step."""
    core = MarketMaking(num_envs=64, n_steps=40, intensity=20.0, running_penalty=0.3, terminal_penalty=2.0, max_inventory=3)
    rec = rollout(core, make_policy("random", core), seed=11)
    dt, phi, alpha = core.dt, 0.3, 2.0
    infos = rec["info"]
    saw_fill = False
    for t in range(40):
        i0, i1, a = infos[t], infos[t + 1], rec["act"][t].astype(np.float64)
        fb, fa = i1["fills"][:, 0], i1["fills"][:, 1]
        saw_fill |= bool(fb.any() and fa.any())
        S0, S1, q0, q1 = i0["mid"], i1["mid"], i0["inventory"], i1["inventory"]
        np.testing.assert_array_equal(q1, q0 + fb - fa)
        assert np.all(np.abs(q1) <= 3)
        np.testing.assert_allclose(i1["cash"], i0["cash"] - fb * (S0 - a[:, 0]) + fa * (S0 + a[:, 1]),
                                   atol=1e-9)
        np.testing.assert_allclose(i1["pnl"], i1["cash"] + q1 * S1, atol=1e-9)
        end = float(t == 39)
        want = (i1["pnl"] - i0["pnl"]) - phi * q1 ** 2 * dt - end * alpha * q1 ** 2
        np.testing.assert_allclose(rec["rew"][t], want, atol=1e-9)
    assert saw_fill


def test_zero_volatility_pnl_is_captured_depth():
    core = MarketMaking(num_envs=32, sigma=0.0, running_penalty=0.0, terminal_penalty=0.0, max_inventory=1000)
    depth = np.array([0.4, 0.9], dtype=np.float32)
    rec = rollout(core, lambda o, r: np.tile(depth, (o.shape[0], 1)), seed=2)
    fills = np.stack([i["fills"] for i in rec["info"][1:]]).sum(axis=0)       # (B, 2)
    np.testing.assert_allclose(np.stack(rec["rew"]).sum(axis=0), fills @ depth.astype(np.float64), atol=1e-9)
    np.testing.assert_allclose(rec["info"][-1]["pnl"], fills @ depth.astype(np.float64), atol=1e-9)


@pytest.mark.parametrize("intensity,depth", [(100.0, (0.2, 1.3)), (40.0, (0.0, 0.7))])
def test_fill_frequency_matches_poisson_thinning(intensity, depth):
    B, steps = 20000, 10
    core = MarketMaking(num_envs=B, intensity=intensity, max_inventory=1000)
    d = np.array(depth, dtype=np.float32)
    rec = rollout(core, lambda o, r: np.tile(d, (o.shape[0], 1)), seed=5, steps=steps)
    freq = np.stack([i["fills"] for i in rec["info"][1:]]).mean(axis=(0, 1))  # per side per step
    p = intensity * core.dt * np.exp(-core.kappa * d.astype(np.float64))
    se = np.sqrt(p * (1 - p) / (B * steps))
    assert np.all(np.abs(freq - p) < 5 * se), (freq, p)


def test_inventory_bound_withdraws_that_side():
    # λ·dt = 1 and depth 0: an order arrives and fills the bid every step, until the bound
    core = MarketMaking(num_envs=4, intensity=200.0, n_steps=200, max_inventory=2, sigma=0.0)
    rec = rollout(core, lambda o, r: np.tile(np.float32([0.0, 4.0]), (o.shape[0], 1)), seed=0, steps=6)
    inv = np.stack([i["inventory"] for i in rec["info"][1:]])
    np.testing.assert_array_equal(inv, np.array([1, 2, 2, 2, 2, 2])[:, None].repeat(4, axis=1))
    bids = np.stack([i["fills"][:, 0] for i in rec["info"][1:]])
    assert np.all(bids[2:] == 0)
    # and the short side
    rec = rollout(core, lambda o, r: np.tile(np.float32([4.0, 0.0]), (o.shape[0], 1)), seed=0, steps=4)
    assert np.all(rec["info"][-1]["inventory"] == -2)


def test_out_of_bounds_depths_are_clipped_and_nan_raises():
    a = rollout(MarketMaking(num_envs=8), lambda o, r: np.tile(np.float32([-1.0, 9.0]), (8, 1)), seed=9)
    b = rollout(MarketMaking(num_envs=8), lambda o, r: np.tile(np.float32([0.0, 4.0]), (8, 1)), seed=9)
    np.testing.assert_array_equal(np.stack(a["rew"]), np.stack(b["rew"]))
    env = ogdata.make_env(ID)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step(np.array([np.nan, 0.5]))
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.array([0.5, 0.5, 0.5]))


@pytest.mark.parametrize("kwargs,match", [
    ({"kappa": 0.0}, "kappa"), ({"kappa": -1.0}, "kappa"), ({"sigma": -0.1}, "sigma"),
    ({"n_steps": 0}, "n_steps"), ({"n_steps": 2.5}, "n_steps"), ({"intensity": 500.0}, "intensity"),
    ({"max_depth": 0}, "max_depth"), ({"max_inventory": 0}, "max_inventory"),
    ({"running_penalty": -1}, "running_penalty"), ({"sigma": float("nan")}, "sigma"),
    ({"terminal_time": "soon"}, "terminal_time"), ({"n_agents": 2}, "single-agent"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(EnvError, match=match):
        ogdata.make_env(ID, **kwargs)


def test_as_closed_form():
    g, sig, k = 0.1, 2.0, 1.5
    half = np.log1p(g / k) / g
    np.testing.assert_allclose(as_depths(np.array(0.0), np.array(0.0), g, sig, k), [half, half])
    d = as_depths(np.array([3.0]), np.array([0.5]), g, sig, k)[0]
    skew = 3 * g * sig ** 2 * 0.5
    np.testing.assert_allclose(d, [half + 0.5 * g * sig ** 2 * 0.5 + skew, half + 0.5 * g * sig ** 2 * 0.5 - skew])
    # the policy reads q and tau from the observation
    core = MarketMaking(num_envs=1)
    obs = np.zeros((1, 6), dtype=np.float32)
    obs[0, 0], obs[0, 1] = 3 / 20, 0.5
    pol = make_policy("market-making/avellaneda-stoikov", core)
    np.testing.assert_allclose(pol(obs, None)[0], as_depths(np.array(3.0), np.array(0.5), 0.1, 2.0, 1.5),
                               rtol=1e-6)


def test_as_beats_fixed_symmetric_and_random():
    core = MarketMaking(num_envs=400)
    res = {name: episode_returns(core, make_policy(name, core), 400, seed=21)["returns"]
           for name in ("market-making/avellaneda-stoikov", "market-making/fixed-symmetric", "random")}
    as_, fixed, rnd = (res[k] for k in ("market-making/avellaneda-stoikov", "market-making/fixed-symmetric",
                                       "random"))
    se = np.sqrt(as_.var() / len(as_) + fixed.var() / len(fixed))
    assert as_.mean() - fixed.mean() > 4 * se
    assert as_.mean() > rnd.mean() and as_.std() < fixed.std()


def test_vector_env_autoresets():
    venv = ogdata.make_vector_env(ID, 4, n_steps=5, intensity=5.0)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (4, 6)
    ends = 0
    for _ in range(12):
        obs, r, te, tr, info = venv.step(venv.action_space.sample())
        ends += int(te.sum())
    assert ends == 8  # two episodes of 5 steps each (the 6th step of each is the reset step)


