"""HL-Gauss critics (value_loss = "hl_gauss"): the loss on known targets, the decoded value, the support
from the data, and every value-based baseline learning a known value with it."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import ogdata
from baselines.checkpoint import save_checkpoint
from baselines.data import Spec, fit_scaling
from baselines.hlgauss import HLGauss, ValueHead, returns_to_go, value_support
from baselines.icql import ICQL
from baselines.icql import Config as ICQLConfig
from baselines.iiql import IIQL
from baselines.iiql import Config as IIQLConfig
from baselines.itd3bc import ITD3BC
from baselines.itd3bc import Config as ITD3BCConfig
from baselines.matd3bc import MATD3BC
from baselines.matd3bc import Config as MATD3BCConfig
from baselines.single import D3rlpyLearner
from baselines.train import load_learner

HL = dict(value_loss="hl_gauss", v_min=-2.0, v_max=2.0, bins=51)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks: one torch thread is fastest, and never oversubscribes a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_target_histogram_by_hand():
    hl = HLGauss(0.0, 3.0, bins=3, sigma_ratio=0.75)  # bins [0,1], [1,2], [2,3]; σ = 0.75
    y = 1.2
    cdf = [_phi((e - y) / 0.75) for e in (0.0, 1.0, 2.0, 3.0)]
    want = np.diff(cdf) / (cdf[-1] - cdf[0])
    np.testing.assert_allclose(hl.target(torch.tensor([y])).numpy()[0], want, rtol=1e-5)
    assert hl.centres.tolist() == [0.5, 1.5, 2.5]


def test_loss_is_least_at_the_target_histogram_and_decodes_to_the_target():
    hl = HLGauss(-1.0, 2.0, bins=51)
    ys = torch.tensor([-0.4, 0.0, 0.37, 1.5])
    p = hl.target(ys)
    logp = p.clamp_min(1e-30).log()  # bins far from y hold no mass in float32
    entropy = -torch.special.xlogy(p, p).sum(-1)
    # at logits = log p the cross-entropy is the entropy of p, its minimum; anything else costs more
    torch.testing.assert_close(hl.loss(logp, ys), entropy)
    other = logp + 0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0))
    assert (hl.loss(other, ys) > entropy).all()
    # the decoded target histogram is the target (interior targets: the Gaussian is symmetric in the support)
    torch.testing.assert_close(hl.decode(logp), ys, atol=2e-3, rtol=0)
    # a target beyond the support puts its mass on the end bins
    far = hl.target(torch.tensor([5.0]))[0]
    assert far[-3:].sum() > 0.99 and hl.decode(far.clamp_min(1e-30).log()[None]).item() > 1.9


def test_minimising_the_loss_over_noisy_targets_decodes_to_their_mean():
    hl = HLGauss(-1.0, 2.0, bins=51)
    g = torch.Generator().manual_seed(0)
    ys = 0.3 + 0.4 * torch.randn(4000, generator=g)
    logits = torch.zeros(51, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(500):
        opt.zero_grad()
        hl.loss(logits.expand(len(ys), -1), ys).mean().backward()
        opt.step()
    assert hl.decode(logits.detach()).item() == pytest.approx(ys.mean().item(), abs=0.01)


def test_returns_to_go_and_the_support_from_the_data(tmp_path):
    r = np.array([1.0, 2.0, 3.0, -1.0, 4.0])
    np.testing.assert_allclose(returns_to_go(r, [3, 2], 0.5), [1 + 0.5 * (2 + 0.5 * 3), 2 + 1.5, 3, -1 + 2, 4])
    ds = ogdata.create_dataset(
        tmp_path / "d", observations=np.zeros((7, 1), np.float32), actions=np.zeros((5, 1), np.float32),
        rewards=r.astype(np.float32), terminations=np.array([0, 0, 1, 0, 0], bool),
        truncations=np.array([0, 0, 0, 0, 1], bool), episode_lengths=np.array([3, 2]),
        action_space=spaces.Box(-1, 1, (1,), np.float32))
    lo, hi = value_support(ds, reward_scale=2.0, gamma=0.5)  # returns-to-go × 2 lie in [2, 8]; padded 10 %
    assert (lo, hi) == pytest.approx((2.0 - 0.6, 8.0 + 0.6))


def test_the_mse_head_is_the_plain_regression():
    class C:
        value_loss, v_min, v_max, bins, sigma_ratio = "mse", 0.0, 1.0, 11, 0.75

    head = ValueHead(C())
    out, y = torch.randn(2, 5, 1), torch.randn(5)
    assert head.size == 1
    torch.testing.assert_close(head.loss(out, y.expand(2, 5)), (out.squeeze(-1) - y) ** 2)
    torch.testing.assert_close(head.value(out), out.squeeze(-1))


# -- the torch baselines: one-step problems whose values are known ---------------------------------------------
def _discrete_batch(rng, n, agents):
    a = rng.integers(0, 2, (n, agents))
    r = np.where(a == 0, 0.5, 1.0 + 0.3 * rng.standard_normal((n, agents)))  # Q = [0.5, 1.0]
    obs = np.ones((n, agents, 1), np.float32)
    return {"observations": torch.as_tensor(obs), "next_observations": torch.as_tensor(obs),
            "actions": torch.as_tensor(a), "rewards": torch.as_tensor(r, dtype=torch.float32),
            "terminals": torch.ones(n, agents)}


def _continuous_batch(rng, n, agents, state_dim=0):
    a = rng.uniform(-1, 1, (n, agents, 1)).astype(np.float32)
    r = 1.0 - (a[..., 0] - 0.5) ** 2  # Q(a) = 1 − (a − 0.5)²
    obs = np.ones((n, agents, 1), np.float32)
    out = {"observations": torch.as_tensor(obs), "next_observations": torch.as_tensor(obs),
           "actions": torch.as_tensor(a), "rewards": torch.as_tensor(r), "terminals": torch.ones(n, agents)}
    if state_dim:
        out["states"] = out["next_states"] = torch.ones(n, state_dim)
    return out


@pytest.mark.parametrize("klass,config", [(IIQL, IIQLConfig), (ICQL, ICQLConfig)])
def test_discrete_torch_baselines_learn_known_values_with_hl_gauss(klass, config):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    algo = klass(Spec(2, 1, 0, True, 2), config(hidden=32, batch_size=128, **HL))
    for _ in range(400):
        algo.update(_discrete_batch(rng, 128, 2))
    x = torch.tensor([[1.0, 1.0, 0.0]])
    if klass is IIQL:
        out = algo.critic(x).unflatten(-1, (2, 51))  # (2 critics, 1, 2 actions, 51 bins)
        np.testing.assert_allclose(algo.head.value(out)[:, 0].detach().numpy(), [[0.5, 1.0]] * 2, atol=0.1)
    assert algo.act(torch.ones(1, 2, 1)).tolist() == [[1, 1]]


@pytest.mark.parametrize("klass,config,state_dim", [(ITD3BC, ITD3BCConfig, 0), (MATD3BC, MATD3BCConfig, 3)])
def test_continuous_torch_baselines_learn_known_values_with_hl_gauss(klass, config, state_dim):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    algo = klass(Spec(2, 1, state_dim, False, 1), config(hidden=32, batch_size=128, critic_lr=3e-3, **HL))
    for _ in range(400):
        algo.update(_continuous_batch(rng, 128, 2, state_dim))
    assert algo.critic.w[-1].shape[-1] == 51
    batch = _continuous_batch(rng, 256, 2, state_dim)
    if klass is ITD3BC:
        x = torch.cat([torch.ones(256, 1), torch.tensor([[1.0, 0.0]]).expand(256, 2), batch["actions"][:, 0]], 1)
    else:
        joint = batch["actions"].reshape(256, 1, -1).expand(256, 2, -1)
        x = algo._critic_input(batch["states"], joint)[0::2]
    q = algo.head.value(algo.critic(x))[0]
    want = batch["rewards"][:, 0]
    assert (q - want).abs().mean().item() < 0.1


# -- the d3rlpy baselines ------------------------------------------------------------------------------------------
def _bandit(path, n=2000, seed=0):
    """Observe x ~ U(−1, 1), act a, reward 1 − (a − x)²; a fifth of the data is the expert a = x."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n).astype(np.float32)
    a = np.where(rng.random(n) < 0.2, x, rng.uniform(-1, 1, n)).astype(np.float32)
    obs = np.repeat(x, 2)[:, None]
    return ogdata.create_dataset(
        path, observations=obs, actions=a[:, None], rewards=(1 - (a - x) ** 2).astype(np.float32),
        terminations=np.ones(n, bool), truncations=np.zeros(n, bool), episode_lengths=np.ones(n, int),
        action_space=spaces.Box(-1.0, 1.0, (1,), np.float32))


def _discrete(path, n=2000, seed=0):
    """Context c ∈ {0, 1, 2}; reward 1 iff a = (c + 1) mod 4; the data mostly plays action 0."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    a = np.where(rng.random(n) < 0.3, (c + 1) % 4, 0)
    obs = np.repeat(np.eye(3, dtype=np.float32)[c], 2, axis=0)
    return ogdata.create_dataset(
        path, observations=obs, actions=a, rewards=(a == (c + 1) % 4).astype(np.float32),
        terminations=np.ones(n, bool), truncations=np.zeros(n, bool), episode_lengths=np.ones(n, int),
        action_space=spaces.Discrete(4))


def _fit(name, ds, steps, **overrides):
    torch.set_num_threads(1)
    learner = D3rlpyLearner.from_dataset(name, ds, fit_scaling(ds), hidden=32, layers=2, batch_size=128,
                                         overrides={"value_loss": "hl_gauss", **overrides})
    for _ in range(steps):
        learner.step()
    return learner


@pytest.mark.parametrize("name", ["iql", "td3bc", "cql"])
def test_d3rlpy_continuous_critics_with_hl_gauss_learn_the_bandit_and_round_trip(tmp_path, name):
    ds = _bandit(tmp_path / "b")
    kw = {"actor_learning_rate": 1e-3} if name == "cql" else {}
    learner = _fit(name, ds, 300, critic_learning_rate=3e-3, **kw)  # d3rlpy's 3e-4 needs ~10x the updates
    factory = learner.algo.config.q_func_factory
    assert factory.get_type() == "hl_gauss"
    lo, hi = value_support(ds, fit_scaling(ds).reward_scale, 0.99)
    assert (factory.v_min, factory.v_max) == pytest.approx((lo, hi))
    # the decoded critic at the data's (x, a) is near the scaled reward (CQL's is pushed down: only its order)
    x = np.random.default_rng(1).uniform(-1, 1, (64, 1)).astype(np.float32)
    a = np.random.default_rng(2).uniform(-1, 1, (64, 1)).astype(np.float32)
    q = learner.algo.predict_value(x, a)
    r = (1 - (a[:, 0] - x[:, 0]) ** 2) * learner.scaling.reward_scale
    if name == "cql":  # the conservative term pushes values down unevenly: the expert's action still ranks first
        assert learner.algo.predict_value(x, x).mean() > q.mean() + 0.5 * r.std()
    else:
        assert np.abs(q - r).mean() < 0.25 * r.std() + 0.1
    save_checkpoint(tmp_path / "run", learner.modules(), learner.config_json())
    back = load_learner(tmp_path / "run")
    np.testing.assert_array_equal(back.policy(x), learner.policy(x))
    np.testing.assert_allclose(back.algo.predict_value(x, a), q, rtol=1e-6)


@pytest.mark.parametrize("name", ["cql", "bcq"])
def test_d3rlpy_discrete_critics_with_hl_gauss_learn_the_data_and_cql_acts_on_it(tmp_path, name):
    learner = _fit(name, _discrete(tmp_path / "d"), 300, learning_rate=1e-3)
    x, right = np.eye(3, dtype=np.float32), (np.arange(3) + 1) % 4
    if name == "cql":
        assert (learner.policy(x) == right).all()
    else:  # the values of the data's actions are learned: 0 for action 0, the scaled reward for the right one
        # (BCQ's policy is not asserted: on this data its imitator lets unseen actions through, whose HL-Gauss
        # values sit near the top of the support, so it picks them; with MSE it happens to rank the right one first)
        scale = learner.scaling.reward_scale
        np.testing.assert_allclose(learner.algo.predict_value(x, np.zeros(3, np.int64)), 0.0, atol=0.15 * scale)
        np.testing.assert_allclose(learner.algo.predict_value(x, right), scale, atol=0.15 * scale)


def test_hl_gauss_settings_need_a_critic(tmp_path):
    from ogdata.errors import DataValidationError

    with pytest.raises(DataValidationError, match="no critic"):
        _fit("bc", _bandit(tmp_path / "b", n=100), 1)
    with pytest.raises(DataValidationError, match="need value_loss"):
        D3rlpyLearner.from_dataset("iql", _bandit(tmp_path / "c", n=100), fit_scaling(_bandit(tmp_path / "e", n=100)),
                                   overrides={"bins": 11})


def test_train_cli_set_reads_config_fields():
    from baselines.train import parse_overrides  # what `python -m baselines train --set` and reproduce.py use

    assert parse_overrides(["value_loss=hl_gauss", "alpha=0.05", "bins=51", "risk=cvar"]) == {
        "value_loss": "hl_gauss", "alpha": 0.05, "bins": 51, "risk": "cvar"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["value_loss"])


def test_a_set_key_the_algorithm_lacks_is_an_ogdata_error_naming_the_fix(tmp_path):
    from baselines.train import RunSettings, build_learner
    from ogdata.errors import InvalidArgumentError

    ds = _bandit(tmp_path / "b", n=100)

    def build(algo, **overrides):
        return build_learner(algo, ds, RunSettings(algo, str(ds.path), 1, hidden=8, overrides=overrides))

    # arsq's Q is a soft-Q sum with no value head: no HL-Gauss option; the error names the learners that have one
    with pytest.raises(InvalidArgumentError, match=r"arsq has no config field 'value_loss'.*is for .*cql.*iiql"):
        build("arsq", value_loss="hl_gauss")
    with pytest.raises(InvalidArgumentError, match=r"'vlue_loss'\. Did you mean 'value_loss'\?"):
        build("cql", vlue_loss="hl_gauss")
    with pytest.raises(InvalidArgumentError, match=r"'hidden'\. Pass it as --hidden instead"):
        build("mopo", hidden=32)
    with pytest.raises(InvalidArgumentError, match=r"value_loss must be one of \('mse', 'hl_gauss'\), got 'huber'"):
        build("iql", value_loss="huber")
    # fields the algorithm has pass, d3rlpy's own and ours
    assert build("iql", value_loss="hl_gauss", bins=11, expectile=0.8).algo.config.expectile == 0.8
    assert build("arsq", conservative=2.0).algo.config.conservative == 2.0
