"""Streamed datasets (issue #21): read through fsspec without downloading, whole shards verified into a
bounded cache; and `Dataset.shard` for distributed training.

Hub reads go through unmodified huggingface_hub (HfFileSystem) to olah on loopback (tests/hub_server.py);
datasets get there through the LOCAL WRITE STAND-IN (ogdata.publish), and are checked only by reading
them back through olah. The same code is exercised on local fsspec URLs (file://, memory://).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import make_flat_episodes
from hub_server import hub_fixture, point_at  # noqa: F401  (the session-scoped `hub` fixture)
from huggingface_hub import HfApi
from hypothesis import given, settings
from hypothesis import strategies as st

import ogdata
from ogdata import config
from ogdata.dataset import Dataset, shard_cuts
from ogdata.errors import IntegrityError, InvalidArgumentError, OgdataError, StreamCacheWarning, StreamError
from ogdata.storage import writer
from ogdata.storage.cache import ChunkCache
from ogdata.storage.reopen import open_source

ORG = "ogstream"
FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


@pytest.fixture
def online(hub, monkeypatch):  # noqa: F811
    """HF_ENDPOINT at the loopback server (restarted if a previous test killed it)."""
    return point_at(hub, monkeypatch, ORG)


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of ~1k rows instead of 64 MiB, so a test-sized dataset spans many shard files."""
    monkeypatch.setattr(writer, "CHUNK_BYTES", 1)
    monkeypatch.setattr(writer, "SHARD_BYTES", 1)


def make_ds(path, dataset_id="toy-stream/good-v0", seed=0, lengths=None, n_agents=None, hub=False, **kw):
    """A random dataset. hub=True: episodes are added until no file is 121-149 bytes long — the sizes at
    which olah 0.5.4 (the loopback Hub) takes a file for a possible LFS pointer, decodes it as UTF-8 and
    answers 500 to binary content (a quirk of the test server, not of ogdata or the Hub)."""
    rng = np.random.default_rng(seed)
    lengths = list(rng.integers(1, 120, 60)) if lengths is None else list(lengths)
    env_id, folder = dataset_id.split("/")
    meta = {"dataset_id": dataset_id, "env_id": env_id, "tier": folder.split("-v")[0]}
    for _ in range(40):
        arrays = make_flat_episodes(np.random.default_rng(seed), lengths, n_agents=n_agents, **kw)
        ds = ogdata.create_dataset(path, metadata=meta, overwrite=True, **arrays)
        if not hub or not any(120 < e["size"] < 150 for e in ds.metadata["manifest"].values()):
            return ds
        lengths.append(lengths[-1])
    raise AssertionError("no dataset size avoided olah's LFS-pointer sizes")


def shard_files(ds):
    return [r for r in ds.metadata["manifest"] if "/c/" in r]


def assert_same(streamed, local):
    """Byte for byte: metadata, every array, episodes, chunks and seeded samples."""
    assert streamed.metadata == local.metadata
    a, b = local.arrays(), streamed.arrays()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def assert_same_reads(streamed, local):
    for e1, e2 in zip(local.iter_episodes(block_transitions=700), streamed.iter_episodes(block_transitions=700),
                      strict=True):
        for f in FIELDS + ("states",):
            x, y = getattr(e1, f), getattr(e2, f)
            assert (x is None and y is None) or np.array_equal(x, y), f
    keys = ("observations", "next_observations", "actions", "rewards", "terminals", "truncations")
    for c1, c2 in zip(local.iter_chunks(999, keys=keys), streamed.iter_chunks(999, keys=keys), strict=True):
        assert all(np.array_equal(c1[k], c2[k]) for k in keys)
    for seed in range(3):
        x, y = local.sample(300, rng=seed), streamed.sample(300, rng=seed)
        assert x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)


def cache_listing():
    root = config.stream_cache_dir()
    return sorted(p.name for p in root.iterdir() if p.name != ".lock") if root.exists() else []


# ------------------------------------------------------------------------------ local fsspec URLs

def test_a_file_url_streams_the_same_bytes(tmp_path, small_shards):
    local = make_ds(tmp_path / "ds")
    assert len(shard_files(local)) > 12  # the data really spans many shard files
    assert_same_reads(ogdata.load(f"file://{tmp_path / 'ds'}"), local)
    streamed = ogdata.load(f"file://{tmp_path / 'ds'}")
    assert streamed.streamed and not local.streamed
    assert_same(streamed, local)


def test_a_memory_url_streams_multi_agent_data(tmp_path, small_shards):
    import fsspec

    local = make_ds(tmp_path / "ma", "toy-ma/medium-v0", seed=3, n_agents=3)
    fs = fsspec.filesystem("memory")
    fs.put(str(tmp_path / "ma"), "/ma", recursive=True)
    streamed = ogdata.load("memory://ma")
    assert_same_reads(streamed, local)
    assert "next_states" in streamed.sample(8, rng=0)
    assert_same(streamed, local)


def test_sampling_fetches_only_the_shards_its_batch_touches(tmp_path, small_shards):
    local = make_ds(tmp_path / "ds", lengths=[50] * 200)  # 10k transitions, ~10 shards per array
    ds = ogdata.load(f"file://{tmp_path / 'ds'}")
    src = ds.source
    assert cache_listing() == [] and src.cache.fetched == 0  # opening read metadata.json only
    batch = ds.sample(3, rng=7)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(ds), 3)
    oi = idx + ds._episode_of()[idx]
    touched = {"data/episode_lengths/c/0"}  # the episode index: read once, for every batch
    for name, rows in (("observations", np.concatenate([oi, oi + 1])), ("actions", idx), ("rewards", idx),
                       ("terminations", idx), ("truncations", idx)):
        r = ds.metadata["arrays"][name]["shard_rows"]
        touched |= {src._rel(name, int(s)) for s in np.unique(rows // r)}
    touched &= set(ds.metadata["manifest"])  # zarr writes no file for an all-zero shard
    assert src.cache.fetched == len(touched) < len(shard_files(local)) // 3
    assert sorted(cache_listing()) == sorted({ds.metadata["manifest"][r]["sha256"] for r in touched})
    assert np.array_equal(batch["actions"], local.sample(3, rng=7)["actions"])


def test_the_cache_stays_within_its_byte_bound(tmp_path, small_shards, monkeypatch):
    local = make_ds(tmp_path / "ds", lengths=[40] * 160)
    sizes = {e["sha256"]: e["size"] for e in local.metadata["manifest"].values()}
    bound = 3 * max(sizes.values())
    assert sum(sizes.values()) > 4 * bound  # the dataset is much larger than its cache
    peak = [0]
    real = ChunkCache._make_room

    def watched(self, size):  # the bound counts fetches in flight: check it at every reservation
        ok = real(self, size)
        if ok:
            entries, inflight = self._entries()
            peak[0] = max(peak[0], sum(s for _, s, _ in entries) + inflight + size)
        return ok

    monkeypatch.setattr(ChunkCache, "_make_room", watched)
    ds = ogdata.load(f"file://{tmp_path / 'ds'}", cache_bytes=bound)
    for _ in ds.iter_chunks(1000, keys=("observations", "actions", "rewards")):
        assert ds.source.cache.usage() <= bound
    with pytest.warns(StreamCacheWarning, match=r"one batch reads [\d,]+ bytes .* raise cache_bytes") as said:
        for seed in range(20):  # a batch touches more shards than the cache holds: it works, and says so once
            ds.sample(64, rng=seed)
            assert ds.source.cache.usage() <= bound
    assert len([w for w in said if w.category is StreamCacheWarning]) == 1
    assert 0 < peak[0] <= bound and ds.source.cache.fetched > len(sizes)  # it evicted and fetched again
    assert_same_reads(ds, local)
    with pytest.raises(InvalidArgumentError, match="raise cache_bytes"):
        ogdata.load(f"file://{tmp_path / 'ds'}", cache_bytes=max(sizes.values()) - 1)


WORKER = r"""
import hashlib, json, sys, warnings
import ogdata
from ogdata.storage.cache import ChunkCache
url, bound = sys.argv[1], int(sys.argv[2])
peak, real = [0], ChunkCache._make_room
def watched(self, size):  # every reservation sees the whole directory: other processes' entries and fetches too
    ok = real(self, size)
    if ok:
        entries, inflight = self._entries()
        peak[0] = max(peak[0], sum(s for _, s, _ in entries) + inflight + size)
    return ok
ChunkCache._make_room = watched
warnings.simplefilter("ignore")
ds = ogdata.load(url, cache_bytes=bound)
h = hashlib.sha256()
for seed in range(12):
    b = ds.sample(64, rng=seed)
    for k in sorted(b):
        h.update(b[k].tobytes())
print(json.dumps({"peak": peak[0], "digest": h.hexdigest(), "fetched": ds.source.cache.fetched}))
"""


def test_processes_sharing_one_cache_keep_its_bound_together(tmp_path, small_shards):
    local = make_ds(tmp_path / "ds", lengths=[40] * 120)
    sizes = [e["size"] for e in local.metadata["manifest"].values()]
    bound = 3 * max(sizes)
    assert sum(sizes) > 2 * bound
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, f"file://{tmp_path / 'ds'}", str(bound)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    h = hashlib.sha256()
    for seed in range(12):
        b = local.sample(64, rng=seed)
        for k in sorted(b):
            h.update(b[k].tobytes())
    assert all(o["digest"] == h.hexdigest() for o in outs)  # every process read the local copy's bytes
    assert all(0 < o["peak"] <= bound for o in outs) and sum(o["fetched"] for o in outs) > len(sizes)
    assert ChunkCache(config.stream_cache_dir(), bound).usage() <= bound
    assert not [n for n in cache_listing() if n.endswith(".tmp")]


def test_cache_size_from_the_environment(monkeypatch):
    for raw, want in (("512M", 512 << 20), ("2GiB", 2 << 30), ("1000", 1000), ("1.5k", 1536)):
        monkeypatch.setenv("OGDATA_STREAM_CACHE", raw)
        assert config.stream_cache_bytes() == want
    monkeypatch.setenv("OGDATA_STREAM_CACHE", "lots")
    with pytest.raises(InvalidArgumentError, match="OGDATA_STREAM_CACHE='lots'"):
        config.stream_cache_bytes()
    monkeypatch.delenv("OGDATA_STREAM_CACHE")
    assert config.stream_cache_bytes() == 1 << 30


def test_a_corrupted_remote_file_is_named_and_not_cached(tmp_path, small_shards):
    local = make_ds(tmp_path / "ds", lengths=[30] * 50)
    victim = "data/actions/c/0/0"
    data = bytearray((tmp_path / "ds" / victim).read_bytes())
    data[len(data) // 3] ^= 0x40  # same size: only the checksum can tell
    (tmp_path / "ds" / victim).write_bytes(bytes(data))
    ds = ogdata.load(f"file://{tmp_path / 'ds'}")
    with pytest.raises(IntegrityError, match=f"{victim}: checksum mismatch.*nothing was cached"):
        ds.sample(500, rng=0)
    assert local.metadata["manifest"][victim]["sha256"] not in cache_listing()
    assert not [n for n in cache_listing() if n.endswith(".tmp")]


def test_a_fetch_is_checked_whole_and_fetches_in_flight_count_against_the_bound(tmp_path):
    """The cache alone: a short or long download is refused by name and leaves nothing; a temp file of a
    process that died is cleared; one of a live process counts at its final size."""
    root = tmp_path / "cache"
    root.mkdir()
    cache = ChunkCache(root, max_bytes=1000)
    blob = {k: bytes([k]) * 300 for k in (1, 2, 3)}
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in blob.items()}
    with pytest.raises(IntegrityError, match="data/x/c/0: 100 bytes arrived, the manifest records 300"):
        cache.get(sha[1], 300, lambda sink: sink.write(blob[1][:100]), "data/x/c/0")
    with pytest.raises(IntegrityError, match="data/x/c/0: the remote file is larger than the 300 bytes"):
        cache.get(sha[1], 300, lambda sink: sink.write(blob[1] + b"!"), "data/x/c/0")
    assert sorted(p.name for p in root.iterdir()) == [".lock"]  # nothing half-written stayed
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = root / f".{'a' * 64}.900.{dead.pid}.deadbeef0000.tmp"   # a fetch whose process died
    stale.write_bytes(b"x" * 10)
    live = root / f".{'b' * 64}.600.{os.getppid()}.cafe00000000.tmp"  # another live process's fetch of 600 bytes
    live.touch()
    assert cache.get(sha[1], 300, lambda sink: sink.write(blob[1]), "one").read_bytes() == blob[1]
    assert not stale.exists() and live.exists()
    cache.get(sha[2], 300, lambda sink: sink.write(blob[2]), "two")  # 300 + 300 + 600 in flight > 1000
    assert not cache.path(sha[1]).exists() and cache.path(sha[2]).exists()
    assert cache.usage() == 300


def test_a_spec_refuses_a_dataset_that_changed_and_anything_not_a_spec(tmp_path):
    make_ds(tmp_path / "ds", seed=0)
    window = ogdata.load(f"file://{tmp_path / 'ds'}").shard(0, 2).source.spec()
    folder = ogdata.load(tmp_path / "ds").source.spec()
    make_ds(tmp_path / "ds", seed=1)  # rewritten in place: another dataset at the same address
    for spec in (window, folder):
        with pytest.raises(IntegrityError, match="the dataset changed since it was opened.*open it again"):
            open_source(spec)
    for bad in (None, {"kind": "s3"}, ["folder"]):
        with pytest.raises(InvalidArgumentError, match="not a source spec"):
            open_source(bad)


# ------------------------------------------------------------------------------------ the Hub

def test_streamed_from_the_hub_equals_downloaded(online, tmp_path, small_shards):
    did = "toy-hubstream/good-v0"
    src = make_ds(tmp_path / "src", did, seed=5, hub=True)
    sha = ogdata.publish(src.path)
    streamed = ogdata.load(did, stream=True)
    assert streamed.streamed and str(streamed.path) == f"hf://datasets/{ORG}/toy-hubstream@{sha}/good-v0"
    assert not (config.datasets_dir() / "toy-hubstream").exists()  # nothing was downloaded
    assert_same_reads(streamed, src)
    by_url = ogdata.load(f"hf://datasets/{ORG}/toy-hubstream/good-v0")
    assert by_url.path == streamed.path
    downloaded = ogdata.load(ogdata.download(did), verify=True)
    assert_same(streamed, downloaded)
    assert_same(by_url, downloaded)
    # an installed copy is read in place: the resolver has nothing to stream
    assert not ogdata.load(did, stream=True).streamed


def test_a_corrupted_shard_on_the_hub_raises_naming_it(online, tmp_path, small_shards):
    did = "toy-hubcorrupt/good-v0"
    src = make_ds(tmp_path / "src", did, lengths=[30] * 40, hub=True)
    ogdata.publish(src.path)
    victim = "data/rewards/c/0"
    data = bytearray((src.path / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    HfApi(endpoint=online.url, token="unused").upload_file(
        path_or_fileobj=bytes(data), path_in_repo=f"good-v0/{victim}", repo_id=f"{ORG}/toy-hubcorrupt",
        repo_type="dataset", commit_message="bit rot")
    ds = ogdata.load(did, stream=True)
    assert next(ds.iter_chunks(100, keys=("actions",)))["actions"].shape == (100, 2)  # other shards are fine
    with pytest.raises(IntegrityError, match=f"good-v0/{victim}: checksum mismatch") as e:
        next(ds.iter_chunks(100, keys=("rewards",)))
    assert "report it to whoever publishes" in str(e.value)
    assert src.metadata["manifest"][victim]["sha256"] not in cache_listing()
    assert not [n for n in cache_listing() if n.endswith(".tmp")]


def test_the_server_dying_mid_stream_is_an_ogdata_error_and_caches_nothing(online, tmp_path, monkeypatch):
    """A shard of several MB, the server SIGKILLed after its first bytes arrived."""
    did = "toy-hubkill/good-v0"
    src = make_ds(tmp_path / "src", did, lengths=[500] * 40, hub=True, obs_dim=64)  # observations: one ~5 MB shard
    ogdata.publish(src.path)
    ds = ogdata.load(did, stream=True)
    ds.episode_lengths  # noqa: B018 - its shard is fetched before the server goes
    from ogdata.storage import remote

    monkeypatch.setattr(remote, "READ_BYTES", 1 << 16)
    real_open, killed = ds.source.fs.open, threading.Event()

    def dying_open(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        if "observations" not in path:
            return f
        real_read = f.read

        def read(n=-1):
            out = real_read(n)
            if not killed.is_set():
                killed.set()
                online.kill()
            return out

        f.read = read
        return f

    monkeypatch.setattr(ds.source.fs, "open", dying_open)
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(sleep=lambda s: None))  # skip only the waiting
    obs_sha = src.metadata["manifest"]["data/observations/c/0/0"]["sha256"]
    with pytest.raises(StreamError, match="data/observations/c/0/0.*nothing half-read was kept") as e:
        ds.sample(16, rng=0)
    assert isinstance(e.value, OgdataError) and killed.is_set() and not online.alive
    assert obs_sha not in cache_listing() and not [n for n in cache_listing() if n.endswith(".tmp")]
    online.start()
    monkeypatch.setattr(ds.source.fs, "open", real_open)
    assert np.array_equal(ds.sample(16, rng=0)["observations"], src.sample(16, rng=0)["observations"])
    assert obs_sha in cache_listing()


def test_a_spec_reopens_the_same_source_elsewhere_without_secrets(online, tmp_path, monkeypatch):
    did = "toy-hubspec/poor-v0"
    src = make_ds(tmp_path / "src", did, seed=2, hub=True)
    ogdata.publish(src.path)
    monkeypatch.setenv("HF_TOKEN", "hf_NEVERinAspec123")
    ds = ogdata.load(did, stream=True)
    spec = ds.shard(1, 3).source.spec()
    assert "hf_NEVERinAspec123" not in json.dumps(spec)  # JSON: no pickled state, no token
    again = Dataset(open_source(json.loads(json.dumps(spec))))
    assert_same(again, src.shard(1, 3))


# ------------------------------------------------------------------------------------ shards

@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=80), count=st.integers(1, 20))
def test_shards_partition_the_episodes_exactly_and_evenly(lengths, count):
    lengths = np.array(lengths)
    cuts = shard_cuts(lengths, count)
    assert cuts[0] == 0 and cuts[-1] == len(lengths) and (np.diff(cuts) >= 0).all()
    sizes = np.array([lengths[cuts[i]:cuts[i + 1]].sum() for i in range(count)])
    assert sizes.sum() == lengths.sum()
    assert (np.abs(sizes - lengths.sum() / count) <= lengths.max()).all()
    assert np.array_equal(cuts, shard_cuts(lengths, count))  # deterministic
    # on a Dataset: every transition in exactly one shard, in order
    arrays = make_flat_episodes(np.random.default_rng(len(lengths)), lengths)
    full = Dataset("mem", _arrays={k: np.asarray(v) for k, v in arrays.items()},
                   _metadata={"num_transitions": int(lengths.sum()), "num_episodes": len(lengths),
                              "arrays": {k: {} for k in arrays}})
    parts = [full.shard(i, count) for i in range(count)]
    assert [len(p) for p in parts] == list(sizes)
    for k in ("actions", "observations", "episode_lengths"):
        assert np.array_equal(np.concatenate([p.arrays()[k] for p in parts]), arrays[k])


def test_shards_of_a_folder_and_of_a_stream_agree(tmp_path, small_shards):
    local = make_ds(tmp_path / "ds", lengths=list(np.random.default_rng(4).integers(1, 90, 70)))
    streamed = ogdata.load(f"file://{tmp_path / 'ds'}")
    whole = local.arrays()
    got = {k: [] for k in whole}
    for i in range(5):
        a, b = local.shard(i, 5), streamed.shard(i, 5)
        assert not a.streamed and b.streamed and a.metadata["window"] == b.metadata["window"]
        assert_same_reads(b, a)
        for k, v in b.arrays().items():
            got[k].append(v)
        assert b.shard(0, 1).num_transitions == len(b)  # a shard of a shard
    for k in whole:
        assert np.array_equal(np.concatenate(got[k]), whole[k]), k
    with pytest.raises(InvalidArgumentError, match="0 <= index < count"):
        local.shard(5, 5)
    with pytest.raises(InvalidArgumentError, match="integer"):
        local.shard(0, 2.0)


def test_load_rejects_a_revision_for_a_plain_url(tmp_path):
    make_ds(tmp_path / "ds")
    with pytest.raises(InvalidArgumentError, match="applies to the Hub only"):
        ogdata.load(f"file://{tmp_path / 'ds'}", revision="main")
    with pytest.raises(OgdataError, match="metadata.json is missing"):
        ogdata.load(f"file://{tmp_path / 'nothing-here'}")
    assert os.environ.get("OGDATA_HOME")
