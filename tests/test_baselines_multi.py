"""Multi-agent baselines on 2-agent cooperative toy tasks whose answer is known; loader; checkpoints."""

import numpy as np
import pytest
import torch
from conftest import TEST_DEVICE
from gymnasium import spaces

import ogdata
from baselines.checkpoint import save_checkpoint
from baselines.data import AgentBatches, fit_scaling
from baselines.multi import MultiLearner
from baselines.registry import applicable
from baselines.train import load_learner
from ogdata.envs.core import VectorMarket

SMALL = dict(hidden=32, layers=2, batch_size=128, device=TEST_DEVICE)
SIGN = np.array([1.0, -1.0], np.float32)  # agent 0 should play +x_0, agent 1 should play −x_1


def continuous_task(path, n=3000, expert_fraction=0.2, seed=0):
    """Each agent sees its own x_i ~ U(-1, 1); team reward 1 − mean_i (a_i − s_i x_i)², s = (+1, −1).

    The same observation asks for opposite actions of the two agents, so a shared network must
    use the agent id. Expert: 1; uniform random actions: 1/3."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    ex = rng.random(n) < expert_fraction
    a[ex] = x[ex] * SIGN
    r = 1 - ((a - x * SIGN) ** 2).mean(1)
    return ogdata.create_dataset(
        path, observations=np.repeat(x, 2, axis=0)[:, :, None], actions=a[:, :, None],
        rewards=np.repeat(r[:, None], 2, 1).astype(np.float32), terminations=np.ones((n, 2), bool),
        truncations=np.zeros((n, 2), bool), episode_lengths=np.ones(n, int), states=np.repeat(x, 2, axis=0),
        agents=["desk_0", "desk_1"], action_space=spaces.Box(-1, 1, (1,), np.float32))


def continuous_value(learner) -> float:
    g = np.linspace(-1, 1, 41, dtype=np.float32)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    a = learner.policy(X[:, :, None])[:, :, 0]
    return float(np.mean(1 - ((a - X * SIGN) ** 2).mean(1)))


def discrete_task(path, n=3000, expert_fraction=0.3, seed=0):
    """Contexts c_i in {0,1,2} (one-hot); agent 0 should play c_0, agent 1 (c_1 + 1) % 3; team reward =
    the fraction of agents right. Expert data mixed with a poor behaviour that always plays 0."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, (n, 2))
    best = (c + np.array([0, 1])) % 3
    a = np.where(rng.random((n, 1)) < expert_fraction, best, 0)
    r = (a == best).mean(1)
    obs = np.zeros((2 * n, 2, 3), np.float32)  # T+1 layout: each one-step episode's obs, then its final obs
    rows = np.repeat(np.arange(2 * n), 2)
    obs[rows, np.tile([0, 1], 2 * n), np.repeat(c, 2, axis=0).reshape(-1)] = 1.0
    return ogdata.create_dataset(
        path, observations=obs, actions=a, rewards=np.repeat(r[:, None], 2, 1).astype(np.float32),
        terminations=np.ones((n, 2), bool), truncations=np.zeros((n, 2), bool), episode_lengths=np.ones(n, int),
        states=obs.reshape(2 * n, 6), agents=["mm_0", "mm_1"], action_space=spaces.Discrete(3))


def discrete_accuracy(learner) -> float:
    c = np.array([[i, j] for i in range(3) for j in range(3)])
    obs = np.eye(3, dtype=np.float32)[c]  # (9, 2, 3)
    a = learner.policy(obs)
    return float(np.mean(a == (c + np.array([0, 1])) % 3))


def fit(name, ds, steps, seed=0):
    torch.set_num_threads(1)
    learner = MultiLearner.from_dataset(name, ds, fit_scaling(ds), seed=seed, **SMALL)
    for _ in range(steps):
        learner.step()
    return learner


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    d = tmp_path_factory.mktemp("ma")
    return {"expert": continuous_task(d / "expert", expert_fraction=1.0),
            "mixed": continuous_task(d / "mixed", expert_fraction=0.2),
            "discrete": discrete_task(d / "discrete")}


def test_loader_batches_joint_transitions_with_agent_ids(tasks):
    ds = tasks["discrete"]
    sc = fit_scaling(ds)
    b = AgentBatches(ds, sc, seed=0)
    batch = b.sample(64)
    assert batch["observations"].shape == (64, 2, 3) and batch["actions"].dtype == torch.int64
    assert batch["states"].shape == (64, 6) and batch["rewards"].shape == (64, 2)
    x = b.with_agent_id(batch["observations"])
    assert x.shape == (64, 2, 5)
    np.testing.assert_array_equal(x[:, :, 3:].numpy(), np.broadcast_to(np.eye(2), (64, 2, 2)))
    # observations are standardised with the fitted scaling; rewards multiplied by 1/std
    raw = ds.arrays()["observations"][::2]
    np.testing.assert_allclose(b.data["observations"].numpy(), (raw - np.float32(sc.obs_mean)) / np.float32(sc.obs_std),
                               rtol=1e-6)
    assert b.data["rewards"].std().item() == pytest.approx(1.0, rel=1e-3)
    again = AgentBatches(ds, sc, seed=0).sample(64)
    assert all(torch.equal(again[k], batch[k]) for k in batch)  # seeded
    cont = AgentBatches(tasks["mixed"], fit_scaling(tasks["mixed"]))
    assert cont.data["actions"].shape[1:] == (2, 1) and cont.data["actions"].abs().max() <= 1.0


def test_registry_lists_the_multi_agent_algorithms(tasks):
    assert applicable(tasks["mixed"]) == ["mabc", "itd3bc", "matd3bc", "iiql"]
    assert applicable(tasks["discrete"]) == ["mabc", "icql", "iiql"]


def test_mabc_recovers_both_agents_experts_through_the_agent_id(tasks):
    assert continuous_value(fit("mabc", tasks["expert"], 300)) > 0.99
    # on 20 % expert data BC regresses onto 0.2·s·x: 1 − E[(0.8x)²] = 0.787
    assert continuous_value(fit("mabc", tasks["mixed"], 300)) == pytest.approx(1 - 0.64 / 3, abs=0.04)


@pytest.mark.parametrize("name", ["itd3bc", "matd3bc", "iiql"])
def test_offline_rl_beats_mabc_on_expert_plus_random_data(tasks, name):
    assert continuous_value(fit(name, tasks["mixed"], 800)) > 0.9


def test_discrete_icql_and_iiql_find_the_best_actions_that_mabc_misses(tasks):
    ds = tasks["discrete"]
    assert discrete_accuracy(fit("mabc", ds, 200)) == pytest.approx(1 / 3)  # copies the majority action 0
    assert discrete_accuracy(fit("icql", ds, 800)) == 1.0
    assert discrete_accuracy(fit("iiql", ds, 800)) == 1.0


@pytest.mark.parametrize("name,task", [("mabc", "discrete"), ("icql", "discrete"), ("iiql", "discrete"),
                                       ("itd3bc", "mixed"), ("matd3bc", "mixed"), ("iiql", "mixed")])
def test_checkpoints_round_trip_exactly(tasks, tmp_path, name, task):
    learner = fit(name, tasks[task], 4)
    save_checkpoint(tmp_path, learner.modules(), learner.config_json())
    back = load_learner(tmp_path, device=TEST_DEVICE)
    assert back.modules().keys() == learner.modules().keys()
    for k, m in learner.modules().items():
        for (pk, a), b in zip(m.state_dict().items(), back.modules()[k].state_dict().values()):
            assert torch.equal(a, b), (k, pk)
    obs = ogdata.load(tasks[task].path).arrays()["observations"][:16]
    np.testing.assert_array_equal(back.policy(obs), learner.policy(obs))


def test_wrong_action_type_is_refused(tasks):
    from ogdata.errors import DataValidationError, InvalidIdError

    with pytest.raises(DataValidationError, match="icql does not support continuous actions; it supports discrete"):
        MultiLearner.from_dataset("icql", tasks["mixed"], fit_scaling(tasks["mixed"]), **SMALL)
    with pytest.raises(DataValidationError, match="matd3bc does not support discrete"):
        MultiLearner.from_dataset("matd3bc", tasks["discrete"], fit_scaling(tasks["discrete"]), **SMALL)
    with pytest.raises(InvalidIdError, match="Did you mean 'iiql'"):
        MultiLearner.from_dataset("iqql", tasks["discrete"], fit_scaling(tasks["discrete"]), **SMALL)


def two_step_task(path, n=2000, expert_fraction=0.3, seed=0):
    """The reward arrives one step after the action that earns it, so only bootstrapping finds it.

    Step 1: each agent sees [1, 0, 0] and should play its own right action (agent 0: 1, agent 1: 2);
    the data mostly plays 0. Reward 0. Step 2: each agent sees [0, 1, right_i]; whatever they do,
    the team reward is the fraction of agents that were right at step 1, and the episode ends."""
    rng = np.random.default_rng(seed)
    right = np.array([1, 2])
    a1 = np.where(rng.random((n, 1)) < expert_fraction, right, 0)
    ok = (a1 == right).astype(np.float32)
    a2 = rng.integers(0, 3, (n, 2))
    obs = np.zeros((n, 3, 2, 3), np.float32)  # episode, t (T+1 = 3 observations), agent, feature
    obs[:, 0, :, 0] = 1.0
    obs[:, 1, :, 1] = 1.0
    obs[:, 1, :, 2] = ok
    rew = np.zeros((n, 2, 2), np.float32)
    rew[:, 1, :] = ok.mean(1, keepdims=True)
    term = np.zeros((n, 2, 2), bool)
    term[:, 1] = True
    return ogdata.create_dataset(
        path, observations=obs.reshape(3 * n, 2, 3), actions=np.stack([a1, a2], 1).reshape(2 * n, 2),
        rewards=rew.reshape(2 * n, 2), terminations=term.reshape(2 * n, 2), truncations=np.zeros((2 * n, 2), bool),
        episode_lengths=np.full(n, 2), states=obs.reshape(3 * n, 6), agents=["a", "b"],
        action_space=spaces.Discrete(3))


@pytest.mark.parametrize("name,overrides", [("icql", {"target_update_interval": 100}), ("iiql", {})])
def test_q_learners_bootstrap_a_delayed_reward(tmp_path, name, overrides):
    ds = two_step_task(tmp_path / "two")
    torch.set_num_threads(1)
    learner = MultiLearner.from_dataset(name, ds, fit_scaling(ds), seed=0, overrides=overrides, **SMALL)
    for _ in range(1000):
        learner.step()
    first = np.zeros((1, 2, 3), np.float32)
    first[:, :, 0] = 1.0
    np.testing.assert_array_equal(learner.policy(first), [[1, 2]])
    mabc = MultiLearner.from_dataset("mabc", ds, fit_scaling(ds), seed=0, **SMALL)
    for _ in range(200):
        mabc.step()
    np.testing.assert_array_equal(mabc.policy(first), [[0, 0]])  # BC copies the data's majority


# -- every agent's episode ends at the same step (issue #12, item 19) ------------------------------------------------
def _split_end_arrays(n_eps=3, T=3):
    """Arrays of n_eps 2-agent episodes of T steps in which agent 0 of episode 1 terminates one step early."""
    rng = np.random.default_rng(0)
    term = np.zeros((n_eps * T, 2), bool)
    term[T - 1::T] = True
    term[T + T - 2, 0] = True  # episode 1: agent 0 ends at its step T-1 of T, agent 1 goes on
    obs = rng.standard_normal((n_eps * (T + 1), 2, 3)).astype(np.float32)
    return dict(observations=obs, actions=rng.integers(0, 3, (n_eps * T, 2)),
                rewards=rng.standard_normal((n_eps * T, 2)).astype(np.float32), terminations=term,
                truncations=np.zeros((n_eps * T, 2), bool), episode_lengths=np.full(n_eps, T),
                states=obs.reshape(-1, 6), agents=["a", "b"])


def test_create_dataset_refuses_agents_that_end_at_different_steps(tmp_path):
    from ogdata.errors import DataValidationError

    arrs = _split_end_arrays()
    with pytest.raises(DataValidationError, match="at the same step"):
        ogdata.create_dataset(tmp_path / "split", action_space=spaces.Discrete(3), **arrs)
    arrs["truncations"] = arrs.pop("terminations")  # a truncation ends an agent's episode as well
    arrs["terminations"] = np.zeros_like(arrs["truncations"])
    with pytest.raises(DataValidationError, match="at the same step"):
        ogdata.create_dataset(tmp_path / "split2", action_space=spaces.Discrete(3), **arrs)
    assert not (tmp_path / "split").exists() and not (tmp_path / "split2").exists()


def test_dataset_writer_refuses_agents_that_end_at_different_steps(tmp_path):
    from ogdata.errors import DataValidationError
    from ogdata.storage import DatasetWriter

    box = spaces.Box(-10, 10, (3,), np.float32)
    w = DatasetWriter(tmp_path / "w", box, spaces.Discrete(3), num_envs=2, agents=["a", "b"],
                      state_space=spaces.Box(-10, 10, (6,), np.float32))
    obs = np.zeros((2, 2, 3), np.float32)
    st = np.zeros((2, 6), np.float32)
    act, rew = np.zeros((2, 2), np.int64), np.zeros((2, 2), np.float32)
    no = np.zeros((2, 2), bool)
    w.add(obs, act, rew, no, no, obs, st, st)  # nobody ends: fine
    one = no.copy()
    one[1, 0] = True  # env 1: agent a ends, agent b does not
    with pytest.raises(DataValidationError, match="at the same step"):
        w.add(obs, act, rew, one, no, obs, st, st)


def test_loader_refuses_a_dataset_whose_agents_end_at_different_steps(tmp_path):
    """A dataset written by other means (here: arrays in memory) that splits an episode's end is refused
    by the multi-agent loader with the transition named, never trained on."""
    from ogdata.dataset import Dataset
    from ogdata.errors import DataValidationError

    good = ogdata.create_dataset(tmp_path / "good", action_space=spaces.Discrete(3),
                                 **{**_split_end_arrays(), "terminations": np.tile([[0, 0], [0, 0], [1, 1]], (3, 1))
                                    .astype(bool)})
    arrs = {k: np.array(v) for k, v in good.arrays().items()}
    assert AgentBatches(Dataset(good.path, _arrays=arrs, _metadata=good.metadata), fit_scaling(good)).size == 9
    arrs["terminations"] = _split_end_arrays()["terminations"]
    bad = Dataset(good.path, _arrays=arrs, _metadata=good.metadata)
    with pytest.raises(DataValidationError, match=r"at transition 4 agents \[0\] end their episode but agents \[1\]"):
        AgentBatches(bad, fit_scaling(bad))
    with pytest.raises(DataValidationError, match="must end for every agent at the same step"):
        MultiLearner.from_dataset("icql", bad, fit_scaling(bad), **SMALL)


class SplitEndMarket(VectorMarket):
    """Two agents: agent 0's episode ends after step 1, agent 1's after step 2."""

    multi_agent = True
    agents = ("a", "b")
    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)
    max_steps = 2

    def _reset(self, mask):
        return np.zeros((self.num_envs, 2, 1), np.float32), {}

    def _step(self, actions):
        self._t += 1
        term = np.stack([self._t >= 1, self._t >= 2], axis=1)
        return np.zeros((self.num_envs, 2, 1), np.float32), np.ones((self.num_envs, 2)), term, np.zeros_like(term), {}


def test_evaluator_refuses_an_env_whose_agents_end_at_different_steps(monkeypatch):
    from baselines.evaluate import Evaluator
    from ogdata.envs import registry
    from ogdata.errors import EnvError

    monkeypatch.setitem(registry._REGISTRY, "test-split-end", registry.EnvSpec(
        id="test-split-end", core=f"{__name__}:SplitEndMarket", family="test"))
    ev = Evaluator("test-split-end", episodes=3)
    with pytest.raises(EnvError, match=r"at step 1 of market 0, agents \[0\] ended and agents \[1\] did not"):
        ev(lambda obs: np.zeros(obs.shape[:2], np.int64))


def test_reference_episode_returns_refuse_agents_ending_at_different_steps():
    """ogdata.policies.episode_returns (references, tier scores) used to count such an episode silently."""
    from ogdata.errors import EnvError
    from ogdata.policies import episode_returns

    core = SplitEndMarket(num_envs=3)
    with pytest.raises(EnvError, match=r"at step 1 of market 0, agents \[0\] ended and agents \[1\] did not"):
        episode_returns(core, lambda obs, rng: np.zeros(obs.shape[:2], np.int64), episodes=3)


def test_adam_is_fused_unless_turned_off_and_both_take_the_same_step(monkeypatch):
    from baselines import networks

    def one_step():
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3)
        opt = networks.adam(net.parameters(), lr=1e-2)
        loss = net(torch.ones(5, 4)).square().sum()
        loss.backward()
        opt.step()
        return opt, [p.detach().clone() for p in net.parameters()]

    fused_opt, fused = one_step()
    if hasattr(torch._C, "_fused_adam_"):  # torch with the fused kernel (CPU since 2.4)
        assert fused_opt.defaults["fused"] is True
    monkeypatch.setattr(networks, "FUSED_ADAM", False)
    plain_opt, plain = one_step()
    assert not plain_opt.defaults["fused"]
    for a, b in zip(fused, plain):   # the same update, up to float rounding
        torch.testing.assert_close(a, b)


def test_n_step_windows_are_the_datas_next_transitions_cut_at_episode_ends(tmp_path):
    """AgentBatches(n_step=3): every sampled transition's window against a loop over the raw episodes — the
    rewards of the next k = min(3, steps to the episode's end) transitions (0 after), the observation k steps
    on, the terminal flag of its last transition; terminated and truncated ends cut it alike. The indices drawn
    are those of n_step=1; n_step < 1 is refused."""
    from ogdata.errors import DataValidationError

    lengths = [3, 1, 5, 2]  # the third is truncated, the last ends the data unflagged
    term = np.zeros(11, bool)
    trunc = np.zeros(11, bool)
    term[[2, 3]] = True
    trunc[8] = True
    obs = np.arange(11 + 4, dtype=np.float32)[:, None]  # T+1 layout: episode e's observations, then its last
    ds = ogdata.create_dataset(tmp_path / "chain", observations=obs, actions=np.zeros((11, 1), np.float32),
                               rewards=(np.arange(11) + 1.0).astype(np.float32), terminations=term,
                               truncations=trunc, episode_lengths=np.array(lengths),
                               action_space=spaces.Box(-1, 1, (1,), np.float32))
    sc = fit_scaling(ds)
    batches = AgentBatches(ds, sc, seed=3, n_step=3)
    assert batches.episode_end.tolist() == [2, 2, 2, 3, 8, 8, 8, 8, 8, 10, 10]
    b = batches.sample(400)
    one = AgentBatches(ds, sc, seed=3).sample(400)
    assert torch.equal(b["rewards"], one["rewards"]) and "n_rewards" not in one
    r = batches.data["rewards"][:, 0].numpy()
    nxt = batches.data["next_observations"][:, 0].numpy()
    first = np.concatenate([[0], np.cumsum(lengths)])
    for row in range(400):
        t = int(np.flatnonzero(r == b["rewards"][row, 0].item())[0])  # rewards are distinct: they name t
        e = int(np.searchsorted(first, t, side="right")) - 1
        k = min(3, first[e + 1] - t)
        assert b["n_steps"][row].item() == k
        np.testing.assert_array_equal(b["n_rewards"][row, 0].numpy(), np.r_[r[t:t + k], np.zeros(3 - k)])
        np.testing.assert_array_equal(b["n_next_observations"][row, 0].numpy(), nxt[t + k - 1])
        assert b["n_terminals"][row, 0].item() == float(term[t + k - 1])
    assert set(b["n_steps"].tolist()) == {1, 2, 3}
    with pytest.raises(DataValidationError, match="n_step"):
        AgentBatches(ds, sc, n_step=0)
