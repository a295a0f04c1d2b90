"""Distributional, risk-sensitive learners (qriql, sqriql) on problems whose answer is known."""

import numpy as np
import pytest
import torch

from baselines.data import Spec
from baselines.qriql import QRIQL, Config, quantile_huber_loss, quantile_midpoints, risk_measure
from baselines.sqriql import SQRIQL
from baselines.sqriql import Config as SConfig
from ogdata.errors import DataValidationError

# τ_e near 1: V's quantiles regress on a mixture of the actions' return distributions weighted τ_e : 1 − τ_e,
# and a CVaR reads the mixture's tail (with 0.9 the worse action's losses leak into V's lower 25 %)
SMALL = dict(hidden=64, layers=2, batch_size=256, quantiles=20, expectile=0.99, beta=10.0, gamma=1.0,
             critic_lr=1e-3, actor_lr=1e-3, tau=0.02)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks: one torch thread is fastest, and never oversubscribes a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_pinball_loss_by_hand_and_it_fits_the_quantiles():
    taus = quantile_midpoints(2)  # 0.25, 0.75
    pred = torch.tensor([[0.0, 1.0]])
    target = torch.tensor([[2.0, -1.0]])
    # θ_0 = 0 (τ 0.25): u = 2 → .25·2, u = −1 → .75·1; θ_1 = 1 (τ .75): u = 1 → .75·1, u = −2 → .25·2
    want = ((0.25 * 2 + 0.75 * 1) + (0.75 * 1 + 0.25 * 2)) / 2
    assert quantile_huber_loss(pred, target, taus, kappa=0.0).item() == pytest.approx(want)
    # minimising it over free quantiles recovers the quantiles of the target sample
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 4000, generator=g) * 2.0 + 1.0
    taus = quantile_midpoints(8)
    theta = torch.zeros(1, 8, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.05)
    for _ in range(800):
        opt.zero_grad()
        quantile_huber_loss(theta, y, taus, kappa=0.0).backward()
        opt.step()
    np.testing.assert_allclose(np.sort(theta.detach().numpy()[0]), np.quantile(y.numpy()[0], taus.numpy()),
                               atol=0.08)


def test_risk_measure_of_known_quantiles():
    q = torch.tensor([[3.0, -2.0, 1.0, 0.0, 5.0, 2.0, -1.0, 4.0, 6.0, 7.0]])
    assert risk_measure(q, "mean", 0.1).item() == pytest.approx(2.5)
    assert risk_measure(q, "cvar", 0.1).item() == pytest.approx(-2.0)
    assert risk_measure(q, "cvar", 0.2).item() == pytest.approx(-1.5)
    assert risk_measure(q, "mean-cvar", 0.2, 0.5).item() == pytest.approx(0.5)


def _batches(sample, steps, learner, batch=256, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        learner.update({k: torch.as_tensor(v) for k, v in sample(rng, batch).items()})


# -- a bandit: arm 0 pays 0.5 surely; arm 1 pays +2 (80 %) or −2 (20 %): mean 1.2, CVaR_10% −2 ---------------
def _bandit(rng, n):
    a = rng.integers(0, 2, n)
    r = np.where(a == 0, 0.5, np.where(rng.random(n) < 0.8, 2.0, -2.0))
    obs = np.ones((n, 1, 1), np.float32)
    return {"observations": obs, "next_observations": obs, "actions": a[:, None].astype(np.int64),
            "rewards": r[:, None].astype(np.float32), "terminals": np.ones((n, 1), np.float32)}


@pytest.mark.parametrize("risk,arm", [("mean", 1), ("cvar", 0)])
def test_bandit_cvar_arm_differs_from_mean_arm(risk, arm):
    torch.manual_seed(0)
    algo = QRIQL(Spec(1, 1, 0, True, 2), Config(**SMALL, risk=risk, alpha=0.1))
    _batches(_bandit, 600, algo)
    assert algo.act(torch.ones(1, 1, 1)).item() == arm
    u = algo.action_utilities(torch.ones(1, 1, 1))  # ρ of each arm: the mean's 0.5 / 1.2, CVaR_10%'s 0.5 / −2
    assert u.shape == (1, 2) and u.argmax(1).item() == arm
    assert u[0].tolist() == pytest.approx([0.5, 1.2] if risk == "mean" else [0.5, -2.0], abs=0.3)
    with pytest.raises(DataValidationError, match="discrete"):
        QRIQL(Spec(1, 1, 0, False, 1), Config(**SMALL)).action_utilities(torch.ones(1, 1, 1))
    q = algo._quantiles(algo.critic, torch.ones(2, 2), torch.tensor([0, 1])).mean(0)  # (2 arms, N)
    assert risk_measure(q, "mean", 0.1).tolist() == pytest.approx([0.5, 1.2], abs=0.15)
    assert risk_measure(q, "cvar", 0.1).tolist() == pytest.approx([0.5, -2.0], abs=0.3)


def test_greedy_acting_is_the_critics_best_supported_arm():
    """β = 0: the AWR policy only imitates the uniform behaviour (both arms ≈ ½), so acting by it picks the CVaR
    arm only by the chance of that imitation; greedy acting reads the critic among the arms the policy supports
    (brute force over random states)."""
    torch.manual_seed(0)
    algo = QRIQL(Spec(1, 1, 0, True, 2), Config(**{**SMALL, "beta": 0.0}, risk="cvar", alpha=0.1, acting="greedy"))
    _batches(_bandit, 600, algo)
    assert algo.act(torch.ones(1, 1, 1)).item() == 0
    probs = torch.softmax(algo.actor(algo._inputs({"observations": torch.ones(1, 1, 1),
                                                   "next_observations": torch.ones(1, 1, 1)})[0]), -1)
    assert probs.min().item() > 0.4  # the policy is the behaviour's: no help choosing
    obs = torch.randn(64, 1, 1)
    x = algo._inputs({"observations": obs, "next_observations": obs})[0]
    u, p = algo.action_utilities(obs), torch.softmax(algo.actor(x), -1)
    for support in (0.0, 0.3, 0.99, 1.0):
        algo.config.support = support
        want = [max((a for a in range(2) if p[i, a] >= support * p[i].max()), key=lambda a: u[i, a].item())
                for i in range(64)]
        assert algo.act(obs).flatten().tolist() == want
    with pytest.raises(DataValidationError, match="acting"):
        QRIQL(Spec(1, 1, 0, True, 2), Config(**SMALL, acting="argmax"))
    with pytest.raises(DataValidationError, match="support"):
        QRIQL(Spec(1, 1, 0, True, 2), Config(**SMALL, acting="greedy", support=1.5))


# -- a continuous bandit: a < 0 pays 0.5 surely; a >= 0 pays +2 (80 %) or −2 (20 %) ---------------------------------
def _continuous_bandit(rng, n):
    a = rng.uniform(-1.0, 1.0, n)
    r = np.where(a < 0, 0.5, np.where(rng.random(n) < 0.8, 2.0, -2.0))
    obs = np.ones((n, 1, 1), np.float32)
    return {"observations": obs, "next_observations": obs, "actions": a[:, None, None].astype(np.float32),
            "rewards": r[:, None].astype(np.float32), "terminals": np.ones((n, 1), np.float32)}


@pytest.mark.parametrize("risk", ["mean", "cvar"])
def test_continuous_greedy_acting_picks_the_risk_side(risk):
    torch.manual_seed(0)
    algo = QRIQL(Spec(1, 1, 0, False, 1), Config(**{**SMALL, "beta": 0.0}, risk=risk, alpha=0.1, acting="greedy"))
    _batches(_continuous_bandit, 600, algo)
    a = algo.act(torch.ones(8, 1, 1))
    assert a.shape == (8, 1, 1) and bool((a.abs() <= 1.0).all())
    assert bool((a < 0).all()) if risk == "cvar" else bool((a >= 0).all())
    algo.config.acting = "policy"  # the behaviour's mean, near 0 whatever the risk
    assert abs(algo.act(torch.ones(1, 1, 1)).item()) < 0.3


# -- two steps: s0 --a--> s_{1+a} (reward 0); s1: a0 pays 3 or −1 (mean 1), a1 pays 0.5; ------------------------
# s2: a0 pays 0.8, a1 pays 2 or −3 (mean −0.5). Mean-optimal: a0, a0 (E = 1). CVaR-optimal: a1, a0 (G = 0.8 surely).
def _two_step(rng, n):
    first = rng.random(n) < 0.5
    s = np.where(first, 0, 1 + rng.integers(0, 2, n))
    a = rng.integers(0, 2, n)
    coin = rng.random(n) < 0.5
    r = np.select([s == 0, (s == 1) & (a == 0), s == 1, a == 0], [0.0, np.where(coin, 3.0, -1.0), 0.5, 0.8],
                  np.where(coin, 2.0, -3.0))
    s2 = np.where(s == 0, 1 + a, 0)
    eye = np.eye(3, dtype=np.float32)
    return {"observations": eye[s][:, None], "next_observations": eye[s2][:, None],
            "actions": a[:, None].astype(np.int64), "rewards": r[:, None].astype(np.float32),
            "terminals": (s != 0)[:, None].astype(np.float32)}


@pytest.mark.parametrize("risk,plan", [("mean", [0, 0, 0]), ("cvar", [1, 1, 0])])
def test_two_step_mdp_known_plans(risk, plan):
    torch.manual_seed(0)
    algo = QRIQL(Spec(1, 3, 0, True, 2), Config(**SMALL, risk=risk, alpha=0.25))
    _batches(_two_step, 1200, algo)
    acts = algo.act(torch.eye(3)[:, None]).flatten().tolist()
    assert acts == plan
    v0 = algo.distribution(torch.eye(3)[:1, None])[0, 0]
    if risk == "cvar":  # V(s0) ≈ the CVaR-optimal return distribution, 0.8 surely
        assert risk_measure(v0, "cvar", 0.25).item() == pytest.approx(0.8, abs=0.25)
    else:
        assert v0.mean().item() == pytest.approx(1.0, abs=0.3)


# -- stock augmentation: step 1 pays r1 ∈ {0, 1.5} by chance whatever the action; step 2 (same market state) --------
# safe pays 1, risky 3 or 0. CVaR_50% of G: safe always 1, risky always 0.75; without the stock no policy beats 1.
# With it, risky when behind (r1 = 0) and safe when ahead: G ∈ {0, 3, 2.5} w.p. ¼, ¼, ½, CVaR_50% = 1.25, b* = 2.5.
def _stock_task(rng, n):
    first = rng.random(n) < 0.5
    r1 = np.where(rng.random(n) < 0.5, 0.0, 1.5)
    acc = np.where(first, 0.0, r1)
    a = rng.integers(0, 2, n)
    r = np.where(first, r1, np.where(a == 0, 1.0, np.where(rng.random(n) < 0.5, 3.0, 0.0)))

    def obs(step, acc):  # [market state (one-hot step), tanh(acc), time left]
        o = np.zeros((n, 1, 4), np.float32)
        o[np.arange(n), 0, step] = 1.0
        o[:, 0, 2] = np.tanh(acc)
        o[:, 0, 3] = 1.0 - step / 2.0
        return o

    return {"observations": obs(np.where(first, 0, 1), acc), "next_observations": obs(np.where(first, 1, 2), acc + r),
            "actions": a[:, None].astype(np.int64), "rewards": r[:, None].astype(np.float32),
            "terminals": (~first)[:, None].astype(np.float32)}


def test_stock_augmented_learner_gambles_when_behind_and_finds_the_threshold():
    torch.manual_seed(0)
    algo = SQRIQL(Spec(1, 4, 0, True, 2), SConfig(**SMALL, risk="cvar", alpha=0.5, b_low=-0.5, b_high=5.0))
    _batches(_stock_task, 1500, algo)
    b = algo.choose_threshold()
    assert b == pytest.approx(2.5, abs=0.35)
    step2 = torch.tensor([[[0.0, 1.0, 0.0, 0.5]], [[0.0, 1.0, np.tanh(1.5), 0.5]]], dtype=torch.float32)
    assert algo.act(step2).flatten().tolist() == [1, 0]  # behind: risky; ahead: safe
    algo.config.acting = "greedy"  # the critic's ρ_c, read with the same stock, agrees
    assert algo.act(step2).flatten().tolist() == [1, 0]


# -- a 40-step chain, one action, reward 1 at the last step, γ = 1: V(s0) = 1 (in the loader's reward units) ----
def test_n_step_targets_carry_a_long_episodes_return_to_its_start(tmp_path):
    """One-step targets on Polyak-averaged critics move the return one step back per target refresh, so in
    300 updates V(s0) stays near 0; 40-step windows give it in one (the diagnosis of sqriql on 252-step
    episodes, scripts/diagnose_sqriql.py). Windows are refused when the batches lack them."""
    from gymnasium import spaces

    import ogdata
    from baselines.data import AgentBatches, fit_scaling

    L, episodes = 40, 100
    pos = np.tile(np.arange(L + 1), episodes)  # T+1 layout
    obs = np.eye(L + 1, dtype=np.float32)[pos]
    rewards = np.tile((np.arange(L) == L - 1).astype(np.float32), episodes)
    ds = ogdata.create_dataset(tmp_path / "chain", observations=obs, actions=np.zeros(L * episodes, np.int64),
                               rewards=rewards, terminations=rewards.astype(bool),
                               truncations=np.zeros(L * episodes, bool), episode_lengths=np.full(episodes, L),
                               action_space=spaces.Discrete(1))
    sc = fit_scaling(ds)
    s0 = torch.from_numpy(sc.obs(obs[:1]))[:, None]
    v0 = {}
    for n in (1, L):
        torch.manual_seed(0)
        algo = QRIQL(Spec(1, L + 1, 0, True, 1), Config(**SMALL, n_step=n))
        batches = AgentBatches(ds, sc, seed=0, n_step=n)
        for _ in range(300):
            algo.update(batches.sample(256))
        v0[n] = algo.distribution(s0).mean().item() / sc.reward_scale
    assert v0[L] == pytest.approx(1.0, abs=0.1)
    assert abs(v0[1]) < 0.1
    with pytest.raises(DataValidationError, match="n-step windows"):
        QRIQL(Spec(1, L + 1, 0, True, 1), Config(**SMALL, n_step=4)).update(AgentBatches(ds, sc).sample(8))
