"""v1 references (issue #14 point 1): the optimal experts are proved on small cases, and the committed
references-v1.json is complete, well-formed and reproduces from its script."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ogdata.envs.market_making import MarketMaking
from ogdata.envs.registry import env_spec, list_envs, make_core
from ogdata.errors import ReferenceMissingError
from ogdata.policies import evaluate as ev
from ogdata.policies.evaluate import episode_returns, load_references_v1, reference_returns_v1
from ogdata.policies.market_making import CooperativeDP, MarketMakingDP, market_making_dp
from ogdata.policies.portfolio import EqualWeight, KellyMix, growth_rate, kelly_weights
from tests.scripts import load_script

# -- market making: the DP is the optimum -----------------------------------------------------

def _small_core(num_envs: int = 1) -> MarketMaking:
    # 3 steps, inventory in {-1, 0, 1}, λ·dt = 2/3, strong penalties so that inventory matters
    return MarketMaking(num_envs, n_steps=3, terminal_time=1.0, intensity=2.0, kappa=1.5, max_depth=2.0,
                        max_inventory=1, running_penalty=0.6, terminal_penalty=0.8, sigma=0.5)


def _brute_force(core, depths) -> float:
    """Best expected return over every deterministic Markov policy (step, inventory) -> depth pair,
    each evaluated by propagating the inventory distribution forward (no DP)."""
    n, Q, lam_dt, k = core.n_steps, core.max_inventory, core._lam_dt, core.kappa
    pairs = np.array(list(itertools.product(depths, depths)))                 # (K, 2) [bid, ask]
    S = 2 * Q + 1
    choice = np.indices((len(pairs),) * (n * S), dtype=np.int8).reshape(n * S, -1).T.reshape(-1, n, S)
    P = len(choice)
    qs = np.arange(-Q, Q + 1)
    dist = np.zeros((P, S))
    dist[:, Q] = 1.0
    total = np.zeros(P)
    for t in range(n):
        pen = core.running_penalty * core.dt + (core.terminal_penalty if t == n - 1 else 0.0)
        new = np.zeros((P, S))
        for j, q in enumerate(qs):
            db, da = pairs[choice[:, t, j], 0], pairs[choice[:, t, j], 1]
            pb = lam_dt * np.exp(-k * db) * (q < Q)
            pa = lam_dt * np.exp(-k * da) * (q > -Q)
            up, down = pb * (1 - pa), (1 - pb) * pa
            stay = 1 - up - down
            m = dist[:, j]
            total += m * (pb * db + pa * da - pen * (up * (q + 1) ** 2 + down * (q - 1) ** 2 + stay * q ** 2))
            new[:, j] += m * stay
            if q < Q:
                new[:, j + 1] += m * up
            if q > -Q:
                new[:, j - 1] += m * down
        dist = new
    return float(total.max())


def test_market_making_dp_equals_brute_force_on_a_small_case():
    core = _small_core()
    depths = [0.3, 1.2]                     # 4 depth pairs, 9 states: 4^9 = 262,144 policies
    V, _ = market_making_dp(core, depths=depths)
    assert V[0, core.max_inventory] == pytest.approx(_brute_force(core, depths), rel=1e-12, abs=1e-12)
    # the continuous-action DP is at least as good as any grid, and a fine grid approaches it
    Vc, pol = market_making_dp(core)
    fine, _ = market_making_dp(core, depths=np.linspace(0, core.max_depth, 401))
    assert Vc[0, 1] >= fine[0, 1] - 1e-12 and Vc[0, 1] - fine[0, 1] < 1e-4
    assert ((pol >= 0) & (pol <= core.max_depth)).all()


@pytest.mark.parametrize("case", ["small", "market-making-as", "multi-market-making-2"])
def test_market_making_dp_value_matches_monte_carlo_on_the_env(case):
    if case == "small":
        core, episodes = _small_core(20_000), 20_000
        policy = MarketMakingDP(core)
    else:
        episodes = 2048
        core = make_core(case, num_envs=episodes)
        policy = (CooperativeDP if core.multi_agent else MarketMakingDP)(core)
    value = policy.value[0, policy.q_max]
    ret = episode_returns(core, policy, episodes=episodes, seed=3)["returns"]
    se = ret.std(ddof=1) / math.sqrt(len(ret))
    assert abs(ret.mean() - value) < 4 * se, (ret.mean(), value, se)
    if case == "market-making-as":  # the figure: the DP optimum ≈ 46.4 per episode
        assert value == pytest.approx(46.4, abs=0.05)


# -- portfolio: the Kelly mix is growth-optimal -----------------------------------------------

def _simplex_grid(n: int, step: float) -> np.ndarray:
    k = round(1 / step)
    g = np.stack(np.meshgrid(*[np.arange(k + 1)] * n, indexing="ij"), -1).reshape(-1, n)
    return g[g.sum(1) <= k] / k


@pytest.mark.parametrize("scale", [1.0, 0.25, -1.0])
def test_kelly_weights_match_a_fine_simplex_grid(scale):
    """Budget binding (1.0), cash held (0.25), an asset with negative drift left out (-1.0 flips one)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = (a @ a.T + 3 * np.eye(3)) * 1e-4
    drift = np.array([6e-4, 4e-4, 3e-4]) * abs(scale)
    if scale < 0:
        drift[1] = -2e-4
    w = kelly_weights(drift, cov)
    grid = _simplex_grid(3, 0.005)
    g = growth_rate(grid, drift, cov)
    best = grid[g.argmax()]
    assert growth_rate(w, drift, cov) >= g.max() - 1e-15
    assert np.abs(w - best).max() <= 0.005 + 1e-9
    assert (w >= 0).all() and w.sum() <= 1 + 1e-12
    if scale < 0:
        assert w[1] == 0.0


def test_kelly_weights_maximise_the_exact_expected_log_growth():
    """On three calibrated assets (daily), the Kelly weights maximise E[log(1 + w·(e^r − 1))] (Gauss–Hermite
    quadrature of the env's Gaussian log returns) found by scipy: the continuous-time formula is exact here."""
    from scipy.optimize import minimize

    from ogdata.envs.prices import SyntheticModel

    m = SyntheticModel("gbm", "sp500", ["AAPL", "BBY", "UNH"])
    cov = m.chol[0] @ m.chol[0].T
    mu = m.mean[0].astype(np.float64)
    x, wt = np.polynomial.hermite_e.hermegauss(20)
    Z = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1).reshape(-1, 3)
    W = np.prod(np.stack(np.meshgrid(wt, wt, wt, indexing="ij"), -1).reshape(-1, 3), 1)
    W /= W.sum()
    R = np.expm1(mu + Z @ np.linalg.cholesky(cov).T)

    def exact(w):
        return float(np.log1p(R @ w) @ W)

    res = minimize(lambda v: -1e4 * exact(v), np.full(3, 0.2), method="SLSQP", bounds=[(0, 1)] * 3,
                   constraints=[{"type": "ineq", "fun": lambda v: 1 - v.sum()}], options={"ftol": 1e-15})
    w = kelly_weights(mu + 0.5 * np.diag(cov), cov)
    assert np.abs(w - res.x).max() < 1e-3
    assert exact(w) >= exact(res.x) - 1e-10


def test_kelly_mix_beats_equal_weight_on_portfolio_synth():
    episodes = 2048
    core = make_core("portfolio-synth", num_envs=episodes)
    kelly = episode_returns(core, KellyMix(core), episodes, seed=5)["returns"]
    ew = episode_returns(core, EqualWeight(core), episodes, seed=5)["returns"]   # the same markets
    diff = kelly - ew
    assert diff.mean() > 4 * diff.std(ddof=1) / math.sqrt(episodes)
    k = KellyMix(core)
    assert k.action.sum() == pytest.approx(1.0, abs=1e-6) and 0.2 < 252 * k.growth < 0.35


def test_always_long_is_optimal_on_trading_synth():
    """iid returns with E[r] > 0 and a reward linear in the position: always long earns n·E[r] − c, which
    bounds every policy (each step earns at most E[r], and going long once costs c)."""
    from ogdata.envs.prices import SyntheticModel

    m = SyntheticModel("gbm", "sp500-index")
    mu, var = float(m.mean[0, 0]), float((m.chol[0] @ m.chol[0].T)[0, 0])
    er = math.exp(mu + var / 2) - 1
    episodes = 2048
    core = make_core("trading-synth", num_envs=episodes)
    assert er > 0 and core.n_steps * er > core.cost
    from ogdata.policies.trading import AlwaysLong

    ret = episode_returns(core, AlwaysLong(core), episodes, seed=2)["returns"]
    assert abs(ret.mean() - (core.n_steps * er - core.cost)) < 4 * ret.std(ddof=1) / math.sqrt(episodes)


def test_regime_filter_beats_always_long_on_trading_synth_regime():
    """The best-known expert of trading-synth-regime: the calibrated HMM filter goes flat or short in the
    turbulent (negative-drift) regime and beats the passive benchmark on the same markets."""
    from ogdata.policies.trading import AlwaysLong, RegimeFilter

    episodes = 2048
    core = make_core("trading-synth-regime", num_envs=episodes)
    filt = episode_returns(core, RegimeFilter(core), episodes, seed=4)["returns"]
    long = episode_returns(core, AlwaysLong(core), episodes, seed=4)["returns"]
    diff = filt - long
    assert diff.mean() > 4 * diff.std(ddof=1) / math.sqrt(episodes)


# -- the committed file ------------------------------------------------------------------------

def _script():
    return load_script("compute_references_v1")


def test_references_v1_file_schema():
    doc = load_references_v1()
    assert doc["format"] == "ogdata-references" and doc["version"] == 1
    assert doc["seed"] != doc["selection_seed"]
    assert set(doc["envs"]) == set(list_envs())
    failing = []
    for env_id, e in doc["envs"].items():
        rows = [e["random"], e["expert"], *e["baselines"].values()]
        for r in rows:
            assert r["episodes"] >= 2048
            assert r["se"] == pytest.approx(r["std"] / math.sqrt(r["episodes"]))
            assert np.isfinite([r["mean"], r["std"]]).all()
        x = e["expert"]
        assert x["kind"] in ("optimal", "best-known")
        assert x["mean"] == e["baselines"][x["name"]]["mean"]     # the expert is one of the named rows
        if x["kind"] == "optimal":
            assert x["proof"]
        else:  # chosen on selection markets of the training id, never on the reported ones
            assert x["chosen_on"]["seed"] != e["markets"]["seed"]
            assert x["chosen_on"]["env_id"] == env_id.removesuffix("-eval")
            cands = x["chosen_on"]["candidates"]
            assert cands[x["name"]] == max(cands.values())          # the best on the selection markets
            if env_id.endswith("-eval"):  # held-out ids: never a network (HELD_OUT_RULE)
                assert "trained/best" not in cands and x["held_out_rule"]
        gap = e["gap"]
        assert gap["expert_minus_random"] == pytest.approx(x["mean"] - e["random"]["mean"])
        assert gap["se"] == pytest.approx(math.hypot(x["se"], e["random"]["se"]))
        assert gap["ok"] == (gap["expert_minus_random"] >= 20 * gap["se"])
        if not gap["ok"]:
            failing.append(env_id)
    assert sorted(failing) == doc["failing"]


def test_trained_candidates_are_every_versions_learned_good_checkpoints():
    """A best-known expert considers the learned Good checkpoints of every catalogue version (v1's
    portfolio-sp500 network beats v0's and the Kelly mix), never a fallback tier's expert-with-noise."""
    from ogdata.catalogue import catalogue_versions, recipe

    cands = _script().trained_checkpoints("portfolio-sp500")
    want = [f"checkpoint:{p['checkpoint']}" for v in catalogue_versions()
            for p in recipe("portfolio-sp500", v)["tiers"]["good"]["policies"]]
    assert cands == want and any(c.startswith("checkpoint:v1/") for c in cands)
    assert not any(c.startswith("checkpoint:v1/") for c in _script().trained_checkpoints("portfolio-synth"))
    assert load_references_v1()["envs"]["portfolio-sp500"]["expert"]["checkpoint"].startswith("v1/")


def test_reference_returns_v1_loader(monkeypatch, tmp_path):
    e = reference_returns_v1("market-making-as")
    assert e["expert"]["kind"] == "optimal" and e["expert"]["name"] == "market-making/dp-optimal"
    assert reference_returns_v1("ogdata/market-making-as-v0")["env_id"] == "market-making-as"
    monkeypatch.setattr(ev, "REFERENCES_V1_FILE", tmp_path / "none.json")
    with pytest.raises(ReferenceMissingError, match="compute_references_v1.py --env market-making-as"):
        reference_returns_v1("market-making-as")


@pytest.mark.parametrize("env_id", ["execution-ac", "option-exercise-bermudan", "stat-arb-brent-wti"])
def test_references_v1_reproduce_from_the_script(env_id):
    """Re-running the script's function for a cheap env with the recorded seeds gives every row
    back within its standard error."""
    doc = load_references_v1()
    rec = doc["envs"][env_id]
    new = _script().compute_entry(env_id, rec["markets"]["episodes"], rec["markets"]["seed"],
                                  doc["selection_seed"])
    assert new["expert"]["name"] == rec["expert"]["name"]
    for name in ["random", "expert"]:
        assert abs(new[name]["mean"] - rec[name]["mean"]) <= rec[name]["se"]
    assert set(new["baselines"]) == set(rec["baselines"])
    for name, r in rec["baselines"].items():
        assert abs(new["baselines"][name]["mean"] - r["mean"]) <= r["se"]


def test_trained_rows_name_the_trainer_of_their_id():
    """A multi-agent id's trained checkpoints come from MAPPO; its row and note say so, a single-agent id's PPO."""
    s = _script()
    assert s._label("trained/best", multi_agent=True) == "best trained checkpoint (MAPPO)"
    assert s._label("trained/best") == "best trained checkpoint (PPO)"
    assert "(MAPPO, deterministic)" in s._label("trained/best", s.BEST_KNOWN_NOTES, multi_agent=True)
    assert s._label("random", multi_agent=True) == s.LABELS["random"]
    committed = load_references_v1()["envs"]
    for env_id, entry in committed.items():
        if "trained/best" in entry["baselines"]:
            want = "MAPPO" if env_spec(env_id).multi_agent else "PPO"
            assert f"({want})" in entry["baselines"]["trained/best"]["label"], env_id
