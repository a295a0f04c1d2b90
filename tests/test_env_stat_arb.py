"""stat-arb-*: the P&L identity and costs, the spread chain against the OU law, and the DP optimum
against brute-force enumeration of every contingent plan on a tiny chain."""

import itertools
import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ogdata
from ogdata.envs import make_core
from ogdata.envs.stat_arb import FLAT, LONG, SHORT, StatArb
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import make_policy
from ogdata.policies.evaluate import episode_returns
from ogdata.policies.stat_arb import POSITIONS, stat_arb_dp

IDS = ["stat-arb-brent-wti", "stat-arb-brent-wti-costly"]


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_and_seeded_determinism(env_id):
    env = ogdata.make_env(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    acts = np.random.default_rng(0).integers(0, 3, 60)

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in acts:
            obs, r, term, trunc, info = env.step(a)
            out += [obs, np.array([r, info["spread"], info["pnl"]])]
            assert env.observation_space.contains(obs)
        assert term and not trunc
        return out

    a, b, c = rollout(4), rollout(4), rollout(5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_bad_actions_and_kwargs():
    env = ogdata.make_env("stat-arb-brent-wti")
    env.reset(seed=0)
    for bad in (3, -1, 1.5, np.inf, "long", [1, 1]):
        with pytest.raises(InvalidActionError):
            env.step(bad)
    for kw, match in (({"cost": -0.1}, "cost=-0.1 is out of range"), ({"grid_points": 1}, "grid_points=1 is invalid"),
                      ({"theta": 0.0}, "theta=0.0 is out of range"), ({"n_steps": 2.0}, "n_steps=2.0 is invalid")):
        with pytest.raises(EnvError, match=match):
            StatArb(**kw)


def test_pnl_identity_and_costs_charged():
    core = StatArb(num_envs=5, cost=0.3, n_steps=40)
    obs, info = core.reset(seed=2)
    rng = np.random.default_rng(1)
    x, p, pnl = info["spread"].copy(), np.zeros(5), np.zeros(5)
    for t in range(40):
        a = rng.integers(0, 3, 5)
        obs, r, term, trunc, info = core.step(a)
        new = a - 1.0
        np.testing.assert_allclose(info["costs"], 0.3 * np.abs(new - p), rtol=0, atol=1e-15)
        np.testing.assert_allclose(r, new * (info["spread"] - x) - 0.3 * np.abs(new - p), rtol=1e-12, atol=1e-12)
        pnl += r
        np.testing.assert_allclose(info["pnl"], pnl, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(obs[:, 1], new)
        np.testing.assert_allclose(obs[:, 0], (info["spread"] - core.mu) / core.sd, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(obs[:, 2], (40 - t - 1) / 40, atol=1e-7)
        assert (term == (t == 39)).all() and not trunc.any()
        x, p = info["spread"].copy(), new
    # the same markets without costs: every step's reward differs by exactly the cost paid
    free = StatArb(num_envs=5, cost=0.0, n_steps=40)
    costly = StatArb(num_envs=5, cost=0.3, n_steps=40)
    free.reset(seed=9)
    costly.reset(seed=9)
    for _ in range(40):
        a = rng.integers(0, 3, 5)
        _, r0, *_ = free.step(a)
        _, r1, _, _, info = costly.step(a)
        np.testing.assert_allclose(r0 - r1, info["costs"], atol=1e-12)


def test_spread_chain_has_the_ou_one_step_law():
    core = make_core("stat-arb-brent-wti")
    P, x = core.P, core.levels
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    decay = math.exp(-core.theta * core.dt)
    var = core.sigma ** 2 * (1 - decay ** 2) / (2 * core.theta)
    inner = np.abs(core.z) <= 3.0  # levels whose one-step law lies well inside the grid
    np.testing.assert_allclose((P @ x)[inner], (core.mu + (x - core.mu) * decay)[inner], atol=1e-9 * core.sd)
    np.testing.assert_allclose((P @ x ** 2 - (P @ x) ** 2)[inner], var, rtol=1e-6)
    np.testing.assert_allclose(core.initial @ P, core.initial, atol=1e-12)     # stationary start
    assert core.initial @ x == pytest.approx(core.mu, abs=0.01 * core.sd)
    # simulated: the level a step later has the chain's mean
    env = StatArb(num_envs=50_000)
    env.reset(seed=0)
    i0 = env.level.copy()
    env.step(np.full(50_000, FLAT))
    err = env.levels[env.level] - (P @ x)[i0]
    assert abs(err.mean()) < 4 * err.std() / math.sqrt(len(err))


def _plans_optimum(core, n_steps):
    """max over every contingent plan (an action for each history of levels) of the expected return,
    from each start level, flat: brute force, no dynamic programme."""
    P, x, c = core.P, core.levels, core.cost
    n = len(x)
    histories = [list(itertools.product(range(n), repeat=t + 1)) for t in range(n_steps)]   # (i_0 .. i_t)
    best = np.full(n, -np.inf)
    for start in range(n):
        hs = [[h for h in hist if h[0] == start] for hist in histories]
        for plan in itertools.product(*[itertools.product(range(3), repeat=len(h)) for h in hs]):
            choice = {h: a for t in range(n_steps) for h, a in zip(hs[t], plan[t])}
            value = 0.0
            for path in itertools.product(range(n), repeat=n_steps):  # i_1 .. i_N
                full = (start,) + path
                prob = np.prod([P[full[t], full[t + 1]] for t in range(n_steps)])
                pos, ret = 0.0, 0.0
                for t in range(n_steps):
                    new = POSITIONS[choice[full[:t + 1]]]
                    ret += new * (x[full[t + 1]] - x[full[t]]) - c * abs(new - pos)
                    pos = new
                value += prob * ret
            best[start] = max(best[start], value)
    return best


@pytest.mark.parametrize("levels, steps", [(2, 3), (3, 2)])
@pytest.mark.parametrize("cost", [0.0, 0.4, 3.0])
def test_dp_equals_brute_force_over_every_contingent_plan(levels, steps, cost):
    """3^7 = 2,187 plans per start on 2 levels × 3 steps, 3^4 = 81 on 3 levels × 2 steps."""
    core = StatArb(num_envs=1, grid_points=levels, n_steps=steps, width=1.5, cost=cost)
    V, _ = stat_arb_dp(core)
    np.testing.assert_allclose(V[0, :, 1], _plans_optimum(core, steps), rtol=1e-12, atol=1e-12)


def _policy_value(core, act):
    """Exact expected return of a Markov policy act(t, level, position index) -> action index on the chain."""
    P, x, c, N = core.P, core.levels, core.cost, core.n_steps
    n = len(x)
    drift = P @ x - x
    V = np.zeros((n, 3))
    for t in range(N - 1, -1, -1):
        W = np.empty((n, 3))
        for p in range(3):
            a = act(t, np.arange(n), np.full(n, p))
            W[:, p] = POSITIONS[a] * drift - c * np.abs(POSITIONS[a] - POSITIONS[p]) + (P * V[:, a].T).sum(axis=1)
        V = W
    return core.initial @ V[:, 1]


@pytest.mark.parametrize("env_id", IDS)
def test_dp_beats_every_named_policy_exactly_and_earns_its_value_in_the_env(env_id):
    core = make_core(env_id, num_envs=4096)
    dp = make_policy("stat-arb/dp-optimal", core)
    exact = dp.expected_return()
    assert _policy_value(core, lambda t, i, p: dp.table[t, i, p]) == pytest.approx(exact, rel=1e-12)

    def via_obs(name):
        pol = make_policy(name, core)

        def act(t, i, p):
            obs = np.stack([core.z[i], POSITIONS[p], np.full(len(i), (core.n_steps - t) / core.n_steps)], 1)
            return pol(obs.astype(np.float32), None)
        return act

    for name in ("stat-arb/band", "stat-arb/band-1sd"):
        assert _policy_value(core, via_obs(name)) < exact
    assert _policy_value(core, lambda t, i, p: np.full(len(i), FLAT)) == 0.0 < exact
    assert _policy_value(core, lambda t, i, p: np.full(len(i), LONG)) < exact
    r = episode_returns(core, dp, episodes=4 * 4096, seed=7)["returns"]
    assert abs(r.mean() - exact) < 4 * r.std(ddof=1) / math.sqrt(len(r))
    # the DP acts from observations alone: its table, looked up through the observation, is the policy
    obs, _ = core.reset(seed=3)
    np.testing.assert_array_equal(dp(obs, None), dp.table[0, core.level, 1])


def test_band_rule_opens_beyond_k_and_closes_at_the_mean():
    core = make_core("stat-arb-brent-wti", num_envs=6)
    band = make_policy("stat-arb/band", core)
    obs = np.array([[2.5, 0, 1], [-2.5, 0, 1], [1.0, 0, 1], [0.5, 1, 1], [-0.1, 1, 1], [-0.1, -1, 1]], np.float32)
    np.testing.assert_array_equal(band(obs, None), [SHORT, LONG, FLAT, FLAT, LONG, FLAT])


def test_costs_widen_the_no_trade_band():
    cheap, dear = make_core("stat-arb-brent-wti"), make_core("stat-arb-brent-wti-costly")
    for core in (cheap, dear):
        _, act = stat_arb_dp(core)
        core.open_at = core.z[act[0, :, 1] == LONG].max()          # flat at t = 0: go long below this level
    assert cheap.open_at < 0 and dear.open_at < cheap.open_at


def test_v1_finance_figures_on_the_published_test_markets():
    from baselines.evaluate import MarketEvaluator

    ev = MarketEvaluator("stat-arb-brent-wti", "test")
    flat = ev(lambda o: np.full(len(o), FLAT))["finance"]
    assert flat["pnl_mean"] == 0.0 and flat["cost_mean"] == 0.0 and flat["turnover_per_step"] == 0.0
    assert flat["annualised_sharpe"] is None and flat["time_scale"] == "annualised" and flat["periods_per_year"] == 12
    long_ = ev(lambda o: np.full(len(o), LONG))
    f = long_["finance"]
    assert f["cost_mean"] == pytest.approx(0.05) and f["turnover_per_step"] == pytest.approx(1 / 60)
    assert f["gross_return_mean"] == pytest.approx(long_["return_mean"] + 0.05)
    assert f["score_gross"] - f["score_costs"] == pytest.approx(long_["normalised_score"])
    assert f["max_drawdown"] > 0 and np.isfinite(f["annualised_sharpe"])


def test_committed_v1_references_reproduce():
    """As for option-exercise: the script's own function on the recorded markets gives every row back."""
    import importlib.util
    from pathlib import Path

    from ogdata.policies.evaluate import load_references_v1

    path = Path(__file__).resolve().parent.parent / "scripts" / "compute_references_v1.py"
    spec = importlib.util.spec_from_file_location("compute_references_v1", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    doc = load_references_v1()
    rec = doc["envs"]["stat-arb-brent-wti"]
    new = script.compute_entry("stat-arb-brent-wti", rec["markets"]["episodes"], rec["markets"]["seed"],
                               doc["selection_seed"])
    assert new["expert"]["kind"] == "optimal" and new["expert"]["name"] == "stat-arb/dp-optimal"
    for row, want in [("random", rec["random"]), *rec["baselines"].items()]:
        got = new["random"] if row == "random" else new["baselines"][row]
        assert abs(got["mean"] - want["mean"]) <= 0.1 * want["se"], row


def test_cards_name_the_fitted_synthetic_source():
    from ogdata.cards import PRICE_SOURCES, price_source

    assert price_source({"env_id": "stat-arb-brent-wti-costly"}) == "synthetic-arch-fits"
    assert PRICE_SOURCES["synthetic-arch-fits"]["license"] == "apache-2.0"
