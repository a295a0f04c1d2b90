"""trading-*: Gymnasium conformance, determinism, reward = position × return − costs exactly, no look-ahead."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ogdata
from ogdata.envs import make_core
from ogdata.envs import prices as prices_mod
from ogdata.envs.trading import Trading
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import make_policy

IDS = ["trading-sp500", "trading-sp500-eval", "trading-synth", "trading-synth-regime"]
REAL = {"trading-sp500", "trading-sp500-eval"}


def _needs_real(env_id):
    if env_id in REAL:
        pytest.importorskip("arch", reason="trading-sp500 needs arch: pip install ogdata[realdata]")


def prices(seed=0, T=300):
    rng = np.random.default_rng(seed)
    return 1000 * np.exp(np.cumsum(rng.normal(0.0002, 0.012, size=T)))


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("continuous", [False, True])
def test_check_env_and_determinism(env_id, continuous):
    _needs_real(env_id)
    env = ogdata.make_env(env_id, continuous=continuous)
    check_env(env.unwrapped, skip_render_check=True)
    acts = [env.action_space.sample() for _ in range(25)]

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in acts:
            obs, r, term, trunc, info = env.step(a)
            out += [obs, np.array([r, info["wealth"], info["position"], info["costs"]])]
        return out

    a, b, c = rollout(2), rollout(2), rollout(3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_reward_is_position_times_return_minus_costs():
    p = prices(1)
    c = 0.0015
    core = Trading(num_envs=4, prices=p, n_steps=60, window=5, cost=c)
    obs, _ = core.reset(seed=4)
    s = core.paths.start.copy()
    rng = np.random.default_rng(0)
    prev, wealth = np.zeros(4), np.ones(4)
    for t in range(60):
        a = rng.integers(0, 3, size=4)
        pos = a - 1.0
        ret = p[s + t + 1] / p[s + t] - 1
        cost = c * np.abs(pos - prev)
        obs, rew, term, trunc, info = core.step(a)
        np.testing.assert_allclose(rew, pos * ret - cost, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(info["costs"], cost * wealth, rtol=1e-12, atol=1e-14)
        wealth = wealth * (1 + pos * ret - cost)
        np.testing.assert_allclose(info["wealth"], wealth, rtol=1e-12)
        np.testing.assert_array_equal(info["position"], pos)
        np.testing.assert_array_equal(obs[:, -1], pos)
        prev = pos
        assert not term.any() and trunc.all() == (t == 59)


def test_always_long_earns_the_market_return_less_one_entry_cost():
    p = prices(2)
    core = Trading(num_envs=2, prices=p, n_steps=40, window=3, cost=0.001)
    obs, _ = core.reset(seed=0)
    s = core.paths.start.copy()
    pol = make_policy("trading/always-long", core)
    total = np.zeros(2)
    for _ in range(40):
        obs, rew, _, _, info = core.step(pol(obs, None))
        total += rew
    daily = p[s[:, None] + np.arange(41)]
    step_rew = daily[:, 1:] / daily[:, :-1] - 1
    step_rew[:, 0] -= 0.001  # the only trade: flat -> long on the first day
    np.testing.assert_allclose(total, step_rew.sum(1), rtol=1e-12)
    np.testing.assert_allclose(info["wealth"], np.prod(1 + step_rew, axis=1), rtol=1e-12)


def test_continuous_positions_are_clipped_and_charged():
    p = prices(3)
    core = Trading(num_envs=1, prices=p, n_steps=20, window=4, cost=0.002, continuous=True)
    core.reset(seed=0)
    s = core.paths.start[0]
    _, rew, _, _, info = core.step(np.array([[0.25]]))
    np.testing.assert_allclose(rew, 0.25 * (p[s + 1] / p[s] - 1) - 0.002 * 0.25, rtol=1e-12)
    _, rew, _, _, info = core.step(np.array([[-3.0]]))  # clipped to -1
    assert info["position"][0] == -1.0
    np.testing.assert_allclose(rew, -(p[s + 2] / p[s + 1] - 1) - 0.002 * 1.25, rtol=1e-12)


def test_no_look_ahead():
    p = prices(4)
    k = 6
    acts = np.random.default_rng(0).integers(0, 3, size=12)

    def run(pr):
        core = Trading(num_envs=1, prices=pr, n_steps=20, window=5)
        obs, _ = core.reset(seed=8)
        out, rews = [obs], []
        for a in acts:
            obs, r, *_ = core.step(np.array([a]))
            out.append(obs)
            rews.append(r[0])
        return core.paths.start[0], out, rews

    d0, obs, rews = run(p)
    q = p.copy()
    q[d0 + k + 1:] *= 0.8
    d1, obs2, rews2 = run(q)
    assert d0 == d1
    for t in range(k + 1):
        np.testing.assert_array_equal(obs[t], obs2[t])
    np.testing.assert_array_equal(rews[:k], rews2[:k])
    assert not np.array_equal(obs[k + 1], obs2[k + 1])
    want = 100 * np.diff(np.log(p[d0 - 5:d0 + 1]))
    np.testing.assert_allclose(obs[0][0, :5], want, rtol=1e-5, atol=1e-5)
    assert obs[0][0, 5] == 0.0  # starts flat


@pytest.mark.parametrize("env_id", IDS)
def test_ended_markets_step_safely(env_id):
    _needs_real(env_id)
    core = make_core(env_id, num_envs=2, n_steps=10)
    core.reset(seed=0)
    for t in range(14):
        obs, rew, term, trunc, info = core.step(np.array([2, 0]))
        assert np.isfinite(obs).all() and np.isfinite(rew).all()
        assert trunc.all() == (t >= 9) and not term.any()


def test_real_periods_are_explicit_and_held_out():
    pytest.importorskip("arch", reason="trading-sp500 needs arch: pip install ogdata[realdata]")
    for env_id, lo, hi in (("trading-sp500", "1999-01-01", "2014-12-31"),
                           ("trading-sp500-eval", "2015-01-01", "2018-12-31")):
        core = make_core(env_id, num_envs=128)
        core.reset(seed=2)
        assert core.paths.period == (lo, hi)
        d = core.paths.dates
        assert (d[core.paths.start] >= np.datetime64(lo)).all()
        assert (d[core.paths.start + core.n_steps] <= np.datetime64(hi)).all()
    assert make_core("trading-sp500", period="eval").paths.period == ("2015-01-01", "2018-12-31")


def test_regime_model_has_a_bear_regime():
    """The index's turbulent regime loses money on average: a reason to go flat that the window can reveal."""
    m = prices_mod.SyntheticModel("regime", "sp500-index")
    vol = np.sqrt(m.chol[:, 0, 0] ** 2)
    assert vol[1] > 1.5 * vol[0] and m.mean[1, 0] < 0 < m.mean[0, 0]
    core = make_core("trading-synth-regime", num_envs=256)
    core.reset(seed=0)
    lr = core.paths.features[:, 0] / 100
    cal = prices_mod.calibration()["sp500-index"]["regime"]
    mix_var = sum(pk * (np.asarray(cv)[0, 0] + np.asarray(mu)[0] ** 2)
                  for pk, cv, mu in zip(cal["stationary"], cal["cov"], cal["mean"]))
    mix_mean = sum(pk * np.asarray(mu)[0] for pk, mu in zip(cal["stationary"], cal["mean"]))
    np.testing.assert_allclose(lr.var(), mix_var - mix_mean ** 2, rtol=0.1)


@pytest.mark.parametrize("kwargs, match", [
    ({"cost": -1e-4}, "costs cannot be negative"),
    ({"n_steps": 0}, "n_steps=0"),
    ({"window": 0}, "window=0"),
    ({"n_steps": 2.5}, "n_steps=2.5"),
    ({"prices": np.ones((100, 2))}, "one asset"),
    ({"prices": prices(T=30)}, "too few"),
    ({"period": "eval"}, "synthetic prices"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(EnvError, match=match):
        Trading(num_envs=1, **{"source": "gbm", **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"start": "1998-01-01"}, "outside the sp500-index data"),
    ({"end": "2019-06-01"}, "outside the sp500-index data"),
    ({"period": "holdout"}, "unknown period"),
])
def test_bad_dates(kwargs, match):
    pytest.importorskip("arch", reason="trading-sp500 needs arch: pip install ogdata[realdata]")
    with pytest.raises(EnvError, match=match):
        make_core("trading-sp500", **kwargs)


def test_bad_actions():
    env = ogdata.make_env("trading-synth")
    env.reset(seed=0)
    for bad, match in ((np.nan, "NaN"), (3, "out of range"), (-1, "out of range"), (1.5, "not an integer")):
        with pytest.raises(InvalidActionError, match=match):
            env.step(bad)
    cont = ogdata.make_env("trading-synth", continuous=True)
    cont.reset(seed=0)
    with pytest.raises(InvalidActionError, match="NaN"):
        cont.step(np.array([np.nan], dtype=np.float32))
