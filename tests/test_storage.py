"""Native format: round trips, episode boundaries, sampling, atomicity, corruption, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_flat_episodes
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ogdata
from ogdata.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    DataValidationError,
    FormatVersionError,
    IntegrityError,
    InvalidIdError,
    MetadataError,
)
from ogdata.storage import update_metadata, verify

KEYS = ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths")


def assert_same(a, b, keys=KEYS):
    for k in keys:
        x, y = a.arrays()[k], b.arrays()[k]
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), k


@pytest.mark.parametrize("discrete", [None, 4])
@pytest.mark.parametrize("n_agents", [None, 3])
def test_round_trip_all_layouts(tmp_path, discrete, n_agents):
    rng = np.random.default_rng(1)
    arrs = make_flat_episodes(rng, [5, 1, 7, 3], discrete=discrete, n_agents=n_agents)
    ds = ogdata.create_dataset(tmp_path / "d", metadata={"env_id": None, "tier": "good"}, **arrs)
    assert (len(ds), ds.num_episodes, ds.multi_agent) == (16, 4, bool(n_agents))
    for k in KEYS:
        assert np.array_equal(ds.arrays()[k], arrs[k]), k
    if n_agents:
        assert np.array_equal(ds.arrays()["states"], arrs["states"])
        assert ds.agents == arrs["agents"]
    # episodes: T+1 observations, flags only at the end
    eps = list(ds.iter_episodes(block_transitions=6))
    assert [len(e) for e in eps] == [5, 1, 7, 3]
    assert all(len(e.observations) == len(e) + 1 for e in eps)
    assert np.array_equal(np.concatenate([e.observations for e in eps]), arrs["observations"])
    assert np.array_equal(ds.episode(2).actions, eps[2].actions)
    np.testing.assert_allclose(ds.episode_returns(), [e.total_reward for e in eps], rtol=1e-6)
    # the same through a fresh, lazily-read Dataset
    lazy = ogdata.load(tmp_path / "d")
    assert np.array_equal(lazy.episode(-1).observations, eps[-1].observations)
    # HDF5 out and back is byte-exact, metadata included
    h5 = ds.to_hdf5(tmp_path / "d.h5")
    with h5py.File(h5) as f:
        assert {"observations", "next_observations", "actions", "rewards", "terminals", "timeouts"} <= set(f)
        assert len(f["observations"]) == 16
    back = ogdata.from_hdf5(h5, tmp_path / "back")
    assert_same(ds, back)
    assert back.observation_space == ds.observation_space and back.action_space == ds.action_space
    assert back.metadata["tier"] == "good"
    verify(tmp_path / "back")


def test_spaces_round_trip_through_metadata(tmp_path):
    rng = np.random.default_rng(0)
    arrs = make_flat_episodes(rng, [4, 4])
    osp = spaces.Box(low=np.array([-1, -np.inf, 0], np.float32), high=np.array([1, np.inf, 5], np.float32))
    asp = spaces.Box(-1, 1, (2,), np.float32)
    arrs["observations"] = np.clip(arrs["observations"], -1, 1)
    ogdata.create_dataset(tmp_path / "d", observation_space=osp, action_space=asp, **arrs)
    re = ogdata.load(tmp_path / "d")
    assert re.observation_space == osp and re.action_space == asp


def _reference_stream(rng, B, steps, max_len):
    """Random interleaved episodes of B envs, plus the per-env truth in order."""
    obs = rng.standard_normal((B, 2)).astype(np.float32)
    t = np.zeros(B, int)
    L = rng.integers(1, max_len + 1, size=B)
    stream, truth = [], {b: [] for b in range(B)}
    cur = {b: {"obs": [obs[b]], "act": [], "term": [], "trunc": []} for b in range(B)}
    for _ in range(steps):
        a = rng.uniform(-1, 1, (B, 1)).astype(np.float32)
        nxt = rng.standard_normal((B, 2)).astype(np.float32)
        t += 1
        done = t >= L
        term = done & (rng.random(B) < 0.5)
        trunc = done & ~term
        stream.append((obs.copy(), a, np.zeros(B), term, trunc, nxt.copy()))
        for b in range(B):
            cur[b]["act"].append(a[b])
            cur[b]["term"].append(term[b])
            cur[b]["trunc"].append(trunc[b])
            cur[b]["obs"].append(nxt[b].copy())
            if done[b]:
                truth[b].append(cur[b])
                L[b] = rng.integers(1, max_len + 1)
                t[b] = 0
                nxt[b] = rng.standard_normal(2)
                cur[b] = {"obs": [nxt[b].copy()], "act": [], "term": [], "trunc": []}
        obs = nxt
    return stream, truth, cur


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 5), steps=st.integers(1, 30), max_len=st.integers(1, 8), flush=st.integers(1, 40),
       seed=st.integers(0, 2**16), incomplete=st.sampled_from(["truncate", "drop"]))
def test_writer_episode_boundaries_property(tmp_path_factory, B, steps, max_len, flush, seed, incomplete):
    """Interleaved episodes from B envs come out contiguous, in (env, time) order, none lost."""
    rng = np.random.default_rng(seed)
    stream, truth, cur = _reference_stream(rng, B, steps, max_len)
    path = tmp_path_factory.mktemp("w") / "d"
    w = ogdata.DatasetWriter(path, spaces.Box(-np.inf, np.inf, (2,), np.float32),
                             spaces.Box(-1, 1, (1,), np.float32), B, flush_rows=flush)
    for s in stream:
        w.add(*s)
    ds = w.close(incomplete=incomplete)
    expected = []
    for b in range(B):
        eps = list(truth[b])
        if incomplete == "truncate" and cur[b]["act"]:
            tail = dict(cur[b])
            tail["trunc"] = tail["trunc"][:-1] + [True]
            eps.append(tail)
        expected.extend(eps)
    # the writer emits per flush in (env, step) order; compare as a multiset keyed by first obs
    got = {e.observations[0].tobytes(): e for e in ds.iter_episodes()}
    assert len(got) == len(expected) == ds.num_episodes
    for ex in expected:
        e = got[np.asarray(ex["obs"][0]).tobytes()]
        assert np.array_equal(e.observations, np.array(ex["obs"]))
        assert np.array_equal(e.actions, np.array(ex["act"]))
        assert e.terminations.tolist() == ex["term"] and e.truncations.tolist() == ex["trunc"]
    assert len(ds) == sum(len(x["act"]) for x in expected)
    if len(ds):
        b = ds.sample(64, rng=seed)
        # every sampled next observation follows its observation inside one stored episode
        arr = ds.arrays()["observations"]
        pos = {arr[i].tobytes(): i for i in range(len(arr))}
        for o, no in zip(b["observations"], b["next_observations"]):
            assert pos[no.tobytes()] == pos[o.tobytes()] + 1


def test_sample_is_correct_at_episode_ends(tmp_path):
    rng = np.random.default_rng(3)
    arrs = make_flat_episodes(rng, [2, 3, 1])
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    b = ds.sample(2000, rng=np.random.default_rng(0))
    obs = arrs["observations"]
    # transition i of episode k sits at obs row i + k; its next obs at i + k + 1 — also for truncations
    ep_of = np.repeat(np.arange(3), [2, 3, 1])
    idx = np.array([np.flatnonzero((arrs["actions"] == a).all(axis=1))[0] for a in b["actions"]])
    np.testing.assert_array_equal(b["observations"], obs[idx + ep_of[idx]])
    np.testing.assert_array_equal(b["next_observations"], obs[idx + ep_of[idx] + 1])
    np.testing.assert_array_equal(b["terminals"], arrs["terminations"][idx])
    assert set(np.unique(idx)) == set(range(6))  # uniform over all transitions, ends included
    assert np.array_equal(ds.sample(8, rng=5)["actions"], ds.sample(8, rng=5)["actions"])


def test_to_d3rlpy_keeps_every_step(tmp_path):
    rng = np.random.default_rng(4)
    arrs = make_flat_episodes(rng, [3, 4, 2])
    arrs["terminations"][-1] = True  # last step both terminated and truncated: d3rlpy would reject it raw
    arrs["truncations"][-1] = True
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    m = ds.to_d3rlpy()
    assert [e.size() for e in m.episodes] == [3, 4, 2]
    assert sum(e.size() for e in m.episodes) == len(ds)
    assert m.episodes[-1].terminated
    np.testing.assert_array_equal(np.concatenate([e.actions for e in m.episodes]), arrs["actions"])
    d = ogdata.create_dataset(tmp_path / "disc", action_space=spaces.Discrete(5),
                              **make_flat_episodes(rng, [2, 2], discrete=5))
    md = d.to_d3rlpy()
    assert md.dataset_info.action_size == 5


def test_d4rl_file_without_next_observations(tmp_path):
    """Original D4RL files: episodes end at terminals/timeouts/the last step; no step dropped."""
    rng = np.random.default_rng(5)
    n = 10
    obs = rng.standard_normal((n, 3)).astype(np.float32)
    with h5py.File(tmp_path / "d4rl.hdf5", "w") as f:
        f["observations"] = obs
        f["actions"] = rng.standard_normal((n, 2)).astype(np.float32)
        f["rewards"] = rng.standard_normal(n).astype(np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0], bool)
    ds = ogdata.from_hdf5(tmp_path / "d4rl.hdf5", tmp_path / "out")
    assert ds.episode_lengths.tolist() == [3, 3, 4]  # last step neither flag: still an episode end
    assert len(ds) == n
    assert ds.metadata["final_observation"] == "repeated"
    assert np.array_equal(ds.episode(0).observations[:3], obs[:3])


def test_d4rl_file_with_inconsistent_next_observations_splits(tmp_path):
    rng = np.random.default_rng(6)
    obs = rng.standard_normal((6, 2)).astype(np.float32)
    nxt = np.vstack([obs[1:], rng.standard_normal((1, 2)).astype(np.float32)])
    nxt[2] = 7.0  # a hidden episode boundary without flags
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f["observations"], f["next_observations"] = obs, nxt
        f["actions"] = np.zeros((6, 1), np.float32)
        f["rewards"] = np.zeros(6, np.float32)
        f["terminals"] = np.zeros(6, bool)
    ds = ogdata.from_hdf5(tmp_path / "x.hdf5", tmp_path / "o")
    assert ds.episode_lengths.tolist() == [3, 3]
    assert np.array_equal(ds.sample(500, rng=0)["next_observations"][:0], np.zeros((0, 2), np.float32))
    b = ds.sample(500, rng=0)
    i = np.flatnonzero((b["observations"] == obs[2]).all(axis=1))
    assert len(i) and (b["next_observations"][i] == 7.0).all()


def test_filter_and_split(tmp_path):
    rng = np.random.default_rng(7)
    arrs = make_flat_episodes(rng, list(range(1, 11)))
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    long = ds.filter_episodes(lambda e: len(e) > 5)
    assert long.episode_lengths.tolist() == [6, 7, 8, 9, 10] and len(long) == 40
    assert np.array_equal(long.episode(0).observations, ds.episode(5).observations)
    assert long.sample(4, rng=0)["observations"].shape == (4, 3)
    a, b = ds.split((0.7, 0.3), by="time")
    assert a.episode_lengths.tolist() == list(range(1, 8)) and b.episode_lengths.tolist() == [8, 9, 10]
    p, q = ds.split((0.5, 0.5), by="episode", rng=1)
    assert sorted(p.episode_lengths.tolist() + q.episode_lengths.tolist()) == list(range(1, 11))
    with pytest.raises(ValueError, match="sum to 1"):
        ds.split((0.5, 0.6))


def test_sharding_keeps_files_few_200k_rows_and_sized_for_a_million(tmp_path):
    """200k transitions (obs 16 x float32) are written; each array's file count is its shard count,
    and the recorded shard size means a 1M-row array of the same width is at most 16 shard files."""
    rng = np.random.default_rng(8)
    arrs = make_flat_episodes(rng, [1000] * 200, obs_dim=16)
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    assert len(ds) == 200_000
    for name, desc in ds.metadata["arrays"].items():
        files = [p for p in (tmp_path / "d" / "data" / name).rglob("*") if p.is_file() and p.name != "zarr.json"]
        rows = desc["shape"][0]
        if desc["compressor"] is None:
            assert len(files) == -(-rows // desc["shard_rows"]), name    # one file per shard, never per chunk
        else:
            assert 1 <= len(files) <= -(-rows // desc["shard_rows"]), name
        assert -(-1_000_000 // desc["shard_rows"]) <= 16, name
    assert len([p for p in (tmp_path / "d").rglob("*") if p.is_file()]) < 25


# -- errors and faults -------------------------------------------------------------------------

def test_bad_inputs_have_clear_errors(tmp_path):
    rng = np.random.default_rng(9)
    good = make_flat_episodes(rng, [3, 2])
    bad = dict(good, rewards=good["rewards"][:-1])
    with pytest.raises(DataValidationError, match="rewards has 4 rows but actions has 5"):
        ogdata.create_dataset(tmp_path / "a", **bad)
    nan = dict(good, observations=good["observations"].copy())
    nan["observations"][1, 2] = np.nan
    with pytest.raises(DataValidationError, match=r"observations contains NaN or inf \(first at index \(1, 2\)\)"):
        ogdata.create_dataset(tmp_path / "b", **nan)
    with pytest.raises(DataValidationError, match="T\\+1 layout needs 7"):
        ogdata.create_dataset(tmp_path / "c", **dict(good, observations=good["observations"][:5]))
    with pytest.raises(DataValidationError, match="episode_lengths sum to 6"):
        ogdata.create_dataset(tmp_path / "d", **dict(good, episode_lengths=[3, 3]))
    flags = dict(good, terminations=good["terminations"].copy())
    flags["terminations"][0] = True
    with pytest.raises(DataValidationError, match="step 0 is flagged"):
        ogdata.create_dataset(tmp_path / "e", **flags)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # nothing half-written left
    ogdata.create_dataset(tmp_path / "ok", **good)
    with pytest.raises(DatasetExistsError, match="overwrite=True"):
        ogdata.create_dataset(tmp_path / "ok", **good)
    ogdata.create_dataset(tmp_path / "ok", overwrite=True, **good)


def test_writer_rejects_missed_reset(tmp_path):
    w = ogdata.DatasetWriter(tmp_path / "d", spaces.Box(-9, 9, (1,), np.float32),
                             spaces.Discrete(2), num_envs=2)
    o = np.zeros((2, 1), np.float32)
    w.add(o, [0, 1], [0, 0], [False, False], [False, False], o + 1)
    with pytest.raises(DataValidationError, match="env 0: obs at step 1 differs"):
        w.add(o, [0, 1], [0, 0], [False, False], [False, False], o + 1)
    w.abort()
    assert not (tmp_path / "d").exists()


def test_ids_and_paths_errors(tmp_path):
    with pytest.raises(InvalidIdError, match="malformed dataset id"):
        ogdata.load("portfolio-synth/good")
    with pytest.raises(InvalidIdError, match="unknown tier 'goood'.*Did you mean 'good'"):
        ogdata.load("portfolio-synth/goood-v0")
    with pytest.raises(DatasetNotFoundError, match="no dataset at path"):
        ogdata.load(tmp_path / "nowhere")


@pytest.fixture
def stored(tmp_path):
    rng = np.random.default_rng(10)
    return ogdata.create_dataset(tmp_path / "d", **make_flat_episodes(rng, [50] * 40, obs_dim=8))


def _shard_file(ds):
    files = sorted(p for p in (ds.path / "data" / "observations").rglob("*") if p.is_file() and p.name != "zarr.json")
    return files[0]


def test_corrupted_chunk_is_named(stored):
    f = _shard_file(stored)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    rel = f.relative_to(stored.path).as_posix()
    with pytest.raises(IntegrityError, match=f"checksum mismatch in '{rel}'"):
        verify(stored.path)


def test_truncated_missing_and_extra_files(stored):
    f = _shard_file(stored)
    data = f.read_bytes()
    f.write_bytes(data[:-10])
    with pytest.raises(IntegrityError, match="truncated or corrupted"):
        ogdata.verify(str(stored.path))
    f.write_bytes(data)
    ogdata.verify(str(stored.path))
    f.unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        verify(stored.path)
    f.write_bytes(data)
    (stored.path / "data" / "stray.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="'data/stray.bin' is not in the manifest"):
        verify(stored.path)


def test_metadata_validation(stored):
    meta_path = stored.path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(FormatVersionError, match="format_version 99 is not supported"):
        ogdata.load(stored.path)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "arrays"}))
    with pytest.raises(MetadataError, match=r"missing required keys \['arrays'\]"):
        ogdata.load(stored.path)
    meta_path.write_text(json.dumps(dict(meta, manifest={"../../etc/passwd": {"sha256": "0" * 64}})))
    with pytest.raises(MetadataError, match="outside the dataset"):
        ogdata.load(stored.path)
    meta_path.write_text("{not json")
    with pytest.raises(MetadataError, match="not valid JSON"):
        ogdata.load(stored.path)
    meta_path.write_text(json.dumps(meta))
    update_metadata(stored.path, measures={"tq": 0.5})
    assert ogdata.load(stored.path).measures == {"tq": 0.5}
    verify(stored.path)  # metadata changes never invalidate the manifest
    with pytest.raises(MetadataError, match="cannot change"):
        update_metadata(stored.path, manifest={})


KILL_SCRIPT = textwrap.dedent("""
    import os, sys, numpy as np, ogdata
    from gymnasium import spaces
    B = 64
    w = ogdata.DatasetWriter(sys.argv[1], spaces.Box(-np.inf, np.inf, (32,), np.float32),
                             spaces.Box(-1, 1, (4,), np.float32), B, flush_rows=4096)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((B, 32), dtype=np.float32)
    for t in range(100000):
        nxt = rng.standard_normal((B, 32), dtype=np.float32)
        done = np.full(B, t % 50 == 49)
        w.add(obs, rng.uniform(-1, 1, (B, 4)), np.ones(B), done, np.zeros(B, bool), nxt)
        obs = rng.standard_normal((B, 32), dtype=np.float32) if done[0] else nxt  # reset after an end
        if t == 200:
            print("writing", flush=True)
    w.close()
""")


def test_writer_killed_mid_write_leaves_nothing_and_rerun_succeeds(tmp_path):
    target = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(target)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    partials = list(tmp_path.glob(".killed.partial-*"))
    assert partials  # the killed writer's staging dir, invisible under the dataset id
    with pytest.raises(DatasetNotFoundError):
        ogdata.load(target)
    rng = np.random.default_rng(0)
    ds = ogdata.create_dataset(target, **make_flat_episodes(rng, [3, 3]))
    assert len(ds) == 6 and not list(tmp_path.glob(".killed.partial-*"))  # stale staging cleaned
    verify(target)


def test_public_surface():
    for name in ("load", "download", "list_datasets", "create_dataset", "from_hdf5", "verify", "list_envs",
                 "make_env", "Dataset", "DatasetWriter"):
        assert hasattr(ogdata, name), name
    assert Path(ogdata.__file__).name == "__init__.py"


def test_raw_shards_are_standard_zarr(tmp_path, monkeypatch):
    """Shards ogdata writes itself read back identically through zarr, across several shards and a
    partial last one; and the fast reader gives the same bytes."""
    import zarr

    from ogdata.storage import writer

    monkeypatch.setattr(writer, "CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1 << 15)
    rng = np.random.default_rng(11)
    arrs = make_flat_episodes(rng, [97] * 23, obs_dim=5)
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    desc = ds.metadata["arrays"]["observations"]
    assert desc["compressor"] is None and desc["shape"][0] > 2 * desc["shard_rows"]
    z = zarr.open_group(str(tmp_path / "d" / "data"), mode="r")
    fresh = ogdata.load(tmp_path / "d").arrays()
    for k in KEYS:
        assert np.array_equal(z[k][:], arrs[k]), k
        assert np.array_equal(fresh[k], arrs[k]), k
    # lazy slices go through zarr and agree too
    assert np.array_equal(ogdata.load(tmp_path / "d").episode(7).observations, ds.episode(7).observations)


@pytest.mark.parametrize("array", ["observations", "actions", "rewards"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_anywhere_is_named_with_its_index(tmp_path, array, where, value):
    """The finiteness check clears arrays by a sum; a bad value at any position, in any array,
    still raises naming the array and the first bad index, and nothing is written."""
    import warnings

    rng = np.random.default_rng(3)
    arrs = make_flat_episodes(rng, [400, 700], obs_dim=3)
    a = arrs[array] = arrs[array].copy()
    i = {"first": 0, "middle": len(a) // 2, "last": len(a) - 1}[where]
    idx = (i,) if a.ndim == 1 else (i, a.shape[1] - 1)
    a[idx] = value
    want = re.escape(f"{array} contains NaN or inf (first at index {idx})")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataValidationError, match=want):
            ogdata.create_dataset(tmp_path / "d", **arrs)
    assert not list(tmp_path.iterdir())


def test_finiteness_check_is_exact_when_the_sum_overflows():
    """Finite values whose sum overflows pass (the exact pass confirms them); float16 and float64
    behave like float32; the first bad index is found past the first block."""
    import warnings

    from ogdata.storage.writer import FINITE_BLOCK_BYTES, check_finite

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dt in (np.float16, np.float32, np.float64):
            big = np.full((1000, 4), np.finfo(dt).max, dtype=dt)
            big[::2] *= -1 if dt is not np.float16 else 1
            check_finite("x", big)                    # sums to ±inf or NaN, yet every value is finite
            rows = 3 * FINITE_BLOCK_BYTES // big[:1].nbytes + 5
            a = np.zeros((rows, 4), dtype=dt)
            a[rows - 2, 3] = np.nan
            with pytest.raises(DataValidationError, match=re.escape(f"(first at index ({rows - 2}, 3))")):
                check_finite("x", a)
        check_finite("x", np.zeros(0, np.float32))
        check_finite("x", np.arange(5))               # integers are always finite


def test_manifest_digests_match_the_files_written(tmp_path, monkeypatch):
    """sha256 taken while writing (no re-read) equals the digest of the bytes on disk, for raw shards
    split over several files and for compressed arrays."""
    import hashlib

    from ogdata.storage import writer

    monkeypatch.setattr(writer, "CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1 << 15)
    rng = np.random.default_rng(4)
    ds = ogdata.create_dataset(tmp_path / "d", **make_flat_episodes(rng, [300] * 20, obs_dim=6))
    manifest = ds.metadata["manifest"]
    assert sum(r.startswith("data/observations/c/") for r in manifest) > 3
    for rel, entry in manifest.items():
        raw = (tmp_path / "d" / rel).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == entry["sha256"] and len(raw) == entry["size"], rel
    verify(tmp_path / "d")


def test_short_writes_are_completed_and_a_stalled_write_is_an_error(tmp_path, monkeypatch):
    """An unbuffered write may take fewer bytes than offered: the shard must still be whole (digest and
    size of the bytes on disk, a clean read back), and a write that takes nothing must not pass silently."""
    import builtins
    import hashlib

    from ogdata.storage import shards

    real_open = builtins.open

    class Short:
        def __init__(self, f, cap):
            self.f, self.cap, self.name = f, cap, f.name

        def write(self, b):
            return self.f.write(b[:self.cap])

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    rows = np.random.default_rng(0).normal(size=(1000, 3))
    monkeypatch.setattr(shards, "open", lambda *a, **k: Short(real_open(*a, **k), 999), raising=False)
    digest, size = shards.write_shard(tmp_path / "s", rows, chunk_rows=100, chunks_per_shard=16)
    raw = (tmp_path / "s").read_bytes()
    assert len(raw) == size and hashlib.sha256(raw).hexdigest() == digest
    assert raw[:rows.nbytes] == rows.tobytes()
    monkeypatch.setattr(shards, "open", lambda *a, **k: Short(real_open(*a, **k), 0), raising=False)
    with pytest.raises(OSError, match="no bytes written"):
        shards.write_shard(tmp_path / "t", rows, chunk_rows=100, chunks_per_shard=16)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an fd through /proc")
def test_every_file_and_directory_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    """Durability before visibility: each file of the dataset (shards written with only a writeback
    head start included) and each of its directories is fsynced after its last write and before
    the staging directory is renamed onto the target; the parent directory is fsynced after."""
    from ogdata.storage import writer

    monkeypatch.setattr(writer, "CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1 << 15)
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst, *a, **k):
        events.append(("rename", os.fspath(src), os.fspath(dst)))
        return real_rename(src, dst, *a, **k)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    rng = np.random.default_rng(5)
    target = tmp_path / "d"
    ogdata.create_dataset(target, **make_flat_episodes(rng, [300] * 20, obs_dim=6))
    monkeypatch.undo()
    renames = [i for i, e in enumerate(events) if e[0] == "rename" and Path(e[2]) == target]
    assert len(renames) == 1
    stage = Path(events[renames[0]][1])
    synced = {Path(e[1]) for e in events[:renames[0]] if e[0] == "fsync"}
    on_disk = [p for p in target.rglob("*")] + [target]
    assert sum(p.is_file() for p in on_disk) > 8
    for p in on_disk:
        assert stage / p.relative_to(target) in synced, f"{p.relative_to(target)} not fsynced before the rename"
    assert ("fsync", str(target.parent)) in events[renames[0]:]


@pytest.mark.parametrize("n_agents", [None, 2])
def test_episodes_read_from_the_shards_equal_the_arrays(tmp_path, monkeypatch, n_agents):
    """episode(i) reads raw arrays straight from the shard files (episodes crossing shard boundaries,
    the partial last shard) and decodes compressed ones once: the same arrays as reading everything,
    returned as copies the caller may write to; a missing shard is an IntegrityError naming it."""
    from ogdata.errors import IntegrityError
    from ogdata.storage import writer
    from ogdata.storage.shards import shard_file

    monkeypatch.setattr(writer, "CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1 << 15)
    rng = np.random.default_rng(6)
    lengths = rng.integers(50, 400, 25)
    ogdata.create_dataset(tmp_path / "d", **make_flat_episodes(rng, lengths, obs_dim=5, n_agents=n_agents))
    whole = ogdata.load(tmp_path / "d").arrays()
    assert ogdata.load(tmp_path / "d").metadata["arrays"]["terminations"]["compressor"] is not None
    ds = ogdata.load(tmp_path / "d")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for i in list(range(len(lengths))) + [3]:
        ep, t0, T = ds.episode(i), int(starts[i]), int(lengths[i])
        np.testing.assert_array_equal(ep.observations, whole["observations"][t0 + i:t0 + i + T + 1])
        for k in ("actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(ep, k), whole[k][t0:t0 + T], err_msg=k)
        if n_agents:
            np.testing.assert_array_equal(ep.states, whole["states"][t0 + i:t0 + i + T + 1])
        ep.terminations[:] = True   # the caller's copy: the next read is unaffected
        ep.observations[:] = 0
    shard = shard_file(tmp_path / "d" / "data" / "observations", 1, whole["observations"].ndim)
    shard.unlink()   # after opening: the read itself must notice
    with pytest.raises(IntegrityError, match=r"shard 1 of observations is missing"):
        [ds.episode(i) for i in range(len(lengths))]


def test_mmap_sampling_equals_in_memory_sampling(tmp_path, monkeypatch):
    """load(mmap=True) samples the same batches from memory maps of the raw shards (several shards,
    a partial last one), reads compressed arrays into memory, and never loads the raw ones."""
    from ogdata.storage import writer
    from ogdata.storage.shards import MappedRows

    monkeypatch.setattr(writer, "CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1 << 15)
    rng = np.random.default_rng(12)
    ogdata.create_dataset(tmp_path / "d", **make_flat_episodes(rng, [97] * 23 + [5], obs_dim=5))
    ram, mapped = ogdata.load(tmp_path / "d"), ogdata.load(tmp_path / "d", mmap=True)
    for seed in range(5):
        a, b = ram.sample(300, rng=seed), mapped.sample(300, rng=seed)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
            assert a[k].dtype == b[k].dtype
    src = mapped.source._mapped   # what the folder source gathered from
    assert isinstance(src["observations"], MappedRows) and len(src["observations"].maps) >= 3
    assert isinstance(src["terminations"], np.ndarray)     # compressed: read into memory
    assert mapped._arrays is None and mapped._ep_of is None   # no per-transition arrays held


def test_mmap_sampling_names_a_missing_shard(tmp_path, monkeypatch):
    from ogdata.storage import writer

    monkeypatch.setattr(writer, "CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1 << 15)
    rng = np.random.default_rng(13)
    ogdata.create_dataset(tmp_path / "d", **make_flat_episodes(rng, [97] * 23, obs_dim=5))
    ds = ogdata.load(tmp_path / "d", mmap=True)
    (tmp_path / "d" / "data" / "observations" / "c" / "2" / "0").unlink()
    with pytest.raises(IntegrityError, match="shard 2 of observations is missing"):
        ds.sample(8, rng=0)


def test_arrays_are_read_half_a_page_off_the_page_grid(tmp_path):
    """Raw arrays are read into buffers starting half a page in (the kernel's copy out of the page
    cache runs ~3x slower into a destination at almost the file's offset within a page), and they
    are ordinary writable, aligned arrays with the stored content."""
    rng = np.random.default_rng(5)
    arrs = make_flat_episodes(rng, [200] * 10, obs_dim=7)
    ogdata.create_dataset(tmp_path / "d", **arrs)
    obs = ogdata.load(tmp_path / "d").arrays()["observations"]
    assert obs.ctypes.data % 4096 == 2048
    assert obs.flags.c_contiguous and obs.flags.writeable and obs.flags.aligned
    np.testing.assert_array_equal(obs[:200], arrs["observations"][:200])   # the first episode's steps
