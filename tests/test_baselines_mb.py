"""MOPO / LMOPO (baselines/mopo.py) and ARSQ (baselines/arsq.py) on small problems whose answer is known."""

import numpy as np
import pytest
import torch
from conftest import TEST_DEVICE
from gymnasium import spaces

import ogdata
from baselines.arsq import ARSQ, CoarseToFine
from baselines.arsq import Config as ARSQConfig
from baselines.checkpoint import save_checkpoint
from baselines.data import fit_scaling
from baselines.mopo import model_returns
from baselines.native import NativeLearner
from baselines.train import RunSettings, load_learner, train
from tests.scripts import load_script

SMALL = dict(hidden=32, layers=2, batch_size=128, device=TEST_DEVICE)


def one_step_dataset(path, obs, actions, rewards, act_space):
    """Every transition its own one-step (terminated) episode."""
    n = len(rewards)
    o = np.repeat(np.asarray(obs, np.float32), 2, axis=0)
    return ogdata.create_dataset(path, observations=o, actions=np.asarray(actions, np.float32),
                                 rewards=np.asarray(rewards, np.float32), terminations=np.ones(n, bool),
                                 truncations=np.zeros(n, bool), episode_lengths=np.ones(n, int),
                                 action_space=act_space, metadata={"env_id": None})


def chain_dataset(path, step, episodes=100, T=20, seed=0):
    """Episodes of T steps of s' = step(s, a, rng) from s0 ~ U(-1, 1), a ~ U(-1, 1); reward r(s, a) from step."""
    rng = np.random.default_rng(seed)
    obs, act, rew = [], [], []
    for _ in range(episodes):
        s = rng.uniform(-1, 1, 1)
        ep = [s]
        for _ in range(T):
            a = rng.uniform(-1, 1, 1)
            s, r = step(s, a, rng)
            ep.append(s)
            act.append(a)
            rew.append(r)
        obs += ep
    E = episodes
    trunc = np.zeros(E * T, bool)
    trunc[T - 1::T] = True
    return ogdata.create_dataset(path, observations=np.asarray(obs, np.float32), actions=np.asarray(act, np.float32),
                                 rewards=np.asarray(rew, np.float32).reshape(-1), terminations=np.zeros(E * T, bool),
                                 truncations=trunc, episode_lengths=np.full(E, T),
                                 action_space=spaces.Box(-1.0, 1.0, (1,), np.float32), metadata={"env_id": None})


def learner(name, ds, seed=0, **overrides):
    torch.set_num_threads(1)
    return NativeLearner.from_dataset(name, ds, fit_scaling(ds), seed=seed, overrides=overrides, **SMALL)


# -- ARSQ ----------------------------------------------------------------------------------------------------------
def test_coarse_to_fine_maps_cell_centres_exactly_and_every_action_within_half_a_cell():
    grid = CoarseToFine(act_dim=2, levels=3, bins=5)
    k = np.arange(125)
    centres = torch.tensor(-1.0 + (k + 0.5) * 2.0 / 125)
    a = torch.stack([centres, centres.flip(0)], 1)
    digits = grid.encode(a)
    assert digits.shape == (125, 3, 2) and digits.min() >= 0 and digits.max() <= 4
    assert torch.equal(digits[:, :, 0], torch.tensor(np.stack([k // 25, k // 5 % 5, k % 5], 1)))
    assert torch.allclose(grid.decode(digits).double(), a, atol=1e-7)  # exact up to float32
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(-1, 1, (10_000, 2)))
    assert (grid.decode(grid.encode(x)).double() - x).abs().max() <= 1.0 / 125 + 1e-7
    assert torch.equal(grid.encode(torch.tensor([[-1.0, 1.0]])), torch.tensor([[[0, 4], [0, 4], [0, 4]]]))
    ctx = grid.contexts(digits[:1])  # decision (l, j) sees dims < j at level l, the rest at level l − 1
    cent = grid.centres(digits[:1]).float()
    assert torch.equal(ctx[0, 0], torch.zeros(2))
    assert torch.equal(ctx[0, 1], torch.stack([cent[0, 0, 0], torch.tensor(0.0)]))
    assert torch.equal(ctx[0, 2], cent[0, 0]) and torch.equal(ctx[0, 5], torch.stack([cent[0, 2, 0], cent[0, 1, 1]]))


def test_arsq_greedy_decoding_sees_the_contexts_training_sees():
    torch.manual_seed(0)
    algo = ARSQ(3, 2, ARSQConfig(hidden=16, layers=2))
    s = torch.randn(7, 3)
    digits = algo.act_digits(s)
    _, logits = algo.net(s, algo.grid.contexts(digits))
    assert torch.equal(logits.argmax(-1), digits.flatten(1))  # each greedy choice is the argmax of its head


def test_arsq_decode_modal_path_follows_the_decision_order_and_is_not_the_action_mode():
    """scripts/arsq_decode.py's data-side path: the most frequent digit at each decision (level 0: dims in order,
    then level 1), among the rows agreeing with every earlier choice. Here the most frequent whole action is
    (1, 0) (4 rows), yet digit 0 wins level 0 (6 of 10), so the path is 0 → 0 (3 of the 6 rows)."""
    mod = load_script("arsq_decode")
    one_d = np.array([[0, 0]] * 3 + [[0, 1]] * 3 + [[1, 0]] * 4)[:, :, None]  # (N, L=2, D=1)
    path = mod.modal_path(one_d)
    assert [(m["level"], m["dim"], m["digit"], m["rows"]) for m in path] == [(0, 0, 0, 10), (1, 0, 0, 6)]
    assert [m["share"] for m in path] == [0.6, 0.5]
    two_d = np.array([[[2, 1], [0, 0]], [[2, 1], [3, 0]], [[2, 0], [3, 3]], [[1, 1], [0, 0]]])  # (N, L=2, D=2)
    path = mod.modal_path(two_d)
    assert [(m["level"], m["dim"], m["digit"], m["rows"]) for m in path] == [
        (0, 0, 2, 4), (0, 1, 1, 3), (1, 0, 0, 2), (1, 1, 0, 1)]  # ties go to the smaller digit


def test_arsq_recovers_the_best_action_of_a_2d_bandit_from_suboptimal_data(tmp_path):
    """r = exp(−[(a1 − 0.4)² + 2(a1 + a2)²] / 0.1): one peak at (0.4, −0.4), on a ridge that couples the two
    dimensions. The behaviour is centred on (−0.3, 0.3) (mean reward 0.03; 2 % of its actions earn over 0.5):
    cloning it, or any action near its mean, earns ~0."""
    rng = np.random.default_rng(0)
    n = 4000
    a = np.clip(rng.normal([-0.3, 0.3], 0.6, (n, 2)), -1, 1)

    def reward(a):
        return np.exp(-((a[:, 0] - 0.4) ** 2 + 2 * (a[:, 0] + a[:, 1]) ** 2) / 0.1)

    ds = one_step_dataset(tmp_path / "b", np.zeros((n, 1)), a, reward(a), spaces.Box(-1.0, 1.0, (2,), np.float32))
    lr = learner("arsq", ds, lr=1e-3, conservative=0.1)
    for _ in range(1000):
        lr.step()
    best = lr.policy(np.zeros((1, 1), np.float32))
    assert np.abs(best[0] - [0.4, -0.4]).max() < 0.15, best
    assert reward(best)[0] > 0.85 and reward(a.mean(0, keepdims=True))[0] < 0.05 and reward(a).mean() < 0.05


# -- the model-based learners ------------------------------------------------------------------------------------
def test_the_model_learns_known_linear_dynamics_and_its_noise(tmp_path):
    """s' = 0.9 s + 0.5 a + N(0, 0.05²), r = s − 0.5 a: the mean is recovered, and σ matches the noise."""
    ds = chain_dataset(tmp_path / "lin", lambda s, a, g: (0.9 * s + 0.5 * a + 0.05 * g.standard_normal(1),
                                                          float(s[0] - 0.5 * a[0])))
    lr = learner("lmopo", ds)
    algo, data = lr.algo, lr.data
    for _ in range(1000):
        b = data.sample(256)
        algo._update_model(b["observations"], b["actions"], b["rewards"], b["next_observations"], b["terminals"])
    sc = lr.scaling
    rng = np.random.default_rng(1)
    s = rng.uniform(-1, 1, (500, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (500, 1)).astype(np.float32)
    st, at = torch.from_numpy(sc.obs(s)), torch.from_numpy(sc.action_to_unit(a))
    with torch.no_grad():
        mean, logvar, done = (t.cpu() for t in algo.model(st.to(TEST_DEVICE), at.to(TEST_DEVICE)))
    s2 = (st + mean[0, :, :1]).numpy() * sc.obs_std[0] + sc.obs_mean[0]
    r = mean[0, :, 1].numpy() / sc.reward_scale
    assert np.abs(s2 - (0.9 * s + 0.5 * a)).max() < 0.05
    assert np.abs(r - (s[:, 0] - 0.5 * a[:, 0])).max() < 0.1
    sigma = np.exp(0.5 * logvar[0, :, 0].numpy()) * sc.obs_std[0]
    assert 0.035 < np.median(sigma) < 0.07  # the noise's std, 0.05
    assert (torch.sigmoid(done) < 0.05).all()  # no terminations in the data


def test_the_penalty_lowers_value_where_the_model_is_uncertain(tmp_path):
    """Zero reward everywhere; the market is calm for s < 0 (noise 0.01) and wild for s > 0 (noise 0.3). The model
    knows where it is unsure; its rollouts charge λ·u(s, a) there, and the critic trained with λ = 1 values the wild
    half less, against the same run without the penalty, than it values the calm half."""
    def step(s, a, g):
        return np.clip(s + (0.3 if s[0] > 0 else 0.01) * g.standard_normal(1), -1, 1), 0.0

    ds = chain_dataset(tmp_path / "het", step, episodes=100, T=20)
    values = {}
    for lam in (0.0, 1.0):
        lr = learner("lmopo", ds, penalty=lam, rollout_start=100, rollout_every=50, rollout_batch=256, tau=0.02)
        for _ in range(600):
            lr.step()
        s = torch.from_numpy(lr.scaling.obs(np.array([[-0.5], [0.5]], np.float32))).to(TEST_DEVICE)
        a = torch.zeros(2, 1, device=TEST_DEVICE)
        values[lam] = lr.algo.critic(torch.cat([s, a], 1)).squeeze(-1).min(0).values.detach().cpu().numpy()
        u = lr.algo.model_step(s, a)[3].cpu().numpy()
        assert u[1] > 5 * u[0]  # the model knows where it is uncertain
        buf = {k: v[:lr.algo.buf_size, 0].cpu() for k, v in lr.algo.buf.items() if k != "actions"}
        wild = buf["observations"] > torch.from_numpy(lr.scaling.obs(np.zeros((1, 1), np.float32)))[0, 0]
        r = buf["rewards"]
        assert abs(r[wild].mean() - r[~wild].mean() + lam * (u[1] - u[0])) < 0.5 * (u[1] - u[0])  # r̃ = 0 − λ·u
    drop = values[0.0] - values[1.0]  # (calm, wild): what the penalty took off each
    assert drop[1] > drop[0] + 0.2, values


def test_model_returns_match_true_returns_when_the_model_is_right(tmp_path):
    """On known linear dynamics the model's return of the learner's own policy ≈ the true return, same starts."""
    def step(s, a, g):
        return 0.9 * s + 0.5 * a, float(-s[0] ** 2)

    ds = chain_dataset(tmp_path / "lin", step)
    lr = learner("mopo", ds, rollout_start=400)
    for _ in range(800):
        lr.step()
    s0 = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    s, true = s0.copy(), np.zeros(64)
    for _ in range(10):
        a = lr.policy(s)
        true += -s[:, 0] ** 2
        s = 0.9 * s + 0.5 * a
    imagined, penalised = model_returns(lr, s0, np.full(64, 10), seed=0)
    assert np.abs(imagined.mean() - true.mean()) < 0.1 * np.abs(true).mean() + 0.05, (imagined.mean(), true.mean())
    assert (penalised <= imagined + 1e-6).all() and (penalised < imagined).any()  # u > 0 somewhere
    again, _ = model_returns(lr, s0, np.full(64, 10), seed=0)
    assert np.array_equal(again, imagined)  # a fixed seed: the same sampled trajectory


@pytest.mark.parametrize("algo", ["lmopo", "arsq"])
def test_train_writes_a_checkpoint_that_acts_as_trained(tmp_path, algo):
    rng = np.random.default_rng(0)
    n = 300
    a = rng.uniform(-1, 1, (n, 2))
    ds = one_step_dataset(tmp_path / "d", rng.standard_normal((n, 3)), a, -np.abs(a).sum(1),
                          spaces.Box(-1.0, 1.0, (2,), np.float32))
    over = {"rollout_start": 10, "rollout_every": 10} if algo == "lmopo" else {}
    out = tmp_path / "run"
    res = train(RunSettings(algo=algo, dataset=str(ds.path), steps=30, eval_episodes=0, out=str(out), progress=False,
                            overrides=over, **SMALL))
    assert res["updates_per_s"] > 0 and (out / "checkpoint" / "model.safetensors").is_file()
    trained = learner(algo, ds, **over)
    for _ in range(30):
        trained.step()
    save_checkpoint(tmp_path / "ck", trained.modules(), trained.config_json())
    back = load_learner(tmp_path / "ck", device=TEST_DEVICE)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    assert np.array_equal(back.policy(x), trained.policy(x))
    assert back.policy(x).shape == (5, 2) and np.abs(back.policy(x)).max() <= 1.0
    if algo == "lmopo":  # the spectral-normalised critics survive the round trip (their power-iteration vectors too)
        assert back.algo.config.lipschitz == 10.0 and back.algo.config.ensemble == 1


def test_model_gap_summary_counts_cells_by_where_their_interval_lies():
    from tests.scripts import load_script

    summary = load_script("model_gap").gap_summary

    def cell(algo, mean, lo, hi):
        return {"algo": algo, "model_minus_true": {"mean": mean, "ci95": [lo, hi]}}

    cells = [cell("mopo", 5.0, 1.0, 9.0), cell("mopo", -0.5, -2.0, 1.0), cell("mopo", -4.0, -6.0, -2.0),
             cell("mopo", 3.0, float("nan"), float("nan")),  # one seed: no interval, left out
             cell("lmopo", 2.0, 0.5, 3.5), cell("lmopo", 8.0, 7.0, 9.0)]
    got = summary(cells)
    assert list(got) == ["lmopo", "mopo"]
    assert got["mopo"] == {"cells": 3, "above": 1, "contains": 1, "below": 1, "median_gap": -0.5}
    assert got["lmopo"] == {"cells": 2, "above": 2, "contains": 0, "below": 0, "median_gap": 5.0}
    by_sign = summary(cells, key=lambda r: r["model_minus_true"]["mean"] > 0)  # any grouping of the cells
    assert by_sign[True]["cells"] == 3 and by_sign[False]["cells"] == 2
