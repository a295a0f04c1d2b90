"""ogdata: offline-RL datasets for markets — tiered, profiled (TQ, SACo), on the Hub, with baselines.

The public surface is small: load / download / list_datasets / create_dataset / from_hdf5 /
verify / list_envs / make_env. Heavy pieces (Hub client, torch) are imported lazily.
"""

from __future__ import annotations

from ogdata.dataset import Dataset, Episode, load
from ogdata.envs import list_envs, make_env, make_vector_env
from ogdata.errors import OgdataError
from ogdata.writing import DatasetWriter, create_dataset, from_hdf5

__version__ = "0.1.0"


def verify(path_or_id: str) -> dict:
    """Check every file of a dataset (path or installed id) against its manifest and, for catalogue
    ids, its metadata against the catalogue recipe. Raises IntegrityError naming what differs."""
    from ogdata import hub

    return hub.verify(path_or_id)


def download(dataset_id: str, revision: str | None = None, force: bool = False):
    """Download one dataset (one tier) from the Hub into OGDATA_HOME; returns its path."""
    from ogdata import hub

    return hub.download(dataset_id, revision=revision, force=force)


def list_datasets(remote: bool = False) -> list[str]:
    """Dataset ids known locally, in the catalogue, and (remote=True) on the Hub."""
    from ogdata import hub

    return hub.list_datasets(remote=remote)


__all__ = ["Dataset", "DatasetWriter", "Episode", "OgdataError", "create_dataset", "download", "from_hdf5",
           "list_datasets", "list_envs", "load", "make_env", "make_vector_env", "verify"]
