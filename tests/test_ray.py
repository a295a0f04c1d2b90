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


def test_to_ray_dataset(local_ray, tmp_path):
    pytest.importorskip("pyarrow")
    from ogdata.ray import to_ray_dataset

    ds = make_ds(tmp_path / "ds")
    rd = to_ray_dataset(ds, count=3)
    got = rd.take_all()
    assert len(got) == len(ds)
    assert np.array_equal(np.stack([r["actions"] for r in got]), ds.arrays()["actions"])


VOLATILE = {"updates_per_s", "train_time_s", "build_time_s", "versions"}


def test_a_run_as_a_ray_task_writes_the_same_record(local_ray, tmp_path, _isolated_home):
    rep = _reproduce_module()
    random_execution_dataset(tmp_path / "ds")
    from dataclasses import asdict

    from baselines.train import RunSettings

    def settings(out):
        return asdict(RunSettings(algo="bc", dataset=str(tmp_path / "ds"), seed=1, steps=6, hidden=16,
                                  batch_size=32, eval_episodes=2, evals=1, threads=1, progress=False, out=str(out)))

    here = rep.run_one(settings(tmp_path / "local"))
    assert here["ok"], here
    [there] = list(rep.run_ray([settings(tmp_path / "ray")], "local", cpus=1, gpus=0.0))
    assert there["ok"] and there["settings"]["out"] == str(tmp_path / "ray")
    a = json.loads((tmp_path / "local" / "result.json").read_text())
    b = json.loads((tmp_path / "ray" / "result.json").read_text())
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}
    ca = json.loads((tmp_path / "local" / "config.json").read_text())
    cb = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert cb["settings"]["out"] == str(tmp_path / "ray")  # the driver's run directory, not the worker's scratch
    for c in (ca, cb):
        c.pop("versions"), c["settings"].pop("out")
    assert ca == cb
    files = sorted(p.relative_to(tmp_path / "ray").as_posix() for p in (tmp_path / "ray").rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local").rglob("*"))
    from safetensors.numpy import load_file

    wa, wb = (load_file(tmp_path / d / "checkpoint" / "model.safetensors") for d in ("local", "ray"))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)  # the same trained weights


def test_reproduce_with_ray_resumes_like_a_local_suite(local_ray, tmp_path, _isolated_home):
    rep = _reproduce_module()
    random_execution_dataset(_isolated_home / "datasets" / "execution-ac" / "random-v0")
    argv = ["--suite", "lite", "--datasets", "execution-ac/random-v0", "--tiers", "random", "--algos", "bc",
            "--seeds", "2", "--steps", "3", "--evals", "1", "--eval-episodes", "2", "--hidden", "16",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--ray", "local"]
    assert rep.main(argv) == 0
    done = sorted((tmp_path / "runs").rglob("result.json"))
    assert len(done) == 2
    doc = json.loads((tmp_path / "results" / "lite.json").read_text())
    assert doc["datasets"]["execution-ac/random-v0"]["algos"]["bc"]["n_seeds"] == 2
    stamps = [f.stat().st_mtime_ns for f in done]
    assert rep.main(argv) == 0  # finished runs are skipped
    assert [f.stat().st_mtime_ns for f in done] == stamps
