"""TEMPORARY (lead): replaced by helper D's face module at merge."""
from ogdata.storage import DatasetWriter, create_dataset
from ogdata.storage.convert import from_hdf5

__all__ = ["DatasetWriter", "create_dataset", "from_hdf5"]
