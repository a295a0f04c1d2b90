"""Writing datasets, public face: the storage writers, returning opened `Dataset`s.

`ogdata.storage` writes folders and returns their paths (it knows nothing of `Dataset`);
these wrappers open what was written, which is what `ogdata.create_dataset`,
`ogdata.from_hdf5` and `ogdata.DatasetWriter(...).close()` have always returned.
"""

from __future__ import annotations

import functools
import os

from ogdata.dataset import Dataset
from ogdata.storage import collector, convert, create

__all__ = ["DatasetWriter", "create_dataset", "from_hdf5"]


@functools.wraps(create.create_dataset)
def create_dataset(path: str | os.PathLike, **kwargs) -> Dataset:
    return Dataset(create.create_dataset(path, **kwargs))


@functools.wraps(convert.from_hdf5)
def from_hdf5(hdf5_path: str | os.PathLike, dataset_path: str | os.PathLike, **kwargs) -> Dataset:
    return Dataset(convert.from_hdf5(hdf5_path, dataset_path, **kwargs))


class DatasetWriter(collector.DatasetWriter):
    __doc__ = collector.DatasetWriter.__doc__

    def close(self, incomplete: str = "truncate") -> Dataset:
        """Commit. Unfinished episodes are kept and flagged truncated (`incomplete="truncate"`)
        or left out (`"drop"`). Returns the written Dataset."""
        return Dataset(super().close(incomplete))
