"""portfolio-*: Gymnasium conformance, determinism, the economics of the step, no look-ahead, bad input."""

import importlib
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ogdata
from ogdata.envs import make_core
from ogdata.envs import prices as prices_mod
from ogdata.envs.portfolio import Portfolio
from ogdata.errors import EnvError, InvalidActionError, MissingExtraError
from ogdata.policies import make_policy

IDS = ["portfolio-sp500", "portfolio-sp500-eval", "portfolio-synth", "portfolio-synth-regime"]
REAL = {"portfolio-sp500", "portfolio-sp500-eval"}


def _needs_real(env_id):
    if env_id in REAL:
        pytest.importorskip("skfolio", reason="portfolio-sp500 needs skfolio: pip install ogdata[realdata]")


def gbm_prices(seed=0, T=400, N=3):
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, size=(T, N)), axis=0))


def core_on(prices, num_envs=1, **kw):
    kw = {"n_steps": 50, "window": 4, "cost": 0.001, **kw}
    return Portfolio(num_envs=num_envs, prices=prices, **kw)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_and_determinism(env_id):
    _needs_real(env_id)
    env = ogdata.make_env(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    acts = [env.action_space.sample() for _ in range(20)]

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in acts:
            obs, r, term, trunc, info = env.step(a)
            out += [obs, np.array([r, info["wealth"], info["turnover"], info["costs"]])]
            assert not term and not trunc
        return out

    a, b, c = rollout(5), rollout(5), rollout(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("env_id", IDS)
def test_episode_length_info_and_ended_markets(env_id):
    _needs_real(env_id)
    core = make_core(env_id, num_envs=3, n_steps=30)
    obs, info = core.reset(seed=0)
    assert obs.shape == (3, core.window * 20 + 21) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, -1], 1.0)  # starts all in cash
    np.testing.assert_array_equal(info["wealth"], 1.0)
    rng = np.random.default_rng(0)
    for t in range(30):
        obs, rew, term, trunc, info = core.step(rng.random((3, 21)))
        assert not term.any()
        assert trunc.all() == (t == 29) and set(info) == {"wealth", "turnover", "costs"}
    for _ in range(3):  # stepping ended markets must not fail (indices are clamped)
        obs, rew, term, trunc, info = core.step(rng.random((3, 21)))
        assert np.isfinite(obs).all() and np.isfinite(rew).all() and trunc.all()
        assert core.observation_space.contains(obs[0])


def test_real_periods_are_explicit_and_held_out():
    pytest.importorskip("skfolio", reason="portfolio-sp500 needs skfolio: pip install ogdata[realdata]")
    train = make_core("portfolio-sp500", num_envs=64)
    ev = make_core("portfolio-sp500-eval", num_envs=64)
    assert train.assets == ev.assets and len(train.assets) == 20 and "AAPL" in train.assets
    assert train.paths.period == ("1990-01-01", "2014-12-31")
    assert ev.paths.period == ("2015-01-01", "2022-12-31")
    for core, lo, hi in ((train, "1990-01-01", "2014-12-31"), (ev, "2015-01-01", "2022-12-31")):
        core.reset(seed=1)
        dates = core.paths.dates
        first = dates[core.paths.start]  # the day of the first action
        last = dates[core.paths.start + core.n_steps]  # the day the last return is realised
        assert (first >= np.datetime64(lo)).all() and (last <= np.datetime64(hi)).all()
    # the kwarg and the id mean the same thing
    same = make_core("portfolio-sp500", period="eval")
    assert same.paths.period == ev.paths.period and same.paths.num_starts == ev.paths.num_starts
    sub = make_core("portfolio-sp500", assets=["MSFT", "KO"], start="2000-01-01", end="2005-12-31")
    assert sub.assets == ("MSFT", "KO") and sub.action_space.shape == (3,)


def test_zero_cost_rebalancing_leaves_wealth_unchanged():
    """Wealth only moves with prices: at zero cost it is Π_t Σ_i w⁺_i P_i(t+1)/P_i(t), whatever the trades."""
    p = gbm_prices(1)
    core = core_on(p, num_envs=4, cost=0.0)
    core.reset(seed=3)
    rng = np.random.default_rng(0)
    s = core.paths.start.copy()
    expect = np.ones(4)
    for t in range(50):
        a = rng.random((4, 4)).astype(np.float32)
        tgt = a.astype(np.float64) / a.astype(np.float64).sum(1, keepdims=True)
        g = np.concatenate([p[s + t + 1] / p[s + t], np.ones((4, 1))], axis=1)
        expect *= (tgt * g).sum(1)
        _, rew, _, _, info = core.step(a)
        np.testing.assert_array_equal(info["costs"], 0.0)
    np.testing.assert_allclose(info["wealth"], expect, rtol=1e-12)


def test_holding_the_drifted_weights_is_buy_and_hold():
    """Rebalancing to the current weights trades nothing: wealth is the buy-and-hold value from prices."""
    p = gbm_prices(2)
    core = core_on(p, num_envs=2, cost=0.002)
    obs, _ = core.reset(seed=0)
    s = core.paths.start.copy()
    w0 = np.array([0.5, 0.3, 0.2, 0.0])
    obs, *_ , info = core.step(np.tile(w0, (2, 1)))
    np.testing.assert_allclose(info["costs"], 0.002 * 1.0, rtol=1e-7)  # bought 100% of wealth from cash
    for _ in range(49):
        obs, rew, _, _, info = core.step(core.weights.copy())  # the same weights: no trade
        assert (info["turnover"] < 1e-6).all()
    value = (1 - 0.002) * (w0[:3] * p[s + 50] / p[s]).sum(1)
    np.testing.assert_allclose(info["wealth"], value, rtol=1e-6)
    # the observation carries the current weights
    np.testing.assert_allclose(obs[:, -4:], core.weights, atol=1e-7)


def test_costs_reduce_wealth_by_exactly_the_formula():
    p = gbm_prices(3)
    c = 0.0025
    core, free = core_on(p, num_envs=3, cost=c), core_on(p, num_envs=3, cost=0.0)
    core.reset(seed=9)
    free.reset(seed=9)
    rng = np.random.default_rng(1)
    s = core.paths.start.copy()
    np.testing.assert_array_equal(s, free.paths.start)
    ratio = np.ones(3)
    for t in range(20):
        a = rng.random((3, 4)).astype(np.float32)
        a[0] = [0, 0, 0, 0]  # all-zero action: everything to cash
        w, W = core.weights.copy(), core.wealth.copy()
        tgt = a.astype(np.float64)
        tgt[0, -1] = 1.0
        tgt /= tgt.sum(1, keepdims=True)
        tau = np.abs(tgt[:, :3] - w[:, :3]).sum(1)
        g = np.concatenate([p[s + t + 1] / p[s + t], np.ones((3, 1))], axis=1)
        growth = (tgt * g).sum(1)
        _, rew, _, _, info = core.step(a)
        _, rew0, _, _, info0 = free.step(a)
        np.testing.assert_allclose(info["turnover"], tau, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(info["costs"], c * tau * W, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(info["wealth"], W * (1 - c * tau) * growth, rtol=1e-12)
        np.testing.assert_allclose(rew, np.log1p(-c * tau) + np.log(growth), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(core.weights, tgt * g / growth[:, None], rtol=1e-12, atol=1e-15)
        ratio *= 1 - c * tau
        assert t == 0 or info["wealth"][0] == W[0] * (1 - c * tau[0])  # cash: only costs move it
    np.testing.assert_allclose(info["wealth"] / info0["wealth"], ratio, rtol=1e-12)


def test_no_look_ahead():
    """The observation at t does not change when prices after t are perturbed; it does once they are past."""
    p = gbm_prices(4)
    k = 7
    a = np.random.default_rng(2).random((12, 4)).astype(np.float32)

    def run(prices):
        core = core_on(prices)
        obs, _ = core.reset(seed=11)
        out, rews = [obs], []
        for t in range(12):
            obs, r, *_ = core.step(a[t][None])
            out.append(obs)
            rews.append(r)
        return core.paths.start[0], out, rews

    d0, obs, rews = run(p)
    q = p.copy()
    q[d0 + k + 1:] *= np.array([1.5, 0.7, 1.1])  # every price after day d0 + k
    d1, obs2, rews2 = run(q)
    assert d0 == d1
    for t in range(k + 1):
        np.testing.assert_array_equal(obs[t], obs2[t])
    np.testing.assert_array_equal(rews[:k], rews2[:k])
    assert rews[k] != rews2[k] and not np.array_equal(obs[k + 1], obs2[k + 1])
    # the window holds exactly the last `window` log returns in percent, oldest first
    core = core_on(p, window=4)
    o, _ = core.reset(seed=11)
    d = core.paths.start[0]
    want = 100 * np.diff(np.log(p[d - 4:d + 1]), axis=0)
    np.testing.assert_allclose(o[0, :12].reshape(4, 3), want, rtol=1e-5, atol=1e-5)


def test_reference_policies():
    p = gbm_prices(5)
    core = core_on(p, num_envs=2)
    obs, _ = core.reset(seed=0)
    ew, bh = make_policy("portfolio/equal-weight", core), make_policy("portfolio/buy-and-hold", core)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(ew(obs, rng), [[1, 1, 1, 0]] * 2)
    np.testing.assert_array_equal(bh(obs, rng), [[1, 1, 1, 0]] * 2)  # buys 1/N from cash
    obs, *_ = core.step(bh(obs, rng))
    turnovers = []
    for _ in range(10):
        obs, _, _, _, info = core.step(bh(obs, rng))
        turnovers.append(info["turnover"])
    assert np.max(turnovers) < 1e-6  # then holds
    obs, _, _, _, info = core.step(ew(obs, rng))
    assert (info["turnover"] > 1e-4).all()  # equal weight rebalances the drift away


def test_synthetic_paths_match_the_calibration():
    cal = prices_mod.calibration()["sp500"]
    core = make_core("portfolio-synth", num_envs=64)
    core.reset(seed=0)
    lr = core.paths.features / 100.0
    cov = np.cov(lr, rowvar=False)
    want = np.asarray(cal["gbm"]["cov"])
    assert np.linalg.norm(cov - want) / np.linalg.norm(want) < 0.05
    assert core.assets == tuple(cal["names"])
    # fresh paths at every reset, and the regime model spends the stationary share in each regime
    before = core.paths.gross.copy()
    core.reset(seed=1)
    assert not np.array_equal(before, core.paths.gross)
    model = prices_mod.SyntheticModel("regime", "sp500")
    reg = model.regimes(np.random.default_rng(0), 400, 500)
    assert abs(reg.mean() - model.stationary[1]) < 0.02
    stay = ((reg[:, 1:] == 0) & (reg[:, :-1] == 0)).sum() / (reg[:, :-1] == 0).sum()
    assert abs(stay - model.transition[0, 0]) < 0.01


def test_calibration_is_the_training_years_moments():
    pytest.importorskip("skfolio", reason="recomputing the calibration needs skfolio: pip install ogdata[realdata]")
    hist = prices_mod.sp500_stocks()
    i0, i1, _, _ = prices_mod.period_rows(hist, "train")
    lr = np.diff(np.log(hist.prices[i0:i1 + 1]), axis=0)
    cal = prices_mod.calibration()["sp500"]
    np.testing.assert_allclose(cal["gbm"]["mean"], lr.mean(0), rtol=1e-10)
    np.testing.assert_allclose(cal["gbm"]["cov"], np.cov(lr, rowvar=False), rtol=1e-10)
    assert cal["period"] == ["1990-01-01", "2014-12-31"] and hist.dates[i1] < np.datetime64("2015-01-01")


def test_missing_extra_names_the_install_command(monkeypatch):
    prices_mod.sp500_stocks.cache_clear()
    monkeypatch.setitem(sys.modules, "skfolio.datasets", None)  # import now fails
    try:
        with pytest.raises(MissingExtraError, match=r"pip install ogdata\[realdata\]"):
            make_core("portfolio-sp500")
    finally:
        prices_mod.sp500_stocks.cache_clear()
    importlib.invalidate_caches()


@pytest.mark.parametrize("kwargs, match", [
    ({"assets": ["AAPL", "NOPE"]}, "unknown asset 'NOPE'"),
    ({"assets": []}, "assets is empty"),
    ({"cost": -0.001}, "costs cannot be negative"),
    ({"cost": "cheap"}, "not a number"),
    ({"n_steps": 0}, "n_steps=0"),
    ({"window": 0}, "window=0"),
    ({"source": "gbm", "period": "eval"}, "synthetic prices"),
    ({"source": "brownian"}, "unknown price source"),
    ({"source": "regime", "assets": ["ZZZ"]}, "unknown asset"),
    ({"prices": -np.ones((50, 2))}, "finite, positive"),
    ({"prices": gbm_prices(T=40), "n_steps": 50}, "too few"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(EnvError, match=match):
        Portfolio(num_envs=1, **{"source": "gbm", **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"start": "1980-01-01"}, "outside the sp500 data"),
    ({"end": "2030-01-01"}, "outside the sp500 data"),
    ({"start": "2010-01-01", "end": "2009-01-01"}, "after end"),
    ({"start": "yesterday"}, "not a date"),
    ({"period": "test"}, "unknown period"),
    ({"start": "2014-06-01", "end": "2014-12-31"}, "too few"),
])
def test_bad_dates(kwargs, match):
    pytest.importorskip("skfolio", reason="portfolio-sp500 needs skfolio: pip install ogdata[realdata]")
    with pytest.raises(EnvError, match=match):
        make_core("portfolio-sp500", **kwargs)


def test_bad_actions():
    env = ogdata.make_env("portfolio-synth")
    env.reset(seed=0)
    a = np.ones(21, dtype=np.float32)
    a[3] = np.nan
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step(a)
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.ones(5))
    # out-of-box values are clipped: negative weights become 0, >1 become 1
    _, _, _, _, info = env.step(np.array([-5.0] * 20 + [7.0], dtype=np.float32))
    np.testing.assert_allclose(env.unwrapped.core.weights[0], [0] * 20 + [1])
    a[3] = np.inf
    with pytest.raises(InvalidActionError, match="NaN or inf"):
        env.step(a)
    # huge but finite values overflow the fast finiteness check's sum of squares: clipped, not rejected
    with np.errstate(over="ignore"):
        env.step(np.full(21, 3e19, dtype=np.float32))
    np.testing.assert_allclose(env.unwrapped.core.weights[0].sum(), 1.0)


@pytest.mark.parametrize("env_id", ["portfolio-sp500", "portfolio-synth", "portfolio-ff"])
def test_single_market_fast_step_is_the_batch_step_bit_for_bit(env_id):
    """`MarketEnv.step` takes the core's scalar B=1 path for float32 actions of the Box's shape; it must
    give the batch path's observation bytes, reward, flags and info (values and types) over whole
    episodes, with all-zero actions, -0.0, out-of-box and huge finite values, and raise on NaN/inf."""
    _needs_real(env_id)
    fast, batch = ogdata.make_env(env_id), ogdata.make_env(env_id)
    assert fast.unwrapped._fast is not None
    batch.unwrapped._fast = None  # the (1, N+1) batch path through check_actions and _step
    fast.reset(seed=3)
    batch.reset(seed=3)
    rng = np.random.default_rng(1)
    shape, ends = fast.action_space.shape, 0
    for k in range(fast.unwrapped.core.max_steps * 2 + 7):
        a = rng.uniform(-0.5, 1.5, shape).astype(np.float32)
        if k % 7 == 0:
            a[:] = 0.0
        if k % 11 == 0:
            a[0], a[1] = -0.0, 3e38
        got, want = fast.step(a), batch.step(a)
        assert got[0].tobytes() == want[0].tobytes() and got[0].dtype == want[0].dtype == np.float32
        assert got[1:4] == want[1:4] and [type(x) for x in got[1:4]] == [type(x) for x in want[1:4]]
        assert got[4] == want[4] and [type(v) for v in got[4].values()] == [type(v) for v in want[4].values()]
        if got[2] or got[3]:
            ends += 1
            fast.reset()
            batch.reset()
    assert ends == 2
    for bad in (np.nan, np.inf, -np.inf):
        a = np.full(shape, 0.5, dtype=np.float32)
        a[2] = bad
        with pytest.raises(InvalidActionError, match="NaN or inf"):
            fast.step(a)


def test_single_market_fast_step_only_where_it_applies():
    """The general map (leverage, shorting), other rewards, the stock features and B > 1 take `step`."""
    prices = gbm_prices()
    assert core_on(prices).single_step() is not None
    for kw in ({"leverage": 2.0}, {"short": True}, {"reward": "dsr"}, {"augment_stock": True}):
        assert core_on(prices, **kw).single_step() is None, kw
    assert core_on(prices, num_envs=2).single_step() is None
