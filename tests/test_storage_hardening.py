"""Hardening of the storage layer (issue #12 items 1-3, 5, 12, 13, 15, 19, 20): corrupted data never
loads, overwrite only replaces datasets, metadata is covered by its digest, every bad input gets an
ogdata error, the writer handles Gymnasium's autoreset, and D4RL readers see every episode end."""

import json
import os
import shutil
import stat
import subprocess
import warnings
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
    DataValidationError,
    IntegrityError,
    MetadataError,
    OgdataError,
    StorageError,
)
from ogdata.storage import manifest as manifest_mod
from ogdata.storage import read_metadata, update_metadata, verify
from ogdata.storage.format import METADATA_FILE


def _make(path, lengths=(50,) * 40, obs_dim=8, seed=10, **kw):
    rng = np.random.default_rng(seed)
    return ogdata.create_dataset(path, **make_flat_episodes(rng, list(lengths), obs_dim=obs_dim), **kw)


def _obs_shard(ds) -> Path:
    return ds.path / "data" / "observations" / "c" / "0" / "0"


# -- 1. missing or corrupted chunks never load as data ----------------------------------------

def test_missing_shard_is_an_error_naming_it_not_zeros(tmp_path):
    ds = _make(tmp_path / "d")
    opened = ogdata.load(ds.path)          # opened before the file goes
    _obs_shard(ds).unlink()
    with pytest.raises(IntegrityError, match="data/observations/c/0/0"):
        ogdata.load(ds.path)
    with pytest.raises(IntegrityError, match="observations/c/0/0"):
        opened.arrays()
    with pytest.raises(IntegrityError, match="data/observations/c/0/0"):
        opened.episode(3)                  # lazy reads go through zarr, which would read fill zeros


def test_flipped_byte_is_found_at_open(tmp_path):
    ds = _make(tmp_path / "d")
    f = _obs_shard(ds)
    raw = bytearray(f.read_bytes())
    raw[100] ^= 0x01                       # inside the data, the size unchanged
    f.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="checksum mismatch in 'data/observations/c/0/0'"):
        ogdata.load(ds.path)


def test_full_check_runs_once_per_copy_and_is_remembered(tmp_path, monkeypatch):
    ds = _make(tmp_path / "d")
    calls = []
    real = manifest_mod.sha256_file
    monkeypatch.setattr(manifest_mod, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    ogdata.load(ds.path)
    assert calls == []                     # the writer hashed while writing and left the stamp
    copy = tmp_path / "copy"
    shutil.copytree(ds.path, copy)         # a new copy (new inodes): hashed once, then remembered
    ogdata.load(copy)
    n = len(calls)
    assert n == len(ds.metadata["manifest"])
    ogdata.load(copy)
    assert len(calls) == n
    ogdata.Dataset(copy, verify=True)      # verify=True always hashes
    assert len(calls) == 2 * n


def test_corrupted_compressed_chunk_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    arrs = make_flat_episodes(rng, [200] * 20, discrete=3)      # small ints: compressed
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    assert ds.metadata["arrays"]["actions"]["compressor"] is not None
    ogdata.load(ds.path)
    f = ds.path / "data" / "actions" / "c" / "0"
    st_ = f.stat()
    raw = bytearray(f.read_bytes())
    raw[-6] ^= 0xFF                                            # the shard index: zarr's checksum fails
    f.write_bytes(bytes(raw))
    os.utime(f, ns=(st_.st_atime_ns, st_.st_mtime_ns))         # keep the remembered check valid
    with pytest.raises(IntegrityError, match="'data/actions/c/0' is corrupted") as e:
        ogdata.load(ds.path).arrays()
    assert "crc" not in str(e.value).lower()
    with pytest.raises(IntegrityError, match="checksum mismatch in 'data/actions/c/0'"):
        ogdata.Dataset(ds.path, verify=True)


def test_truncated_raw_shard_read_after_open_names_it(tmp_path):
    ds = _make(tmp_path / "d")
    opened = ogdata.load(ds.path)
    f = _obs_shard(ds)
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(IntegrityError, match="observations/c/0/0"):
        opened.arrays()


# -- 3. overwrite replaces only an ogdata dataset ----------------------------------------------

def test_overwrite_never_deletes_what_is_not_a_dataset(tmp_path):
    arrs = make_flat_episodes(np.random.default_rng(1), [3, 2])
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    with pytest.raises(DatasetExistsError, match=f"{thesis}.*not an ogdata dataset"):
        ogdata.create_dataset(thesis, overwrite=True, **arrs)
    assert (thesis / "thesis.tex").read_text().startswith("\\documentclass")
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(DatasetExistsError, match="not an ogdata dataset"):
        ogdata.create_dataset(afile, overwrite=True, **arrs)
    assert afile.read_text() == "x"
    # an ogdata dataset with a user's file put inside it is not replaced either
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    (ds.path / "mine.csv").write_text("1,2")
    with pytest.raises(DatasetExistsError, match="'mine.csv'"):
        ogdata.create_dataset(ds.path, overwrite=True, **arrs)
    with pytest.raises(DatasetExistsError, match="not an ogdata dataset"):
        ogdata.DatasetWriter(thesis, spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)), 1, overwrite=True)
    (ds.path / "mine.csv").unlink()
    again = ogdata.create_dataset(ds.path, overwrite=True, **arrs)     # a dataset: replaced
    assert len(again) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- 4. metadata.json is covered by its digest and readable by others ---------------------------

def test_edited_metadata_is_detected(tmp_path):
    ds = _make(tmp_path / "d")
    f = ds.path / METADATA_FILE
    meta = json.loads(f.read_text())
    assert len(meta["metadata_sha256"]) == 64
    f.write_text(json.dumps(dict(meta, num_transitions=meta["num_transitions"] + 1), indent=1))
    with pytest.raises(IntegrityError, match="does not match its metadata_sha256"):
        ogdata.load(ds.path)
    with pytest.raises(IntegrityError, match="metadata_sha256"):
        verify(ds.path)
    f.write_text(json.dumps(meta))                   # any formatting of the same content is fine
    update_metadata(ds.path, measures={"tq": 0.25})  # the digest follows update_metadata
    assert verify(ds.path)["measures"] == {"tq": 0.25}
    assert ogdata.load(ds.path).measures == {"tq": 0.25}
    # the digest covers metadata only: the data files and the manifest do not depend on it
    other = _make(tmp_path / "b", metadata={"tier": "x"})
    assert other.metadata["manifest"] == ds.metadata["manifest"]


def test_metadata_written_world_readable(tmp_path):
    old = os.umask(0o022)
    try:
        ds = _make(tmp_path / "d")
        update_metadata(ds.path, tier="good")
    finally:
        os.umask(old)
    assert stat.S_IMODE((ds.path / METADATA_FILE).stat().st_mode) == 0o644
    assert stat.S_IMODE(_obs_shard(ds).stat().st_mode) == 0o644


def test_v0_metadata_without_digest_loads_and_verify_reports_it(tmp_path):
    ds = _make(tmp_path / "d")
    f = ds.path / METADATA_FILE
    meta = json.loads(f.read_text())
    del meta["metadata_sha256"]
    f.write_text(json.dumps(meta, indent=1, sort_keys=True))
    assert len(ogdata.load(ds.path)) == 2000
    with pytest.warns(UserWarning, match="no metadata_sha256"):
        verify(ds.path)


# -- 5/13. bad input gets an ogdata error ------------------------------------------------------

GOOD = make_flat_episodes(np.random.default_rng(9), [3, 2])


def _bad_cases():
    g = GOOD
    n, o = 5, len(g["observations"])
    yield "zero-width", dict(g, observations=np.zeros((o, 0), np.float32)), "zero-width"
    yield "object", dict(g, observations=g["observations"].astype(object)), "Python objects"
    yield "strings", dict(g, observations=g["observations"].astype(str)), "strings"
    yield "complex", dict(g, observations=g["observations"].astype(np.complex64)), "complex"
    yield "datetime", dict(g, observations=np.zeros((o, 3), "datetime64[s]")), "datetimes"
    yield "ragged", dict(g, observations=[[1.0], [1.0, 2.0]] * 3 + [[0.0]]), "rectangular"
    yield "2d-rewards", dict(g, rewards=np.zeros((n, 2), np.float32)), "single-agent dataset needs one value"
    yield "near-2^62", dict(g, actions=np.full(n, 2**62, np.int64)), "Discrete"
    yield "uint64-max", dict(g, actions=np.full(n, np.iinfo(np.uint64).max, np.uint64)), "Discrete"
    yield "uint64-max-discrete", dict(g, actions=np.full(n, np.iinfo(np.uint64).max, np.uint64),
                                      action_space=spaces.Discrete(4)), "outside Discrete"
    yield "float-for-discrete", dict(g, actions=np.full(n, 0.5), action_space=spaces.Discrete(4)), "integer"
    yield "wrong-row-shape", dict(g, observation_space=spaces.Box(-1, 1, (4,))), "has shape \\(4,\\)"
    yield "float-overflow", dict(g, observations=np.full((o, 3), 1e39), observation_space=spaces.Box(
        -np.inf, np.inf, (3,), np.float32)), "NaN or inf"
    yield "non-json-meta", dict(g, metadata={"when": object()}), "JSON-serialisable"
    yield "nan-meta", dict(g, metadata={"x": float("nan")}), "JSON-serialisable"
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    yield "nested-meta", dict(g, metadata={"deep": nested}), "nested deeper"
    yield "5000-digit", dict(g, metadata={"version": 10**5000}), "JSON-serialisable"
    yield "long-env", dict(g, metadata={"env_id": "e" * 5000}), "env_id must be a string of at most"
    yield "bad-lengths", dict(g, episode_lengths=["a", "b"]), "episode_lengths"
    yield "none-obs", dict(g, observations=None), "observations is None"


@pytest.mark.parametrize("name,kwargs,match", list(_bad_cases()), ids=[c[0] for c in _bad_cases()])
def test_bad_input_is_an_ogdata_error(tmp_path, name, kwargs, match):
    with pytest.raises(DataValidationError, match=match):
        ogdata.create_dataset(tmp_path / "d", **kwargs)
    assert list(tmp_path.iterdir()) == []          # nothing half-written


def test_arrays_are_stored_as_their_space_says(tmp_path):
    g = dict(GOOD, observations=GOOD["observations"].astype(np.float64))
    ds = ogdata.create_dataset(tmp_path / "a", observation_space=spaces.Box(-np.inf, np.inf, (3,), np.float32), **g)
    assert ds.arrays()["observations"].dtype == np.float32 and ds.observation_space.dtype == np.float32
    ints = dict(GOOD, observations=np.arange(21).reshape(7, 3))
    ds = ogdata.create_dataset(tmp_path / "b", **ints)        # inferred: the data as stored
    assert ds.observation_space.dtype == ds.arrays()["observations"].dtype == np.int64
    assert ds.arrays()["observations"].tolist() == np.arange(21).reshape(7, 3).tolist()


@pytest.mark.parametrize("size", [-1, 0, 2.5, "8", None, True, 10**13])
def test_bad_sample_sizes(tmp_path, size):
    ds = ogdata.create_dataset(tmp_path / "d", **GOOD)
    with pytest.raises(DataValidationError, match="batch_size must be an integer"):
        ds.sample(size)


def test_sample_rng_errors(tmp_path):
    ds = ogdata.create_dataset(tmp_path / "d", **GOOD)
    with pytest.raises(DataValidationError, match="rng"):
        ds.sample(4, rng=-3)
    with pytest.raises(DataValidationError, match="rng"):
        ds.sample(4, rng="abc")


def _write_meta(path: Path, text: str | bytes):
    f = path / METADATA_FILE
    f.write_bytes(text.encode() if isinstance(text, str) else text)


@pytest.mark.parametrize("mutate,match", [
    (lambda m: "[" * 100000 + "]" * 100000, "nested too deeply|nested deeper"),
    (lambda m: json.dumps(dict(m, deep=json.loads("[" * 200 + "]" * 200))), "nested deeper"),
    (lambda m: json.dumps(m).replace('"format_version": 1', '"format_version": ' + "9" * 5000), "not valid JSON"),
    (lambda m: json.dumps(dict(m, format_version=10**300)), "format_version <an integer"),
    (lambda m: json.dumps(dict(m, env_id="e" * 5000)), "env_id must be a string"),
    (lambda m: json.dumps(dict(m, observation_space={"type": "Box", "shape": [12000, 12000], "dtype": "float32",
                                                     "low": 0, "high": 1})), "more than"),
    (lambda m: json.dumps(dict(m, manifest={"data/x": {"sha256": "0" * 64, "size": "big"}})), "invalid size"),
    (lambda m: json.dumps(dict(m, num_transitions=True)), "num_transitions"),
    (lambda m: b"\xff\xfe" * 10, "not valid JSON"),
    (lambda m: " " * (17 << 20), "more than"),
])
def test_hostile_metadata_json(tmp_path, mutate, match):
    ds = ogdata.create_dataset(tmp_path / "d", **GOOD)
    meta = json.loads((ds.path / METADATA_FILE).read_text())
    meta.pop("metadata_sha256")
    _write_meta(ds.path, mutate(meta))
    for fn in (read_metadata, ogdata.load, verify):
        with pytest.raises((MetadataError, IntegrityError), match=match):
            fn(ds.path)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tiny tmpfs needs root")
def test_disk_full_is_a_storage_error_and_leaves_nothing(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rng = np.random.default_rng(0)
        arrs = make_flat_episodes(rng, [1000] * 4, obs_dim=100)    # ~1.6 MB of observations
        with pytest.raises(StorageError, match=f"no space left on the device while writing {mnt / 'd'}"):
            ogdata.create_dataset(mnt / "d", **arrs)
        assert list(mnt.iterdir()) == []
        w = ogdata.DatasetWriter(mnt / "w", spaces.Box(-np.inf, np.inf, (100,), np.float32),
                                 spaces.Box(-1, 1, (2,), np.float32), 4, flush_rows=1 << 30)
        obs = rng.standard_normal((4, 100), dtype=np.float32)
        for _ in range(1000):
            nxt = rng.standard_normal((4, 100), dtype=np.float32)
            w.add(obs, np.zeros((4, 2), np.float32), np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), nxt)
            obs = nxt
        with pytest.raises(StorageError, match="no space left"):
            w.close()
        assert list(mnt.iterdir()) == []
        assert isinstance(StorageError("x"), OSError)      # callers catching OSError still do
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# -- 2. the writer and Gymnasium's autoreset ---------------------------------------------------

def _run_vector_env(env, steps, seed=0):
    """The raw stream of a next-step-autoreset vector env and the true episodes per env."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    B = env.num_envs
    resetting = np.zeros(B, bool)
    cur = [{"obs": [obs[b].copy()], "act": [], "rew": [], "key": (b, 0)} for b in range(B)]
    truth, stream = [], []
    for t in range(steps):
        a = rng.uniform(0, 1, (B,) + env.single_action_space.shape).astype(np.float32)
        nobs, r, term, trunc, infos = env.step(a)
        stream.append((obs, a, r, term, trunc, nobs, infos))
        for b in range(B):
            if resetting[b]:
                cur[b] = {"obs": [nobs[b].copy()], "act": [], "rew": [], "key": (b, t)}
                continue
            cur[b]["obs"].append(nobs[b].copy())
            cur[b]["act"].append(a[b])
            cur[b]["rew"].append(r[b])
            if term[b] or trunc[b]:
                truth.append(cur[b])
        resetting = term | trunc
        obs = nobs
    return stream, sorted(truth, key=lambda x: x["key"])    # the writer's order: by env, then time


def test_writer_with_make_vector_env_stores_true_episodes(tmp_path):
    env = ogdata.make_vector_env("execution-ac", 3)
    stream, truth = _run_vector_env(env, 70)
    w = ogdata.DatasetWriter.for_env(tmp_path / "d", env)
    assert w.autoreset == "next_step"
    for obs, a, r, term, trunc, nobs, infos in stream:
        w.add(obs, a, r, term, trunc, nobs, infos=infos)
    ds = w.close(incomplete="drop")
    assert ds.num_episodes == len(truth) == 9
    assert set(ds.episode_lengths.tolist()) == {env.core.max_steps}   # not max_steps + 1
    for e, t in zip(ds.iter_episodes(), truth):
        np.testing.assert_array_equal(e.observations, np.array(t["obs"]))
        np.testing.assert_array_equal(e.actions, np.array(t["act"]))
        np.testing.assert_allclose(e.rewards, np.array(t["rew"], np.float32))
        assert e.terminations[-1] or e.truncations[-1]


def test_natural_loop_without_autoreset_mode_is_refused(tmp_path):
    env = ogdata.make_vector_env("execution-ac", 2)
    stream, _ = _run_vector_env(env, 25)
    w = ogdata.DatasetWriter(tmp_path / "d", env.single_observation_space, env.single_action_space, 2)
    with pytest.raises(DataValidationError, match="next-step autoreset.*for_env"):
        for obs, a, r, term, trunc, nobs, _ in stream:
            w.add(obs, a, r, term, trunc, nobs)
    w.abort()
    assert not (tmp_path / "d").exists()


def test_same_step_autoreset_takes_final_obs_from_infos(tmp_path):
    box = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    w = ogdata.DatasetWriter(tmp_path / "d", box, spaces.Discrete(2), 2, autoreset="SameStep")
    o = np.array([[0.0], [10.0]], np.float32)
    w.add(o, [0, 1], [1, 1], [False, False], [False, False], o + 1)
    # env 1 ends: the env returns its reset obs (-5) and the final one (12) in infos
    final = np.array([None, np.array([12.0], np.float32)], dtype=object)
    with pytest.raises(DataValidationError, match="final_obs"):
        w.add(o + 1, [0, 1], [1, 1], [False, True], [False, False], np.array([[2.0], [-5.0]], np.float32))
    w.add(o + 1, [0, 1], [1, 1], [False, True], [False, False], np.array([[2.0], [-5.0]], np.float32),
          infos={"final_obs": final, "_final_obs": np.array([False, True])})
    ds = w.close()
    eps = {e.observations[0, 0]: e.observations[:, 0].tolist() for e in ds.iter_episodes()}
    assert eps == {0.0: [0.0, 1.0, 2.0], 10.0: [10.0, 11.0, 12.0]}


def test_next_step_mode_rejects_a_done_reset_step(tmp_path):
    box = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    w = ogdata.DatasetWriter(tmp_path / "d", box, box, 1, autoreset="next_step")
    o = np.zeros((1, 1), np.float32)
    w.add(o, o, [0], [True], [False], o + 1)
    with pytest.raises(DataValidationError, match="reset step"):
        w.add(o + 1, o, [0], [True], [False], o)
    w.abort()


# -- 15. to_hdf5: every episode end carries a flag ---------------------------------------------

def test_to_hdf5_flags_every_episode_end(tmp_path):
    arrs = make_flat_episodes(np.random.default_rng(2), [3, 4, 2, 5])
    arrs["terminations"][:] = False
    arrs["truncations"][:] = False
    arrs["terminations"][2] = True            # only the first episode is flagged
    ds = ogdata.create_dataset(tmp_path / "d", **arrs)
    h5 = ds.to_hdf5(tmp_path / "d.h5")
    with h5py.File(h5) as f:
        ends = np.flatnonzero(f["terminals"][:] | f["timeouts"][:])
        assert np.array_equal(f["terminals"][:], arrs["terminations"])
    assert ends.tolist() == (np.cumsum([3, 4, 2, 5]) - 1).tolist()       # a D4RL reader sees 4 episodes
    back = ogdata.from_hdf5(h5, tmp_path / "back")
    for k in ("terminations", "truncations", "episode_lengths", "observations"):
        np.testing.assert_array_equal(back.arrays()[k], ds.arrays()[k])


# -- the public face returns Datasets, storage returns paths -----------------------------------

def test_storage_returns_paths_public_api_returns_datasets(tmp_path):
    from ogdata import storage
    from ogdata.storage.convert import from_hdf5

    p = storage.create_dataset(tmp_path / "a", **GOOD)
    assert isinstance(p, Path) and p == (tmp_path / "a").absolute()
    assert isinstance(ogdata.create_dataset(tmp_path / "b", **GOOD), ogdata.Dataset)
    h5 = ogdata.Dataset(p).to_hdf5(tmp_path / "a.h5")
    assert isinstance(from_hdf5(h5, tmp_path / "c"), Path)
    assert isinstance(ogdata.from_hdf5(h5, tmp_path / "d"), ogdata.Dataset)
    box = spaces.Box(-1, 1, (3,), np.float32)
    w = storage.DatasetWriter(tmp_path / "e", box, box, 1)
    assert isinstance(w.close(), Path)
    w = ogdata.DatasetWriter(tmp_path / "f", box, box, 1)
    assert isinstance(w.close(), ogdata.Dataset)


def test_import_ogdata_does_not_import_zarr():
    import sys

    code = "import sys, ogdata; print('zarr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(ogdata.__file__).parents[1])})
    assert out.stdout.strip() == "False", out.stderr


# -- 7. fuzz: an ogdata error or success, never anything else ----------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=8)
_dtypes = st.sampled_from(["float32", "float64", "int64", "uint64", "int8", "bool", "object", "U3", "complex64",
                           "datetime64[s]"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data(), lengths=st.lists(st.integers(1, 4), min_size=0, max_size=4),
       obs_shape=st.lists(st.integers(0, 3), max_size=2), obs_dtype=_dtypes, act_dtype=_dtypes,
       rew_ndim=st.integers(0, 2), agents=st.sampled_from([None, ["a", "b"]]),
       flat=st.booleans(), meta=st.one_of(st.none(), st.dictionaries(st.text(max_size=6), _json, max_size=3),
                                          st.just({"x": {1, 2}}), st.just({"env_id": "e" * 300})))
def test_fuzz_create_dataset(tmp_path_factory, data, lengths, obs_shape, obs_dtype, act_dtype, rew_ndim,
                             agents, flat, meta):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    n, e = sum(lengths), len(lengths)
    lead = (len(agents),) if agents else ()
    n_obs = data.draw(st.sampled_from([n + e, n, n + 1]))

    def arr(rows, shape, dtype):
        x = rng.integers(0, 3, size=(rows,) + lead + tuple(shape))
        return x.astype(dtype) if dtype not in ("U3",) else x.astype(str)

    kw = dict(observations=arr(n_obs, obs_shape, obs_dtype),
              actions=arr(n, data.draw(st.sampled_from([(), (2,)])), act_dtype),
              rewards=rng.standard_normal((n,) + lead + (2,) * (rew_ndim - 1)) if rew_ndim else 1.0,
              terminations=np.zeros((n,) + lead, bool), truncations=np.zeros((n,) + lead, bool),
              episode_lengths=data.draw(st.sampled_from([lengths, None, [n + 1]])), metadata=meta, agents=agents)
    if agents:
        kw["states"] = arr(n_obs, (2,), "float32")
    if flat:
        kw["next_observations"] = arr(n_obs, obs_shape, obs_dtype)
    path = tmp_path_factory.mktemp("fz") / "d"
    try:
        ds = ogdata.create_dataset(path, **kw)
    except OgdataError:
        assert not path.exists()
        return
    assert len(ds) == n and len(ogdata.load(path).arrays()["actions"]) == n
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verify(path)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return ogdata.create_dataset(tmp_path_factory.mktemp("tpl") / "d", **GOOD).path


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data(), reseal=st.booleans())
def test_fuzz_metadata_json(tmp_path_factory, template, data, reseal):
    from ogdata.storage.format import seal_metadata

    path = tmp_path_factory.mktemp("fm") / "d"
    shutil.copytree(template, path)
    meta = json.loads((path / METADATA_FILE).read_text())
    kind = data.draw(st.sampled_from(["replace", "delete", "nest", "raw", "arrays", "manifest"]))
    if kind == "replace":
        meta[data.draw(st.sampled_from(sorted(meta)))] = data.draw(_json)
    elif kind == "delete":
        meta.pop(data.draw(st.sampled_from(sorted(meta))))
    elif kind == "nest":
        depth = data.draw(st.integers(1, 3000))
        text = json.dumps(dict(meta, measures="@@")).replace('"@@"', "[" * depth + "]" * depth)
    elif kind == "arrays":
        name = data.draw(st.sampled_from(sorted(meta["arrays"])))
        meta["arrays"][name][data.draw(st.sampled_from(["shape", "dtype", "chunk_rows", "shard_rows",
                                                        "compressor"]))] = data.draw(_json)
    elif kind == "manifest":
        rel = data.draw(st.sampled_from(sorted(meta["manifest"])))
        meta["manifest"][rel][data.draw(st.sampled_from(["sha256", "size"]))] = data.draw(_json)
    if kind == "raw":
        text = data.draw(st.binary(max_size=200))
    elif kind != "nest":
        try:
            text = seal_metadata(meta) if reseal else json.dumps(meta)
        except OgdataError:
            text = json.dumps(meta)
    _write_meta(path, text)
    for fn in (read_metadata, lambda p: ogdata.load(p).arrays(), verify):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(path)
        except OgdataError:
            pass


# -- 19. the multi-agent writer against a reference model --------------------------------------

def _ma_stream(rng, B, k, steps, max_len):
    """Random interleaved multi-agent episodes of B envs (all agents end together) and the truth."""
    obs = rng.standard_normal((B, k, 2)).astype(np.float32)
    state = rng.standard_normal((B, 3)).astype(np.float32)
    t = np.zeros(B, int)
    L = rng.integers(1, max_len + 1, size=B)

    def new(b):  # reads the current obs/state: the reset ones after an episode ends
        return {"obs": [obs[b].copy()], "state": [state[b].copy()], "act": [], "rew": [], "term": [], "trunc": []}

    cur = [new(b) for b in range(B)]
    stream, truth = [], []
    for _ in range(steps):
        a = rng.uniform(-1, 1, (B, k, 1)).astype(np.float32)
        r = rng.standard_normal((B, k)).astype(np.float32)
        nxt = rng.standard_normal((B, k, 2)).astype(np.float32)
        nst = rng.standard_normal((B, 3)).astype(np.float32)
        t += 1
        done = t >= L
        term = done[:, None] & (rng.random((B, k)) < 0.5)
        trunc = done[:, None] & ~term
        stream.append((obs.copy(), a, r, term, trunc, nxt.copy(), state.copy(), nst.copy()))
        for b in range(B):
            c = cur[b]
            c["obs"].append(nxt[b].copy())
            c["state"].append(nst[b].copy())
            c["act"].append(a[b])
            c["rew"].append(r[b])
            c["term"].append(term[b])
            c["trunc"].append(trunc[b])
        obs, state = nxt.copy(), nst.copy()
        for b in np.flatnonzero(done):
            truth.append(cur[b])
            L[b], t[b] = rng.integers(1, max_len + 1), 0
            obs[b] = rng.standard_normal((k, 2))
            state[b] = rng.standard_normal(3)
            cur[b] = new(b)
    return stream, truth, cur


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 4), k=st.integers(2, 3), steps=st.integers(1, 25), max_len=st.integers(1, 7),
       flush=st.integers(1, 30), seed=st.integers(0, 2**16), incomplete=st.sampled_from(["truncate", "drop"]))
def test_multi_agent_writer_property(tmp_path_factory, B, k, steps, max_len, flush, seed, incomplete):
    """Interleaved multi-agent episodes come out whole: observations, states, actions, per-agent rewards
    and flags, none lost, tails truncated or dropped as asked; sampling stays inside episodes."""
    rng = np.random.default_rng(seed)
    stream, truth, cur = _ma_stream(rng, B, k, steps, max_len)
    agents = [f"a{i}" for i in range(k)]
    w = ogdata.DatasetWriter(tmp_path_factory.mktemp("ma") / "d", spaces.Box(-np.inf, np.inf, (2,), np.float32),
                             spaces.Box(-1, 1, (1,), np.float32), B, agents=agents,
                             state_space=spaces.Box(-np.inf, np.inf, (3,), np.float32), flush_rows=flush)
    for obs, a, r, term, trunc, nxt, s_, ns in stream:
        w.add(obs, a, r, term, trunc, nxt, states=s_, next_states=ns)
    ds = w.close(incomplete=incomplete)
    expected = list(truth)
    if incomplete == "truncate":
        for c in cur:
            if c["act"]:
                tail = dict(c, trunc=c["trunc"][:-1] + [np.ones(k, bool)])
                expected.append(tail)
    assert ds.num_episodes == len(expected) and ds.agents == agents
    got = {e.observations[0].tobytes(): e for e in ds.iter_episodes()}
    for ex in expected:
        e = got[np.asarray(ex["obs"][0]).tobytes()]
        np.testing.assert_array_equal(e.observations, np.array(ex["obs"]))
        np.testing.assert_array_equal(e.states, np.array(ex["state"]))
        np.testing.assert_array_equal(e.actions, np.array(ex["act"]))
        np.testing.assert_array_equal(e.rewards, np.array(ex["rew"]))
        np.testing.assert_array_equal(e.terminations, np.array(ex["term"]))
        np.testing.assert_array_equal(e.truncations, np.array(ex["trunc"]))
        done = e.terminations | e.truncations
        assert done[-1].all() and not done[:-1].any()     # all agents end together, only at the end
    if len(ds):
        b = ds.sample(32, rng=seed)
        arr = ds.arrays()["states"]
        pos = {arr[i].tobytes(): i for i in range(len(arr))}
        for s0, s1 in zip(b["states"], b["next_states"]):
            assert pos[s1.tobytes()] == pos[s0.tobytes()] + 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 3), seed=st.integers(0, 2**16), step=st.integers(0, 5))
def test_multi_agent_agents_must_end_together(tmp_path_factory, B, seed, step):
    """One agent ending alone is refused, by the writer and by create_dataset."""
    rng = np.random.default_rng(seed)
    stream, _, _ = _ma_stream(rng, B, 2, 6, 100)
    w = ogdata.DatasetWriter(tmp_path_factory.mktemp("ma") / "d", spaces.Box(-np.inf, np.inf, (2,), np.float32),
                             spaces.Box(-1, 1, (1,), np.float32), B, agents=["a", "b"],
                             state_space=spaces.Box(-np.inf, np.inf, (3,), np.float32))
    b = int(rng.integers(B))
    for i, (obs, a, r, term, trunc, nxt, s_, ns) in enumerate(stream):
        if i == step:
            term, trunc = term.copy(), trunc.copy()
            term[b], trunc[b] = [False, True], [False, False]     # agent 1 ends, agent 0 does not
            with pytest.raises(DataValidationError, match=f"env {b}: some agents ended"):
                w.add(obs, a, r, term, trunc, nxt, states=s_, next_states=ns)
            break
        w.add(obs, a, r, term, trunc, nxt, states=s_, next_states=ns)
    w.abort()
    arrs = make_flat_episodes(rng, [3, 2], n_agents=2)
    arrs["terminations"][1, 0] = True
    with pytest.raises(DataValidationError, match="step 1: some agents end"):
        ogdata.create_dataset(tmp_path_factory.mktemp("ma") / "c", **arrs)


def test_update_metadata_refuses_what_it_could_not_read_back(tmp_path):
    ds = ogdata.create_dataset(tmp_path / "d", **GOOD)
    before = (ds.path / METADATA_FILE).read_bytes()
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    for bad, match in (({"deep": nested}, "JSON-serialisable|nested"), (object(), "JSON-serialisable"),
                       ({"x": [1] * 3, "deep": json.loads("[" * 100 + "]" * 100)}, "nested deeper"),
                       ("e" * 5000, None)):
        with pytest.raises(MetadataError, match=match):
            update_metadata(ds.path, **({"env_id": bad} if match is None else {"measures": bad}))
    assert (ds.path / METADATA_FILE).read_bytes() == before


@pytest.mark.parametrize("fractions", ["abc", (0.5, float("nan")), (), ((0.5, 0.5),), (1.5, -0.5)])
def test_split_bad_fractions(tmp_path, fractions):
    ds = ogdata.create_dataset(tmp_path / "d", **GOOD)
    with pytest.raises(DataValidationError, match="fractions must be positive"):
        ds.split(fractions)


def test_iter_chunks_names_a_bad_key_before_reading(tmp_path):
    from ogdata.errors import InvalidArgumentError

    ds = ogdata.create_dataset(tmp_path / "d", observations=np.zeros((3, 2), np.float32),
                               actions=np.zeros((2, 1), np.float32), rewards=np.zeros(2, np.float32),
                               terminations=np.array([False, True]), truncations=np.zeros(2, bool),
                               episode_lengths=np.array([2]))
    for bad in (("observations", "obs"), "observations", ("states",)):
        with pytest.raises(InvalidArgumentError, match="keys"):
            next(ds.iter_chunks(keys=bad))
    chunk = next(ds.iter_chunks(keys=("observations", "next_observations", "terminals")))
    assert chunk["next_observations"].shape == (2, 2) and chunk["terminals"].tolist() == [False, True]
