"""Bad actions and bad env kwargs get ogdata errors that say what is wrong (issue #12, items 12 and 14).

Action semantics, exactly: an action batch must have shape (B, *action_space.shape) (never
reshaped); Box actions are real numbers (float, int or bool) and every finite value beyond the
bounds, 1e39 included, is clipped to them; NaN/inf, strings, complex and object actions raise.
Discrete actions are integers (or integral floats) in range, reported as given when not.
Env kwargs are checked against admissible ranges at construction, so no kwarg can make an
episode overflow.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ogdata
from ogdata.envs import execution as ex_mod
from ogdata.envs import make_core
from ogdata.envs import market_making as mm_mod
from ogdata.errors import EnvError, InvalidActionError


def _env(env_id, **kw):
    env = ogdata.make_env(env_id, **kw)
    env.reset(seed=0)
    return env


def test_string_action_is_an_invalid_action():
    for env_id in ("portfolio-synth", "trading-synth", "execution-ac", "market-making-as", "option-exercise-heston",
                   "stat-arb-brent-wti"):
        with pytest.raises(InvalidActionError, match="must be .*(real numbers|integers).*got dtype <U3"):
            _env(env_id).step("abc")
    with pytest.raises(InvalidActionError, match="not an array of numbers"):
        _env("portfolio-synth").step([[1, 2], [3]])


def test_wrong_shape_is_never_reshaped():
    env = _env("portfolio-synth")
    with pytest.raises(InvalidActionError, match=r"shape \(1, 1, 21, 1\).*action_space.shape = \(21,\)"):
        env.step(np.full((1, 21, 1), 0.5, np.float32))
    with pytest.raises(InvalidActionError, match="never reshaped"):
        env.step(np.full((21, 1), 0.5, np.float32))
    core = make_core("portfolio-synth", num_envs=2)
    core.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"shape \(42,\), expected \(2, 21\)"):
        core.step(np.full(42, 0.5, np.float32))
    with pytest.raises(InvalidActionError, match="shape"):
        _env("execution-ac").step(0.5)  # a scalar is not a (1,) action, as in gymnasium's Box.contains
    trading = make_core("trading-synth", num_envs=3)
    trading.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"shape \(3, 1\), expected \(3,\)"):
        trading.step(np.ones((3, 1), np.int64))


def test_complex_actions_are_rejected_not_truncated():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning would mean the imaginary part was dropped
        with pytest.raises(InvalidActionError, match="real numbers, got dtype complex128"):
            _env("portfolio-synth").step(np.full(21, 0.5 + 1j))
        with pytest.raises(InvalidActionError, match="integers in \\[0, 2\\], got dtype complex128"):
            _env("trading-synth").step(1 + 0j)


def test_huge_finite_box_actions_are_clipped_like_any_out_of_bounds_value():
    """1e39 is finite: it is clipped to the bound (it used to be rejected as "NaN or inf")."""
    def run(actions):
        env = _env("execution-ac")
        return [env.step(a)[:2] for a in actions]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "overflow encountered in cast"
        huge = run([np.array([1e39]), [-1e300], np.array([1e39], np.float64)])
    same = run([np.float32([1.0]), np.float32([0.0]), np.float32([1.0])])
    for (o1, r1), (o2, r2) in zip(huge, same, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    core = make_core("portfolio-synth", num_envs=2)
    np.testing.assert_array_equal(core.check_actions(np.full((2, 21), 1e39)), np.ones((2, 21), np.float32))
    assert core.check_actions(np.full((2, 21), 1e39)).dtype == np.float32
    with pytest.raises(InvalidActionError, match="NaN or inf"):
        core.check_actions(np.full((2, 21), np.inf))
    with pytest.raises(InvalidActionError, match="NaN or inf"):
        core.check_actions(np.full((2, 21), np.nan, np.float32))


def test_float64_and_integer_box_actions_match_float32_exactly():
    core = make_core("portfolio-synth", num_envs=64)
    rng = np.random.default_rng(0)
    a64 = rng.uniform(-0.5, 1.5, (64, 21)) * rng.choice([1e-30, 1.0, 1e20], (64, 21))
    np.testing.assert_array_equal(core.check_actions(a64),
                                  np.clip(a64.astype(np.float32), np.float32(0), np.float32(1)))
    np.testing.assert_array_equal(core.check_actions(np.ones((64, 21), np.int64)), np.ones((64, 21), np.float32))


def test_discrete_out_of_range_reports_the_real_value():
    env = _env("trading-synth")
    with pytest.raises(InvalidActionError, match="got 18446744073709551615..18446744073709551615"):
        env.step(np.uint64(2**64 - 1))
    with pytest.raises(InvalidActionError, match=r"got 1000000000000000019884624838656\.\."):
        env.step(1e30)
    with pytest.raises(InvalidActionError, match="got -3..-3, expected integers in \\[0, 2\\]"):
        env.step(np.int8(-3))
    with pytest.raises(InvalidActionError, match="integers in \\[0, 2\\], got dtype object"):
        env.step(2**64)
    with pytest.raises(InvalidActionError, match="not an integer"):
        env.step(1.5)
    env.step(np.uint64(2))  # in-range unsigned and bool actions are fine
    env.step(np.array(True))


@pytest.mark.parametrize("env_id, kwargs, match", [
    ("execution-ac", {"risk_aversion": 1e300}, r"risk_aversion=1e\+300 is out of range: pass a value in \[0, 1e\+06\]"),
    ("execution-ac", {"sigma": 1e300}, r"sigma=1e\+300 is out of range: pass a value in \[0, 1e\+06\]"),
    ("execution-ac", {"shares": 1e300}, r"shares=1e\+300 is out of range"),
    ("execution-ac", {"price": 1e-300}, r"price=1e-300 is out of range: pass a value in \[1e-06, 1e\+09\]"),
    ("execution-ac", {"eta": 10**400}, r"eta=1000000000\d+\.\.\. is out of range: pass a value in \[0, 1e\+06\]"),
    ("execution-ac", {"steps": 10**9}, r"steps=1000000000 is out of range: pass an integer in \[1, 1000000\]"),
    ("joint-execution-2", {"split": [1e300, 1e-300]}, "less than 1e-9"),
    ("market-making-as", {"sigma": 1e300}, r"sigma=1e\+300 is out of range: pass a value in \[0, 1e\+06\]"),
    ("market-making-as", {"running_penalty": 1e300}, "running_penalty=1e\\+300 is out of range"),
    ("market-making-as", {"max_inventory": 10**30}, r"max_inventory=\d+ is out of range: pass a value in \[1, 1e\+06\]"),
    ("market-making-as", {"kappa": 1e-300}, r"kappa=1e-300 is out of range"),
    ("portfolio-synth", {"n_steps": 10**12}, r"n_steps=1000000000000 is out of range"),
    ("trading-synth", {"window": 10**9}, r"window=1000000000 is out of range"),
])
def test_kwargs_outside_their_admissible_range(env_id, kwargs, match):
    with pytest.raises(EnvError, match=match):
        ogdata.make_env(env_id, **kwargs)


def _log_uniform(lo, hi):
    """Values spread over the decades of [lo, hi] (0 included when lo is 0), the bounds themselves too."""
    if lo == 0:
        return st.one_of(st.just(0.0), st.just(hi), st.floats(-6, math.log10(hi)).map(lambda e: 10.0 ** e))
    return st.one_of(st.just(lo), st.just(hi), st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0 ** e))


def _finite_episode(core, seed):
    """Random, all-min and all-max actions through a whole episode: every output stays finite."""
    rng = np.random.default_rng(seed)
    sp = core.action_space
    for pick in ("random", "low", "high"):
        obs, _ = core.reset(seed=seed)
        for _ in range(core.max_steps):
            if pick == "random":
                a = rng.uniform(sp.low, sp.high, (core.num_envs,) + sp.shape).astype(np.float32)
            else:
                a = np.broadcast_to(sp.low if pick == "low" else sp.high, (core.num_envs,) + sp.shape)
            obs, rew, term, trunc, info = core.step(a)
            assert np.isfinite(rew).all() and np.isfinite(obs).all(), (pick, rew)
            assert all(np.isfinite(v).all() for v in info.values())
            if np.all(term | trunc):
                break


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.fixed_dictionaries({k: _log_uniform(lo, hi) for k, (lo, hi, _) in ex_mod.RANGES.items()}),
       steps=st.sampled_from([1, 3, 20]), seed=st.integers(0, 2**16))
def test_execution_admissible_kwargs_give_finite_episodes(params, steps, seed):
    _finite_episode(make_core("execution-ac", num_envs=4, steps=steps, **params), seed)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.fixed_dictionaries({k: _log_uniform(lo, hi) for k, (lo, hi, _) in mm_mod.RANGES.items()
                                     if k in ("sigma", "kappa", "terminal_time", "max_depth",
                                              "running_penalty", "terminal_penalty")}),
       price=st.sampled_from([-1e9, 0.0, 100.0, 1e9]), q=st.sampled_from([1, 20, 1_000_000]),
       seed=st.integers(0, 2**16))
def test_market_making_admissible_kwargs_give_finite_episodes(params, price, q, seed):
    _finite_episode(make_core("market-making-as", num_envs=4, n_steps=30, initial_price=price,
                              intensity=min(30.0, 27.0 / params["terminal_time"]),
                              max_inventory=q, **params), seed)


def test_multi_agent_actions_that_do_not_form_one_array():
    env = ogdata.make_env("multi-market-making-2")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="do not form one array"):
        env.step({"maker_0": np.ones(2, np.float32), "maker_1": np.ones(3, np.float32)})
    with pytest.raises(InvalidActionError, match="real numbers, got dtype <U"):
        env.step({"maker_0": "ab", "maker_1": "cd"})
    with pytest.raises(InvalidActionError, match=r"shape \(1, 2, 2, 1\)"):
        env.step({"maker_0": np.ones((2, 1), np.float32), "maker_1": np.ones((2, 1), np.float32)})
