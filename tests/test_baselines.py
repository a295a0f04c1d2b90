"""Single-agent baselines (d3rlpy) on toy problems whose answer is known, checkpoints, evaluation and the CLI."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TEST_DEVICE
from gymnasium import spaces

import ogdata
from baselines.checkpoint import read_checkpoint, save_checkpoint
from baselines.data import fit_scaling, scaling_rule
from baselines.evaluate import Evaluator, heldout
from baselines.registry import ALGORITHMS, applicable, check, takes_hl_gauss
from baselines.single import D3rlpyLearner, TransitionSampler
from baselines.train import RunSettings, load_learner, train
from ogdata.envs.core import VectorMarket
from ogdata.envs.registry import EnvSpec
from ogdata.errors import InvalidIdError
from ogdata.policies import reference_returns
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(hidden=32, layers=2, batch_size=128, device=TEST_DEVICE)


# -- a contextual bandit: observe x ~ U(-1, 1), act a in [-1, 1], reward 1 − (a − x)²; expert a = x ------------
class ToyBandit(VectorMarket):
    """One-step episodes; E[reward] is 1 for the expert and 1/3 for uniform random actions."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    max_steps = 1

    def _reset(self, mask):
        self.x = np.where(mask, self.rng.uniform(-1, 1, self.num_envs), getattr(self, "x", 0.0))
        return self.x[:, None].astype(np.float32), {"wealth": np.full(self.num_envs, 100.0)}

    def _step(self, actions):
        r = 1.0 - (actions[:, 0] - self.x) ** 2
        done = np.ones(self.num_envs, bool)
        return (self.x[:, None].astype(np.float32), r, done, ~done, {"wealth": 100.0 + r})


def _toy_expert(core):
    return lambda obs, rng: obs.copy()


@pytest.fixture
def toy_env(monkeypatch):
    """Register the toy bandit (and its expert) for one test only: suites that enumerate every
    registered env must never see it."""
    from ogdata.envs import registry
    from ogdata.policies import reference

    monkeypatch.setitem(registry._REGISTRY, "test-toy-bandit", EnvSpec(
        id="test-toy-bandit", core=f"{__name__}:ToyBandit", family="test",
        references={"random": "random", "expert": "test/toy-bandit-expert"}))
    monkeypatch.setitem(reference._POLICIES, "test/toy-bandit-expert", _toy_expert)
    return "test-toy-bandit"


def bandit_dataset(path, n=4000, expert_fraction=0.2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n).astype(np.float32)
    a = rng.uniform(-1, 1, n).astype(np.float32)
    ex = rng.random(n) < expert_fraction
    a[ex] = x[ex]
    obs = np.zeros((2 * n, 1), np.float32)
    obs[0::2, 0] = x
    obs[1::2, 0] = x
    return ogdata.create_dataset(
        path, observations=obs, actions=a[:, None], rewards=(1 - (a - x) ** 2).astype(np.float32),
        terminations=np.ones(n, bool), truncations=np.zeros(n, bool), episode_lengths=np.ones(n, int),
        observation_space=ToyBandit.observation_space, action_space=ToyBandit.action_space,
        metadata={"env_id": "test-toy-bandit", "dataset_id": "test-toy-bandit/medium-v0", "tier": "medium"})


def bandit_value(learner) -> float:
    """Mean reward of the learned policy over a grid of contexts (expert: 1, uniform random: 1/3)."""
    xs = np.linspace(-1, 1, 201, dtype=np.float32)[:, None]
    a = learner.policy(xs)[:, 0]
    return float(np.mean(1 - (a - xs[:, 0]) ** 2))


def fit(name, ds, steps, seed=0, **overrides):
    torch.set_num_threads(1)
    learner = D3rlpyLearner.from_dataset(name, ds, fit_scaling(ds), seed=seed, overrides=overrides, **SMALL)
    for _ in range(steps):
        learner.step()
    return learner


# -- a discrete contextual bandit: context c in {0,1,2} (one-hot), 4 actions, reward 1 iff a == (c+1) % 4 ----------
def discrete_dataset(path, n=3000, expert_fraction=0.3, seed=0):
    """Expert data mixed with a poor behaviour that always plays action 0 (right only for no context)."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    a = np.where(rng.random(n) < expert_fraction, (c + 1) % 4, 0)
    obs = np.zeros((2 * n, 3), np.float32)
    obs[2 * np.arange(n), c] = 1.0
    obs[2 * np.arange(n) + 1, c] = 1.0
    return ogdata.create_dataset(
        path, observations=obs, actions=a, rewards=(a == (c + 1) % 4).astype(np.float32),
        terminations=np.ones(n, bool), truncations=np.zeros(n, bool), episode_lengths=np.ones(n, int),
        action_space=spaces.Discrete(4), metadata={"env_id": None})


def discrete_accuracy(learner) -> float:
    a = learner.policy(np.eye(3, dtype=np.float32))
    return float(np.mean(a == (np.arange(3) + 1) % 4))


# -- learning ------------------------------------------------------------------------------------------------------
def test_bc_recovers_a_deterministic_expert(tmp_path):
    ds = bandit_dataset(tmp_path / "expert", expert_fraction=1.0)
    assert bandit_value(fit("bc", ds, 400)) > 0.99
    dds = discrete_dataset(tmp_path / "dexpert", expert_fraction=1.0)
    assert discrete_accuracy(fit("bc", dds, 150)) == 1.0


def test_cql_and_iql_beat_bc_on_expert_plus_random_data(tmp_path):
    ds = bandit_dataset(tmp_path / "mixed", expert_fraction=0.2)
    bc = bandit_value(fit("bc", ds, 400))
    # BC regresses onto the mixture's mean action 0.2·x: 1 − E[(0.8x)²] = 0.787
    assert bc == pytest.approx(1 - 0.64 / 3, abs=0.03)
    iql = bandit_value(fit("iql", ds, 400))
    cql = bandit_value(fit("cql", ds, 400, actor_learning_rate=1e-3))  # d3rlpy's 1e-4 needs ~4x the updates
    assert iql > bc + 0.1 and iql > 0.95
    assert cql > bc + 0.1 and cql > 0.9


def test_discrete_cql_and_bcq_beat_bc_when_the_poor_behaviour_dominates(tmp_path):
    ds = discrete_dataset(tmp_path / "dmixed")
    assert discrete_accuracy(fit("bc", ds, 150)) == 0.0  # BC copies the majority action 0
    assert discrete_accuracy(fit("cql", ds, 300)) == 1.0
    assert discrete_accuracy(fit("bcq", ds, 300)) == 1.0


def test_discrete_cql_bootstraps_a_delayed_reward(tmp_path):
    """The reward for step 1's action arrives at step 2: only the TD target through the sampler's
    next observations and terminals can credit it."""
    rng = np.random.default_rng(0)
    n = 2000
    a1 = np.where(rng.random(n) < 0.3, 1, 0)  # right action 1; the data mostly plays 0
    obs = np.zeros((n, 3, 3), np.float32)
    obs[:, 0, 0] = 1.0
    obs[:, 1, 1] = 1.0
    obs[:, 1, 2] = a1 == 1
    rew = np.zeros((n, 2), np.float32)
    rew[:, 1] = a1 == 1
    ds = ogdata.create_dataset(tmp_path / "two", observations=obs.reshape(3 * n, 3),
                               actions=np.stack([a1, rng.integers(0, 3, n)], 1).reshape(-1), rewards=rew.reshape(-1),
                               terminations=np.tile([False, True], n), truncations=np.zeros(2 * n, bool),
                               episode_lengths=np.full(n, 2), action_space=spaces.Discrete(3))
    learner = fit("cql", ds, 600, target_update_interval=100)
    assert learner.policy(np.array([[1.0, 0.0, 0.0]], np.float32))[0] == 1
    assert fit("bc", ds, 150).policy(np.array([[1.0, 0.0, 0.0]], np.float32))[0] == 0


# -- data path and scaling -----------------------------------------------------------------------------------------
def test_sampler_draws_the_datasets_transitions_with_true_next_observations(tmp_path):
    rng = np.random.default_rng(0)
    lengths = np.array([3, 2, 4])
    n, e = lengths.sum(), len(lengths)
    obs = np.arange((n + e) * 2, dtype=np.float32).reshape(n + e, 2)
    ds = ogdata.create_dataset(tmp_path / "d", observations=obs, actions=rng.uniform(-1, 1, (n, 1)).astype(np.float32),
                               rewards=np.arange(n, dtype=np.float32), terminations=np.eye(1, n, n - 1, dtype=bool)[0],
                               truncations=np.isin(np.arange(n), [2, 4]), episode_lengths=lengths)
    s = TransitionSampler(ds, seed=0)
    ref = next(ds.iter_chunks(keys=("observations", "next_observations", "rewards", "terminals")))
    np.testing.assert_array_equal(s.obs, ref["observations"])
    np.testing.assert_array_equal(s.next_obs, ref["next_observations"])  # the truncated last steps included
    b = s.sample(64)
    assert b.observations.shape == (64, 2) and b.rewards.shape == (64, 1) and b.terminals.shape == (64, 1)
    # every sampled next observation is the row after its observation in the T+1 layout
    np.testing.assert_array_equal(b.next_observations - b.observations, np.full((64, 2), 2.0))
    assert b.terminals.sum() == (b.rewards[:, 0] == n - 1).sum()


def test_scaling_is_fitted_per_env_and_recorded(tmp_path):
    ds = bandit_dataset(tmp_path / "s", n=500)
    sc = fit_scaling(ds)
    r = ds.arrays()["rewards"]
    assert sc.reward_scale == pytest.approx(1 / r.std(), rel=1e-5)
    assert sc.obs_mean[0] == pytest.approx(ds.arrays()["observations"].mean(), abs=1e-5)
    assert sc.action_low == [-1.0] and sc.action_high == [1.0]
    assert scaling_rule("portfolio-sp500")["family"] == "portfolio"
    assert scaling_rule("multi-market-making-2")["family"] == "multi-market-making"
    assert scaling_rule("something-else")["family"] == "default"
    learner = D3rlpyLearner.from_dataset("bc", ds, sc, **SMALL)
    cfg = learner.config_json()["d3rlpy_config"]["config"]["params"]
    assert cfg["reward_scaler"]["params"]["multiplier"] == pytest.approx(sc.reward_scale)
    assert cfg["observation_scaler"]["type"] == "standard"
    assert cfg["action_scaler"]["params"]["minimum"] == [-1.0]


def test_registry_matches_algorithms_to_datasets(tmp_path, capsys):
    from baselines.__main__ import main

    assert main(["list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["algo", "agents", "discrete", "continuous"]
    assert "icql     multi   yes       -" in "\n".join(table)
    ds = bandit_dataset(tmp_path / "c", n=50)
    dds = discrete_dataset(tmp_path / "d", n=50)
    assert applicable(ds) == ["bc", "cql", "iql", "td3bc", "qriql", "sqriql", "mopo", "lmopo", "arsq"]
    assert applicable(dds) == ["bc", "cql", "bcq", "qriql", "sqriql"]
    with pytest.raises(InvalidIdError, match="these can: bc, cql, bcq"):
        check("iql", dds)
    with pytest.raises(InvalidIdError, match="Did you mean 'cql'"):
        check("cq", ds)
    with pytest.raises(InvalidIdError, match=r"mabc \(multi-agent"):
        check("mabc", ds)


def test_registry_is_derived_from_the_algorithms():
    """Each algorithm's identity lives on it; the registry only reads it (and points at real code)."""
    import d3rlpy

    from baselines import multi, native, single
    from baselines.registry import ALGORITHMS

    assert list(ALGORITHMS) == ([a.name for a in single.ALGORITHMS] + [c.name for c in multi.CLASSES]
                                + [c.name for c in native.CLASSES])
    for a in single.ALGORITHMS:
        info = ALGORITHMS[a.name]
        assert not info.multi_agent and set(info.action_types) == set(a.configs)
        for kind, cfg in a.configs.items():  # every named d3rlpy config exists and has that action type
            cls = getattr(d3rlpy.algos, cfg)
            assert cls.__name__.startswith("Discrete") == (kind == "discrete")
    for c in multi.CLASSES:
        info = ALGORITHMS[c.name]
        assert info.multi_agent == getattr(c, "multi_agent", True) and info.action_types == c.action_types
        assert info.description == c.description and info.in_suites == getattr(c, "in_suites", True)
        assert (ROOT / info.implementation).is_file() and c.config_class().batch_size == 256
    for c in native.CLASSES:
        info = ALGORITHMS[c.name]
        assert not info.multi_agent and info.action_types == c.action_types and info.description == c.description
        assert (ROOT / info.implementation).is_file() and c.config_class().batch_size == 256


# -- checkpoints ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["iql", "cql"])
def test_d3rlpy_checkpoints_round_trip_exactly(tmp_path, name):
    ds = bandit_dataset(tmp_path / "ck", n=300)
    learner = fit(name, ds, 3)
    save_checkpoint(tmp_path / "run", learner.modules(), learner.config_json())
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob("*.pkl"))
    back = load_learner(tmp_path / "run", device=TEST_DEVICE)
    for m, (k, mod) in zip(back.modules().values(), learner.modules().items()):
        for (pk, a), (_, b) in zip(mod.state_dict().items(), m.state_dict().items()):
            assert torch.equal(a, b), (k, pk)
    x = np.random.default_rng(1).uniform(-1, 1, (32, 1)).astype(np.float32)
    np.testing.assert_array_equal(back.policy(x), learner.policy(x))
    states, cfg = read_checkpoint(tmp_path / "run")
    assert cfg["kind"] == "d3rlpy" and cfg["algo"] == name and "policy" in states


# -- evaluation ----------------------------------------------------------------------------------------------------
def test_evaluator_scores_random_at_0_and_the_expert_at_100(toy_env):
    ev = Evaluator("test-toy-bandit", episodes=400, seed=0)
    assert heldout("test-toy-bandit").how == "fresh-seeds"
    assert heldout("portfolio-sp500").env_id == "portfolio-sp500-eval"  # real prices: the held-out years
    assert heldout("trading-sp500").how == "eval-id" and heldout("portfolio-synth").how == "fresh-seeds"
    refs = ev.references()
    assert refs["source"] == "computed"  # nothing recorded for a test env: rolled on the same seeds
    assert refs["expert"] == pytest.approx(1.0) and refs["random"] == pytest.approx(1 / 3, abs=0.05)
    expert = ev(lambda obs: obs.copy())
    assert expert["normalised_score"] == pytest.approx(100.0)
    zero = ev(lambda obs: np.zeros_like(obs))  # a = 0: E[1 − x²] = 2/3, halfway between random and expert
    assert zero["return_mean"] == pytest.approx(2 / 3, abs=0.05)
    assert zero["normalised_score"] == pytest.approx(100 * (zero["return_mean"] - refs["random"])
                                                     / (refs["expert"] - refs["random"]), rel=1e-12)
    assert zero["normalised_score"] == pytest.approx(50, abs=8)
    assert zero["episodes"] == 400 and zero["mean_length"] == 1.0 and zero["eval_env"] == "test-toy-bandit"
    assert expert["finance"]["wealth_kind"] == "capital" and expert["finance"]["max_drawdown"] == 0.0


@pytest.mark.parametrize("train_id", ["portfolio-sp500", "trading-sp500"])
def test_evaluator_normalises_with_the_heldout_ids_references(train_id):
    """Real prices: the references are those recorded for the held-out `-eval` id, not the training id's."""
    ev = Evaluator(train_id, episodes=1)
    assert ev.setting.env_id == train_id + "-eval" and ev.setting.how == "eval-id"
    heldout_refs = reference_returns(train_id + "-eval")
    assert heldout_refs != reference_returns(train_id)
    assert ev.references() == {**heldout_refs, "source": "recorded"}


def _fresh_returns(env_id: str, role: str, episodes: int, seed: int) -> np.ndarray:
    """Returns of a reference policy on fresh episodes, rolled here with the core and nothing else."""
    from ogdata.envs import make_core
    from ogdata.envs.registry import env_spec
    from ogdata.policies import make_policy

    core = make_core(env_id, num_envs=episodes)
    pol, rng = make_policy(env_spec(env_id).references[role], core), np.random.default_rng(seed)
    obs, _ = core.reset(seed=seed)
    ret, alive = np.zeros(episodes), np.ones(episodes, bool)
    while alive.any():
        obs, r, term, trunc, _ = core.step(pol(obs, rng))
        ret += np.where(alive, r, 0.0)
        alive &= ~(term | trunc)
    return ret


def test_evaluator_references_match_fresh_episodes_of_the_heldout_years():
    """An independent check of the references the evaluator uses for trading-sp500: the expert (always long)
    rolled on 1,024 fresh episodes of the held-out years agrees with them within 4 standard errors (the
    recorded mean's and the fresh mean's), and the training years' expert return does not (it is ~10 away)."""
    from ogdata.policies.evaluate import load_references

    ev = Evaluator("trading-sp500", episodes=256, seed=0)
    fresh = _fresh_returns("trading-sp500-eval", "expert", 1024, seed=12345)
    rec = load_references()["trading-sp500-eval"]
    se = np.hypot(rec["expert_std"] / np.sqrt(rec["episodes"]), fresh.std(ddof=1) / np.sqrt(len(fresh)))
    assert abs(ev.references()["expert"] - fresh.mean()) < 4 * se
    assert abs(reference_returns("trading-sp500")["expert"] - fresh.mean()) > 4 * se  # the check can tell them apart
    # and so the expert itself scores about 100 on the held-out years (the training id's references give ~135)
    from ogdata.policies import make_policy

    pol, rng = make_policy("trading/always-long", ev.core), np.random.default_rng(0)
    score = ev(lambda obs: pol(obs, rng))
    refs = ev.references()
    score_se = 100 * score["return_std"] / np.sqrt(score["episodes"]) / (refs["expert"] - refs["random"])
    assert abs(score["normalised_score"] - 100.0) < 4 * np.hypot(score_se, 100 * se / (refs["expert"] - refs["random"]))


def test_train_writes_logs_checkpoint_and_result(tmp_path, toy_env):
    bandit_dataset(tmp_path / "toy", n=400)
    res = train(RunSettings(algo="bc", dataset=str(tmp_path / "toy"), steps=20, seed=3, evals=2, eval_episodes=16,
                            log_every=10, out=str(tmp_path / "run"), progress=False, threads=1, **SMALL))
    run = tmp_path / "run"
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [10, 20]
    assert [x["step"] for x in lines if "eval" in x] == [10, 20]
    assert res["last"]["normalised_score"] == res["evals"][-1]["normalised_score"]
    assert res["best"]["normalised_score"] == max(e["normalised_score"] for e in res["evals"])
    assert json.loads((run / "result.json").read_text()) == json.loads(json.dumps(res))
    assert res["seed"] == 3 and res["steps"] == 20
    # the recorded scaling is the one fitted on the data: rewards × 1/std
    rewards = ogdata.load(tmp_path / "toy").arrays()["rewards"]
    scaling = json.loads((run / "config.json").read_text())["learner"]["scaling"]
    assert scaling["reward_scale"] == pytest.approx(1 / rewards.std(), rel=1e-6) == res["reward_scale"]
    # the checkpoint acts exactly as the result's last evaluation did
    again = Evaluator("test-toy-bandit", episodes=16, seed=3)(load_learner(run / "checkpoint", TEST_DEVICE).policy)
    assert again["normalised_score"] == res["last"]["normalised_score"]


def random_execution_dataset(path, envs=4, tier="random"):
    """A tiny execution-ac dataset rolled with the random policy (a registered env with recorded references)."""
    from ogdata.envs import make_core
    from ogdata.policies import make_policy

    core = make_core("execution-ac", num_envs=envs)
    pol, rng = make_policy("random", core), np.random.default_rng(0)
    obs, _ = core.reset(seed=0)
    O, A, R, TE = [obs], [], [], []
    for _ in range(core.max_steps):
        a = pol(obs, rng)
        obs, r, te, tr, _ = core.step(a)
        O.append(obs), A.append(a), R.append(r), TE.append(te)
        if te.all():
            break
    T = len(A)
    assert np.stack(TE)[-1].all() and not np.stack(TE)[:-1].any(), "the toy rollout needs equal-length episodes"
    o = np.stack(O, 1).reshape(envs * (T + 1), -1)
    return ogdata.create_dataset(
        path, observations=o, actions=np.stack(A, 1).reshape(envs * T, -1),
        rewards=np.stack(R, 1).reshape(-1).astype(np.float32), terminations=np.stack(TE, 1).reshape(-1),
        truncations=np.zeros(envs * T, bool), episode_lengths=np.full(envs, T),
        observation_space=core.observation_space, action_space=core.action_space,
        metadata={"env_id": "execution-ac", "dataset_id": f"execution-ac/{tier}-v0", "tier": tier})


def test_cli_trains_end_to_end_on_a_registered_env(tmp_path, capsys):
    """`python -m baselines train` on a tiny execution-ac dataset from the random policy."""
    random_execution_dataset(tmp_path / "ds")
    out = subprocess.run([sys.executable, "-m", "baselines", "train", "--algo", "td3bc", "--dataset",
                          str(tmp_path / "ds"), "--steps", "4", "--eval-episodes", "4", "--hidden", "16",
                          "--batch-size", "32", "--out", str(tmp_path / "run"), "--threads", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(out.stdout.splitlines()) == 1  # stdout carries the summary only; logs go to stderr
    summary = json.loads(out.stdout)
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary == {"algo": "td3bc", "dataset": "execution-ac/random-v0", "seed": 0, "steps": 4,
                       "updates_per_s": res["updates_per_s"], "last_score": res["last"]["normalised_score"],
                       "best_score": res["best"]["normalised_score"]}
    refs = res["last"]["references"]
    assert refs == {"source": "recorded", **reference_returns("execution-ac")}
    # the score is the recorded normalisation of the evaluated mean return
    assert summary["last_score"] == pytest.approx(100 * (res["last"]["return_mean"] - refs["random"])
                                                  / (refs["expert"] - refs["random"]))
    assert "implementation_shortfall_bp" in res["last"]["finance"]
    _assert_plain(out.stdout + out.stderr)
    from baselines.__main__ import main

    assert main(["train", "--algo", "bcq", "--dataset", str(tmp_path / "ds"), "--steps", "4"]) == 2
    assert "these can: bc, cql, iql, td3bc" in capsys.readouterr().err


def _reproduce_module():
    return load_script("reproduce")


def test_reproduce_tables_list_envs_then_tiers_in_tier_order():
    rep = _reproduce_module()
    table = {f"{env}/{tier}-v0": {"env_id": env, "tier": tier, "multi_agent": env.startswith("joint"), "algos": {}}
             for env in ("trading-synth", "execution-ac", "joint-execution-2")
             for tier in ("random", "replay", "good", "poor", "medium")}
    single = list(rep._rows(table, False))
    assert single[:5] == [f"execution-ac/{t}-v0" for t in ("good", "medium", "poor", "replay", "random")]
    assert single[5] == "trading-synth/good-v0" and len(single) == 10
    assert list(rep._rows(table, True))[-1] == "joint-execution-2/random-v0"


def test_reproduce_runs_aggregates_resumes_and_records_cards(tmp_path, _isolated_home):
    rep = _reproduce_module()
    random_execution_dataset(_isolated_home / "datasets" / "execution-ac" / "random-v0")
    argv = ["--suite", "lite", "--datasets", "execution-ac/random-v0", "--tiers", "random", "--algos", "bc,iql",
            "--seeds", "2", "--steps", "3", "--evals", "1", "--eval-episodes", "2", "--jobs", "1", "--hidden", "16",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert rep.main(argv) == 0
    doc = json.loads((tmp_path / "results" / "lite.json").read_text())
    cell = doc["datasets"]["execution-ac/random-v0"]["algos"]
    assert set(cell) == {"bc", "iql"} and cell["bc"]["n_seeds"] == 2
    # the toy dataset was never profiled: it is left out of the measures-vs-scores check, not an error
    assert doc["measures_vs_scores"]["n_datasets"] == 0
    assert cell["iql"]["last_mean"] == pytest.approx(np.mean(cell["iql"]["last_scores"]))
    assert cell["iql"]["last_std"] == pytest.approx(np.std(cell["iql"]["last_scores"]))
    md = (tmp_path / "results" / "lite.md").read_text()
    assert "| execution-ac/random-v0 |" in md and "3 updates per run, MLP 2×16" in md
    assert (tmp_path / "results" / "lite.png").stat().st_size > 1000
    meta = ogdata.load("execution-ac/random-v0", download=False).metadata
    assert meta["baselines"]["lite"]["algos"]["bc"]["n_seeds"] == 2
    done = sorted((tmp_path / "runs").rglob("result.json"))
    stamps = [f.stat().st_mtime_ns for f in done]
    assert len(done) == 4
    assert rep.main(argv) == 0  # resumable: finished runs are skipped, not redone
    assert [f.stat().st_mtime_ns for f in done] == stamps


# -- output a user reads (issue #12, item 18) -------------------------------------------------------------------------
def _assert_plain(text: str) -> None:
    """What a baseline run writes into a pipe or a log file: no gym banner, no ANSI codes, no redraws."""
    assert "Gym has been unmaintained" not in text
    assert "\x1b[" not in text
    assert text.count("\r") == 0


def test_a_run_into_a_pipe_writes_plain_lines(tmp_path):
    """train() from Python with its progress display on, stdout and stderr piped: d3rlpy's structlog lines
    (INFO, coloured) and gym's banner are gone, and the progress is one plain line, not redraws."""
    random_execution_dataset(tmp_path / "ds")
    code = ("from baselines.train import RunSettings, train\n"
            f"train(RunSettings(algo='td3bc', dataset={str(tmp_path / 'ds')!r}, steps=30, eval_episodes=2, "
            f"evals=1, hidden=16, batch_size=32, out={str(tmp_path / 'run')!r}, threads=1))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    _assert_plain(out.stdout + out.stderr)
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("td3bc execution-ac/random-v0 s0 score ")
    assert ": 30/30 (100%)" in lines[0]


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere(monkeypatch):
    from ogdata.progress import Progress

    pipe = _Stream(tty=False)
    p = Progress(10, "run", file=pipe, interval=0.0)  # a line at every update
    for i in range(10):
        p.set_postfix({"loss": i})
        p.update(1)
    p.close()
    p.close()
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in pipe.getvalue()
    assert lines[0].startswith("run: 1/10 (10%), ") and lines[0].endswith(", loss=0")
    assert lines[-1].startswith("run: 10/10 (100%), ")
    quiet = _Stream(tty=False)
    p = Progress(1000, "run", file=quiet)  # the default: a line a minute, and one at the end
    for _ in range(1000):
        p.update(1)
    p.close()
    assert quiet.getvalue().count("\n") == 1 and quiet.getvalue().startswith("run: 1000/1000 (100%)")
    off = _Stream(tty=False)
    p = Progress(5, "run", file=off, enabled=False, interval=0.0)
    p.update(5)
    p.close()
    assert off.getvalue() == ""
    term = _Stream(tty=True)
    p = Progress(5, "run", file=term)
    p.update(5)
    p.close()
    assert term.getvalue().startswith("\rrun:   0%|")  # tqdm's bar, redrawn in place


def test_plan_estimate_uses_the_rates_the_finished_runs_measured(tmp_path):
    rep = _reproduce_module()
    for s in range(2):   # 10,000 updates in 20 s of build + training: 500 updates/s
        d = tmp_path / "execution-ac__good-v1" / "bc" / f"seed{s}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"algo": "bc", "env_id": "execution-ac", "steps": 5000,
                                                   "train_time_s": 9.0, "build_time_s": 1.0}))
    d = tmp_path / "execution-ac__good-v1" / "iql" / "seed0"   # a record that timed its evaluations too
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"algo": "iql", "env_id": "execution-ac", "steps": 5000,
                                               "train_time_s": 9.0, "build_time_s": 1.0, "wall_time_s": 50.0}))
    rates = rep.measured_rates(tmp_path)
    assert rates == {("bc", "continuous", False): 500.0, ("iql", "continuous", False): 100.0,
                     ("bc", "execution-ac"): 500.0, ("iql", "execution-ac"): 100.0}
    assert rep.estimate_s("execution-ac/medium-v1", "bc", 5000, rates) == 10.0 + rep.RUN_OVERHEAD_S
    # the env's own rate comes before its class's: market-making-as is in execution-ac's class
    rates[("bc", "market-making-as")] = 250.0
    assert rep.estimate_s("market-making-as/medium-v1", "bc", 5000, rates) == 20.0 + rep.RUN_OVERHEAD_S
    assert rep.estimate_s("execution-ac-highvol/medium-v1", "bc", 5000, rates) == 10.0 + rep.RUN_OVERHEAD_S
    # portfolio-synth (221 features) has no record: the listed rate, scaled by what bc measured on small ones
    small, large = rep.LITE_RATES["bc"]
    assert rep.estimate_s("portfolio-synth/good-v1", "bc", 5000, rates) == pytest.approx(
        5000 / (large * 500.0 / small) + rep.RUN_OVERHEAD_S)
    assert rep.estimate_s("trading-synth/good-v1", "bc", 5000, rates) == 5000 / small + rep.RUN_OVERHEAD_S
    # a learner with no listed rate and no record (qriql before its first lite run): the slowest listed rate
    slowest = min(v[0] for v in rep.LITE_RATES.values())
    assert "qriql" not in rep.LITE_RATES
    assert rep.estimate_s("execution-ac/good-v1", "qriql", 5000, rates) == 5000 / slowest + rep.RUN_OVERHEAD_S


def test_suite_datasets_follow_the_order_of_comma_separated_globs():
    rep = _reproduce_module()
    ids = rep.dataset_ids("trading-synth/*,execution-ac/*,trading-synth/good-v1", ("good", "poor"), 1)
    assert ids == ["trading-synth/good-v1", "trading-synth/poor-v1", "execution-ac/good-v1", "execution-ac/poor-v1"]
    assert rep.dataset_ids("execution-ac/*", ("good",), 1) == ["execution-ac/good-v1"]


def test_gpu_check_covers_every_learner_and_each_hl_gauss_critic(capsys):
    """scripts/gpu_check.py's cases come from the registry: every algorithm on a dataset of each kind it takes (no
    catalogue env is multi-agent discrete, so icql is left to the learner tests), HL-Gauss where the config takes it."""
    gpu = load_script("gpu_check")
    data = {key: f"/data/{env}" for key, env in gpu.ENVS.items()}
    cases = gpu.cases(None, data)
    assert {a for a, _, _ in cases} == set(ALGORITHMS) - {"icql"}
    assert {a for a, loss, _ in cases if loss == "hl_gauss"} == {"cql", "iql", "td3bc", "bcq", "iiql", "itd3bc",
                                                                 "matd3bc"}
    assert ("cql", "hl_gauss", "/data/trading-synth") in cases and ("bc", "mse", "/data/execution-ac") in cases
    assert not takes_hl_gauss("bc") and not takes_hl_gauss("qriql") and takes_hl_gauss("icql")
    if not torch.cuda.is_available():  # asked for a GPU where there is none: says so, exit status 2
        assert gpu.main(["--device", "cuda", "--out", "/nonexistent/never-written.json"]) == 2
        assert "torch sees no GPU here" in capsys.readouterr().err
