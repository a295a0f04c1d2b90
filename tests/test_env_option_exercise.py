"""option-exercise-*: the put's economics, and its DP optimum against independent computations.

Published prices used (and where they come from):
- Longstaff & Schwartz (2001), "Valuing American options by simulation: a simple least-squares
  approach", Review of Financial Studies 14(1), Table 1 (K = 40, r = 0.06): S0 = 36, σ = 0.2, T = 1:
  finite-difference American 4.478, European (closed form) 3.844, least-squares Monte Carlo with
  50 exercise dates a year 4.472 (s.e. 0.010); S0 = 40, σ = 0.2, T = 1: 2.314, 2.066, 2.313 (s.e. 0.010
  assumed, the table's typical s.e.). Their finite-difference column sits 0.003–0.009 below the
  continuous-exercise value (a 4,000-step binomial tree gives 4.4867 for the first row) and within
  0.001 of the 50-date value, which is what the env with N = 50 steps a year is.
- Clarke & Parrott (1999), "Multigrid for American option pricing with stochastic volatility", Applied
  Mathematical Finance 6(3) — the Heston American put (K = 10, T = 0.25, r = 0.1, κ = 5, θ = 0.16,
  ξ = 0.9, ρ = 0.1, v0 = 0.0625) at S0 = 8, 9, 10, 11, 12: 2.0000, 1.1076, 0.5200, 0.2137, 0.0820, the
  reference values also tabulated by Ikonen & Toivanen (2009, Numer. Methods PDE 25).
"""

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ogdata
from ogdata.envs import make_core
from ogdata.envs import model_fits as fits_mod
from ogdata.envs.option_exercise import EXERCISE, HOLD, OptionExercise
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import make_policy
from ogdata.policies.evaluate import episode_returns
from ogdata.policies.option_exercise import ExerciseDP, longstaff_schwartz

IDS = ["option-exercise-american", "option-exercise-bermudan", "option-exercise-heston"]
LS = dict(strike=40.0, rate=0.06, sigma=0.2, maturity=1.0, n_steps=50)
CP = dict(model="heston", strike=10.0, rate=0.1, maturity=0.25, kappa=5.0, theta=0.16, xi=0.9, rho=0.1, v0=0.0625)


def _phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def bs_put(S, K, r, sigma, T):
    d1 = (math.log(S / K) + (r + 0.5 * sigma * sigma) * T) / (sigma * math.sqrt(T))
    return K * math.exp(-r * T) * _phi(-(d1 - sigma * math.sqrt(T))) - S * _phi(-d1)


def binomial_put(S, K, r, sigma, T, dates, per_date):
    """Cox–Ross–Rubinstein tree of dates·per_date steps, exercise allowed at every per_date-th node
    (per_date = 1 with many dates: the American put; dates = the env's N: its Bermudan dates)."""
    n = dates * per_date
    dt = T / n
    u = math.exp(sigma * math.sqrt(dt))
    p = (math.exp(r * dt) - 1 / u) / (u - 1 / u)
    disc = math.exp(-r * dt)
    V = np.maximum(K - S * u ** (n - 2.0 * np.arange(n + 1)), 0.0)
    for k in range(n - 1, -1, -1):
        V = disc * (p * V[:-1] + (1 - p) * V[1:])
        if k % per_date == 0:
            V = np.maximum(V, K - S * u ** (k - 2.0 * np.arange(k + 1)))
    return float(V[0])


def core_at(S0, **kw):
    K = kw.get("strike", 100.0)
    return OptionExercise(num_envs=1, moneyness=(S0 / K, S0 / K), **kw)


def start_state(core):
    return int(np.argmax(core.chain.initial))


# -- Gymnasium conformance, determinism, bad inputs ----------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_check_env_and_seeded_determinism(env_id):
    env = ogdata.make_env(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    acts = [HOLD] * 30 + [EXERCISE]

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in acts:
            obs, r, term, trunc, info = env.step(a)
            out += [obs, np.array([r, info["spot"], info["payoff"]])]
            assert env.observation_space.contains(obs)
            if term:
                break
        return out

    a, b, c = rollout(2), rollout(2), rollout(3)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_bad_actions_are_invalid_actions():
    env = ogdata.make_env("option-exercise-american")
    env.reset(seed=0)
    for bad in (2, -1, 0.5, np.nan, "x", [0, 1]):
        with pytest.raises(InvalidActionError):
            env.step(bad)
    core = make_core("option-exercise-heston", num_envs=3)
    core.reset(seed=0)
    with pytest.raises(InvalidActionError, match="shape"):
        core.step(np.zeros((3, 1), np.int64))


@pytest.mark.parametrize("kwargs, match", [
    ({"model": "sabr"}, "model='sabr' is unknown"),
    ({"sigma": 0.0}, r"sigma=0.0 is out of range"),
    ({"rate": 5.0}, r"rate=5.0 is out of range"),
    ({"n_steps": 0}, r"n_steps=0 is invalid"),
    ({"exercise_every": 1.5}, "exercise_every=1.5 is invalid"),
    ({"moneyness": (1.2, 0.8)}, "moneyness=.* is out of range"),
    ({"moneyness": 1.0}, "is not a \\(low, high\\) pair"),
    ({"model": "heston", "rho": 1.0}, r"rho=1.0 is out of range"),
    ({"model": "heston", "variance_states": 1}, "variance_states=1 is invalid"),
])
def test_kwargs_outside_their_range(kwargs, match):
    with pytest.raises(EnvError, match=match):
        OptionExercise(**kwargs)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sigma=st.floats(1e-4, 5.0), rate=st.floats(-0.2, 1.0), maturity=st.floats(1e-4, 100.0),
       strike=st.sampled_from([1e-6, 1.0, 1e9]), steps=st.sampled_from([1, 3, 20]), heston=st.booleans(),
       seed=st.integers(0, 2**16))
def test_admissible_kwargs_give_finite_episodes(sigma, rate, maturity, strike, steps, heston, seed):
    kw = dict(model="heston", xi=min(10.0, sigma * 2), theta=min(5.0, max(1e-6, sigma ** 2))) if heston else dict(sigma=sigma)
    core = OptionExercise(num_envs=4, rate=rate, maturity=maturity, strike=strike, n_steps=steps,
                          moneyness=(0.01, 100.0), variance_states=5, **kw)
    rng = np.random.default_rng(seed)
    for pick in ("random", "hold"):
        obs, _ = core.reset(seed=seed)
        for _ in range(steps):
            a = rng.integers(0, 2, 4) if pick == "random" else np.zeros(4, np.int64)
            obs, rew, term, trunc, info = core.step(a)
            assert np.isfinite(rew).all() and np.isfinite(obs).all() and (rew >= 0).all()
            assert core.observation_space.contains(obs[0])
            assert all(np.isfinite(v).all() for v in info.values())
        assert term.all()


# -- economics ----------------------------------------------------------------------------------
def test_reward_is_the_discounted_put_payoff_at_exercise_and_at_maturity():
    core = OptionExercise(num_envs=6, n_steps=10, maturity=0.5, rate=0.05, sigma=0.3, moneyness=(0.8, 1.2))
    obs, _ = core.reset(seed=1)
    K, dt = core.strike, core.dt
    when = np.array([0, 3, 7, 9, 10, 10])           # exercise at step k (10: never, the put matures)
    total = np.zeros(6)
    for k in range(12):                              # two steps past the end: nothing more is paid
        x_before = core.x.copy()
        obs, r, term, trunc, info = core.step(np.where(when == k, EXERCISE, HOLD))
        ex = (when == k) & (k < 10)
        np.testing.assert_allclose(r[ex], math.exp(-0.05 * k * dt) * np.maximum(K - K * np.exp(x_before[ex]), 0),
                                   rtol=1e-12)
        np.testing.assert_array_equal(info["exercised"], ex.astype(float))
        matured = (when == 10) & (k == 9)            # the markets still holding after step 9 reach maturity
        np.testing.assert_array_equal(info["matured"], matured.astype(float))
        np.testing.assert_allclose(r[matured], math.exp(-0.05 * 0.5) * np.maximum(K - info["spot"][matured], 0),
                                   rtol=1e-12)
        ended = (when <= k) | (k >= 9)
        assert (term == ended).all() and not trunc.any()
        assert (r[(when < k) | (k > 9)] == 0).all()
        np.testing.assert_allclose(obs[~ended, 0], (10 - (k + 1)) * dt, rtol=1e-6)
        total += r
    assert (total >= 0).all()


def test_bermudan_exercise_only_on_its_dates():
    core = OptionExercise(num_envs=2, n_steps=12, exercise_every=4, moneyness=(0.5, 0.5))  # deep in the money
    core.reset(seed=0)
    _, r, term, _, info = core.step(np.array([EXERCISE, HOLD]))      # k = 0 is a date
    assert term[0] and not term[1] and r[0] == pytest.approx(50.0) and info["exercised"][0] == 1
    core.reset(seed=0)
    core.step(np.array([HOLD, HOLD]))
    for _k in (1, 2, 3):   # an exercise action between dates holds
        _, r, term, _, info = core.step(np.array([EXERCISE, EXERCISE]))
        assert not term.any() and (r == 0).all() and (info["exercised"] == 0).all()
    _, r, term, _, _ = core.step(np.array([EXERCISE, HOLD]))   # k = 4: a date
    assert term[0] and not term[1] and r[0] > 0


@pytest.mark.parametrize("model", ["gbm", "heston"])
def test_discounted_price_is_a_martingale(model):
    core = OptionExercise(num_envs=20000, model=model, moneyness=(1.0, 1.0))
    ch = core.chain
    np.testing.assert_allclose((ch.P * np.exp(ch.m + 0.5 * ch.s ** 2)).sum(axis=1), math.exp(core.rate * core.dt),
                               rtol=1e-13)                             # exactly, per step and variance state
    x, _ = core.sample_paths(np.random.default_rng(0), 20000)
    disc = np.exp(x[:, -1] - core.rate * core.maturity)             # e^(−rT) S_T / K
    assert abs(disc.mean() - 1.0) < 4 * disc.std() / math.sqrt(len(disc))


def test_exercise_at_maturity_is_the_european_put_black_scholes():
    core = OptionExercise(num_envs=4096, moneyness=(1.0, 1.0))
    bs = bs_put(100.0, 100.0, core.rate, core.sigma, core.maturity)
    r = episode_returns(core, make_policy("option-exercise/at-maturity", core), episodes=4 * 4096, seed=3)["returns"]
    assert abs(r.mean() - bs) < 4 * r.std(ddof=1) / math.sqrt(len(r))
    eu = ExerciseDP(core, exercisable=np.zeros(core.n_steps + 1, bool))
    assert eu.value(0.0)[0] == pytest.approx(bs, abs=2e-4)      # the grid's own European price
    for S, K, r_, s, T in ((36, 40, 0.06, 0.2, 1.0), (44, 40, 0.06, 0.4, 2.0)):
        c = core_at(S, strike=K, rate=r_, sigma=s, maturity=T, n_steps=int(50 * T))
        assert ExerciseDP(c, exercisable=np.zeros(c.n_steps + 1, bool)).value(math.log(S / K))[0] == \
            pytest.approx(bs_put(S, K, r_, s, T), abs=2e-4)


def test_value_at_least_intrinsic_and_european_and_more_dates_are_worth_more():
    amer = ExerciseDP(core_at(36.0, **LS))
    berm = ExerciseDP(core_at(36.0, **{**LS, "exercise_every": 5}))
    euro = ExerciseDP(core_at(36.0, **LS), exercisable=np.zeros(51, bool))
    x = amer.x
    inside = np.abs(x) < 1.0
    intrinsic = 40.0 * np.maximum(-np.expm1(x), 0.0)
    assert (amer.value0[0][inside] >= intrinsic[inside] - 1e-9).all()
    assert (amer.value0[0][inside] >= berm.value0[0][inside] - 1e-9).all()          # more dates: worth more
    assert (berm.value0[0][inside] >= euro.value0[0][inside] - 1e-9).all()          # early-exercise premium ≥ 0
    premium = amer.value(math.log(0.9))[0] - euro.value(math.log(0.9))[0]
    assert premium == pytest.approx(4.478 - 3.844, abs=0.01)                        # LS 2001, Table 1, row 1


# -- the optimum against independent computations ----------------------------------------------
def test_dp_matches_longstaff_schwartz_2001_table_1():
    for S0, fd, lsm, se in ((36.0, 4.478, 4.472, 0.010), (40.0, 2.314, 2.313, 0.010)):
        v = ExerciseDP(core_at(S0, **LS)).value(math.log(S0 / 40.0))[0]
        assert abs(v - fd) < 0.002, (S0, v)          # their finite-difference value (see the module docstring)
        assert abs(v - lsm) < 2 * se, (S0, v)       # their LSM estimate with 50 dates a year
    assert ExerciseDP(core_at(36.0, **LS)).value(math.log(0.9))[0] == pytest.approx(4.478, abs=0.001)


def test_dp_matches_a_binomial_tree_on_the_envs_own_dates_and_in_the_american_limit():
    v50 = ExerciseDP(core_at(36.0, **LS)).value(math.log(0.9))[0]
    assert v50 == pytest.approx(binomial_put(36, 40, 0.06, 0.2, 1.0, dates=50, per_date=400), abs=1e-4)
    v1000 = ExerciseDP(core_at(36.0, **{**LS, "n_steps": 1000})).value(math.log(0.9))[0]
    american = binomial_put(36, 40, 0.06, 0.2, 1.0, dates=4000, per_date=1)       # 4.4867
    assert v50 < v1000 < american + 3e-4 and v1000 == pytest.approx(american, abs=5e-4)


def test_heston_dp_matches_clarke_parrott():
    core = core_at(10.0, **CP, n_steps=100, variance_states=41)
    dp = ExerciseDP(core)
    ref = {8: 2.0000, 9: 1.1076, 10: 0.5200, 11: 0.2137, 12: 0.0820}
    for S, want in ref.items():
        assert dp.value(math.log(S / 10.0), start_state(core))[0] == pytest.approx(want, abs=1e-3), S


def test_heston_chain_european_matches_the_heston_closed_form():
    integrate = pytest.importorskip("scipy.integrate")
    k, th, xi, rho, v0, r, T = 5.0, 0.16, 0.9, 0.1, 0.0625, 0.1, 0.25

    def cf(u, S):  # Heston (1993) characteristic function of log S_T, Albrecher et al.'s stable form
        b = k - rho * xi * 1j * u
        d = np.sqrt(b * b + xi * xi * (1j * u + u * u))
        g = (b - d) / (b + d)
        C = r * 1j * u * T + k * th / xi ** 2 * ((b - d) * T - 2 * np.log((1 - g * np.exp(-d * T)) / (1 - g)))
        D = (b - d) / xi ** 2 * (1 - np.exp(-d * T)) / (1 - g * np.exp(-d * T))
        return np.exp(C + D * v0 + 1j * u * math.log(S))

    def put(S, K=10.0):
        lk = math.log(K)
        p1 = 0.5 + integrate.quad(lambda u: (np.exp(-1j * u * lk) * cf(u - 1j, S) / (1j * u * cf(-1j, S))).real,
                                  0, 200, limit=400)[0] / math.pi
        p2 = 0.5 + integrate.quad(lambda u: (np.exp(-1j * u * lk) * cf(u, S) / (1j * u)).real, 0, 200, limit=400)[0] / math.pi
        return S * p1 - K * math.exp(-r * T) * p2 - S + K * math.exp(-r * T)

    core = core_at(10.0, **CP, n_steps=50)
    eu = ExerciseDP(core, exercisable=np.zeros(51, bool))
    for S in (9.0, 10.0, 11.0):
        assert eu.value(math.log(S / 10.0), start_state(core))[0] == pytest.approx(put(S), abs=1e-3)


@pytest.mark.parametrize("model", ["gbm", "heston"])
def test_dp_equals_brute_force_integration_on_two_steps(model):
    """N = 2 (dates t0, t1 and maturity): V1 in closed form per variance state, V0 by adaptive quadrature."""
    integrate = pytest.importorskip("scipy.integrate")
    kw = dict(model="heston", kappa=3.0, theta=0.09, xi=0.6, rho=-0.5, variance_states=3) if model == "heston" \
        else dict(sigma=0.35)
    core = OptionExercise(num_envs=1, strike=100.0, rate=0.08, maturity=0.5, n_steps=2, **kw)
    ch, K, g = core.chain, 100.0, math.exp(-0.08 * core.dt)
    h = core.payoff

    def european(x, i):  # e^(−rΔ) E[(K − K e^(x+Y))⁺] over the next state j and Y ~ N(m_ij, s_ij²)
        out = 0.0
        for j in range(ch.states):
            m, s = ch.m[i, j], ch.s[i, j]
            d = (-x - m) / s
            out += ch.P[i, j] * (K * _phi(d) - K * math.exp(x + m + 0.5 * s * s) * _phi(d - s))
        return g * out

    def v1(x, j):
        return max(float(h(np.array([x]))[0]), european(x, j))

    def v0(x, i):
        cont = 0.0
        for j in range(ch.states):
            m, s = ch.m[i, j], ch.s[i, j]
            f = lambda z, j=j, m=m, s=s: v1(x + m + s * z, j) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
            cont += ch.P[i, j] * integrate.quad(f, -12, 12, points=[(-x - m) / s], limit=200)[0]
        return max(float(h(np.array([x]))[0]), g * cont)

    dp = ExerciseDP(core)
    for x in (-0.3, -0.1, 0.0, 0.15):
        for i in range(ch.states):
            assert dp.value(x, i)[0] == pytest.approx(v0(x, i), abs=2e-4), (x, i)


def _pathwise(core, decide, x, i):
    """Discounted payoff of exercising at the first date `decide(k, x_k, i_k)` says so, else at maturity."""
    N = core.n_steps
    cash = core.payoff(x[:, N]) * core.discount[N]
    done = np.zeros(len(x), dtype=bool)
    for k in range(N):
        go = ~done & decide(k, x[:, k], i[:, k])
        cash = np.where(go, core.payoff(x[:, k]) * core.discount[k], cash)
        done |= go
    return cash


@pytest.mark.parametrize("env_id", IDS)
def test_dp_matches_longstaff_schwartz_on_the_same_paths(env_id):
    core = make_core(env_id)
    dp = make_policy("option-exercise/dp-optimal", core).dp
    x, i = core.sample_paths(np.random.default_rng(11), 40_000)
    opt = _pathwise(core, lambda k, xk, ik: dp.exercise(np.full(len(xk), k), xk, ik), x, i)
    _, lsm_mean, lsm = longstaff_schwartz(core, x, i)       # in-sample LSM on these very paths
    d = opt - lsm
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert abs(d.mean()) < 4 * se + 0.01, (opt.mean(), lsm_mean, se)
    assert lsm_mean == pytest.approx(lsm.mean())
    # and the DP's own value is the mean of its rule's payoffs (within Monte-Carlo error)
    value = np.mean([dp.value(x0, i0)[0] for x0, i0 in zip(x[:2000, 0], i[:2000, 0])])
    assert abs(opt[:2000].mean() - value) < 4 * opt[:2000].std(ddof=1) / math.sqrt(2000)


@pytest.mark.parametrize("env_id", IDS)
def test_dp_policy_earns_its_value_in_the_env(env_id):
    core = make_core(env_id, num_envs=8192)
    pol = make_policy("option-exercise/dp-optimal", core)
    r = episode_returns(core, pol, episodes=2 * 8192, seed=5)["returns"]
    lo, hi = core.moneyness
    m = np.linspace(lo, hi, 4001)
    value = pol.dp.value(np.log(m)).mean()                    # V_0 averaged over the start distribution
    assert abs(r.mean() - value) < 4 * r.std(ddof=1) / math.sqrt(len(r))
    rnd = episode_returns(core, make_policy("random", core), episodes=8192, seed=5)["returns"]
    eu = episode_returns(core, make_policy("option-exercise/at-maturity", core), episodes=2 * 8192, seed=5)["returns"]
    assert r.mean() > eu.mean() > rnd.mean()                 # paired paths: the same markets


def test_policies_refuse_other_envs():
    core = make_core("trading-synth", num_envs=2)
    for name in ("option-exercise/dp-optimal", "option-exercise/at-maturity", "option-exercise/longstaff-schwartz"):
        with pytest.raises(EnvError, match="acts in option-exercise envs"):
            make_policy(name, core)


def test_model_fits_are_re_derived_from_the_shipped_data():
    pytest.importorskip("arch", reason="the source data need `pip install ogdata[realdata]`")
    fresh, committed = fits_mod.fit(), fits_mod.model_fits()
    for block in ("rate", "sp500", "heston", "ou"):
        for key, want in committed[block].items():
            if isinstance(want, float):
                assert fresh[block][key] == pytest.approx(want, rel=1e-9), (block, key)
            else:
                assert fresh[block][key] == want, (block, key)
    from ogdata.envs.prices import calibration

    var = calibration()["sp500-index"]["gbm"]["cov"][0][0]   # the trading envs' calibration, same years
    assert committed["sp500"]["sigma"] == pytest.approx(math.sqrt(252 * var), rel=1e-9)
    core = make_core("option-exercise-american")
    assert (core.rate, core.sigma) == (committed["rate"]["rate"], committed["sp500"]["sigma"])


def test_v1_finance_figures_on_the_published_test_markets():
    from baselines.evaluate import MarketEvaluator
    from ogdata.envs.markets import market_references

    ev = MarketEvaluator("option-exercise-american", "test")
    hold = ev(lambda o: np.full(len(o), HOLD))
    f = hold["finance"]
    assert f["time_scale"] == "per episode" and f["early_exercise_rate"] == 0.0
    assert f["mean_steps_held"] == 50.0 and f["mean_steps_to_early_exercise"] is None
    ref = market_references("option-exercise-american", "test")["baselines"]["option-exercise/at-maturity"]
    assert hold["return_mean"] == pytest.approx(ref["return_mean"], rel=1e-12)
    now = ev(lambda o: np.full(len(o), EXERCISE))
    assert now["finance"]["early_exercise_rate"] == 1.0 and now["finance"]["mean_steps_to_early_exercise"] == 1.0
    (core, seed), = ev.cores()
    core.reset(seed=seed)
    assert now["return_mean"] == pytest.approx(core.payoff(core.x).mean(), rel=1e-12)   # the intrinsic value at t0
    dp = market_references("option-exercise-american", "test")["expert"]
    assert dp["name"] == "option-exercise/dp-optimal" and 0 < dp["finance"]["early_exercise_rate"] < 1


def test_committed_v1_references_reproduce():
    """The references-v1 entry recomputed by the script's own function, on the recorded markets, gives every
    row back within a tenth of its standard error (the policies are deterministic; only the platform differs)."""
    import importlib.util
    from pathlib import Path

    from ogdata.policies.evaluate import load_references_v1

    path = Path(__file__).resolve().parent.parent / "scripts" / "compute_references_v1.py"
    spec = importlib.util.spec_from_file_location("compute_references_v1", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    doc = load_references_v1()
    rec = doc["envs"]["option-exercise-bermudan"]
    new = script.compute_entry("option-exercise-bermudan", rec["markets"]["episodes"], rec["markets"]["seed"],
                               doc["selection_seed"])
    assert new["expert"]["kind"] == "optimal" and new["expert"]["name"] == "option-exercise/dp-optimal"
    for row, want in [("random", rec["random"]), *rec["baselines"].items()]:
        got = new["random"] if row == "random" else new["baselines"][row]
        assert abs(got["mean"] - want["mean"]) <= 0.1 * want["se"], row


def test_cards_name_the_fitted_synthetic_source():
    from ogdata.cards import PRICE_SOURCES, price_source

    assert price_source({"env_id": "option-exercise-heston"}) == "synthetic-arch-fits"
    assert PRICE_SOURCES["synthetic-arch-fits"]["license"] == "apache-2.0"
