"""ogdata: offline-RL datasets for markets — tiered, profiled (TQ, SACo), on the Hub, with baselines.

The public surface is small and Minari-shaped: load / download / list_datasets / delete / verify /
publish; create_dataset / DatasetWriter / from_hdf5 / combine_datasets / split_dataset; list_envs /
make_env / make_vector_env. `import ogdata` registers every single-agent env with Gymnasium
(`gymnasium.make("ogdata/execution-ac-v0")`) and stays light: zarr, torch and the Hub client load
on first use.
"""

from __future__ import annotations

import os

from ogdata import resolve as _resolve
from ogdata.combine import combine_datasets, split_dataset
from ogdata.dataset import Dataset, Episode
from ogdata.envs import list_envs, make_env, make_vector_env
from ogdata.errors import OgdataError
from ogdata.writing import DatasetWriter, augment_stock, create_dataset, from_hdf5

__version__ = "0.1.0"


def load(id_or_path: str | os.PathLike, *, verify: bool = False, download: bool = True, stream: bool = False,
         revision: str | None = None, cache_bytes: int | None = None, mmap: bool = False) -> Dataset:
    """Open a dataset by local path, id (`<env-id>/<tier>-v<N>`) or URL (`hf://datasets/<org>/<env>/<tier>-v<N>`,
    `file://…`, any fsspec URL).

    An id not installed is fetched from the Hub or, for a catalogue id the Hub does not hold or
    cannot be reached for, rebuilt from its recipe (ogdata/resolve.py). download=False: only an
    installed copy will do. verify=True: re-hash every file against the manifest first.
    stream=True (implied by a URL): read from the Hub without downloading — metadata now, whole
    shards on demand into a bounded cache (`cache_bytes`, default $OGDATA_STREAM_CACHE or 1 GiB,
    under OGDATA_HOME/stream-cache), each checked against the manifest when fetched.
    mmap=True (a local copy): `sample` gathers from memory maps of the raw shards instead of holding
    every array in memory — for datasets larger than RAM (a streamed dataset always gathers so).
    """
    if stream or _resolve.is_url(id_or_path):
        if not download and not _resolve.is_url(id_or_path):
            return Dataset(_resolve.resolve(id_or_path, fetch=False), verify=verify, mmap=mmap)
        return Dataset(_resolve.open_stream(id_or_path, revision=revision, cache_bytes=cache_bytes), verify=verify)
    if revision is not None:
        return Dataset(_resolve.resolve(_resolve.as_dataset_id(id_or_path), revision=revision), verify=verify,
                       mmap=mmap)
    return Dataset(_resolve.resolve(id_or_path, fetch=download), verify=verify, mmap=mmap)


def download(dataset_id: str, revision: str | None = None, force: bool = False):
    """Install one dataset (one tier) into OGDATA_HOME — from the Hub, else rebuilt from its catalogue
    recipe — and return its path. force=True fetches again even when a copy is installed."""
    return _resolve.resolve(_resolve.as_dataset_id(dataset_id), revision=revision, force=force)


def list_datasets(remote: bool = False) -> list[str]:
    """Dataset ids in the catalogue and installed locally, plus (remote=True) those on the Hub."""
    return _resolve.list_datasets(remote=remote)


def delete(dataset_id: str) -> bool:
    """Remove the installed copy of a dataset id from OGDATA_HOME; False when none was installed."""
    return _resolve.delete(dataset_id)


def verify(path_or_id: str | os.PathLike) -> dict:
    """Check every file of a dataset (path or installed id) against its manifest and, for catalogue
    ids, its metadata against the catalogue recipe. Raises IntegrityError naming what differs."""
    return _resolve.verify(path_or_id)


def publish(path_or_id: str | os.PathLike, repo_id: str | None = None, token: str | None = None,
            revision: str | None = None) -> str:
    """Upload one dataset and its cards to the Hub in one commit; returns the commit sha."""
    from ogdata.publishing import publish as _publish

    return _publish(path_or_id, repo_id=repo_id, token=token, revision=revision)


__all__ = ["Dataset", "DatasetWriter", "Episode", "OgdataError", "augment_stock", "combine_datasets", "create_dataset",
           "delete",
           "download", "from_hdf5", "list_datasets", "list_envs", "load", "make_env", "make_vector_env",
           "publish", "split_dataset", "verify"]
