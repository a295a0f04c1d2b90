"""One exception hierarchy for ogdata: every message says what was wrong and what to do."""

from __future__ import annotations


class OgdataError(Exception):
    """Base class of every error ogdata raises on purpose."""


class InvalidIdError(OgdataError, ValueError):
    """A dataset or environment id that is malformed or unknown."""


class DatasetNotFoundError(OgdataError, FileNotFoundError):
    """No dataset at the given path or id."""


class MetadataError(OgdataError, ValueError):
    """metadata.json is missing, malformed or fails validation."""


class FormatVersionError(MetadataError):
    """The dataset was written in a format version this ogdata cannot read."""


class IntegrityError(OgdataError):
    """A file does not match the manifest (corrupted, truncated, missing or unexpected)."""


class DataValidationError(OgdataError, ValueError):
    """Arrays handed to a writer are inconsistent: mismatched lengths, NaN/inf, bad dtypes."""


class DatasetExistsError(OgdataError, FileExistsError):
    """A dataset already exists at the target path."""


class InvalidArgumentError(OgdataError, ValueError):
    """An argument of an ogdata function or command is out of its range (a negative seed, 0 workers)."""


class StorageError(OgdataError, OSError):
    """Writing a dataset failed at the file system (disk full, permission denied); nothing was left."""


class EnvError(OgdataError, ValueError):
    """Bad environment kwargs or a bad action."""


class InvalidActionError(EnvError):
    """An action is NaN, of the wrong shape, or (for discrete spaces) out of range."""


class MissingExtraError(OgdataError, ImportError):
    """An optional dependency (an extra such as ogdata[realdata]) is not installed."""


class ReferenceMissingError(OgdataError, LookupError):
    """A measure needs a reference (returns or a Replay dataset) that is not recorded."""


class HubError(OgdataError):
    """The Hub could not be reached or answered with an error."""


class OfflineError(HubError):
    """The Hub is unreachable or HF_HUB_OFFLINE is set and nothing usable is cached."""


class StreamError(OgdataError, OSError):
    """Reading a streamed dataset's file from its URL failed mid-way (nothing half-read was kept)."""


class StreamCacheWarning(UserWarning):
    """A streamed read needs more shards at once than the stream cache holds: it works, but fetches them again
    and again (the message says how large to make the cache)."""


class NotOnHubError(DatasetNotFoundError):
    """The Hub answered, and it does not hold the dataset (no such repo, revision or tier folder)."""


def closest(name: str, candidates, n: int = 1) -> str:
    """A ' Did you mean ...?' suffix naming the closest candidate, or ''."""
    import difflib

    hits = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""
