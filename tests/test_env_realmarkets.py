"""More real markets (issue #18): portfolio-ff (Fama–French factors, monthly), trading-wti (daily),
trading-eurusd (hourly), execution calibrated from OHLCV, and the reward options (log / return /
differential Sharpe ratio). Returns are checked against pandas on the raw source files, held-out
dates against every window a training id can see, costs and the DSR against direct loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ogdata.envs import make_core, make_env
from ogdata.envs.markets import market_set, pin_start_dates, start_dates
from ogdata.envs.portfolio import Portfolio
from ogdata.envs.prices import PERIODS, ReturnPaths
from ogdata.envs.trading import LONG, Trading
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import episode_returns, make_policy

pd = pytest.importorskip("pandas")
pytest.importorskip("arch", reason="the factors and WTI ship in arch: pip install ogdata[realdata]")


def _fx():
    pytest.importorskip("gym_anytrading", reason="EUR/USD ships in gym-anytrading: pip install ogdata[realdata]")


def _ff_source():
    """The factors straight from the CSV inside arch, with pandas (percent → fractions)."""
    from importlib import resources

    with resources.as_file(resources.files("arch.data.frenchdata") / "frenchdata.csv.gz") as f:
        df = pd.read_csv(f)
    df.index = pd.PeriodIndex(df.pop("Date").astype(str), freq="M")
    return df / 100.0


def _pinned(env_id, date, **kw):
    core = make_core(env_id, num_envs=1, **kw)
    pin_start_dates(core, [date])
    obs, _ = core.reset(seed=0)
    return core, obs


# -- returns match the source ------------------------------------------------------------------------------------
def test_factor_portfolio_return_is_rf_plus_weighted_factors():
    """r_p = RF + Σ w_i F_i for the long-only simplex, and with leverage and shorting, month by month."""
    src = _ff_source()
    from arch.data import frenchdata

    assert np.allclose(frenchdata.load().to_numpy() / 100.0, src.to_numpy())  # arch's loader reads the same numbers
    # actions exact in float32, so the weights are exact too
    cases = [({}, np.array([0.5, 0.25, 0.125, 0.125]), np.array([0.5, 0.25, 0.125])),
             ({"leverage": 2.0, "short": True}, np.array([0.5, -0.25, 0.25, 0.0]), np.array([1.0, -0.5, 0.5]))]
    for kw, action, w in cases:
        core, _ = _pinned("portfolio-ff", "1950-01-31", cost=0.0, **kw)
        months = pd.period_range("1950-02", periods=60, freq="M")
        want = src.loc[months, "RF"] + src.loc[months, ["Mkt-RF", "SMB", "HML"]].to_numpy() @ w
        got = [core.step(action[None].astype(np.float32))[1][0] for _ in range(60)]
        np.testing.assert_allclose(np.expm1(got), want.to_numpy(), rtol=1e-9, atol=1e-12)
    # all cash earns the T-bill rate
    core, _ = _pinned("portfolio-ff-eval", "2000-06-30", cost=0.0)
    r = core.step(np.array([[0, 0, 0, 1]], np.float32))[1][0]
    assert math.expm1(r) == pytest.approx(src.loc[pd.Period("2000-07", "M"), "RF"], rel=1e-9)


def test_wti_and_eurusd_returns_match_the_source():
    from arch.data import wti

    s = wti.load()["DCOILWTICO"].dropna()
    core, _ = _pinned("trading-wti", "1990-08-01", cost=0.0)
    got = [core.step(np.array([LONG]))[1][0] for _ in range(252)]
    want = s.pct_change().shift(-1).loc["1990-08-01":].iloc[:252]
    np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-9, atol=1e-13)
    _fx()
    import importlib.util
    from pathlib import Path

    root = Path(importlib.util.find_spec("gym_anytrading").submodule_search_locations[0])
    fx = pd.read_csv(root / "datasets" / "data" / "FOREX_EURUSD_1H_ASK.csv")
    fx.index = pd.to_datetime(fx["Time"], dayfirst=True)
    assert len(fx) == 6225 and fx.index.is_monotonic_increasing
    core, _ = _pinned("trading-eurusd", "2017-03-06T09:00", cost=0.0)
    got = [core.step(np.array([LONG]))[1][0] for _ in range(120)]
    want = fx["Close"].pct_change().shift(-1).loc["2017-03-06 09:00":].iloc[:120]
    np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-9, atol=1e-13)


# -- held-out dates never leak -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,universe", [("portfolio-ff", "ff"), ("trading-wti", "wti"),
                                             ("trading-eurusd", "eurusd")])
def test_training_ids_never_see_a_held_out_date(env_id, universe):
    if universe == "eurusd":
        _fx()
    train_end = np.datetime64(PERIODS[universe]["train"][1]) + 1   # first instant after the training period
    eval_start = np.datetime64(PERIODS[universe]["eval"][0])
    core = make_core(env_id, num_envs=1)
    p = core.paths
    # the training core holds no price dated in the held-out period at all, and every row an episode can
    # observe (windows[start-1 ... start+n-1]) or earn (gross[start ... start+n-1]) is a return between
    # two of its dates: the latest date any training episode touches is dates[hi + n_steps]
    assert p.dates[-1] < train_end and len(p.gross) == len(p.dates) - 1
    assert p.dates[p.hi + core.n_steps] < eval_start
    for start in (p.lo, p.hi):
        core.paths.pin_starts(np.array([start]))
        obs, _ = core.reset(seed=1)
        for _ in range(core.n_steps):
            obs, *_ = core.step(make_policy("random", core)(obs[None][0:1], np.random.default_rng(0)))
        assert core._t[0] == core.n_steps
    # the held-out id's episodes earn only returns that start on or after its first date
    ev = make_core(env_id + "-eval", num_envs=1).paths
    assert ev.dates[ev.lo] >= eval_start
    firsts = start_dates(env_id + "-eval")
    assert max(start_dates(env_id)) < min(firsts)
    test = market_set(env_id, "test")
    assert test.env_id == env_id + "-eval" and list(test.start_dates) == firsts and len(set(firsts)) == len(firsts)


def test_market_sizes_are_as_documented():
    assert len(start_dates("portfolio-ff")) == 691 and len(start_dates("portfolio-ff-eval")) == 287
    assert market_set("portfolio-ff", "validation").episodes == 691  # every training start month
    _fx()
    assert len(start_dates("trading-eurusd-eval")) == 894


# -- costs, leverage, ruin ---------------------------------------------------------------------------------------
def test_factor_costs_and_turnover_follow_the_formula():
    core, _ = _pinned("portfolio-ff", "1960-12-31", cost=0.002)
    g = core.paths.gross
    row = int(core.paths.start[0])
    w = np.array([0.0, 0.0, 0.0, 1.0])
    wealth = 1.0
    for t, a in enumerate([[0.6, 0.2, 0.2, 0.0], [0.0, 0.5, 0.0, 0.5], [0.6, 0.2, 0.2, 0.0]]):
        a = np.array(a, np.float32).astype(np.float64)  # what the env receives
        tgt = a / a.sum()
        tau = np.abs(tgt[:-1] - w[:-1]).sum()
        growth = tgt @ g[row + t]
        _, rew, _, _, info = core.step(a[None].astype(np.float32))
        assert info["turnover"][0] == pytest.approx(tau, rel=1e-12)
        assert info["costs"][0] == pytest.approx(0.002 * tau * wealth, rel=1e-12)
        wealth *= (1 - 0.002 * tau) * growth
        assert info["wealth"][0] == pytest.approx(wealth, rel=1e-12) and rew[0] == pytest.approx(
            math.log((1 - 0.002 * tau) * growth), rel=1e-12)
        w = tgt * g[row + t] / growth


def test_trading_spread_cost_per_unit_of_position_change():
    _fx()
    core, _ = _pinned("trading-eurusd", "2017-05-01T10:00")
    assert core.cost == 1e-4
    g = core.paths.gross[:, 0]
    row = int(core.paths.start[0])
    pos = 0.0
    for t, a in enumerate([2, 0, 0, 1, 2]):
        _, rew, _, _, info = core.step(np.array([a]))
        new = a - 1.0
        assert rew[0] == pytest.approx(new * (g[row + t] - 1) - 1e-4 * abs(new - pos), rel=1e-12, abs=1e-15)
        pos = new


def test_leverage_and_shorting_map_and_bounds():
    core = Portfolio(3, universe="ff", leverage=3.0, short=True, cost=0.0, n_steps=12, window=3)
    assert core.action_space.low.tolist() == [-1, -1, -1, 0] and core.observation_space.high[-1] == 100.0
    core.reset(seed=0)
    a = np.array([[1, -1, 1, 1], [0, 0, 0, 0], [0.2, 0.0, 0.0, 0.8]], np.float32)
    core.step(a)
    w = core.weights  # drifted after one month; the targets were:
    targets = np.array([[0.75, -0.75, 0.75], [0, 0, 0], [0.6, 0, 0]])
    g = core.paths.gross[core.paths.start + 0]
    held = np.concatenate([targets, 1 - targets.sum(1, keepdims=True)], 1) * g
    np.testing.assert_allclose(w, held / held.sum(1, keepdims=True), rtol=1e-12)
    want = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]])
    act = core.action_for(want)
    r = 3.0 * act[:, :-1] / np.abs(act).sum(1, keepdims=True)
    np.testing.assert_allclose(r, want, rtol=1e-6, atol=1e-7)
    assert (np.abs(core.action_for(np.array([5.0, 5.0, 5.0]))[:, :-1]).sum(1) <= 1 + 1e-6).all()


def test_a_leveraged_crash_ruins_the_market():
    p = np.array([100.0, 101, 102, 103, 50, 51, 52, 53])
    core = Portfolio(1, prices=p[:, None], leverage=3.0, n_steps=4, window=2, cost=0.0)
    core.paths.pin_starts(np.array([2]))  # earns 103/102, then 50/103: three times long loses 154 %
    core.reset(seed=0)
    out = [core.step(np.array([[1.0, 0.0]], np.float32)) for _ in range(2)]
    _, rew, term, trunc, info = out[-1]
    assert term[0] and info["wealth"][0] == 0.0 and rew[0] == pytest.approx(math.log(1e-12))
    assert not out[0][2][0] and out[0][4]["wealth"][0] > 1.0


def test_general_step_equals_the_simplex_fast_path():
    a = make_core("portfolio-ff", num_envs=8)
    b = make_core("portfolio-ff", num_envs=8)
    a.reset(seed=3)
    b.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = rng.uniform(0, 1, (8, 4)).astype(np.float32)
        act[0] = 0.0
        oa, ra, ta, ua, ia = a.step(act)
        ob, rb, tb, ub, ib = b._step_general(b.check_actions(act))
        np.testing.assert_allclose(ra, rb, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(oa, ob, rtol=1e-6)
        np.testing.assert_allclose(ia["wealth"], ib["wealth"], rtol=1e-12)


# -- reward options ----------------------------------------------------------------------------------------------
def _dsr_loop(returns, var0, eta):
    A, B, out = 0.0, var0, []
    for r in returns:
        dA, dB = r - A, r * r - B
        var = B - A * A
        out.append((B * dA - 0.5 * A * dB) / var ** 1.5 if var > 1e-20 else 0.0)
        A, B = A + eta * dA, B + eta * dB
    return np.array(out)


@pytest.mark.parametrize("env_id", ["trading-wti", "portfolio-ff"])
def test_reward_options_against_direct_computation(env_id):
    eta = 0.05
    cores = {k: make_core(env_id, num_envs=4, reward=k, dsr_eta=eta) for k in ("log", "return", "dsr")}
    obs = {k: c.reset(seed=11)[0] for k, c in cores.items()}
    assert all(np.array_equal(obs["log"], o) for o in obs.values())
    pol = make_policy("random", cores["log"])
    rng = np.random.default_rng(5)
    rews = {k: [] for k in cores}
    wealth = []
    for _ in range(40):
        act = pol(obs["log"], rng)
        for k, c in cores.items():
            o, r, _, _, info = c.step(act)
            rews[k].append(r)
            if k == "log":
                obs["log"] = o
                wealth.append(info["wealth"])
    W = np.vstack([np.ones(4)] + wealth)
    simple = W[1:] / W[:-1] - 1.0
    np.testing.assert_allclose(np.array(rews["return"]), simple, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(np.array(rews["log"]), np.log1p(simple), rtol=1e-9, atol=1e-15)
    first = obs0 = cores["dsr"].reset(seed=11)[0].astype(np.float64) / 100.0
    c = cores["dsr"]
    if isinstance(c, Trading):
        var0 = np.square(first[:, :c.window]).mean(1)
    else:
        x = obs0[:, :c._wn].reshape(4, c.window, c.n_assets)
        var0 = np.square(x.mean(2)).mean(1)
    for b in range(4):
        np.testing.assert_allclose(np.array(rews["dsr"])[:, b], _dsr_loop(simple[:, b], var0[b], eta),
                                   rtol=1e-7, atol=1e-12)


def test_flat_positions_pay_no_dsr_and_bad_reward_kwargs_are_refused():
    core = make_core("trading-wti", num_envs=2, reward="dsr")
    core.reset(seed=0)
    assert (core.step(np.array([1, 1]))[1] == 0).all()
    for kw, match in [({"reward": "sharpe"}, "reward="), ({"dsr_eta": 0}, "dsr_eta="), ({"dsr_eta": "x"}, "dsr_eta="),
                      ({"leverage": 0.5}, "leverage="), ({"leverage": 11}, "leverage="), ({"short": "yes"}, "short="),
                      ({"universe": "ftse"}, "unknown universe")]:
        with pytest.raises(EnvError, match=match):
            (make_core("portfolio-ff", **kw) if "leverage" in kw or "short" in kw or "universe" in kw
             else make_core("trading-wti", **kw))
    with pytest.raises(EnvError, match="calibrated on universe 'sp500' only"):
        Portfolio(1, source="gbm", universe="ff")


# -- determinism, bad actions, references ------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["portfolio-ff", "portfolio-ff-eval", "trading-wti", "trading-wti-eval",
                                    "trading-eurusd", "trading-eurusd-eval"])
def test_seeded_determinism_bad_actions_and_references(env_id):
    if "eurusd" in env_id:
        _fx()
    runs = []
    for _ in range(2):
        core = make_core(env_id, num_envs=16)
        r = episode_returns(core, make_policy("random", core), episodes=16, seed=4)["returns"]
        runs.append(r)
    np.testing.assert_array_equal(*runs)
    env = make_env(env_id)
    env.reset(seed=0)
    bad = [np.full(env.action_space.shape, np.nan, np.float32), np.zeros((2, 4), np.float32)] \
        if env_id.startswith("portfolio") else [3, 1.5, "long"]
    for a in bad:
        with pytest.raises(InvalidActionError):
            env.step(a)
    core = make_core(env_id, num_envs=4)
    obs, _ = core.reset(seed=0)
    names = ["portfolio/equal-weight", "portfolio/buy-and-hold", "portfolio/kelly"] \
        if env_id.startswith("portfolio") else ["trading/always-long", "trading/flat"]
    for name in names:
        core.step(make_policy(name, core)(obs, np.random.default_rng(0)))


def test_kelly_mix_of_the_factors_is_fitted_on_training_months_only():
    from ogdata.policies.portfolio import KellyMix, kelly_inputs, kelly_weights

    src = _ff_source().loc["1926-07":"1989-12"]
    x = np.log1p(src["RF"].to_numpy()[:, None] + src[["Mkt-RF", "SMB", "HML"]].to_numpy()) - np.log1p(
        src["RF"].to_numpy())[:, None]
    cov = np.cov(x, rowvar=False)
    drift, c = kelly_inputs(make_core("portfolio-ff-eval"))
    np.testing.assert_allclose(c, cov, rtol=1e-9)
    np.testing.assert_allclose(drift, x.mean(0) + 0.5 * np.diag(cov), rtol=1e-9)
    k = KellyMix(make_core("portfolio-ff"))
    np.testing.assert_allclose(k.weights, kelly_weights(drift, cov))
    lev = KellyMix(make_core("portfolio-ff", leverage=2.0))  # the same mix through the leveraged map
    a = lev.action
    np.testing.assert_allclose(2.0 * a[:-1] / np.abs(a).sum(), k.weights, rtol=1e-6, atol=1e-7)


# -- execution calibrated on real volume -------------------------------------------------------------------------
def test_execution_calibration_is_re_derived_from_ohlcv_and_applied():
    from ogdata.envs import liquidity
    from ogdata.envs.execution import ExecutionMarket

    committed = json.loads(liquidity.EXECUTION_CALIBRATION_FILE.read_text())
    for name in liquidity.SOURCES:
        fresh = liquidity.measure(name)
        for k, v in committed[name]["kwargs"].items():
            assert fresh["kwargs"][k] == pytest.approx(v, rel=1e-10), (name, k)
        m = fresh["measured"]
        kw = fresh["kwargs"]
        assert kw["shares"] / (m["adv"] * kw["horizon"]) == pytest.approx(0.04)
        assert kw["eta"] * 0.01 * m["adv"] == pytest.approx(m["spread_fraction"] * kw["price"])
    core = ExecutionMarket(2, calibration="sp500", sigma=20.0)
    kw = committed["sp500"]["kwargs"]
    assert core.S0 == kw["price"] and core.eta == kw["eta"] and core.X == kw["shares"] and core.sigma == 20.0
    with pytest.raises(EnvError, match="unknown execution calibration"):
        ExecutionMarket(1, calibration="ftse")
    # the AC closed form is still the expert: it beats TWAP on the calibrated market
    core = ExecutionMarket(512, calibration="nasdaq")
    r = {p: episode_returns(core, make_policy(p, core), 512, seed=0)["returns"].mean()
         for p in ("execution/twap", "execution/ac-optimal")}
    assert r["execution/ac-optimal"] > r["execution/twap"]


def test_corwin_schultz_on_one_pair():
    from ogdata.envs.liquidity import corwin_schultz

    h, l = np.array([101.0, 102.0]), np.array([99.0, 100.0])
    beta = math.log(101 / 99) ** 2 + math.log(102 / 100) ** 2
    gamma = math.log(102 / 99) ** 2
    k = 3 - 2 * math.sqrt(2)
    alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
    assert corwin_schultz(h, l)[0] == pytest.approx(max(0.0, 2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha))))


def test_hourly_dates_pin_by_minute():
    _fx()
    paths = ReturnPaths(1, source="real", universe="eurusd", n_steps=120, window=24, period="eval")
    assert paths.dates.dtype == np.dtype("datetime64[m]")
    dates = start_dates("trading-eurusd-eval")
    assert dates[0] == "2017-11-01T00:00" and len(set(dates)) == len(dates)


def test_cards_credit_each_universe_its_own_licence():
    from ogdata.cards import PRICE_SOURCES, price_source

    want = {"portfolio-ff": "arch", "trading-wti-eval": "arch", "trading-eurusd": "gym-anytrading",
            "portfolio-sp500": "skfolio", "trading-sp500": "arch"}
    for env_id, source in want.items():
        assert price_source({"env_id": env_id}) == source, env_id
    assert PRICE_SOURCES["gym-anytrading"]["license"] == "mit"
