"""Single-agent execution envs: API, determinism, and the Almgren–Chriss economics."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ogdata.envs as E
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import episode_returns, make_policy
from ogdata.policies.execution import ac_trajectory

IDS = ["execution-ac", "execution-ac-highvol"]


def _run(core, actions):
    """Step a core through a (T, B) fraction schedule; returns per-step (rewards, infos) and the final info."""
    core.reset(seed=0)
    rews, infos = [], []
    for a in actions:
        _, r, term, _, info = core.step(a[:, None])
        rews.append(r)
        infos.append(info)
        if term.all():
            break
    return np.array(rews), infos


def test_registered_and_gymnasium_make():
    for env_id in IDS:
        assert env_id in E.list_envs(multi_agent=False)
        assert E.env_spec(env_id).references["expert"] == "execution/ac-optimal"
        env = gymnasium.make(f"ogdata/{env_id}-v0")
        obs, info = env.reset(seed=0)
        assert obs.shape == (7,) and obs[0] == 1.0 and obs[1] == 1.0
        assert {"inventory", "cash", "shortfall", "costs", "wealth"} <= set(info)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    check_env(E.make_env(env_id), skip_render_check=True)


def test_deterministic_under_seed():
    def roll(seed):
        env = E.make_env("execution-ac")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(1)
        out = [obs]
        for _ in range(20):
            obs, r, term, _, _ = env.step(rng.uniform(0, 0.3, 1).astype(np.float32))
            out += [obs, [r]]
        return np.concatenate(out)

    np.testing.assert_array_equal(roll(3), roll(3))
    assert not np.array_equal(roll(3), roll(4))


def test_zero_volatility_zero_impact_any_schedule_gets_X_S0():
    core = E.make_core("execution-ac", num_envs=64, sigma=0.0, eta=0.0, gamma=0.0, half_spread=0.0,
                       unsold_penalty=0.0)
    sched = np.random.default_rng(0).uniform(0, 1, (core.N, 64))  # leaves shares unsold too
    rews, infos = _run(core, sched)
    final = infos[-1]
    np.testing.assert_allclose(final["cash"], core.X * core.S0, rtol=1e-13)
    np.testing.assert_array_equal(rews, 0.0)
    np.testing.assert_array_equal(final["inventory"], 0.0)


def test_impact_cost_equals_closed_form():
    """Shortfall of any schedule at σ=0 is εX + γX²/2 + (η/τ − γ/2) Σ n_k² (Almgren–Chriss)."""
    core = E.make_core("execution-ac", num_envs=16, sigma=0.0)
    sched = np.random.default_rng(1).uniform(0, 0.5, (core.N, 16))
    sched[-1] = 1.0  # sell out at the last step (no terminal penalty)
    rews, infos = _run(core, sched)
    inv = np.stack([np.full(16, core.X)] + [i["inventory"] for i in infos])
    n = -np.diff(inv, axis=0)
    X, eps, eta, gam, tau = core.X, core.eps, core.eta, core.gamma, core.tau
    closed = eps * X + 0.5 * gam * X ** 2 + (eta / tau - 0.5 * gam) * (n ** 2).sum(axis=0)
    np.testing.assert_allclose(infos[-1]["shortfall"], closed, rtol=1e-10)
    np.testing.assert_allclose(infos[-1]["costs"], eps * X + eta / tau * (n ** 2).sum(axis=0), rtol=1e-10)
    # the return is minus the shortfall plus the risk charge λσ²τΣx² (zero here), in bp of X S0
    np.testing.assert_allclose(rews.sum(axis=0), -closed / (X * core.S0) * 1e4, rtol=1e-10)


def test_terminal_penalty_formula():
    """Unsold Q shares are dumped at S_N − ε − ηQ/τ − unsold_penalty."""
    core = E.make_core("execution-ac", num_envs=1, sigma=0.0, unsold_penalty=0.5)
    sched = np.zeros((core.N, 1))
    sched[0] = 0.25
    _, infos = _run(core, sched)
    X, q0 = core.X, 0.25 * core.X
    cash0 = q0 * (core.S0 - core.eps - core.eta / core.tau * q0)
    Q, mid = X - q0, core.S0 - core.gamma * q0
    expect = cash0 + Q * (mid - core.eps - core.eta / core.tau * Q - 0.5)
    np.testing.assert_allclose(infos[-1]["cash"], expect, rtol=1e-12)
    assert len(infos) == core.N and infos[-1]["inventory"][0] == 0


def test_selling_everything_ends_the_episode():
    env = E.make_env("execution-ac", sigma=0.0)
    env.reset(seed=0)
    _, r, term, trunc, info = env.step(np.array([1.0], np.float32))
    assert term and not trunc and info["inventory"] == 0
    core = env.core
    assert info["cash"] == pytest.approx(core.X * (core.S0 - core.eps - core.eta / core.tau * core.X))


def test_return_is_the_mean_variance_objective():
    """Episode return = −(shortfall + λσ²τ Σ x_k²) in bp: AC's objective for a fixed schedule."""
    core = E.make_core("execution-ac", num_envs=32)
    pol = make_policy("execution/ac-optimal", core)
    obs, _ = core.reset(seed=5)
    ret, held = np.zeros(32), np.zeros(32)
    for _ in range(core.N):
        obs, r, term, _, info = core.step(pol(obs, None))
        ret += r
        held += info["inventory"] ** 2
    obj = info["shortfall"] + core.lam * core.sigma ** 2 * core.tau * held
    np.testing.assert_allclose(ret, -obj / (core.X * core.S0) * 1e4, rtol=1e-9)
    np.testing.assert_allclose(info["risk_penalty"], core.lam * core.sigma ** 2 * core.tau * held, rtol=1e-12)


def test_ac_policy_follows_the_closed_form_trajectory():
    for env_id in IDS:
        core = E.make_core(env_id, num_envs=1)  # holdings do not depend on the price noise
        pol = make_policy("execution/ac-optimal", core)
        obs, _ = core.reset(seed=0)
        inv = [core.X]
        for _ in range(core.N):
            obs, _, _, _, info = core.step(pol(obs, None))
            inv.append(info["inventory"][0])
        np.testing.assert_allclose(inv, ac_trajectory(core), rtol=1e-5, atol=1e-3)
    base = ac_trajectory(E.make_core("execution-ac"))
    high = ac_trajectory(E.make_core("execution-ac-highvol"))
    assert (high[1:-1] < base[1:-1]).all()  # more volatility -> sell faster
    assert (base[1:-1] < np.linspace(1e6, 0, 21)[1:-1]).all()  # front-loaded against TWAP


class _NoNoise:
    """Stands in for the core's generator: ξ_k = 0, so the mid moves by permanent impact only and an
    episode's return is exactly its expected value (the noise enters the return linearly, mean zero)."""

    def standard_normal(self, n):
        return np.zeros(n)


def _env_objective(core, holdings) -> tuple[float, np.ndarray]:
    """−(episode return) in $ of the schedule x_0 = X, x_1, ..., x_N = 0 stepped through the env with
    the noise off, and the holdings it realised (its actions are float32 fractions of what is left)."""
    core.rng = _NoNoise()
    core.reset()
    ret, real = 0.0, [core.X]
    for k in range(1, core.N + 1):
        frac = 1.0 if holdings[k] == 0 else 1.0 - holdings[k] / real[-1]
        _, r, _, _, info = core.step(np.array([[frac]], np.float32))
        ret += r[0]
        real.append(info["inventory"][0])
    assert real[-1] == 0
    return -ret * core.X * core.S0 / 1e4, np.array(real)


def _quadratic_objective(core, x) -> float:
    """E[shortfall] + λσ²τ Σ x_k² written out from the dynamics (x_0 = X, x_N = 0, n_k = x_{k-1} − x_k):
    the mid before step k is S0 − γ(X − x_{k-1}), the fill S_{k-1} − ε − η n_k/τ, so
    E[shortfall] = Σ n_k (γ(X − x_{k-1}) + ε + η n_k/τ) = γX²/2 + εX + (η − γτ/2)/τ · Σ n_k²."""
    n = -np.diff(x)
    eta_t = core.eta - 0.5 * core.gamma * core.tau
    return (0.5 * core.gamma * core.X ** 2 + core.eps * core.X + eta_t / core.tau * (n ** 2).sum()
            + core.lam * core.sigma ** 2 * core.tau * (x[1:-1] ** 2).sum())


def _solve_discrete_ac(core) -> np.ndarray:
    """Minimise the quadratic objective by its first-order conditions, a tridiagonal linear system
    in x_1..x_{N-1}:  −x_{k−1} + (2 + λσ²τ²/η̃) x_k − x_{k+1} = 0,  x_0 = X, x_N = 0."""
    N = core.N
    eta_t = core.eta - 0.5 * core.gamma * core.tau
    d = 2.0 + core.lam * core.sigma ** 2 * core.tau ** 2 / eta_t
    A = np.diag(np.full(N - 1, d)) - np.diag(np.ones(N - 2), 1) - np.diag(np.ones(N - 2), -1)
    b = np.zeros(N - 1)
    b[0] = core.X
    return np.concatenate([[core.X], np.linalg.solve(A, b), [0.0]])


_AC_CASES = [("execution-ac", {}), ("execution-ac-highvol", {}), ("execution-ac", {"risk_aversion": 3e-6}),
             ("execution-ac", {"gamma": 5e-6, "eta": 4e-6, "steps": 12, "horizon": 2.0}),
             ("execution-ac", {"risk_aversion": 0.0})]


def test_the_env_return_is_the_quadratic_mean_variance_objective():
    """With the noise off, −return equals the objective the closed form minimises, for any schedule."""
    rng = np.random.default_rng(0)
    for env_id, kw in _AC_CASES:
        core = E.make_core(env_id, num_envs=1, **kw)
        for _ in range(5):
            x = np.concatenate([[core.X], np.sort(rng.uniform(0, core.X, core.N - 1))[::-1], [0.0]])
            cost, real = _env_objective(core, x)
            assert cost == pytest.approx(_quadratic_objective(core, real), rel=1e-9)
            np.testing.assert_allclose(real, x, rtol=1e-6, atol=1e-6 * core.X)  # float32 fractions


def test_closed_form_ac_schedule_solves_the_discrete_problem():
    """Issue #12 item 19: the closed form against an independent linear solve of the discrete
    Almgren–Chriss problem (a sign flipped in κ moves holdings by thousands of shares)."""
    for env_id, kw in _AC_CASES:
        core = E.make_core(env_id, num_envs=1, **kw)
        x = _solve_discrete_ac(core)
        np.testing.assert_allclose(ac_trajectory(core), x, rtol=1e-9, atol=1e-6 * core.X)
        # and it is the minimum of the env's own objective: every perturbation costs more
        best = _quadratic_objective(core, x)
        rng = np.random.default_rng(1)
        for _ in range(20):
            y = x.copy()
            y[1:-1] += rng.normal(0, 1e-3 * core.X, core.N - 1)
            assert _quadratic_objective(core, y) > best
        # the ac-optimal policy, acting from observations, realises those holdings in the env
        pol = make_policy("execution/ac-optimal", core)
        core.rng = _NoNoise()
        obs, _ = core.reset()
        inv = [core.X]
        for _ in range(core.N):
            obs, _, _, _, info = core.step(pol(obs, None))
            inv.append(info["inventory"][0])
        np.testing.assert_allclose(inv, x, rtol=1e-5, atol=1e-6 * core.X)


def test_ac_beats_twap_in_mean_variance():
    """Over many seeds (common random numbers), E[cost] + λ Var[cost] is lower for the AC schedule."""
    for lam in (1e-6, 3e-6):
        core = E.make_core("execution-ac", num_envs=2000, risk_aversion=lam)
        res = {p: episode_returns(core, make_policy(p, core), 2000, seed=7)["final_shortfall"]
               for p in ("execution/ac-optimal", "execution/twap")}
        mv = {p: c.mean() + lam * c.var() for p, c in res.items()}
        assert mv["execution/ac-optimal"] < 0.9 * mv["execution/twap"]
        # it pays more impact to carry less risk
        assert res["execution/ac-optimal"].mean() > res["execution/twap"].mean()
        assert res["execution/ac-optimal"].var() < 0.7 * res["execution/twap"].var()


def test_out_of_bounds_actions_are_clipped_and_nan_rejected():
    def first_step(a):
        env = E.make_env("execution-ac")
        env.reset(seed=0)
        return env.step(np.array([a], np.float32))

    np.testing.assert_array_equal(first_step(5.0)[0], first_step(1.0)[0])
    assert first_step(-3.0)[4]["inventory"] == first_step(0.0)[4]["inventory"] == 1e6
    env = E.make_env("execution-ac")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step(np.array([np.nan], np.float32))
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.array([0.1, 0.2], np.float32))


@pytest.mark.parametrize("kwargs, match", [
    ({"eta": -1e-6}, "eta must be >= 0"),
    ({"gamma": -1.0}, "gamma must be >= 0"),
    ({"sigma": -0.1}, "sigma must be >= 0"),
    ({"sigma": float("nan")}, "sigma must be finite"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"shares": 0}, "shares must be > 0"),
    ({"price": -5}, "price must be > 0"),
    ({"horizon": 0}, "horizon must be > 0"),
    ({"window": 0}, "window must be an integer >= 1"),
    ({"n_agents": 2}, "joint-execution"),
    ({"volatility": 0.3}, "unknown kwargs"),
])
def test_bad_kwargs(kwargs, match):
    with pytest.raises(EnvError, match=match):
        E.make_env("execution-ac", **kwargs)


def test_vector_env_autoresets():
    venv = E.make_vector_env("execution-ac", num_envs=4)
    obs, _ = venv.reset(seed=0)
    act = np.full((4, 1), 0.1, np.float32)
    for t in range(1, 21):
        obs, _, term, _, _ = venv.step(act)
        np.testing.assert_allclose(obs[:, 1], (20 - t) / 20, rtol=1e-6)
    assert term.all()
    obs, rew, term, _, _ = venv.step(act)
    assert (obs[:, :2] == 1.0).all() and (rew == 0).all() and not term.any()
