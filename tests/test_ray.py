"""Ray (issue #21): shard read tasks in Ray workers, and the reproduction suite as Ray tasks.

One local Ray instance per module (`ray.init(num_cpus=1, include_dashboard=False)`, ~5 s to start
here). Ray Data itself needs pyarrow, which this environment lacks: the adapter's read tasks
(`ogdata.ray.ShardRead`) run here as plain Ray tasks, and `to_ray_dataset` is tested only where
pyarrow is installed.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_baselines import _reproduce_module, random_execution_dataset
from test_streaming import make_ds

import ogdata
from ogdata.errors import InvalidArgumentError
from ogdata.ray import read_tasks

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield ray
    ray.shutdown()


@pytest.fixture
def shared_home(_isolated_home):
    """Workers inherit the driver's environment at start; point them at this test's home explicitly."""
    return {"env_vars": {"OGDATA_HOME": str(_isolated_home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}}


def test_shard_read_tasks_in_ray_workers_rebuild_the_dataset(local_ray, tmp_path, shared_home):
    from ogdata.storage import writer

    writer.CHUNK_BYTES, writer.SHARD_BYTES, saved = 1, 1, (writer.CHUNK_BYTES, writer.SHARD_BYTES)
    try:
        local = make_ds(tmp_path / "ds", lengths=list(np.random.default_rng(1).integers(1, 80, 50)))
    finally:
        writer.CHUNK_BYTES, writer.SHARD_BYTES = saved
    ds = ogdata.load(f"file://{tmp_path / 'ds'}")  # streamed: each worker fetches its own shards
    tasks = read_tasks(ds, "transitions", count=4, batch_rows=300)
    assert json.loads(json.dumps([t.spec for t in tasks])) == [t.spec for t in tasks]  # specs are plain JSON

    @ray.remote(runtime_env=shared_home)
    def run(task):
        return os.getpid(), list(task())

    outs = ray.get([run.remote(t) for t in tasks])
    assert {pid for pid, _ in outs} != {os.getpid()}  # read in worker processes, not here
    cols = {k: np.concatenate([b[k] for _, batches in outs for b in batches])
            for k in ("observations", "actions", "rewards", "next_observations", "terminals")}
    full = next(local.iter_chunks(len(local), keys=tuple(cols)))
    for k in cols:
        assert np.array_equal(cols[k], full[k]), k
    episodes = ray.get([run.remote(t) for t in read_tasks(ds, "episodes", count=3, batch_rows=200)])
    rows = [(i, o, a) for _, batches in episodes for b in batches
            for i, o, a in zip(b["episode_id"], b["observations"], b["actions"])]
    assert [r[0] for r in rows] == list(range(local.num_episodes))  # every episode once, in order
    for (_, o, a), ep in zip(rows, local.iter_episodes()):
        assert np.array_equal(o, ep.observations) and np.array_equal(a, ep.actions)


def test_read_tasks_refuse_what_workers_cannot_reopen(tmp_path):
    ds = make_ds(tmp_path / "ds")
    with pytest.raises(InvalidArgumentError, match="create_dataset"):
        read_tasks(ds.select_episodes([0, 1]))
    with pytest.raises(InvalidArgumentError, match="unit must be"):
        read_tasks(ds, unit="steps")


def test_to_ray_dataset_reads_a_stream_by_shard(local_ray, tmp_path):
    pytest.importorskip("pyarrow")
    from ray.data import DataContext

    from ogdata.ray import to_ray_dataset

    DataContext.get_current().execution_options.preserve_order = True  # rows in shard order, to compare
    local = make_ds(tmp_path / "ds")
    ds = ogdata.load(f"file://{tmp_path / 'ds'}")  # streamed: each read task fetches its own shards
    rd = to_ray_dataset(ds, count=3)
    assert rd.count() == len(local)
    got = rd.take_all()
    keys = ("observations", "actions", "rewards", "next_observations", "terminals", "truncations")
    full = next(local.iter_chunks(len(local), keys=keys))
    for k in keys:
        assert np.array_equal(np.stack([r[k] for r in got]), full[k]), k
    eps = to_ray_dataset(ds, unit="episodes", count=2).take_all()
    assert [int(r["episode_id"]) for r in eps] == list(range(local.num_episodes))
    for r, ep in zip(eps, local.iter_episodes(), strict=True):
        assert int(r["length"]) == len(ep)
        assert np.array_equal(np.asarray(r["actions"]).reshape(ep.actions.shape), ep.actions)
    with pytest.raises(InvalidArgumentError, match="unit must be"):
        to_ray_dataset(ds, unit="steps")


VOLATILE = {"updates_per_s", "train_time_s", "build_time_s", "wall_time_s", "versions"}


def test_the_suite_as_ray_tasks_writes_the_records_a_local_run_writes_and_resumes(local_ray, tmp_path, _isolated_home):
    """`reproduce.py --ray local` runs the suite as Ray tasks; the same run then made here, in this process,
    writes the same record, files and trained weights; the suite run again skips what is finished."""
    rep = _reproduce_module()
    random_execution_dataset(_isolated_home / "datasets" / "execution-ac" / "random-v0")
    argv = ["--suite", "lite", "--datasets", "execution-ac/random-v0", "--tiers", "random", "--algos", "bc",
            "--seeds", "1", "--steps", "6", "--evals", "1", "--eval-episodes", "2", "--hidden", "16",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--ray", "local"]
    assert rep.main(argv) == 0
    [done] = sorted((tmp_path / "runs").rglob("result.json"))
    ray_dir = done.parent
    doc = json.loads((tmp_path / "results" / "lite.json").read_text())
    assert doc["datasets"]["execution-ac/random-v0"]["algos"]["bc"]["n_seeds"] == 1
    cb = json.loads((ray_dir / "config.json").read_text())
    assert cb["settings"]["out"] == str(ray_dir)  # the driver's run directory, not the worker's scratch

    here = rep.run_one({**cb["settings"], "out": str(tmp_path / "local")})  # the same run, locally
    assert here["ok"], here
    a = json.loads((tmp_path / "local" / "result.json").read_text())
    b = json.loads(done.read_text())
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}
    ca = json.loads((tmp_path / "local" / "config.json").read_text())
    for c in (ca, cb):
        c.pop("versions"), c["settings"].pop("out")
    assert ca == cb
    files = sorted(p.relative_to(ray_dir).as_posix() for p in ray_dir.rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local").rglob("*"))
    from safetensors.numpy import load_file

    wa, wb = (load_file(d / "checkpoint" / "model.safetensors") for d in (tmp_path / "local", ray_dir))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)  # the same trained weights

    stamp = done.stat().st_mtime_ns
    assert rep.main(argv) == 0  # finished runs are skipped
    assert done.stat().st_mtime_ns == stamp
