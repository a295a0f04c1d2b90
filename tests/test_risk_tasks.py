"""Risk-sensitive tasks (issue #22): the stock-augmented observation, the task table, and the
CVaR-optimal static Almgren–Chriss schedule against brute force."""

import itertools

import numpy as np
import pytest

from ogdata.envs import make_core
from ogdata.envs.core import stock_from_features
from ogdata.envs.risk import list_risk_tasks, risk_task
from ogdata.errors import EnvError, InvalidIdError
from ogdata.policies import make_policy
from ogdata.policies.execution import (
    ac_cvar_risk_aversion,
    ac_trajectory,
    gaussian_cvar,
    static_return_moments,
)
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
    assert names("execution-ac") == ("expert", "execution/ac-cvar5") and names("portfolio-synth") == ("expert",)
    for task_id in ids:   # every named reference is a policy ogdata can build for the task's env
        for ref in risk_task(task_id).references.values():
            assert make_policy(ref, make_core(risk_task(task_id).env_id, num_envs=2)) is not None


def _brute_force_best(core, alpha, grid):
    """max CVaR over every schedule x_0 = X > x_1 ... x_{N−1} > x_N = 0 on a grid of holdings."""
    best = -np.inf
    for xs in itertools.product(grid, repeat=core.N - 1):
        x = np.array([core.X, *xs, 0.0])
        best = max(best, gaussian_cvar(*static_return_moments(core, x), alpha))
    return best


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_ac_cvar_schedule_beats_a_grid_of_every_schedule(alpha):
    core = make_core("execution-ac", steps=3, horizon=3.0)
    lam = ac_cvar_risk_aversion(core, alpha)
    mine = gaussian_cvar(*static_return_moments(core, ac_trajectory(core, lam)), alpha)
    grid = np.linspace(0.0, core.X, 81)
    brute = _brute_force_best(core, alpha, grid)
    assert mine >= brute - 1e-6  # no static schedule on the grid does better
    assert mine - brute < 0.05  # and the grid gets close (a 1/80 grid of holdings)
    # the plain AC schedule (the env's λ) is worse in CVaR: the optimum is more risk-averse
    plain = gaussian_cvar(*static_return_moments(core, ac_trajectory(core)), alpha)
    assert mine > plain and lam > core.lam


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


def test_augment_stock_adds_the_features_the_env_would_have_shown(tmp_path):
    """A dataset recorded on the plain env, augmented offline, carries exactly the augmented env's observations."""
    import ogdata

    rng = np.random.default_rng(0)
    obs, aug_obs, act, rew, lengths = [], [], [], [], []
    for ep in range(3):
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
    out = ogdata.augment_stock(ds, tmp_path / "aug")
    np.testing.assert_allclose(np.concatenate([e.observations for e in out.iter_episodes()]), np.array(aug_obs),
                               rtol=1e-6, atol=1e-6)
    assert out.metadata["env_kwargs"] == {"augment_stock": True} and out.env_id == "execution-ac"
