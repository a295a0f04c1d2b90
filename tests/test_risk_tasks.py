"""Risk-sensitive tasks (issue #22): the stock-augmented observation, the task table, and the
CVaR-optimal static Almgren–Chriss schedule against brute force."""

import itertools
import json
import os

import numpy as np
import pytest
from conftest import make_flat_episodes

import ogdata
from ogdata.envs import make_core
from ogdata.envs.core import stock_from_features
from ogdata.envs.risk import list_risk_tasks, risk_task
from ogdata.errors import DataValidationError, EnvError, InvalidIdError
from ogdata.policies import make_policy
from ogdata.policies.cvar import gaussian_cvar
from ogdata.policies.execution import ac_cvar_risk_aversion, ac_trajectory, static_return_moments
from tests.scripts import load_script


@pytest.mark.parametrize("env_id", ["execution-ac", "trading-synth", "portfolio-synth"])
def test_stock_features_track_reward_so_far_and_time_left(env_id):
    plain = make_core(env_id, num_envs=4)
    core = make_core(env_id, num_envs=4, augment_stock=True)
    o0, _ = plain.reset(seed=3)
    o, _ = core.reset(seed=3)
    assert o.shape[1] == o0.shape[1] + 2 and core.observation_space.shape == (o0.shape[1] + 2,)
    np.testing.assert_array_equal(o[:, :-2], o0)
    np.testing.assert_array_equal(o[:, -2:], [[0.0, 1.0]] * 4)
    rng = np.random.default_rng(0)
    acc = np.zeros(4)
    for t in range(1, 4):
        a = np.stack([core.action_space.sample() for _ in range(4)])
        if env_id == "execution-ac":
            a = (rng.uniform(0, 0.2, (4, 1))).astype(np.float32)
        p, r0, *_ = plain.step(a)
        o, r, *_ = core.step(a)
        np.testing.assert_array_equal(r, r0)  # rewards and markets unchanged
        np.testing.assert_array_equal(o[:, :-2], p)
        acc += r
        np.testing.assert_allclose(stock_from_features(o[:, -2], core._stock.scale), acc, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(o[:, -1], (core.max_steps - t) / core.max_steps)
        assert core.observation_space.contains(o[0])
    o, _ = core.reset(mask=np.array([True, False, False, False]))
    assert o[0, -2] == 0.0 and o[0, -1] == 1.0 and o[1, -1] < 1.0


def test_stock_scale_is_checked():
    with pytest.raises(EnvError, match="stock_scale"):
        make_core("execution-ac", augment_stock=True, stock_scale=0.0)


def test_risk_tasks_name_base_ids_and_objectives():
    ids = list_risk_tasks()
    assert {"execution-ac-cvar5", "execution-ac-cvar10", "execution-ac-meancvar10", "portfolio-synth-cvar5",
            "trading-synth-cvar10"} <= set(ids)
    t = risk_task("execution-ac-cvar5")
    assert (t.env_id, t.objective, t.alpha, t.kwargs) == ("execution-ac", "cvar", 0.05, {"augment_stock": True})
    assert "CVaR_0.05" in t.description
    with pytest.raises(InvalidIdError, match="execution-ac-cvar5"):
        risk_task("execution-ac-cvar05")
    # the risk table scores the policies the task names beside the expert (scripts/risk_table.py)
    names = load_script("risk_table").reference_names
    assert names("execution-ac") == ("expert", "execution/ac-cvar5")
    assert names("portfolio-synth") == ("expert", "portfolio/cvar5-mix")
    from baselines.evaluate import reference_policy

    for task_id in ids:   # every named reference is a policy ogdata can build for the task's env
        t = risk_task(task_id)
        for ref in t.references.values():
            core = make_core(t.env_id, num_envs=2, **t.kwargs)
            obs, _ = core.reset(seed=0)
            act = reference_policy(t.env_id, ref, core)(obs, np.random.default_rng(0))
            assert core.action_space.contains(np.asarray(act[0], dtype=core.action_space.dtype)), (task_id, ref)


@pytest.mark.parametrize("env_id", ["lob-execution", "lob-execution-latent"])
def test_order_book_risk_references_are_the_best_v1_reference_on_validation(env_id):
    """The order book has no closed form: each risk task names the v1 reference (TWAP, AC, queue-aware or the
    PPO expert) with the best objective on the validation markets. Re-checked here on those markets."""
    from baselines.evaluate import MarketEvaluator
    from baselines.finance import task_objective
    from ogdata.policies.evaluate import reference_returns_v1

    ev = MarketEvaluator(env_id, "validation", {"augment_stock": True})
    names = [reference_returns_v1(env_id)["expert"]["name"], *reference_returns_v1(env_id)["baselines"]]
    returns = {n: ev.reference_returns(n)["returns"] for n in dict.fromkeys(names)}
    for t in (risk_task(f"{env_id}-{k}") for k in ("cvar5", "cvar10", "meancvar10")):
        scores = {n: task_objective(t, x) for n, x in returns.items()}
        assert t.references["expert"] == max(scores, key=scores.get), (t.id, scores)


@pytest.mark.parametrize("env_id", ["trading-synth", "trading-sp500"])
def test_trading_risk_references_are_the_best_rule_policy_on_validation(env_id):
    """Trading's tasks name flat: the best of the rule policies (always-long, the regime filter where the id has
    it, flat) on each objective on the validation markets; for CVaR it is the optimum whenever the tail loses."""
    from baselines.evaluate import MarketEvaluator
    from baselines.finance import task_objective
    from ogdata.policies.evaluate import reference_returns_v1

    ev = MarketEvaluator(env_id, "validation", {"augment_stock": True})
    rules = [n for n in (reference_returns_v1(env_id)["expert"]["name"], *reference_returns_v1(env_id)["baselines"])
             if n != "trained/best"] + ["trading/flat"]
    returns = {n: ev.reference_returns(n)["returns"] for n in dict.fromkeys(rules)}
    assert not returns["trading/flat"].any()
    for t in (risk_task(f"{env_id}-{k}") for k in ("cvar5", "cvar10", "meancvar10")):
        scores = {n: task_objective(t, x) for n, x in returns.items()}
        assert t.references["expert"] == max(scores, key=scores.get) == "trading/flat", (t.id, scores)


def _mean_cvar(mean, std, alpha, weight):
    return (1 - weight) * mean + weight * gaussian_cvar(mean, std, alpha)


def _brute_force_best(core, alpha, grid, weight=1.0):
    """max (1 − w)·mean + w·CVaR over every schedule x_0 = X > x_1 ... x_{N−1} > x_N = 0 on a grid of holdings."""
    best = -np.inf
    for xs in itertools.product(grid, repeat=core.N - 1):
        x = np.array([core.X, *xs, 0.0])
        best = max(best, _mean_cvar(*static_return_moments(core, x), alpha, weight))
    return best


@pytest.mark.parametrize("alpha, weight", [(0.05, 1.0), (0.10, 1.0), (0.10, 0.5)])
def test_ac_cvar_schedule_beats_a_grid_of_every_schedule(alpha, weight):
    core = make_core("execution-ac", steps=3, horizon=3.0)
    lam = ac_cvar_risk_aversion(core, alpha, weight)
    mine = _mean_cvar(*static_return_moments(core, ac_trajectory(core, lam)), alpha, weight)
    grid = np.linspace(0.0, core.X, 81)
    brute = _brute_force_best(core, alpha, grid, weight)
    assert mine >= brute - 1e-6  # no static schedule on the grid does better
    assert mine - brute < 0.05  # and the grid gets close (a 1/80 grid of holdings)
    # the plain AC schedule (the env's λ) is worse in CVaR: the optimum is more risk-averse
    plain = _mean_cvar(*static_return_moments(core, ac_trajectory(core)), alpha, weight)
    assert mine > plain and lam > core.lam


def _simplex_grid(n: int, step: float) -> np.ndarray:
    k = round(1 / step)
    g = np.stack(np.meshgrid(*[np.arange(k + 1)] * n, indexing="ij"), -1).reshape(-1, n)
    return g[g.sum(1) <= k] / k


@pytest.mark.parametrize("alpha, weight, invested", [(0.10, 0.2, "full"), (0.10, 0.3, "part"),
                                                      (0.10, 0.5, "none"), (0.05, 1.0, "none")])
def test_mean_cvar_mix_matches_a_fine_simplex_grid(alpha, weight, invested):
    """Three assets (daily moments, a 252-day episode) whose best long-only Sharpe ratio over the year is 0.66: the
    objective is scored on every long-only mix of a 0.005 grid; the solver's mix is at least as good and
    within a grid cell of the grid's best. All cash exactly when λ·φ(z_α)/α exceeds that Sharpe ratio."""
    from ogdata.policies.cvar import tail_factor
    from ogdata.policies.portfolio import episode_moments, mean_cvar_weights

    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = (a @ a.T + 3 * np.eye(3)) * 1e-4
    drift = np.array([6e-4, 4e-4, 3e-4])
    w = mean_cvar_weights(drift, cov, 252, alpha, weight)
    grid = _simplex_grid(3, 0.005)
    mean = 252 * (grid @ drift - 0.5 * np.einsum("ki,ij,kj->k", grid, cov, grid))
    std = np.sqrt(252 * np.einsum("ki,ij,kj->k", grid, cov, grid))
    J = mean - weight * tail_factor(alpha) * std           # (1 − λ)·mean + λ·CVaR_α, CVaR_α = mean − c·std
    mine = _mean_cvar(*episode_moments(w, drift, cov, 252), alpha, weight)
    assert mine >= J.max() - 1e-12
    assert np.abs(w - grid[J.argmax()]).max() <= 0.005 + 1e-9
    assert (w >= 0).all() and w.sum() <= 1 + 1e-12
    assert {"full": abs(w.sum() - 1) < 1e-9, "part": 0.05 < w.sum() < 0.95, "none": not w.any()}[invested]


def test_portfolio_cvar_mixes_are_all_cash_where_no_mix_clears_the_tail_factor():
    """portfolio-synth's best long-only Sharpe ratio over a year (the tangency mix of the calibration) is
    below φ(z_α)/α for α = 5 % and 10 % (2.06, 1.75), so the CVaR-optimal constant mix is all cash (G = 0);
    for ½·mean + ½·CVaR_10 % the threshold halves and the mix is fully invested, between cash and Kelly."""
    from ogdata.policies.cvar import tail_factor
    from ogdata.policies.portfolio import KellyMix, kelly_inputs, kelly_weights

    core = make_core("portfolio-synth", num_envs=2)
    drift, cov = kelly_inputs(core)
    t = kelly_weights(drift * 1e-3, cov)       # the budget does not bind: the tangency direction
    sharpe = np.sqrt(core.n_steps) * (t @ drift) / np.sqrt(t @ cov @ t)
    assert 0.5 * tail_factor(0.10) < sharpe < tail_factor(0.10) < tail_factor(0.05)
    for name in ("portfolio/cvar5-mix", "portfolio/cvar10-mix"):
        pol = make_policy(name, core)
        assert not pol.weights.any() and pol.action[-1] == 1.0
    mix, kelly = make_policy("portfolio/meancvar10-mix", core), KellyMix(core)
    assert abs(mix.weights.sum() - 1) < 1e-9 and mix.std < np.sqrt(core.n_steps * kelly.weights @ cov @ kelly.weights)
    assert _mean_cvar(mix.mean, mix.std, 0.10, 0.5) > _mean_cvar(
        core.n_steps * kelly.growth, np.sqrt(core.n_steps * kelly.weights @ cov @ kelly.weights), 0.10, 0.5)


def test_mean_cvar_mix_earns_the_moments_the_model_says():
    """Without costs, the mix's year of daily log growth on portfolio-synth has the model's mean and std."""
    from ogdata.policies.evaluate import episode_returns

    episodes = 4000
    core = make_core("portfolio-synth", num_envs=episodes, cost=0.0)
    pol = make_policy("portfolio/meancvar10-mix", core)
    G = episode_returns(core, pol, episodes, seed=3)["returns"]
    se = pol.std / np.sqrt(episodes)
    assert abs(G.mean() - pol.mean) < 4 * se
    assert abs(G.std(ddof=1) / pol.std - 1.0) < 0.05


def test_static_schedule_return_is_the_gaussian_the_moments_say():
    core = make_core("execution-ac", num_envs=4000, steps=4, horizon=2.0)
    x = ac_trajectory(core, 3e-6)
    mean, std = static_return_moments(core, x)
    core.reset(seed=0)
    frac = 1.0 - x[1:] / np.where(x[:-1] > 0, x[:-1], 1.0)
    G = np.zeros(core.num_envs)
    for k in range(core.N):
        _, r, *_ = core.step(np.full((core.num_envs, 1), frac[k], dtype=np.float32))
        G += r
    se = std / np.sqrt(core.num_envs)
    assert abs(G.mean() - mean) < 4 * se
    assert abs(G.std() / std - 1.0) < 0.05


def test_ac_cvar_reference_policy_acts_on_augmented_observations():
    core = make_core("execution-ac", num_envs=2, augment_stock=True)
    pol = make_policy("execution/ac-cvar5", core)
    obs, _ = core.reset(seed=0)
    a = pol(obs, np.random.default_rng(0))
    assert a.shape == (2, 1) and np.all((a > 0) & (a <= 1))


def test_market_evaluator_keeps_the_base_markets_with_stock_features():
    from baselines.evaluate import MarketEvaluator

    plain = MarketEvaluator("execution-ac", "validation")
    aug = MarketEvaluator("execution-ac", "validation", {"augment_stock": True})
    pol = make_policy("execution/ac-optimal", make_core("execution-ac"))
    a = plain.returns(lambda o: pol(o, None))["returns"]
    b = aug.returns(lambda o: pol(o, None))["returns"]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no v1 markets"):
        MarketEvaluator("execution-ac", "validation", {"augment_stock": True, "sigma": 2.0})


def _plain_and_augmented_episodes(tmp_path, episodes=3):
    """A dataset recorded on the plain execution-ac env (random schedules), and the observations the augmented env
    showed on the same markets and actions."""
    import ogdata

    rng = np.random.default_rng(0)
    obs, aug_obs, act, rew, lengths = [], [], [], [], []
    for ep in range(episodes):
        plain, aug = make_core("execution-ac", num_envs=1), make_core("execution-ac", num_envs=1, augment_stock=True)
        o, _ = plain.reset(seed=ep)
        oa, _ = aug.reset(seed=ep)
        obs.append(o[0]), aug_obs.append(oa[0])
        steps = 0
        while steps < plain.max_steps:
            steps += 1
            a = rng.uniform(0, 0.3, (1, 1)).astype(np.float32)
            o, r, term, trunc, _ = plain.step(a)
            oa, *_ = aug.step(a)
            obs.append(o[0]), aug_obs.append(oa[0]), act.append(a[0]), rew.append(r[0])
            if term[0] or trunc[0]:
                break
        lengths.append(steps)
    n = sum(lengths)
    ends = np.cumsum(lengths) - 1
    term = np.zeros(n, bool)
    term[ends] = True
    ds = ogdata.create_dataset(tmp_path / "plain", observations=np.array(obs), actions=np.array(act),
                               rewards=np.array(rew), terminations=term, truncations=np.zeros(n, bool),
                               episode_lengths=np.array(lengths), action_space=make_core("execution-ac").action_space,
                               metadata={"env_id": "execution-ac"})
    return ds, np.array(aug_obs)


def test_augment_stock_adds_the_features_the_env_would_have_shown(tmp_path):
    """A dataset recorded on the plain env, augmented offline, carries exactly the augmented env's observations."""
    import ogdata

    ds, aug_obs = _plain_and_augmented_episodes(tmp_path)
    out = ogdata.augment_stock(ds, tmp_path / "aug")
    np.testing.assert_allclose(np.concatenate([e.observations for e in out.iter_episodes()]), aug_obs,
                               rtol=1e-6, atol=1e-6)
    assert out.metadata["env_kwargs"] == {"augment_stock": True} and out.env_id == "execution-ac"


def test_a_stock_learner_trains_on_the_stock_copy_made_once(tmp_path):
    """sqriql named on a dataset recorded without the stock features (every catalogue tier) trains on its
    stock-augmented copy under OGDATA_HOME/derived — the augmented env's observations, made by the first run and
    reused by the next — and is evaluated on the augmented env; the record names the source dataset."""
    import json

    from baselines.data import stock_copy_path, with_stock_features
    from baselines.train import RunSettings, train

    ds, aug_obs = _plain_and_augmented_episodes(tmp_path, episodes=4)
    path = stock_copy_path(ds)
    assert not path.exists() and str(path).startswith(os.environ["OGDATA_HOME"])
    for seed in (0, 1):
        res = train(RunSettings(algo="sqriql", dataset=str(ds.path), steps=4, seed=seed, evals=1, batch_size=32,
                                hidden=16, progress=False, protocol="v1-validation", out=str(tmp_path / f"run{seed}")))
        assert res["dataset"] == str(ds.path) and res["dataset_metadata"]["env_kwargs"] == {"augment_stock": True}
        if seed == 0:
            made = (path / "metadata.json").stat().st_mtime_ns
    assert (path / "metadata.json").stat().st_mtime_ns == made  # reused, not made again
    cfg = json.loads((tmp_path / "run1" / "config.json").read_text())
    assert cfg["learner"]["config"]["stock_scale"] > 0
    copy = with_stock_features(ds)
    assert copy.path == path
    np.testing.assert_allclose(np.concatenate([e.observations for e in copy.iter_episodes()]), aug_obs,
                               rtol=1e-6, atol=1e-6)
    assert with_stock_features(copy) is copy  # already augmented: itself
    # other data (one episode fewer) gets its own copy, never the first one's
    fewer = ds.select_episodes([0, 1, 2])
    assert stock_copy_path(fewer) != path
    import ogdata

    no_env = ogdata.create_dataset(tmp_path / "no-env", observations=np.zeros((6, 3), np.float32),
                                   actions=np.zeros((4, 1), np.float32), rewards=np.zeros(4),
                                   terminations=[0, 1, 0, 1], truncations=np.zeros(4, bool))
    with pytest.raises(DataValidationError, match="known env"):
        with_stock_features(no_env)


def test_task_objective_on_a_known_sample():
    from baselines.finance import task_objective

    x = np.arange(1.0, 101.0)[::-1]          # 100 episode returns 100..1: the worst 5 % are 1..5
    assert task_objective(risk_task("execution-ac-cvar5"), x) == pytest.approx(3.0)
    assert task_objective(risk_task("execution-ac-cvar10"), x) == pytest.approx(5.5)
    assert task_objective(risk_task("portfolio-synth-meancvar10"), x) == pytest.approx(0.5 * 50.5 + 0.5 * 5.5)


def test_all_cash_reference_earns_exactly_nothing_on_the_fixed_markets():
    """The CVaR-optimal constant mix of portfolio-synth is all cash: from the all-cash start it never trades,
    so every episode's log growth is 0 (no cost, no interest on the 20-stock universe's cash)."""
    from baselines.evaluate import MarketEvaluator

    ev = MarketEvaluator("portfolio-synth", "validation")
    res = ev.reference_returns("portfolio/cvar5-mix")
    assert res["returns"].shape == (ev.episodes,) and not res["returns"].any()
    assert np.all(res["wealth"] == 1.0)


def test_suite_risk_table_reads_the_suite_records(tmp_path):
    """scripts/risk_table.py --suite-table: per dataset and label, the mean [bootstrap interval] over the
    seeds' final test-market figures, seeds counted, tiers in catalogue order, the references beside them;
    qriql's CVaR mode from its own runs directory, and a record made with other overrides is refused."""
    from baselines.stats import mean_ci

    rt = load_script("risk_table")
    cvars = {"good": [-650.0, -640.0, -660.0], "poor": [-600.0, -590.0]}

    def record(runs: str, tier: str, algo: str, s: int, v: float, overrides: dict | None = None):
        d = tmp_path / runs / f"execution-ac__{tier}-v1" / algo / f"seed{s}"
        d.mkdir(parents=True)
        final = {"return_mean": v / 2, "normalised_score": 90.0 + s,
                 "finance": {"return_cvar5": v, "shortfall_bp_cvar95": -v}}
        settings = {"hidden": 64, **({"overrides": overrides} if overrides else {})}
        (d / "result.json").write_text(json.dumps({"final": final, "settings": settings}))
        return d

    for tier, values in cvars.items():
        for s, v in enumerate(values):
            record("v1-lite", tier, "bc", s, v)
    record("v1-lite", "good", "bcq", 0, -630.0, {"target_update_interval": 100})  # the suite's own sync: accepted
    record("v1-lite", "good", "qriql", 0, -700.0)
    record("v1-lite-qriql-cvar5", "good", "qriql", 0, -610.0, {"risk": "cvar", "alpha": 0.05})
    record("v1-lite-qriql-cvar5", "good", "qriql", 1, -620.0, {"risk": "cvar", "alpha": 0.05})
    doc = rt.aggregate_suite(tmp_path / "v1-lite")
    assert list(doc["datasets"]) == ["execution-ac/good-v1", "execution-ac/poor-v1"]
    runs = doc["datasets"]["execution-ac/good-v1"]["runs"]
    assert list(runs) == ["bc", "bcq", "qriql-mean", "qriql-cvar5"]
    m, lo, hi = mean_ci(cvars["good"])
    assert runs["bc"]["return_cvar5"] == {"mean": m, "low": lo, "high": hi, "n": 3}
    assert runs["bc"]["max_drawdown"]["n"] == 0
    assert runs["qriql-mean"]["return_cvar5"]["mean"] == -700.0
    assert runs["qriql-cvar5"]["return_cvar5"]["mean"] == -615.0 and runs["qriql-cvar5"]["score"]["n"] == 2
    refs = doc["references"]["execution-ac"]
    assert set(refs) == {"execution/ac-optimal", "execution/ac-cvar5"}
    assert refs["execution/ac-cvar5"]["return_cvar5"] > refs["execution/ac-optimal"]["return_cvar5"]
    md = rt.suite_markdown(doc)
    assert "| good-v1 | bc (3 seeds) |" in md and "| poor-v1 | bc (2 seeds) |" in md
    assert "| good-v1 | qriql-cvar5 (2 seeds) |" in md
    assert md.index("good-v1") < md.index("poor-v1") < md.index("| reference | execution/ac-cvar5 |")
    # a CVaR-mode run filed among the suite's mean-mode runs: refused, naming the file
    bad = record("v1-lite", "poor", "qriql", 0, -610.0, {"risk": "cvar", "alpha": 0.05})
    with pytest.raises(ValueError, match=str(bad / "result.json")):
        rt.aggregate_suite(tmp_path / "v1-lite")


def test_task_table_scores_each_tasks_objective_from_the_test_returns(tmp_path):
    """scripts/risk_table.py --task-table: per risk task, tier and learner, the task's objective of each seed's
    final test returns (CVaR_α, or ½·mean + ½·CVaR_10 %), mean [interval] over seeds; qriql's mean mode under its
    label, learners outside SUITE_SOURCES under their own names; a cell counts as above the task's reference only
    when its whole interval is; a run with other overrides is refused."""
    from baselines.stats import mean_ci

    rt = load_script("risk_table")
    x = np.arange(1.0, 101.0)  # returns 1..100: CVaR 5 % = 3, CVaR 10 % = 5.5, mean 50.5

    def record(runs, tier, algo, s, shift, overrides=None):
        d = tmp_path / runs / f"execution-ac__{tier}-v1" / algo / f"seed{s}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"final": {}, "settings": {"overrides": overrides or {}}}))
        np.savez(d / "test_returns.npz", final=(x + shift).astype(np.float32), best_on_validation=x.astype(np.float32))

    for s, shift in enumerate((0.0, 1.0, 2.0)):
        record("v1-lite", "good", "bc", s, shift)
        record("v1-lite", "good", "td3bc", s, shift - 10.0)
    record("v1-lite", "poor", "qriql", 0, 5.0)
    refs = {t: {"policies": {"execution/ac-optimal": {"role": "the base id's v1 expert (the mean's)",
                                                      "objective": {"value": 1.0, "ci95": [0.5, 1.5]}},
                             "execution/ac-cvar5": {"role": "the task's reference",
                                                    "objective": {"value": 3.5, "ci95": [3.0, 4.0]}}}}
            for t in ("execution-ac-cvar5", "execution-ac-cvar10", "execution-ac-meancvar10")}
    (tmp_path / "refs.json").write_text(json.dumps({"tasks": refs}))
    doc = rt.aggregate_tasks(tmp_path / "v1-lite", tmp_path / "refs.json")
    cv5, mc10 = doc["tasks"]["execution-ac-cvar5"], doc["tasks"]["execution-ac-meancvar10"]
    assert list(cv5["datasets"]) == ["execution-ac/good-v1", "execution-ac/poor-v1"]
    assert list(cv5["datasets"]["execution-ac/good-v1"]) == ["bc", "td3bc"]
    m, lo, hi = mean_ci([3.0, 4.0, 5.0])
    assert cv5["datasets"]["execution-ac/good-v1"]["bc"] == {"mean": m, "low": lo, "high": hi, "n": 3}
    assert cv5["datasets"]["execution-ac/poor-v1"]["qriql-mean"]["mean"] == pytest.approx(8.0)
    assert mc10["datasets"]["execution-ac/good-v1"]["bc"]["mean"] == pytest.approx(0.5 * 51.5 + 0.5 * 6.5)
    assert doc["tasks"]["lob-execution-cvar5"]["datasets"] == {}
    md = rt.tasks_markdown({"tasks": {k: v for k, v in doc["tasks"].items() if k.startswith("execution-ac-")
                                      and "highvol" not in k}})
    # bc's [3, 5]-ish interval is not wholly above 3.5; qriql's single seed has no interval: neither counts
    assert "| execution-ac-cvar5 | `execution/ac-cvar5` | 3.5 | qriql-mean (poor-v1) | 8 (1 seed) | 0 of 3 |" in md
    assert f"| good-v1 | 4 [{lo:.4g}, {hi:.4g}] (3 seeds) |" in md and "| poor-v1 | — | — | 8 (1 seed) |" in md
    record("v1-lite", "poor", "bc", 0, 0.0, {"value_loss": "hl_gauss"})
    with pytest.raises(ValueError, match="hl_gauss"):
        rt.aggregate_tasks(tmp_path / "v1-lite", tmp_path / "refs.json")


def test_suite_hlgauss_ablation_pairs_seeds_and_counts_cells(tmp_path):
    """scripts/risk_table.py --suite-ablation: each HL-Gauss run paired by seed with the suite's MSE run of the
    same dataset and algorithm; the paired differences, the cells whose score rose / fell / spans 0, the IQM of
    each side over the full cells, the cells whose mean and CVaR moved together or against each other; a run
    without the HL-Gauss override in the HL-Gauss directory is refused."""
    from baselines.stats import mean_ci

    rt = load_script("risk_table")

    def record(root, did, algo, s, score, overrides=None, cvar=None):
        d = tmp_path / root / did.replace("/", "__") / algo / f"seed{s}"
        d.mkdir(parents=True)
        final = {"return_mean": score - 400.0, "normalised_score": score,
                 "finance": {"return_cvar5": score - 700.0 if cvar is None else cvar, "shortfall_bp_cvar95": 1.0}}
        (d / "result.json").write_text(json.dumps({"final": final, "settings": {"overrides": overrides or {}}}))
        return d / "result.json"

    hl = {"value_loss": "hl_gauss"}
    for s in range(5):
        record("mse", "execution-ac/poor-v1", "iql", s, 90.0 + s)
        record("hl", "execution-ac/poor-v1", "iql", s, 95.0 + 2 * s, hl)      # up by 5 + s: rose
        record("mse", "execution-ac/good-v1", "iql", s, 99.0)
        record("hl", "execution-ac/good-v1", "iql", s, 99.0 + (-1) ** s, hl)  # ±1: spans 0
        record("mse", "execution-ac-highvol/poor-v1", "iql", s, 80.0, cvar=-600.0)
        record("hl", "execution-ac-highvol/poor-v1", "iql", s, 85.0 + s, hl, cvar=-650.0 - s)  # mean up, tail down
    record("mse", "execution-ac/random-v1", "iql", 0, 70.0)
    record("hl", "execution-ac/random-v1", "iql", 0, 60.0, hl)               # one seed: counted, not in the IQM
    record("hl", "execution-ac/random-v1", "iql", 1, 60.0, hl)               # no MSE partner: left out
    for s in range(3):  # the ablation's gaps: 2 of 3 seeds of a Replay cell, a whole TD3+BC cell; BC takes no critic
        record("mse", "execution-ac/replay-v1", "cql", s, 50.0)
        record("mse", "execution-ac/replay-v1", "bc", s, 50.0)
    record("hl", "execution-ac/replay-v1", "cql", 1, 50.0, hl)
    for s in range(5):
        record("mse", "execution-ac-highvol/good-v1", "td3bc", s, 50.0)
    doc = rt.aggregate_suite_ablation(tmp_path / "hl", tmp_path / "mse")
    assert doc["not_run"] == {"cells": 2, "runs": 7, "tiers": {
        "good": {"cells": 1, "runs": 5, "learners": {"td3bc": ["execution-ac-highvol"]}},
        "replay": {"cells": 1, "runs": 2, "learners": {"cql": ["execution-ac"]}}}}
    cells = doc["cells"]["iql"]
    assert cells["execution-ac/poor-v1"]["seeds"] == [0, 1, 2, 3, 4]
    m, lo, hi = mean_ci([5.0, 6.0, 7.0, 8.0, 9.0])
    assert cells["execution-ac/poor-v1"]["hl_gauss_minus_mse"]["score"] == {"mean": m, "low": lo, "high": hi, "n": 5}
    assert cells["execution-ac/poor-v1"]["hl_gauss_minus_mse"]["return_cvar5"]["mean"] == pytest.approx(7.0)
    assert cells["execution-ac/random-v1"]["seeds"] == [0]
    a = doc["algorithms"]["iql"]
    assert (a["cells"], a["full_cells"], a["score_up"], a["score_down"], a["score_across_0"]) == (4, 3, 2, 0, 2)
    assert (a["tail_with_mean"], a["tail_against_mean"]) == (1, 1)  # poor: both up; highvol poor: mean up, tail down
    assert set(a["iqm"]) == {"mse", "hl_gauss"} and a["iqm"]["hl_gauss"]["iqm"] > a["iqm"]["mse"]["iqm"]
    # per env family: Δ means 7 (poor), 0.2 (good: ±1 over 5 seeds), −10 (random, one seed), 7 (highvol) -> 3.6
    assert doc["families"]["iql"] == {"execution": {"cells": 4, "score_up": 2, "score_down": 0,
                                                    "median_score_change": pytest.approx(3.6)}}
    md = rt.suite_ablation_markdown(doc)
    assert "| learner | execution |" in md and "| iql | 2↑ 0↓ of 4 (+3.6) |" in md
    row = next(line for line in rt.suite_ablation_summary(doc) if line.startswith("| iql |"))
    m, h = (a["iqm"][side] for side in ("mse", "hl_gauss"))
    bold = "**" if h["low"] > m["high"] else ""
    assert row == (f"| iql | 4 | {m['iqm']:.1f} [{m['low']:.1f}, {m['high']:.1f}] | "
                   f"{bold}{h['iqm']:.1f} [{h['low']:.1f}, {h['high']:.1f}]{bold} | 2 / 0 / 2 | 1 / 1 |")
    assert "**iql**: 4 datasets; the score rose on 2, fell on 0, and its interval spans 0 on 2" in md
    assert "| execution-ac/random-v1 (1 seed) |" in md
    assert ("Not yet run: 2 cells, 7 runs" in md and "- good: 1 cell, 5 runs — td3bc: execution-ac-highvol" in md
            and "- replay: 1 cell, 2 runs — cql: execution-ac" in md)
    # what the record counts is what it reads once: execution-ac/poor's HL-Gauss seed 4 is on disk, but a record
    # whose pairing read came before it landed (a chain still running) lists it as not run rather than neither
    late = json.loads(json.dumps(doc["cells"]))
    late["iql"]["execution-ac/poor-v1"]["seeds"] = [0, 1, 2, 3]
    nr = rt.ablation_not_run(tmp_path / "mse", late)
    assert nr["tiers"]["poor"] == {"cells": 1, "runs": 1, "learners": {"iql": ["execution-ac"]}}
    assert (nr["cells"], nr["runs"]) == (3, 8)
    rt.suite_ablation_plot(doc, tmp_path / "ablation.png")  # a panel per learner
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = record("hl", "execution-ac/medium-v1", "iql", 0, 50.0)  # an MSE run filed among the HL-Gauss ones
    record("mse", "execution-ac/medium-v1", "iql", 0, 50.0)
    with pytest.raises(ValueError, match=str(bad)):
        rt.aggregate_suite_ablation(tmp_path / "hl", tmp_path / "mse")


def test_sqriql_diagnosis_helpers(tmp_path):
    """scripts/diagnose_sqriql.py: the tail figures of a sample by hand; the first observation of each episode
    in the T+1 layout (episode i's first observation is row start_i + i, not start_i); run discovery by glob."""
    dg = load_script("diagnose_sqriql")
    f = dg.tail_figures(np.arange(1.0, 21.0))  # 1..20: ⌈5 % · 20⌉ = 1 lowest value
    assert f == pytest.approx({"mean": 10.5, "cvar": 1.0, "q_low": 1.95, "q_high": 19.05})
    assert dg.tail_figures(np.arange(1.0, 21.0), alpha=0.1)["cvar"] == pytest.approx(1.5)
    arrays = make_flat_episodes(np.random.default_rng(0), [5, 7, 4])
    ds = ogdata.create_dataset(tmp_path / "ds", metadata={"dataset_id": "x/good-v1"}, **arrays)
    first = dg.initial_observations(ds)
    assert first.shape == (3, 3) and np.array_equal(first, arrays["observations"][[0, 6, 14]])
    for did, seed, done in (("trading-sp500/good-v1", 0, True), ("trading-sp500/good-v1", 1, False),
                            ("execution-ac/poor-v1", 0, True)):
        d = tmp_path / "runs" / did.replace("/", "__") / "sqriql" / f"seed{seed}"
        d.mkdir(parents=True)
        if done:
            (d / "result.json").write_text("{}")
    found = dg.runs(tmp_path / "runs", "trading-*/*,execution-ac/*")
    assert [(did, p.name) for did, p in found] == [("trading-sp500/good-v1", "seed0"), ("execution-ac/poor-v1", "seed0")]
