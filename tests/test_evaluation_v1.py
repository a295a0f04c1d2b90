"""Evaluation protocol v1 (issue #15): fixed, disjoint markets; paired references; final checkpoint as the
headline; no selection on test markets; bootstrap intervals; each env's own time scale."""

import json
from pathlib import Path

import numpy as np
import pytest

from baselines import finance, report, stats
from baselines.evaluate import MarketEvaluator
from baselines.train import RunSettings, load_learner, load_test_returns, train
from ogdata.envs import list_envs, make_core
from ogdata.envs.markets import (
    MARKETS_V1_FILE,
    SPLITS,
    check_disjoint,
    design,
    evaluation_ids,
    market_references,
    market_set,
    start_dates,
)
from ogdata.envs.registry import env_spec
from ogdata.errors import EnvError
from tests.scripts import load_script
from tests.test_baselines import _reproduce_module, random_execution_dataset

DOC = json.loads(MARKETS_V1_FILE.read_text())


# -- 1. fixed, published, disjoint markets ---------------------------------------------------------------------------
def test_every_dataset_env_has_published_disjoint_validation_and_test_markets():
    assert sorted(DOC["envs"]) == sorted(evaluation_ids())
    for env in evaluation_ids():
        sets = {s: market_set(env, s) for s in ("validation", "test")}
        check_disjoint(sets)
        # real prices: every training start date when there are fewer (portfolio-ff: 691 months)
        floor = 1000 if sets["validation"].kind == "seeds" else min(1000, len(start_dates(env)))
        assert sets["validation"].episodes >= floor
        assert sets == design(env), f"{env}: the published markets differ from the rule that made them"
        if sets["test"].kind == "seeds":  # synthetic: the very markets of the v1 references (seed 0, 2,048)
            assert sets["test"].reset_seeds == (int(np.random.default_rng(0).integers(2**63)),)
            assert sets["test"].episodes >= 1000


def test_markets_file_agrees_with_the_v1_references():
    """Each split's expert is the v1 expert of the id its markets are made of (a real-price test set: the
    `-eval` id's); on synthetic ids the same markets, so every analytic policy's mean return is identical to
    the one references-v1.json recorded (rerun compute_evaluation_markets.py after it changes)."""
    from ogdata.policies.evaluate import reference_returns_v1

    for env in evaluation_ids():
        for split in SPLITS:
            made_on = market_set(env, split).env_id
            assert market_references(env, split)["expert"]["name"] == reference_returns_v1(made_on)["expert"]["name"], (
                env, split)
        v1, test = reference_returns_v1(env), market_references(env, "test")
        if market_set(env, "test").kind == "seeds":
            assert test["random"]["episodes"] == v1["random"]["episodes"]
            for name, row in test["baselines"].items():
                if name != "trained/best":  # a checkpoint the catalogue may retrain
                    assert row["return_mean"] == pytest.approx(v1["baselines"][name]["mean"], rel=1e-12), (env, name)


def test_real_price_test_markets_are_every_held_out_start_date_and_validation_ends_before_them():
    for env in ("trading-sp500", "portfolio-sp500"):
        test, val = market_set(env, "test"), market_set(env, "validation")
        assert test.env_id == env + "-eval" and val.env_id == env
        assert list(test.start_dates) == start_dates(env + "-eval")  # every one, each once
        assert max(val.start_dates) < min(test.start_dates)
        for core, seed in test.rounds():
            core.reset(seed=seed)
            first = core.paths.start.copy()
            core.reset(seed=seed + 12345)  # another seed: pinned markets do not move
            assert (core.paths.start == first).all() and len(set(first.tolist())) == test.episodes
            assert [str(core.paths.dates[r])[:10] for r in first] == list(test.start_dates)


def test_overlapping_validation_and_test_markets_are_refused():
    sets = design("trading-synth")
    same = {"validation": sets["test"], "test": sets["test"]}
    with pytest.raises(EnvError, match="share reset seeds"):
        check_disjoint(same)
    real = design("trading-sp500")
    with pytest.raises(EnvError, match="share start dates"):
        check_disjoint({"validation": real["test"], "test": real["test"]})
    core = make_core("trading-sp500-eval", num_envs=2)
    with pytest.raises(EnvError, match="start rows must lie"):
        core.paths.pin_starts(np.array([0, 1]))


def test_validation_and_test_synthetic_markets_differ():
    v, t = (market_set("trading-synth", s) for s in ("validation", "test"))
    (cv, sv), = v.rounds()
    (ct, st), = t.rounds()
    cv.reset(seed=sv)
    ct.reset(seed=st)
    assert not np.allclose(cv.paths.gross[:500], ct.paths.gross[:500])


# -- 2. the same markets for every policy; paired references ----------------------------------------------------------
def test_every_policy_sees_the_same_test_markets_and_references_were_scored_on_them():
    ev = MarketEvaluator("trading-synth", "test")
    seen = {}

    def recorder(name, action):
        def pol(obs):
            seen.setdefault(name, []).append(obs[:, :-1].copy())  # the returns window, not the position
            return np.full(len(obs), action)
        return pol

    long_ = ev(recorder("long", 2))
    ev(recorder("short", 0))
    assert all(np.array_equal(a, b) for a, b in zip(seen["long"], seen["short"]))
    ref = market_references("trading-synth", "test")["baselines"]["trading/always-long"]
    assert long_["episodes"] == ref["episodes"] == 2048
    assert long_["return_mean"] == pytest.approx(ref["return_mean"], rel=1e-12)
    assert long_["normalised_score"] == pytest.approx(ref["normalised_score"], rel=1e-9)
    refs = market_references("trading-synth", "test")
    assert ev.references["random"] == refs["random"]["return_mean"]
    assert ev.references["expert"] == refs["expert"]["return_mean"]


# -- 3. final checkpoint; no selection on test markets ----------------------------------------------------------------
def test_v1_run_reports_the_final_checkpoint_on_test_and_selects_only_on_validation(tmp_path, monkeypatch):
    ds = random_execution_dataset(tmp_path / "ds", envs=8)
    calls = []
    real_call = MarketEvaluator.__call__

    def counting(self, policy, **kw):
        out = real_call(self, policy, **kw)
        calls.append((self.split, out["normalised_score"]))
        return out

    monkeypatch.setattr(MarketEvaluator, "__call__", counting)
    r = train(RunSettings(algo="bc", dataset=str(ds.path), steps=30, evals=3, hidden=16, batch_size=32,
                          progress=False, out=str(tmp_path / "run"), protocol="v1"))
    assert "last" not in r and "best" not in r
    splits = [s for s, _ in calls]
    assert splits[:3] == ["validation"] * 3 and set(splits[3:]) == {"test"} and 1 <= len(splits[3:]) <= 2
    assert [c["step"] for c in r["curve"]] == [10, 20, 30]
    val = [c["validation_score"] for c in r["curve"]]
    bov = r["best_on_validation"]
    assert bov["step"] == r["curve"][int(np.argmax(val))]["step"] and bov["validation_score"] == max(val)
    assert "validation" in bov["label"]
    # the headline is the saved (final) checkpoint scored on the test markets, every episode recorded
    assert r["final"]["split"] == "test" and "episode_returns" not in r["final"]
    rets = load_test_returns(tmp_path / "run")["final"]
    assert rets.shape == (2048,) and rets.dtype == np.float32
    assert float(rets.astype(np.float64).mean()) == pytest.approx(r["final"]["return_mean"], rel=1e-6)
    again = MarketEvaluator("execution-ac", "test")(load_learner(tmp_path / "run" / "checkpoint").policy)
    assert again["normalised_score"] == pytest.approx(r["final"]["normalised_score"], rel=1e-9)
    assert r["versions"]["numpy"] == np.__version__
    assert json.loads((tmp_path / "run" / "result.json").read_text())["final"]["episodes"] == 2048


def test_v1_refuses_a_dataset_whose_env_kwargs_change_the_env():
    with pytest.raises(ValueError, match="has no v1 markets"):
        MarketEvaluator("execution-ac", "test", {"sigma": 3.0})


# -- 4. intervals ----------------------------------------------------------------------------------------------------
def test_bootstrap_interval_on_a_known_sample():
    x = np.random.default_rng(7).normal(5.0, 2.0, 400)
    m, lo, hi = stats.mean_ci(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal-theory interval the bootstrap approximates
    assert m == pytest.approx(x.mean())
    assert lo == pytest.approx(m - half, abs=0.15 * half) and hi == pytest.approx(m + half, abs=0.15 * half)
    assert stats.mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert stats.std1([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


def test_iqm_and_performance_profile_on_known_scores():
    scores = {"a": np.arange(100.0).reshape(20, 5)}  # 100 runs 0..99: IQM = mean of 25..74 = 49.5
    iqm, lo, hi = stats.iqm_ci(scores, reps=300)["a"]
    assert iqm == pytest.approx(49.5) and lo < iqm < hi
    prof = stats.performance_profiles(scores, [-1.0, 49.5, 99.0], reps=100)["a"]
    assert prof["share"] == pytest.approx([1.0, 0.5, 0.0])


def test_intervals_are_reproducible_and_leave_the_callers_random_stream_alone():
    # rliable resamples from numpy's global generator whatever random_state it is given: the intervals must
    # still be the same on every call (the committed tables rebuild byte-identically) and the global
    # stream must continue as if no bootstrap had run
    x = np.random.default_rng(3).normal(size=9)
    scores = {"a": np.random.default_rng(4).normal(size=(5, 3))}
    np.random.seed(11)
    expected_next = np.random.random()
    np.random.seed(11)
    first = (stats.mean_ci(x, reps=200), stats.iqm_ci(scores, reps=200),
             stats.performance_profiles(scores, [0.0], reps=50))
    assert np.random.random() == expected_next
    assert (stats.mean_ci(x, reps=200), stats.iqm_ci(scores, reps=200),
            stats.performance_profiles(scores, [0.0], reps=50)) == first
    assert stats.mean_ci(x, reps=200, seed=1) != first[0]


# -- 5. time scale and finance figures --------------------------------------------------------------------------------
def test_each_env_states_its_time_scale_and_only_capital_envs_annualise():
    # capital or P&L paths annualise at their own step: daily, monthly or hourly; the others never
    per_step = {"1 trading day": 252, "1 month": 12, "1 hour (FX, weekdays; a weekend is one step)": 6240}
    for env in list_envs():
        spec = env_spec(env)
        assert spec.step, f"{env} states no step length"
        capital = spec.family in ("portfolio", "trading", "stat-arb")
        assert spec.periods_per_year == (per_step[spec.step] if capital else None), env
    ex = market_references("execution-ac", "test")["baselines"]["execution/twap"]["finance"]
    assert ex["time_scale"] == "per episode" and "sharpe" not in ex and "annualised_log_return" not in ex
    tr = market_references("trading-synth", "test")["baselines"]["trading/always-long"]["finance"]
    assert tr["time_scale"] == "annualised" and tr["periods_per_year"] == 252.0


def test_capital_figures_on_a_known_path():
    T, g = 252, 0.0004  # constant daily log growth, costs 1 bp of wealth every day
    W = np.exp(g * np.arange(T + 1))[None]
    costs = np.concatenate([[0.0], 1e-4 * W[0, :-1]])[None]
    res = {"returns": np.array([g * T]), "alive": np.ones((1, T), bool), "wealth": W, "costs": costs,
           "position": np.ones((1, T + 1))}
    f = finance.v1_figures("trading", res, 252, references={"random": 0.0, "expert": 2 * g * T})
    assert f["annualised_log_return"] == pytest.approx(g * 252)
    assert f["max_drawdown"] == 0.0 and f["turnover_per_step"] == 0.0
    assert f["cost_mean"] == pytest.approx(1e-4 * T)
    assert f["score_gross"] - f["score_costs"] == pytest.approx(50.0)
    assert finance.cvar(np.arange(100.0), 0.05) == pytest.approx(2.0)
    assert finance.cvar(np.arange(100.0), 0.05, tail="upper") == pytest.approx(97.0)
    # a policy that never moves its wealth (always flat) has no Sharpe or Sortino: null, never NaN in JSON
    flat = {"returns": np.zeros(2), "alive": np.ones((2, T), bool), "wealth": np.ones((2, T + 1)),
            "costs": np.zeros((2, T + 1)), "position": np.zeros((2, T + 1))}
    f = finance.v1_figures("trading", res=flat, periods_per_year=252)
    assert f["sharpe"] is None and f["sortino"] is None and f["max_drawdown"] == 0.0
    json.dumps(f, allow_nan=False)
    stored = json.dumps(json.loads(MARKETS_V1_FILE.read_text()), allow_nan=False)  # raises on a NaN
    assert '"sharpe": null' in stored


def test_execution_share_left_for_the_dump_and_market_making_fill_rate():
    ev = MarketEvaluator("execution-ac", "test")
    hold = ev(lambda o: np.zeros((len(o), 1), np.float32))["finance"]
    dump_now = ev(lambda o: np.ones((len(o), 1), np.float32))["finance"]
    assert hold["share_dumped_mean"] == pytest.approx(1.0) and hold["episodes_with_dump"] == 1.0
    assert dump_now["share_dumped_mean"] == 0.0
    assert hold["shortfall_bp_cvar95"] >= hold["shortfall_bp_mean"]
    mm = market_references("market-making-as", "test")["baselines"]["market-making/avellaneda-stoikov"]["finance"]
    assert 0.0 < mm["fill_rate"] < 1.0 and mm["inventory_std"] > 0.0


# -- 6. reproduce v1: records, resume, tables from the records alone -------------------------------------------------
def test_reproduce_v1_records_resumes_and_rebuilds_tables_from_records(tmp_path):
    rep = _reproduce_module()
    ds = random_execution_dataset(tmp_path / "ds", envs=4)
    argv = ["--suite", "v1-lite", "--dataset-path", str(ds.path), "--algos", "bc,iql", "--seeds", "2", "--steps",
            "4", "--evals", "2", "--jobs", "1", "--hidden", "16", "--runs-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results")]
    assert rep.main(argv) == 0
    doc = json.loads((tmp_path / "results" / "v1-lite.json").read_text())
    (cell_key,) = doc["datasets"]
    cell = doc["datasets"][cell_key]["algos"]["bc"]
    assert cell["n_seeds"] == 2 and not cell["enough_seeds"]
    assert cell["final"]["std"] == pytest.approx(np.std(cell["final"]["scores"], ddof=1))
    assert cell["final"]["ci95"][0] <= cell["final"]["mean"] <= cell["final"]["ci95"][1]
    assert doc["references"]["execution-ac"]["execution/twap"]["normalised_score"] == pytest.approx(86.4, abs=0.1)
    md = (tmp_path / "results" / "v1-lite.md").read_text()
    assert "final checkpoint" in md and "chosen on the validation markets" in md and "TWAP" in md
    for png in ("v1-lite_scores.png", "v1-lite_aggregate.png", "v1-lite_curves/execution-ac.png"):
        assert (tmp_path / "results" / png).stat().st_size > 1000
    done = sorted((tmp_path / "runs").rglob("result.json"))
    stamps = [f.stat().st_mtime_ns for f in done]
    assert len(done) == 4 and rep.main(argv) == 0
    assert [f.stat().st_mtime_ns for f in done] == stamps  # resumed: nothing rerun
    # an invocation over part of the grid (here: BC only) rewrites the tables from every record, IQL's kept
    assert rep.main([a if a != "bc,iql" else "bc" for a in argv]) == 0
    part = json.loads((tmp_path / "results" / "v1-lite.json").read_text())
    assert set(part["datasets"][cell_key]["algos"]) == {"bc", "iql"} and part["runs"] == 4
    # the tables from the run records alone: no dataset given, none installed
    again = ["--suite", "v1-lite", "--aggregate-only", "--datasets", "none/*", "--runs-dir", str(tmp_path / "runs"),
             "--results-dir", str(tmp_path / "rebuilt")]
    assert rep.main(again) == 0
    rebuilt = json.loads((tmp_path / "rebuilt" / "v1-lite.json").read_text())
    assert rebuilt["datasets"] == doc["datasets"] and rebuilt["aggregate"] == doc["aggregate"]


def test_the_aggregate_leaves_out_cells_still_short_of_their_seeds():
    full = {"final": {"scores": [10.0, 20.0, 30.0, 40.0, 50.0]}, "enough_seeds": True}
    short = {"final": {"scores": [0.0, 1.0]}, "enough_seeds": False}
    agg = report.aggregate({"d1": {"algos": {"a": full, "b": short}}, "d2": {"algos": {"a": short}}})
    assert agg["a"]["datasets"] == 1 and agg["a"]["runs_per_dataset"] == 5 and agg["a"]["iqm"] == pytest.approx(30.0)
    assert agg["b"]["datasets"] == 1 and agg["b"]["runs_per_dataset"] == 2  # nothing complete yet: what there is


def test_v1_measure_links_relate_final_scores_to_the_dataset_measures():
    # four datasets of two families; BC's final score rises with TQ, the best offline RL's gain over BC
    # falls with coarse SACo; a dataset without measures is left out
    def cell(mean, multi=False):
        return {"final": {"mean": mean}, "multi_agent": multi}

    ds = {f"e{i}/t-v1": {"tier": "medium", "family": fam, "algos": {"bc": cell(bc), "iql": cell(rl), "td3bc": cell(-9)}}
          for i, (fam, bc, rl) in enumerate([("execution", 10, 40), ("execution", 20, 40), ("stat-arb", 30, 35),
                                             ("stat-arb", 40, 41)])}
    ds["x/t-v1"] = {"tier": "good", "family": "execution", "algos": {"bc": cell(1), "iql": cell(2)}}
    measures = {f"e{i}/t-v1": {"tq": 0.1 * i, "saco": 1.0, "saco_coarse": 1.0 - 0.1 * i} for i in range(4)}
    links = report.measure_links(ds, measures)
    assert links["n_datasets"] == 4
    assert links["spearman"]["bc_vs_tq"] == pytest.approx(1.0)
    assert links["spearman"]["gain_vs_saco_coarse"] == pytest.approx(1.0)  # gains 30, 20, 5, 1 vs SACo falling
    assert links["gain_by_family"] == {"execution": {"datasets": 2, "median": 25.0, "min": 20.0, "max": 30.0},
                                       "stat-arb": {"datasets": 2, "median": 3.0, "min": 1.0, "max": 5.0}}
    assert {r["dataset"]: r["best_rl_algo"] for r in links["datasets"]} == {f"e{i}/t-v1": "iql" for i in range(4)}


def test_v0_suites_take_only_v0_datasets_and_v1_suites_only_v1():
    from ogdata.ids import TIERS, parse_id

    rep = _reproduce_module()
    v0, v1 = rep.dataset_ids(None, TIERS, 0), rep.dataset_ids(None, TIERS, 1)
    assert "execution-ac/random-v0" in v0 and "execution-ac/random-v0" not in v1
    assert {parse_id(i).version for i in v0} == {0} and {parse_id(i).version for i in v1} <= {1}
    assert rep.SUITES["lite"]["protocol"] == "v0" and rep.SUITES["v1-lite"]["seeds"] >= 5


def test_an_ablation_override_reaches_every_run_and_its_record(tmp_path, capsys):
    rep = _reproduce_module()
    ds = random_execution_dataset(tmp_path / "ds", envs=4)
    argv = ["--suite", "v1-lite", "--dataset-path", str(ds.path), "--algos", "iql", "--seeds", "1", "--steps", "4",
            "--evals", "1", "--jobs", "1", "--hidden", "16", "--set", "gamma=0.5", "--no-cards",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert rep.main(argv) == 0
    assert "gamma = 0.5" in capsys.readouterr().out
    (rec,) = (tmp_path / "runs").rglob("result.json")
    assert json.loads(rec.read_text())["settings"]["overrides"] == {"gamma": 0.5}
    (cfg,) = (tmp_path / "runs").rglob("config.json")
    cfg = json.loads(cfg.read_text())
    assert cfg["settings"]["overrides"] == {"gamma": 0.5}
    assert cfg["learner"]["d3rlpy_config"]["config"]["params"]["gamma"] == 0.5  # what d3rlpy trained with


def test_v1_lite_copies_discrete_q_targets_often_enough_for_its_budget():
    # 5,000 updates with a target copy every 1,000 moves values back ~5 steps: v1-lite copies every 100 for the
    # discrete Q-learners; continuous ones (soft target updates) and the other algorithms get no override
    rep = _reproduce_module()
    lite, full = rep.SUITES["v1-lite"], rep.SUITES["v1-full"]
    assert rep.run_overrides(lite, "option-exercise-american/random-v1", "cql") == {"target_update_interval": 100}
    assert rep.run_overrides(lite, "stat-arb-brent-wti/good-v1", "bcq") == {"target_update_interval": 100}
    assert rep.run_overrides(lite, "option-exercise-american/random-v1", "bc") == {}
    assert rep.run_overrides(lite, "execution-ac/random-v1", "cql") == {}
    assert rep.run_overrides(full, "option-exercise-american/random-v1", "cql") == {}
    assert rep.run_overrides({**lite, "overrides": {"target_update_interval": 7, "gamma": 1.0}},
                             "stat-arb-brent-wti/good-v1", "cql") == {"target_update_interval": 7, "gamma": 1.0}


def test_order_book_desks_and_mixed_settings_have_their_own_figures():
    """The desks' firm shortfall is minus the team return in bp (no dump share: desks buy and sell);
    the order-book desks' actions are orders, so the rollout adds no fraction-based dump; a mixed
    setting reports only the joint return statistics and says why."""
    firm = market_references("lob-desks-2", "test")["baselines"]["lob-desks/firm-twap"]["finance"]
    assert firm["shortfall_bp_mean"] == pytest.approx(-firm["return_mean"]) and "share_dumped_mean" not in firm
    res = {"returns": np.array([-1.0, -3.0, -2.0]), "alive": np.ones((3, 4), bool)}
    f = finance.v1_figures("lob-desks", res, None)
    assert f["shortfall_bp_mean"] == pytest.approx(2.0) and f["shortfall_bp_std"] == pytest.approx(1.0)
    assert f["shortfall_bp_cvar95"] == pytest.approx(3.0) and "share_dumped_mean" not in f
    m = finance.v1_figures("lob-makers-and-executor", res, None)
    assert m["return_mean"] == pytest.approx(-2.0) and "different units" in m["note"]
    rows = market_references("lob-competing-makers-2", "test")["baselines"]
    fin = rows["lob-competing-makers/inventory-skew"]["finance"]
    assert fin["time_scale"] == "per episode" and {"pnl_mean", "fill_rate", "inventory_std"} <= set(fin)


def test_finance_caption_states_each_envs_own_time_scale():
    """The finance table says how each env present is scaled, from its spec: monthly factors with 12 steps a
    year, hourly FX with 6,240, daily with 252, the order book per episode (not a fixed 'daily' sentence)."""
    text = report._time_scales({f"{e}/good-v1": {"env_id": e} for e in
                                ("portfolio-ff", "trading-eurusd", "trading-sp500", "lob-execution")})
    assert "portfolio-ff (1 month) with 12 steps a year" in text and "with 6240 steps a year" in text
    assert "trading-sp500 (1 trading day) with 252 steps a year" in text
    assert text.endswith("Per episode, never annualised (intraday steps, or one payoff an episode): lob-execution.")


def test_readme_rows_come_from_the_results_document(tmp_path):
    """scripts/results_rows.py: mean [interval] per algorithm, a short cell labelled with its seeds, a dash
    for a cell not run, only matching datasets; an unmatched glob is an error."""
    rr = load_script("results_rows")
    full = {"final": {"mean": 51.26, "ci95": [-2.04, 60.0]}, "enough_seeds": True, "n_seeds": 5}
    short = {"final": {"mean": 3.0, "ci95": [1.0, 5.0]}, "enough_seeds": False, "n_seeds": 2}
    doc = {"datasets": {"a/good-v1": {"algos": {"bc": full, "iql": short}}, "b/good-v1": {"algos": {"bc": full}}}}
    assert rr.rows(doc, "a/*", ["bc", "iql", "td3bc"]) == [
        "| a/good-v1 | 51.3 [−2.0, 60.0] | 3.0 [1.0, 5.0] (2 seeds) | — |"]
    one = {"final": {"mean": 20.2, "ci95": [float("nan"), None]}, "enough_seeds": False, "n_seeds": 1}
    assert rr.cell(one) == "20.2 (1 seed)"   # one seed has no interval: none is printed, never "[nan, nan]"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert rr.main(["--results", str(path), "--datasets", "c/*", "--algos", "bc"]) == 1


def test_multi_agent_rollouts_keep_each_agents_own_return():
    """General-sum ids are scored jointly (the mean across agents), and each agent's own return is kept:
    their mean is the joint return, and the record carries them as `per_agent`."""
    from types import SimpleNamespace

    from baselines.evaluate import rollout, summarise
    from ogdata.envs import make_core

    core = make_core("multi-market-making-2", num_envs=16)
    rng = np.random.default_rng(0)
    shape = (16, len(core.agents)) + core.action_space.shape
    res = rollout(core, lambda obs: rng.uniform(0, 1, shape).astype(np.float32), seed=3)
    assert res["agent_returns"].shape == (16, 2)
    np.testing.assert_allclose(res["agent_returns"].mean(axis=1), res["returns"], rtol=1e-12, atol=1e-9)
    ev = SimpleNamespace(split="test", markets=SimpleNamespace(env_id="multi-market-making-2"), references=None)
    rec = summarise(res, ev, finance=False)
    assert len(rec["per_agent"]["return_mean"]) == 2
    assert abs(np.mean(rec["per_agent"]["return_mean"]) - rec["return_mean"]) < 1e-9
    single = rollout(make_core("execution-ac", num_envs=4), lambda obs: np.full((4, 1), 0.1, np.float32), seed=0)
    assert "agent_returns" not in single


def test_v1_validation_run_never_builds_the_test_markets(tmp_path, monkeypatch):
    ds = random_execution_dataset(tmp_path / "ds", envs=8)
    built = []
    real_init = MarketEvaluator.__init__

    def recording(self, env_id, split, *args, **kw):
        built.append(split)
        real_init(self, env_id, split, *args, **kw)

    monkeypatch.setattr(MarketEvaluator, "__init__", recording)
    r = train(RunSettings(algo="bc", dataset=str(ds.path), steps=20, evals=2, hidden=16, batch_size=32,
                          progress=False, out=str(tmp_path / "run"), protocol="v1-validation"))
    assert built == ["validation"]
    assert r["protocol"] == "v1-validation" and "final" not in r and "best_on_validation" not in r
    assert [c["step"] for c in r["curve"]] == [10, 20]
    assert r["final_validation"] == r["curve"][-1]["validation_score"]
    assert not (tmp_path / "run" / "test_returns.npz").exists()
    assert r["validation_markets"] == {"markets": "execution-ac", "split": "validation", "episodes": 1024}
    assert r["dataset_metadata"]["tier"] == "random" and r["wall_time_s"] >= r["train_time_s"]
    with pytest.raises(ValueError, match="protocol must be one of"):
        train(RunSettings(algo="bc", dataset=str(ds.path), steps=1, protocol="v2", progress=False,
                          out=str(tmp_path / "bad")))


def test_select_config_chooses_the_best_validation_mean_and_resumes(tmp_path, monkeypatch):
    sel = load_script("select_config")
    ds = random_execution_dataset(tmp_path / "ds", envs=8)
    monkeypatch.setitem(sel.SUITES, sel.SUITE, {**sel.SUITES[sel.SUITE], "steps": 20, "hidden": 16, "evals": 2})
    out = tmp_path / "sel"
    args = ["--algo", "bc", "--field", "learning_rate", "--values", "0.0,0.001", "--datasets", str(ds.path),
            "--seeds", "2", "--jobs", "1", "--out", str(out)]
    assert sel.main(args) == 0
    doc = json.loads((out / "selection.json").read_text())
    means = {v: doc["mean_over_datasets"][v] for v in ("0.0", "0.001")}
    assert doc["chosen"] == max(means, key=means.get)
    for v in (0.0, 0.001):
        cell = doc["cells"][f"{v}|{ds.path}"]
        runs = [json.loads((sel.run_path(out, str(ds.path), "learning_rate", v, s) / "result.json").read_text())
                for s in range(2)]
        assert cell["scores"] == [r["final_validation"] for r in runs] and cell["n"] == 2
        assert all(r["protocol"] == "v1-validation" and r["settings"]["overrides"] == {"learning_rate": v}
                   for r in runs)
        assert means[str(v)] == pytest.approx(np.mean(cell["scores"]))
    assert f"**{means[doc['chosen']]:.1f}**" in (out / "selection.md").read_text()
    assert (out / "selection.png").stat().st_size > 0
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert sel.main(args) == 0 and {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == stamp


def test_select_config_picks_the_planted_winner_only_among_complete_values(tmp_path):
    """The rule on planted records: the highest mean over datasets of the per-dataset seed means wins; a value
    missing a seed is shown but not ranked; a record of another selection in the same folder is refused."""
    sel = load_script("select_config")
    datasets, out = ["execution-ac/medium-v1", "market-making-as/medium-v1"], tmp_path / "sel"
    planted = {1: ([50.0, 52.0], [40.0, 42.0]), 2: ([60.0, 58.0], [41.0, 39.0]), 3: ([90.0, 90.0], [90.0])}
    for v, per_dataset in planted.items():
        for d, scores in zip(datasets, per_dataset):
            for s, score in enumerate(scores):
                path = sel.run_path(out, d, "conservative", v, s)
                path.mkdir(parents=True)
                (path / "result.json").write_text(json.dumps({"algo": "arsq", "final_validation": score,
                                                              "settings": {"overrides": {"conservative": v}}}))
    doc = sel.summarise("arsq", "conservative", [1, 2, 3], datasets, 2, out)
    assert doc["mean_over_datasets"] == {"1": 46.0, "2": 49.5}   # (51 + 41) / 2 and (59 + 40) / 2; 3 lacks a seed
    assert doc["chosen"] == "2" and doc["cells"][f"3|{datasets[1]}"]["n"] == 1
    with pytest.raises(SystemExit, match="its own --out"):
        sel.summarise("arsq", "conservative", [1], datasets, 2, out, fixed={"alpha": 0.2})


def test_paired_aggregate_uses_only_the_datasets_every_member_ran():
    def cell(scores, enough=True):
        return {"final": {"scores": scores}, "enough_seeds": enough}

    ds = {f"d{i}": {"algos": {"bc": cell([10.0 * i, 10.0 * i + 1]), "iql": cell([5.0 * i, 5.0 * i + 2])}}
          for i in range(4)}
    ds["d3"]["algos"]["iql"]["enough_seeds"] = False          # still running: d3 leaves the pair
    ds["d4"] = {"algos": {"bc": cell([99.0, 99.0])}}            # iql never ran here
    out = report.paired_aggregate(ds, {"pair": ("bc", "iql")}, min_datasets=3)
    assert out["pair"]["datasets"] == ["d0", "d1", "d2"] and out["pair"]["runs_per_dataset"] == 2
    want = stats.iqm_ci({"bc": np.array([[0.0, 10, 20], [1, 11, 21]]), "iql": np.array([[0.0, 5, 10], [2, 7, 12]])})
    assert out["pair"]["algos"]["bc"]["iqm"] == want["bc"][0] and out["pair"]["algos"]["iql"]["iqm"] == want["iql"][0]
    assert report.paired_aggregate(ds, {"pair": ("bc", "iql")}, min_datasets=4) == {}


def test_probability_of_improvement_is_rliables_and_brute_force():
    """stats._improvement is rliable's probability_of_improvement (Mann–Whitney U per dataset), ties counted half,
    checked against a double loop; the interval brackets it and excludes 0.5 when X always wins."""
    from rliable import metrics

    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=(5, 7)).astype(float)  # small integers: many ties
    y = rng.integers(0, 6, size=(4, 7)).astype(float)
    brute = np.mean([np.mean([(a > b) + 0.5 * (a == b) for a in x[:, m] for b in y[:, m]]) for m in range(7)])
    assert stats._improvement(x, y)[0] == pytest.approx(brute, abs=1e-12)
    assert stats._improvement(x, y)[0] == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    p, lo, hi = stats.improvement_ci(x, y, reps=300)
    assert p == pytest.approx(brute) and lo <= p <= hi
    assert stats.improvement_ci(x + 100, y, reps=300) == (1.0, 1.0, 1.0)
    assert stats.improvement_ci(x, x, reps=300)[0] == 0.5  # against itself: symmetric, exactly a tie
    with pytest.raises(ValueError, match="same datasets"):
        stats.improvement_ci(x, y[:, :3])


def test_improvement_uses_only_datasets_where_both_have_full_seeds():
    def cell(scores, enough=True):
        return {"final": {"scores": scores, "mean": float(np.mean(scores))}, "enough_seeds": enough}

    ds = {f"d{i}": {"algos": {"bc": cell([1.0 * i, 1.0 * i + 1]), "iql": cell([i + 5.0, i + 6.0])}} for i in range(4)}
    ds["d2"]["algos"]["iql"] = cell([-9.0, -8.0])       # iql below bc on one dataset
    ds["d3"]["algos"]["iql"]["enough_seeds"] = False    # still running: leaves the pair
    ds["d4"] = {"algos": {"bc": cell([0.0, 0.0])}}        # iql never ran here
    (g,) = report.improvement(ds, (("iql", "bc"),))
    assert (g["datasets"], g["runs_per_dataset"], g["x_mean_above"]) == (3, 2, 2)
    assert g["p"] == pytest.approx(2 / 3) and g["ci95"][0] <= g["p"] <= g["ci95"][1]
    assert report.improvement(ds, (("iql", "bc"),), min_datasets=4) == []
    assert report.improvement(ds, (("cql", "bc"),)) == []


def test_card_entries_of_a_one_seed_cell_are_valid_metadata():
    """A cell with one seed has no interval (NaN); what goes into a dataset's metadata must be strict JSON,
    so the interval becomes None (the card shows a dash) instead of failing `reproduce.py --aggregate-only`."""
    import json

    cell = {"final": {"mean": 60.0, "ci95": [float("nan"), float("nan")]}, "n_seeds": 1, "markets": "m",
            "best_on_validation": None}
    doc = {"settings": {"steps": 5000, "jobs": 2}, "datasets": {"execution-ac/medium-v1": {"algos": {"iql": cell}}}}
    entry = report.card_entries(doc)["execution-ac/medium-v1"]
    assert entry["algos"]["iql"]["final_ci95"] == [None, None] and entry["settings"] == {"steps": 5000}
    json.dumps(entry, allow_nan=False)


def test_two_invocations_sharing_a_runs_dir_never_train_the_same_run(tmp_path):
    # a run whose lock another process holds is skipped, not trained twice; once released it is trained,
    # and a run that finished after this invocation planned it is not trained again
    import subprocess
    import sys

    rep = _reproduce_module()
    ds = random_execution_dataset(tmp_path / "ds", envs=4)
    argv = ["--suite", "v1-lite", "--dataset-path", str(ds.path), "--algos", "bc", "--seeds", "1", "--steps", "4",
            "--evals", "1", "--jobs", "1", "--hidden", "16", "--no-cards",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    (settings,) = _planned_settings(rep, argv)
    out = Path(settings["out"])
    lock = out.parent / f".{out.name}.lock"
    out.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import filelock, sys, time; l = filelock.FileLock(sys.argv[1]); "
                               "l.acquire(); print('held', flush=True); time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        o = rep.run_one(settings)
        assert o["ok"] and o["skipped"] == "held by another process" and not (out / "result.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert rep.main(argv) == 0 and (out / "result.json").is_file()
    stamp = (out / "result.json").stat().st_mtime_ns
    assert rep.run_one(settings)["skipped"] == "finished elsewhere"
    assert (out / "result.json").stat().st_mtime_ns == stamp


def _planned_settings(rep, argv):
    """The settings each planned run of `argv` would be trained with (what main hands run_one)."""
    captured = []
    real = rep.run_one
    rep.run_one = lambda s: captured.append(s) or {"ok": True, "skipped": "captured", "settings": s, "wall": 0.0}
    try:
        rep.main(argv)
    finally:
        rep.run_one = real
    return captured
