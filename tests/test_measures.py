"""TQ, SACo / OACo and return statistics against hand-computed values on tiny datasets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

import ogdata
from ogdata import measures as M
from ogdata.errors import DataValidationError, MetadataError, ReferenceMissingError
from ogdata.generate import record_measures
from ogdata.measures.counter import _dedup

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _write(path, obs, act, rew, lengths, **kw):
    n = len(act)
    term = np.zeros(n if rew.ndim == 1 else rew.shape, bool)
    trunc = np.zeros_like(term)
    ends = np.cumsum(lengths) - 1
    trunc[ends] = True
    return ogdata.create_dataset(path, observations=obs, actions=act, rewards=rew, terminations=term,
                                 truncations=trunc, episode_lengths=np.asarray(lengths), **kw)


def _chain(policy, episodes, T, rng):
    """Toy deterministic chain: position 0..T, action 1 = right, 0 = left (floored at 0); reward = new position."""
    obs, act, rew = [], [], []
    for _ in range(episodes):
        s = 0
        o = [s]
        for _t in range(T):
            a = 1 if policy == "expert" else int(rng.integers(2))
            s = s + 1 if a == 1 else max(s - 1, 0)
            act.append(a)
            rew.append(float(s))
            o.append(s)
        obs.extend(o)
    return (np.asarray(obs, np.float32)[:, None], np.asarray(act, np.int64), np.asarray(rew, np.float32),
            [T] * episodes)


def _pairs(obs, act, lengths):
    """The set of (obs, action) pairs, taking the obs each action was taken in (T+1 layout)."""
    out, o, t = set(), 0, 0
    for L in lengths:
        for k in range(L):
            out.add((float(obs[o + k, 0]), int(act[t + k])))
        o += L + 1
        t += L
    return out


# ---------------------------------------------------------------------------------------
# TQ and statistics
# ---------------------------------------------------------------------------------------


def test_tq_hand_values_and_references():
    assert M.tq(np.array([1.0, 2.0, 3.0]), 0.0, 4.0) == pytest.approx(0.5)
    assert M.tq([5.0, 5.0], 5.0, 9.0) == 0.0
    assert M.tq([9.0], 5.0, 9.0) == 1.0
    assert M.tq([-1.0], 0.0, 2.0) == pytest.approx(-0.5)          # below random is allowed (negative)
    with pytest.raises(ReferenceMissingError, match="differ"):
        M.tq([1.0], 3.0, 3.0)
    with pytest.raises(ReferenceMissingError, match="random_return"):
        M.tq([1.0], None, None)
    with pytest.raises(DataValidationError, match="empty"):
        M.tq([], 0.0, 1.0)


def test_tq_is_the_mean_return_not_the_median(tmp_path):
    # a skewed sample: mean 2, median 0, so only the mean gives 0.2 (the median would give 0.0)
    assert M.tq([0.0, 0.0, 0.0, 0.0, 10.0], 0.0, 10.0) == 0.2
    assert M.tq([0.0, 0.0, 0.0, 10.0], -10.0, 10.0) == 0.625        # (2.5 + 10) / 20
    # the same through a Dataset: four one-step episodes with rewards 0, 0, 0, 10
    ds = _write(tmp_path / "skew", np.zeros((8, 1), np.float32), np.zeros(4, np.int64),
                np.array([0, 0, 0, 10], np.float32), [1, 1, 1, 1])
    assert M.tq(ds, -10.0, 10.0) == 0.625


def test_tq_is_zero_for_random_and_one_for_expert_datasets(tmp_path):
    rng = np.random.default_rng(0)
    rnd = _write(tmp_path / "random", *_chain("random", 20, 8, rng))
    exp = _write(tmp_path / "expert", *_chain("expert", 3, 8, rng))
    r_random, r_expert = rnd.episode_returns().mean(), exp.episode_returns().mean()
    assert r_expert == 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8                  # expert walks right every step
    assert M.tq(rnd, r_random, r_expert) == pytest.approx(0.0, abs=1e-12)
    assert M.tq(exp, r_random, r_expert) == pytest.approx(1.0)
    # references recorded in metadata are used when none are passed
    ogdata.storage.update_metadata(exp.path, reference_returns={"random": float(r_random), "expert": 36.0})
    assert M.tq(ogdata.load(exp.path)) == pytest.approx(1.0)


def test_discounted_returns_and_tq(tmp_path):
    rew = np.array([1, 1, 1, 2, 2], np.float64)
    assert M.discounted_returns(rew, [3, 2], 0.5).tolist() == [1.75, 3.0]
    obs = np.zeros((7, 1), np.float32)
    ds = _write(tmp_path / "d", obs, np.zeros(5, np.int64), rew.astype(np.float32), [3, 2])
    assert M.tq(ds, 0.0, 10.0, discount=0.5) == pytest.approx((1.75 + 3.0) / 2 / 10)
    with pytest.raises(ReferenceMissingError, match="same discount"):
        M.tq(ds, discount=0.5)
    with pytest.raises(ValueError, match="per-step rewards"):
        M.tq([1.0, 2.0], 0.0, 1.0, discount=0.9)


def test_return_stats_hand_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    s = M.return_stats(x)
    assert s["mean"] == 4.0 and s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 10.0
    assert s["q25"] == 2.0 and s["q75"] == 4.0 and s["iqr"] == 2.0
    assert s["std"] == pytest.approx(math.sqrt(50 / 4))                       # deviations -3,-2,-1,0,6
    m2, m3, m4 = 50 / 5, (-27 - 8 - 1 + 216) / 5, (81 + 16 + 1 + 1296) / 5
    assert s["skew"] == pytest.approx(m3 / m2**1.5)
    assert s["kurtosis"] == pytest.approx(m4 / m2**2 - 3)
    flat = M.return_stats([2.0, 2.0])
    assert flat["skew"] is None and flat["kurtosis"] is None and flat["std"] == 0.0
    assert M.return_stats([])["mean"] is None
    json.dumps(flat, allow_nan=False)


def test_action_stats():
    d = M.action_stats(np.array([0, 0, 1, 1]), spaces.Discrete(4))
    assert d["dims"][0]["entropy"] == pytest.approx(math.log(2))
    assert d["dims"][0]["normalised_entropy"] == pytest.approx(0.5)
    assert d["dims"][0]["frequencies"] == [0.5, 0.5, 0.0, 0.0]
    c = M.action_stats(np.array([[0.0, 1.0], [2.0, 1.0]]))
    assert c["mean"] == [1.0, 1.0] and c["std"] == [1.0, 0.0] and c["min"] == [0.0, 1.0]
    with pytest.raises(DataValidationError, match="outside the action space"):
        M.action_stats(np.array([0, 5]), spaces.Discrete(3))


# ---------------------------------------------------------------------------------------
# binning
# ---------------------------------------------------------------------------------------


def test_bin_edges_upper_limit_and_clipping():
    lim = M.Limits((M.Part("x", "continuous", np.array([0.0]), np.array([1.0])),), bins=4)
    x = np.array([0.0, 0.1, 0.25, 0.5, 0.99, 1.0, -5.0, 7.0], np.float32)
    # x == high goes in the last bin; values outside the reference's limits are clipped to the edge bins
    assert M.bin_codes(x[:, None], lim)[:, 0].tolist() == [0, 0, 1, 2, 3, 3, 0, 3]
    # float64 data is binned in float64
    assert M.bin_codes(x.astype(np.float64)[:, None], lim)[:, 0].tolist() == [0, 0, 1, 2, 3, 3, 0, 3]


def test_constant_dimension_is_one_bin_and_discrete_is_not_binned():
    lim = M.Limits((M.Part("o", "continuous", np.array([2.0, 0.0]), np.array([2.0, 10.0])),
                    M.Part("a", "discrete", np.array([1.0]), np.array([3.0]))), bins=10)
    assert lim.radices().tolist() == [1, 10, 3]
    codes = M.bin_codes([np.array([[2.0, 5.0], [3.0, 10.0]]), np.array([3, 1])], lim)
    assert codes.tolist() == [[0, 5, 2], [0, 9, 0]]
    with pytest.raises(DataValidationError, match="outside the discrete range"):
        M.bin_codes([np.array([[2.0, 5.0]]), np.array([4])], lim)
    with pytest.raises(DataValidationError, match="NaN"):
        M.bin_codes([np.array([[2.0, np.nan]]), np.array([1])], lim)


def test_mixed_dtypes_and_strided_parts_bin_like_separate_parts():
    rng = np.random.default_rng(8)
    obs = rng.uniform(-3, 3, size=(500, 2, 3))                        # float64, sliced per agent (strided)
    act = rng.uniform(0, 1, size=(500, 2)).astype(np.float32)
    lim = M.Limits.from_arrays([obs[:, 1], act], bins=17)
    joint = M.bin_codes([obs[:, 1], act], lim)
    alone = [M.bin_codes(x, M.Limits((p,), bins=17)) for x, p in zip([obs[:, 1], act], lim.parts)]
    assert np.array_equal(joint, np.concatenate(alone, axis=1))
    assert joint.max() == 16 and joint.min() == 0


def test_limits_json_roundtrip_and_validation():
    lim = M.Limits.from_arrays([np.array([[0.5, -1.0], [1.5, 3.0]], np.float32), np.array([0, 2])], bins=7,
                               discrete=[None, (0, 4)], keys=["observations", "actions"])
    back = M.Limits.from_json(json.loads(json.dumps(lim.to_json())))
    assert back.bins == 7 and back.radices().tolist() == [7, 7, 5]
    assert back.parts[0].low.tolist() == [0.5, -1.0] and back.parts[0].high.tolist() == [1.5, 3.0]
    with pytest.raises(MetadataError, match="recompute"):
        M.Limits.from_json({"bins": 5, "parts": [{"key": "o", "kind": "continuous", "low": [1], "high": [0]}]})


# ---------------------------------------------------------------------------------------
# exact counting
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("radix,width", [(10, 3), (100, 9), (100, 10), (100, 36), (300, 5), (70000, 3)])
def test_packing_is_exact_against_np_unique(radix, width):
    rng = np.random.default_rng(radix + width)
    pool = rng.integers(0, radix, size=(400, width))
    codes = pool[rng.integers(0, len(pool), size=3000)]
    c = M.UniqueCounter([radix] * width).add_codes(codes)
    assert c.single == (radix**width <= 2**64)
    assert c.count() == len(np.unique(codes, axis=0))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=24), st.integers(0, 2**32 - 1),
       st.integers(1, 400))
def test_counts_equal_np_unique_property(radices, seed, n):
    rng = np.random.default_rng(seed)
    r = np.asarray(radices)
    pool = rng.integers(0, r, size=(max(1, n // 3), len(r)))
    codes = pool[rng.integers(0, len(pool), size=n)]
    assert M.UniqueCounter(r).add_codes(codes).count() == len(np.unique(codes, axis=0))


def test_hash_collisions_are_resolved_exactly():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 4, size=(500, 3)).astype(np.uint64)
    truth = len(np.unique(rows, axis=0))
    h = np.zeros(500, np.uint64)                        # every row collides
    assert _dedup([h, rows], need_rows=False) == truth
    h = (rows[:, 0] % np.uint64(3)) << np.uint64(62)     # a (terrible) hash of the row: three colliding groups
    hu, ru = _dedup([h, rows])
    assert len(hu) == truth == len(np.unique(ru, axis=0))


def test_larger_input_with_many_duplicates_is_exact():
    rng = np.random.default_rng(7)
    pool = rng.integers(0, 100, size=(60_000, 36))
    codes = pool[rng.integers(0, len(pool), size=150_000)]
    assert M.UniqueCounter([100] * 36).add_codes(codes).count() == len(np.unique(codes, axis=0))


def test_streaming_compaction_and_growth_stay_exact():
    rng = np.random.default_rng(2)
    pool = rng.integers(0, 100, size=(6000, 20))
    codes = pool[rng.integers(0, len(pool), size=40000)]
    c = M.UniqueCounter([100] * 20, budget_bytes=1)     # tiny buffer: compacts and grows many times
    for part in np.array_split(codes, 17):
        c.add_codes(part)
    assert c.count() == len(np.unique(codes, axis=0))
    assert c.count() == len(np.unique(codes, axis=0))   # counting again is free and stable
    with pytest.raises(RuntimeError, match="counted already"):
        c.add_codes(codes[:1])


def test_duplicates_add_nothing_arrays():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5000, 12)).astype(np.float32)
    lim = M.Limits.from_arrays([x], bins=5)
    u = M.count_unique(x, lim)
    assert M.count_unique(np.concatenate([x, x[rng.permutation(len(x))], x[:7]]), lim) == u
    assert u == len(np.unique(M.bin_codes(x, lim), axis=0))


def test_hyperloglog_mode_within_documented_error():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 100, size=(100_000, 36))          # ~all distinct
    truth = len(np.unique(codes, axis=0))
    est = M.UniqueCounter([100] * 36, exact=False).add_codes(codes).count()
    assert abs(est - truth) / truth < 4 * M.HLL_STANDARD_ERROR
    again = M.UniqueCounter([100] * 36, exact=False).add_codes(np.concatenate([codes, codes[:5000]])).count()
    assert again == est                                        # duplicates never change the registers
    small = rng.integers(0, 3, size=(2000, 4))                 # small-range (linear counting) regime
    assert abs(M.UniqueCounter([3] * 4, exact=False).add_codes(small).count() - 81) <= 2


def test_hyperloglog_estimate_within_its_stated_error_on_known_counts():
    from ogdata.measures.hll import HyperLogLog

    errors = []
    for seed in range(12):
        # ~100,000 distinct random hashes, counted exactly by np.unique: above 2.5 m = 40,960 registers, so the
        # raw HLL regime (not linear counting)
        h = np.unique(np.random.default_rng(seed).integers(0, 2**64, size=100_000, dtype=np.uint64))
        n = len(h)
        hll = HyperLogLog()
        hll.add(h)
        est = hll.estimate()
        hll.add(h[: n // 2])                          # duplicates never move the registers
        assert hll.estimate() == est
        errors.append((est - n) / n)
        assert abs(errors[-1]) < 4 * M.HLL_STANDARD_ERROR
    assert M.HLL_STANDARD_ERROR == HyperLogLog().standard_error == pytest.approx(0.008125)
    # over independent runs the error's spread is the stated one (1.04 / sqrt(2^14) ≈ 0.81%), and unbiased
    rms = float(np.sqrt(np.mean(np.square(errors))))
    assert 0.4 * M.HLL_STANDARD_ERROR < rms < 1.6 * M.HLL_STANDARD_ERROR
    assert abs(float(np.mean(errors))) < 3 * M.HLL_STANDARD_ERROR / math.sqrt(len(errors))


# ---------------------------------------------------------------------------------------
# SACo on datasets
# ---------------------------------------------------------------------------------------


@pytest.fixture()
def chain(tmp_path):
    rng = np.random.default_rng(5)
    rnd = _chain("random", 30, 8, rng)
    exp = _chain("expert", 5, 8, rng)
    replay = tuple(np.concatenate([a, b]) for a, b in zip(rnd[:3], exp[:3])) + (rnd[3] + exp[3],)
    return {"random": (_write(tmp_path / "random", *rnd), rnd), "expert": (_write(tmp_path / "expert", *exp), exp),
            "replay": (_write(tmp_path / "replay", *replay), replay)}


def test_saco_on_toy_chain_matches_hand_counts(chain):
    ref, ref_arrays = chain["replay"]
    u_ref = len(_pairs(ref_arrays[0], ref_arrays[1], ref_arrays[3]))
    for tier in ("random", "expert"):
        ds, arrs = chain[tier]
        cov = M.coverage(ds, ref)
        # positions 0..8 are integers: 100 bins over [0, 8] put each in its own bin
        assert cov["unique_state_actions"] == len(_pairs(arrs[0], arrs[1], arrs[3]))
        assert cov["reference_unique_state_actions"] == u_ref
    assert M.coverage(chain["expert"][0], ref)["unique_state_actions"] == 8      # (0,R), (1,R), ... (7,R)
    assert M.saco(chain["random"][0], ref) > M.saco(chain["expert"][0], ref)
    assert M.saco(ref, ref) == 1.0


def _one_step_episodes(path, obs, act, n_actions):
    """One-step episodes: obs[i] is the observation action i was taken in (final observations all 0.5)."""
    lay = np.full((2 * len(obs), obs.shape[1]), 0.5, np.float32)
    lay[0::2] = obs
    return _write(path, lay, act, np.zeros(len(act), np.float32), [1] * len(act),
                  action_space=spaces.Discrete(n_actions))


def _brute_cells(obs, act, bins, low=0.0, high=1.0):
    """The paper's definition, element by element: a Python set of (binned obs..., action) tuples."""
    cells = set()
    for o, a in zip(obs.tolist(), act.tolist()):
        cells.add(tuple(min(max(math.floor((x - low) * bins / (high - low)), 0), bins - 1) for x in o) + (a,))
    return cells


@pytest.mark.parametrize("bins", [4, 100])
def test_saco_equals_brute_force_set_of_binned_pairs(tmp_path, bins):
    rng = np.random.default_rng(bins)

    def sample(n, cells):
        # values well inside a bin (centre ± 15% of its width), so any float rounding bins them alike
        k = rng.choice(cells, size=(n, 3))
        return ((k + 0.5 + 0.3 * (rng.random((n, 3)) - 0.5)) / bins).astype(np.float32)

    ref_obs = np.concatenate([sample(3000, np.arange(bins)), np.zeros((1, 3)), np.ones((1, 3))]).astype(np.float32)
    ref_act = rng.integers(0, 3, size=len(ref_obs))
    cells = np.arange(0, bins, max(1, bins // 5))                    # a sub-grid: many repeated cells
    ds_obs = np.concatenate([sample(800, cells), [[1.7, -0.4, 0.2]]]).astype(np.float32)   # one row outside
    ds_act = rng.integers(0, 2, size=len(ds_obs))
    ref = _one_step_episodes(tmp_path / "ref", ref_obs, ref_act, 3)
    ds = _one_step_episodes(tmp_path / "ds", ds_obs, ds_act, 3)
    want, want_ref = _brute_cells(ds_obs, ds_act, bins), _brute_cells(ref_obs, ref_act, bins)
    assert 1 < len(want) < len(ds_obs) and len(want_ref) < len(ref_obs)             # duplicates on both sides
    cov = M.coverage(ds, ref, bins=bins)
    assert cov["unique_state_actions"] == len(want)
    assert cov["reference_unique_state_actions"] == len(want_ref)
    assert cov["saco"] == len(want) / len(want_ref)
    assert M.coverage(ds, ref, bins=bins, exact=False)["saco"] == pytest.approx(len(want) / len(want_ref), rel=0.05)


def test_dataset_and_its_copy_concatenated_have_same_u(chain, tmp_path):
    ds, (obs, act, rew, lengths) = chain["random"]
    twice = _write(tmp_path / "twice", np.concatenate([obs, obs]), np.concatenate([act, act]),
                   np.concatenate([rew, rew]), lengths + lengths)
    ref = chain["replay"][0]
    assert M.coverage(twice, ref)["unique_state_actions"] == M.coverage(ds, ref)["unique_state_actions"]


def test_limits_come_from_reference_are_stored_and_reused(chain):
    ref = chain["replay"][0]
    lim = M.bin_limits(ref)
    # limits span the observations actions were taken in (the final position 8 of an episode is not one)
    assert lim["joint"]["parts"][0]["low"] == [0.0] and lim["joint"]["parts"][0]["high"] == [7.0]
    assert lim["joint"]["parts"][1] == {"key": "actions", "kind": "discrete", "low": [0], "high": [1]}
    record_measures(chain["expert"][0], ref, random_return=0.0, expert_return=36.0)
    ref2 = ogdata.load(ref.path)
    assert ref2.measures["saco_limits"]["joint"] == lim["joint"]
    stored = ogdata.load(chain["expert"][0].path).measures
    assert stored["tq"] == 1.0 and stored["unique_state_actions"] == 8
    # stored limits are what later datasets use: coarsen them and the count follows
    coarse = json.loads(json.dumps(lim))
    coarse["joint"]["parts"][0]["high"] = [800.0]                    # positions 0..7 all fall in bin 0
    ogdata.storage.update_metadata(ref.path, measures={"saco_limits": coarse})
    assert M.coverage(chain["random"][0], ogdata.load(ref.path))["unique_state_actions"] == 2


def test_hyperloglog_saco_reports_its_error(chain):
    cov = M.coverage(chain["random"][0], chain["replay"][0], exact=False)
    exact = M.coverage(chain["random"][0], chain["replay"][0])
    assert cov["exact"] is False and cov["relative_error"] == pytest.approx(M.HLL_STANDARD_ERROR * math.sqrt(2))
    assert cov["saco"] == pytest.approx(exact["saco"], rel=0.05)      # tiny counts: linear-counting regime


def test_saco_errors(chain, tmp_path):
    ds = chain["random"][0]
    with pytest.raises(ReferenceMissingError, match="replay"):
        M.coverage(ds, None)
    other = _write(tmp_path / "other", *chain["expert"][1], metadata={"env_id": "some-other-env"})
    ogdata.storage.update_metadata(ds.path, env_id="chain")
    with pytest.raises(DataValidationError, match="one environment"):
        M.coverage(ogdata.load(ds.path), other)


def test_profile_is_json_serialisable(chain):
    ds, ref = chain["random"][0], chain["replay"][0]
    p = M.profile(ds, ref, random_return=0.0, expert_return=36.0)
    json.dumps(p, allow_nan=False)
    assert p["num_transitions"] == 240 and p["num_episodes"] == 30
    assert p["tq"] == pytest.approx(ds.episode_returns().mean() / 36.0)
    _, (obs, act, _, lengths) = chain["random"]
    _, (r_obs, r_act, _, r_lengths) = chain["replay"]
    assert p["saco"] == len(_pairs(obs, act, lengths)) / len(_pairs(r_obs, r_act, r_lengths))
    assert p["action_stats"]["type"] == "discrete" and p["unique_state_actions"] == len(_pairs(obs, act, lengths))
    q = M.profile(ds)
    assert q["saco"] is None and q["tq"] is None


def test_multi_agent_joint_saco_and_per_agent_oaco(tmp_path):
    # episode 1 (4 steps): state s, joint action (a0, a1); agent obs o0, o1
    st1 = [0, 1, 0, 1, 0]
    a1 = [[0, 1], [1, 1], [0, 1], [1, 1]]
    o1 = [[0, 1], [0, 1], [1, 1], [1, 1], [0, 0]]
    # episode 2 only in the reference
    st2 = [1, 1, 1, 1, 1]
    a2 = [[0, 0]] * 4
    o2 = [[1, 0]] * 5

    def mk(path, sts, acts, obss):
        n = sum(len(a) for a in acts)
        return _write(path, np.asarray(sum(obss, []), np.float32)[:, :, None], np.asarray(sum(acts, []), np.int64),
                      np.zeros((n, 2), np.float32), [len(a) for a in acts],
                      states=np.asarray(sum(sts, []), np.float32)[:, None], agents=["a", "b"],
                      action_space=spaces.Discrete(2))

    ds = mk(tmp_path / "d", [st1], [a1], [o1])
    ref = mk(tmp_path / "r", [st1, st2], [a1, a2], [o1, o2])
    cov = M.coverage(ds, ref)
    # joint (s, a0, a1): (0,0,1), (1,1,1) -> 2; the reference adds (1,0,0) -> 3
    assert cov["unique_state_actions"] == 2 and cov["reference_unique_state_actions"] == 3
    # agent a (o, a): (0,0), (0,1), (1,0), (1,1) -> 4 of 4; agent b: (1,1) -> 1 of {(1,1), (0,0)}
    assert cov["unique_obs_actions"] == {"a": 4, "b": 1}
    assert cov["reference_unique_obs_actions"] == {"a": 4, "b": 2}
    assert cov["saco"] == pytest.approx(2 / 3)
    assert cov["oaco"] == pytest.approx((1.0 + 0.5) / 2) == M.oaco(ds, ref)
    p = M.profile(ds, ref, random_return=-1.0, expert_return=1.0)
    json.dumps(p, allow_nan=False)
    assert set(p["action_stats"]["per_agent"]) == {"a", "b"} and p["tq"] == pytest.approx(0.5)
    with pytest.raises(DataValidationError, match="multi-agent"):
        M.oaco(_single(tmp_path), _single(tmp_path, "s2"))


def _single(tmp_path, name="s1"):
    return _write(tmp_path / name, np.zeros((3, 1), np.float32), np.zeros(2, np.int64), np.zeros(2, np.float32), [2])


# ---------------------------------------------------------------------------------------
# coarse SACo (standardise + per-block PCA + grid, fitted on the reference)
# ---------------------------------------------------------------------------------------


def _two_points(tmp_path, name, obs_values, actions):
    """Single-step episodes: obs value o (1-D, continuous), Discrete(2) action a, final obs 0."""
    obs = np.asarray([[v, 0.0][k] for v in obs_values for k in (0, 1)], np.float32)[:, None]
    n = len(actions)
    return _write(tmp_path / name, obs, np.asarray(actions, np.int64), np.zeros(n, np.float32), [1] * n,
                  action_space=spaces.Discrete(2))


def test_coarse_saco_hand_values(tmp_path):
    # reference: obs 0 or 2 (mean 1, std 1 -> z = -1 / +1), both actions, each pair twice: 8 rows, 4 cells
    ref = _two_points(tmp_path, "ref", [0, 2, 0, 2] * 2, [0, 0, 1, 1] * 2)
    p = M.coarse_params(ref, candidates=(2, 3))
    v = p["views"]["joint"]
    assert v["state"]["mean"] == [1.0] and v["state"]["scale"] == [1.0] and v["state"]["components"] == [[1.0]]
    assert v["action"] == {"key": "actions", "kind": "discrete", "low": [0], "high": [1]}
    assert v["low"] == [-3.0] and v["high"] == [3.0]                 # ±3 reference std of the component
    # 4 cells <= 50% of 8 rows at both b = 2 and b = 3: the larger is taken
    assert v["bins"] == 3 and v["reference_unique_by_bins"] == [4, 4] and v["dims"] == 2
    # b = 3 over [-3, 3]: z = -1 -> bin 1, z = +1 -> bin 2; obs 0.1 (z = -0.9) shares bin 1 with obs 0;
    # obs 9 (z = 8) is clipped into the edge bin 2 with obs 2
    ds = _two_points(tmp_path, "ds", [0, 0.1, 0, 9], [0, 0, 0, 1])
    cov = M.coarse_coverage(ds, ref, p)
    assert cov["unique_coarse_cells"] == 2 and cov["reference_unique_coarse_cells"] == 4
    assert cov["saco_coarse"] == 0.5 and cov["coarse_bins"] == 3 and cov["coarse_dims"] == 2
    assert M.saco_coarse(ref, ref, p) == 1.0


def test_coarse_duplicates_add_nothing_and_reference_is_one(chain, tmp_path):
    ds, (obs, act, rew, lengths) = chain["random"]
    ref = chain["replay"][0]
    twice = _write(tmp_path / "twice", np.concatenate([obs, obs]), np.concatenate([act, act]),
                   np.concatenate([rew, rew]), lengths + lengths)
    a, b = M.coarse_coverage(ds, ref), M.coarse_coverage(twice, ref)
    assert a["unique_coarse_cells"] == b["unique_coarse_cells"] > 0
    assert a["saco_coarse_params"] == b["saco_coarse_params"]          # one fit, from the reference alone
    assert M.saco_coarse(ref, ref) == 1.0
    # the grid is not saturated by its own reference: at most 50% of its transitions are unique cells
    v = a["saco_coarse_params"]["views"]["joint"]
    assert v["reference_unique"] <= 0.5 * len(ref)
    bigger = [u for c, u in zip(a["saco_coarse_params"]["candidates"], v["reference_unique_by_bins"]) if c > v["bins"]]
    assert all(u > 0.5 * len(ref) for u in bigger)


def test_coarse_random_covers_more_than_expert_on_chain(chain):
    ref = chain["replay"][0]
    r, e = M.saco_coarse(chain["random"][0], ref), M.saco_coarse(chain["expert"][0], ref)
    assert r > e > 0


def _point_task(tmp_path, name, policy, episodes, rng, T=10):
    """Toy deterministic 3-D point task: obs (x, y, noise), action (dx, dy) in [-1, 1]^2, x' = x + 0.1 a.
    The expert always pushes to the corner (+1, +1); random acts uniformly."""
    obs, act = [], []
    for _ in range(episodes):
        x = rng.uniform(-1, 1, size=2)
        for _t in range(T):
            a = np.ones(2) if policy == "expert" else rng.uniform(-1, 1, size=2)
            obs.append([*x, rng.normal()])
            act.append(a)
            x = x + 0.1 * a
        obs.append([*x, rng.normal()])
    n = episodes * T
    return _write(tmp_path / name, np.asarray(obs, np.float32), np.asarray(act, np.float32), np.zeros(n, np.float32),
                  [T] * episodes)


def test_coarse_separates_tiers_where_fine_saco_saturates(tmp_path):
    rng = np.random.default_rng(3)
    rnd = _point_task(tmp_path, "random", "random", 60, rng)
    exp = _point_task(tmp_path, "expert", "expert", 60, rng)
    both = [rnd.arrays(), exp.arrays()]
    ref = _write(tmp_path / "replay", *(np.concatenate([a[k] for a in both]) for k in ("observations", "actions",
                                                                                       "rewards")),
                 [10] * 120)
    # 100 bins on 5 continuous dims: (almost) every transition is its own cell, so SACo is ≈ N / N_ref for both
    assert M.saco(rnd, ref) == pytest.approx(0.5, abs=0.005) and M.saco(exp, ref) == pytest.approx(0.5, abs=0.005)
    cr, ce = M.coarse_coverage(rnd, ref), M.coarse_coverage(exp, ref)
    v = cr["saco_coarse_params"]["views"]["joint"]
    assert len(v["state"]["variance"]) == 3 and len(v["action"]["variance"]) == 2 and cr["coarse_dims"] == 5
    assert cr["saco_coarse"] > 2 * ce["saco_coarse"]


def _brute_coarse_cells(state, action, ref_state, ref_action, b, k_state, k_action, clip=3.0):
    """Coarse cells computed independently: standardise with the reference's mean / std (ddof 0), project on
    the reference's principal components from an SVD of the standardised reference, bin over ±clip sd."""
    zs, sds = [], []
    for x, r, k in ((state, ref_state, k_state), (action, ref_action, k_action)):
        r, x = r.astype(np.float64), x.astype(np.float64)
        mean, std = r.mean(axis=0), r.std(axis=0)
        _, sv, vt = np.linalg.svd((r - mean) / std, full_matrices=False)
        zs.append(((x - mean) / std) @ vt[:k].T)
        sds.append(sv[:k] / math.sqrt(len(r)))
    z, sd = np.concatenate(zs, axis=1), np.concatenate(sds)
    codes = np.clip(np.floor((z + clip * sd) * b / (2 * clip * sd)), 0, b - 1).astype(int)
    return {tuple(row) for row in codes.tolist()}


def test_coarse_saco_equals_an_independent_computation(tmp_path):
    rng = np.random.default_rng(11)
    mix = np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]])

    def sample(n, s_scale, a_scale):
        s = (rng.standard_normal((n, 3)) * s_scale) @ mix + np.array([5.0, -2.0, 0.5])
        return s.astype(np.float32), (rng.standard_normal((n, 2)) * a_scale).astype(np.float32)

    def write(name, s, a):                                           # one-step episodes, final obs = obs
        return _write(tmp_path / name, np.repeat(s, 2, axis=0), a, np.zeros(len(a), np.float32), [1] * len(a))

    rs, ra = sample(1500, np.array([3.0, 1.0, 0.3]), np.array([2.0, 0.5]))
    s, a = sample(400, np.array([1.0, 1.0, 0.3]), np.array([0.5, 0.5]))
    s[:3] += 100.0                                                   # far outside: clipped into edge bins
    ref, ds = write("ref", rs, ra), write("ds", s, a)
    cov = M.coarse_coverage(ds, ref)
    v = cov["saco_coarse_params"]["views"]["joint"]
    # k = 6: 2 action components, the state gets the other 4 but has only 3 dimensions
    assert len(v["state"]["variance"]) == 3 and len(v["action"]["variance"]) == 2 and cov["coarse_dims"] == 5
    want_by_b = [len(_brute_coarse_cells(rs, ra, rs, ra, b, 3, 2)) for b in M.COARSE_CANDIDATES]
    assert v["reference_unique_by_bins"] == want_by_b
    b = max(c for c, u in zip(M.COARSE_CANDIDATES, want_by_b) if u <= M.COARSE_SATURATION * len(rs))
    assert 2 < b < max(M.COARSE_CANDIDATES) and cov["coarse_bins"] == b        # the rule picked an inner b
    want = _brute_coarse_cells(s, a, rs, ra, b, 3, 2)
    assert cov["unique_coarse_cells"] == len(want)
    assert cov["reference_unique_coarse_cells"] == want_by_b[M.COARSE_CANDIDATES.index(b)]
    assert cov["saco_coarse"] == len(want) / want_by_b[M.COARSE_CANDIDATES.index(b)]


def test_coarse_params_stored_on_reference_and_reused(chain):
    ref, ds = chain["replay"][0], chain["expert"][0]
    record_measures(ref, ref, random_return=0.0, expert_return=36.0)
    stored = ogdata.load(ref.path).measures
    assert stored["saco_coarse"] == 1.0 and stored["saco_coarse_params"] == M.coarse_params(ref)
    prof = record_measures(ds, ogdata.load(ref.path), random_return=0.0, expert_return=36.0)
    m = ogdata.load(ds.path).measures
    assert "saco_coarse_params" not in m                                 # the parameters live on the reference
    assert m["saco_coarse"] == prof["saco_coarse"] and m["saco_coarse_reference"] == stored["saco_coarse_reference"]
    json.dumps(prof, allow_nan=False)
    # the stored parameters are what later datasets use: one bin per projected column -> only actions count
    coarse = json.loads(json.dumps(stored["saco_coarse_params"]))
    coarse["views"]["joint"]["bins"] = 1
    ogdata.storage.update_metadata(ref.path, measures={**stored, "saco_coarse_params": coarse})
    cov = M.coarse_coverage(chain["random"][0], ogdata.load(ref.path))
    assert cov["unique_coarse_cells"] == 2 and cov["coarse_bins"] == 1
    # other settings refit instead of reusing; malformed parameters fail clearly
    assert M.coarse_coverage(ds, ogdata.load(ref.path), k=3)["coarse_bins"] == stored["coarse_bins"]
    with pytest.raises(MetadataError, match="malformed"):
        M.coarse_coverage(ds, ref, {"views": {"joint": {"state": {"kind": "continuous"}}}})
    with pytest.raises(ValueError, match="saturation"):
        M.coarse_coverage(ds, ref, saturation=0.0)
    with pytest.raises(ReferenceMissingError, match="replay"):
        M.coarse_coverage(ds, None)


def test_multi_agent_coarse_saco_and_oaco(tmp_path):
    st = [[0, 1, 0, 1, 0], [1, 1, 1, 1, 1]]
    acts = [[[0, 1], [1, 1], [0, 1], [1, 1]], [[0, 0]] * 4]
    obs = [[[0, 1], [0, 1], [1, 1], [1, 1], [0, 0]], [[1, 0]] * 5]

    def mk(path, k):
        n = 4 * k
        return _write(path, np.asarray(sum(obs[:k], []), np.float32)[:, :, None],
                      np.asarray(sum(acts[:k], []), np.int64), np.zeros((n, 2), np.float32), [4] * k,
                      states=np.asarray(sum(st[:k], []), np.float32)[:, None], agents=["a", "b"],
                      action_space=spaces.Discrete(2))

    ds, ref = mk(tmp_path / "d", 1), mk(tmp_path / "r", 2)
    cov = M.coarse_coverage(ds, ref)
    # two state values, two discrete action codes: the same cells as the fine SACo (2 of 3; agents 4/4 and 1/2)
    assert cov["saco_coarse"] == pytest.approx(2 / 3) and cov["coarse_dims"] == 3
    assert cov["oaco_coarse_per_agent"] == {"a": 1.0, "b": 0.5} and cov["oaco_coarse"] == 0.75
    assert set(cov["saco_coarse_params"]["views"]) == {"joint", "agent:a", "agent:b"}


# ---------------------------------------------------------------------------------------
# purity and bad input
# ---------------------------------------------------------------------------------------


def test_measures_import_nothing_of_ogdata_but_errors():
    """Measures are pure: no policies (references are passed in), no storage writes, no Dataset class
    (the errors and the progress bar are all they use of ogdata)."""
    import ast
    from pathlib import Path

    root = Path(M.__file__)
    files = sorted(root.parent.glob("*.py")) if root.name == "__init__.py" else [root]
    found = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):                    # module- and function-level imports
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            found |= {(f.name, n) for n in names if n.split(".")[0] == "ogdata"}
    bad = {(f, n) for f, n in found if n not in ("ogdata.errors", "ogdata.progress")
           and not n.startswith("ogdata.measures")}
    assert not bad


def test_profile_uses_only_the_reference_returns_it_is_given(tmp_path):
    # a dataset of a registered env that records no reference returns: the measures do not look them up
    ds = _write(tmp_path / "d", np.zeros((3, 1), np.float32), np.zeros(2, np.int64), np.array([1, 3], np.float32),
                [2], metadata={"env_id": "execution-ac"})
    assert not ds.metadata.get("reference_returns")
    assert M.profile(ds)["tq"] is None
    with pytest.raises(ReferenceMissingError, match="reference_returns"):
        M.tq(ds)
    p = M.profile(ds, reference_returns={"random": 0.0, "expert": 8.0})
    assert p["tq"] == 0.5 and p["reference_returns"] == {"random": 0.0, "expert": 8.0}
    # recorded ones come first, explicit ones first of all
    assert M.reference_returns_for(ds, 1.0, 2.0, {"random": 0.0, "expert": 8.0}) == (1.0, 2.0)


def test_recorded_measures_says_what_goes_where_and_writes_nothing(chain):
    ds, ref = chain["expert"][0], chain["replay"][0]
    files = {p: p.read_bytes() for p in (ds.path / "metadata.json", ref.path / "metadata.json")}
    prof = M.profile(ds, ref, random_return=0.0, expert_return=36.0)
    mine, theirs = M.recorded_measures(ds, ref, prof)
    assert "saco_coarse_params" not in mine and mine["saco"] == prof["saco"] and mine["tq"] == 1.0
    assert theirs["saco_limits"] == prof["saco_limits"] and theirs["saco_coarse_params"] == prof["saco_coarse_params"]
    assert {p: p.read_bytes() for p in files} == files                   # pure: nothing written
    own = M.profile(ref, ref, random_return=0.0, expert_return=36.0)
    mine, theirs = M.recorded_measures(ref, ref, own)
    assert theirs is None and mine["saco_coarse_params"] == own["saco_coarse_params"]


class _InMemory:
    """A duck-typed dataset (what the measures accept): here with zero-width observations, which the
    storage layer refuses, so only an in-memory object can carry them."""

    multi_agent, env_id, dataset_id, agents, _arrays = False, None, "mem", None, {}

    def __init__(self, obs, act):
        self.obs, self.act, self.metadata, self.measures = obs, act, {}, {}
        self.observation_space = spaces.Box(-1, 1, shape=obs.shape[1:])
        self.action_space = spaces.Discrete(2)

    def __len__(self):
        return len(self.act)

    def iter_chunks(self, chunk_size=1 << 20, keys=None):
        yield {k: v for k, v in (("observations", self.obs), ("actions", self.act)) if keys is None or k in keys}


def test_zero_width_observations_and_actions_raise_a_data_validation_error():
    empty = np.zeros((6, 0), np.float32)
    act = np.array([0, 1, 0, 1, 1, 0])
    with pytest.raises(DataValidationError, match="zero columns"):
        M.Limits.from_arrays([empty, act], discrete=[None, (0, 1)])
    with pytest.raises(DataValidationError, match="zero columns"):
        M.Part("observations", "continuous", np.zeros(0), np.zeros(0))
    with pytest.raises(MetadataError, match="zero columns"):           # stored limits with an empty part
        M.Limits.from_json({"bins": 5, "parts": [{"key": "o", "kind": "continuous", "low": [], "high": []}]})
    with pytest.raises(DataValidationError, match="zero columns"):
        M.action_stats(np.zeros((4, 0)))
    mem = _InMemory(empty, act)
    with pytest.raises(DataValidationError, match="'observations' has zero columns"):
        M.coverage(mem, mem)
    with pytest.raises(DataValidationError, match="'observations' has zero columns"):
        M.coarse_coverage(mem, mem)
