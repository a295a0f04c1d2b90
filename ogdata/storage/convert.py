"""Converters: d3rlpy MDPDataset, D4RL-keyed HDF5 out and in. No step is ever dropped."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
from gymnasium import spaces

from ogdata.errors import DatasetNotFoundError, DataValidationError, MetadataError

EP_KEY = "ogdata/episode_lengths"
TRUNC_KEY = "ogdata/truncations"   # the stored flags, when `timeouts` had to add episode ends
META_ATTR = "ogdata_metadata"


def _episode_end_mask(lengths: np.ndarray, n: int) -> np.ndarray:
    end = np.zeros(n, dtype=bool)
    if n:
        end[np.cumsum(lengths) - 1] = True
    return end


def to_d3rlpy(ds):
    import d3rlpy

    if ds.multi_agent:
        raise DataValidationError("to_d3rlpy() takes single-agent datasets; d3rlpy has no multi-agent support "
                                  "— use the multi-agent baselines (python -m baselines) instead")
    arrs = ds.arrays()
    n = ds.num_transitions
    oi = np.arange(n) + ds._episode_of()
    end = _episode_end_mask(ds.episode_lengths, n)
    term = arrs["terminations"] & end
    timeouts = end & ~term
    sp = ds.action_space
    if isinstance(sp, spaces.Discrete):
        a_type, a_size = d3rlpy.constants.ActionSpace.DISCRETE, int(sp.n)
        actions = arrs["actions"].astype(np.int64).reshape(n, 1)
    else:
        a_type, a_size = d3rlpy.constants.ActionSpace.CONTINUOUS, int(np.prod(sp.shape))
        actions = arrs["actions"].reshape(n, -1)
    return d3rlpy.dataset.MDPDataset(
        observations=arrs["observations"][oi],
        actions=actions,
        rewards=arrs["rewards"].reshape(n, 1).astype(np.float32),
        terminals=term.astype(np.float32),
        timeouts=timeouts.astype(np.float32),
        action_space=a_type,
        action_size=a_size,
    )


def to_hdf5(ds, path: str | os.PathLike) -> Path:
    """D4RL keys (observations, actions, rewards, terminals, timeouts, next_observations) + ogdata's own.

    terminals = terminations; timeouts = truncations, plus every episode end that carries
    neither flag (a D4RL reader splits episodes on terminals | timeouts, so it sees every
    episode ogdata has). The exact episode boundaries, the stored flags and the metadata ride
    along under `ogdata/` and an attribute, so `from_hdf5` restores the dataset byte for byte;
    other readers see a plain D4RL file.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrs = ds.arrays()
    n = ds.num_transitions
    oi = np.arange(n) + ds._episode_of()
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("observations", data=arrs["observations"][oi])
            f.create_dataset("next_observations", data=arrs["observations"][oi + 1])
            f.create_dataset("actions", data=arrs["actions"])
            f.create_dataset("rewards", data=arrs["rewards"])
            term, trunc = arrs["terminations"], arrs["truncations"]
            end = _episode_end_mask(ds.episode_lengths, n)
            if term.ndim > 1:
                end = end[:, None]
            unflagged = end & ~(term | trunc)
            f.create_dataset("terminals", data=term)
            f.create_dataset("timeouts", data=trunc | unflagged)
            if unflagged.any():
                f.create_dataset(TRUNC_KEY, data=trunc)
            if "states" in arrs:
                f.create_dataset("states", data=arrs["states"][oi])
                f.create_dataset("next_states", data=arrs["states"][oi + 1])
            f.create_dataset(EP_KEY, data=ds.episode_lengths)
            meta = {k: v for k, v in ds.metadata.items() if k not in ("manifest", "arrays", "metadata_sha256")}
            f.attrs[META_ATTR] = json.dumps(meta, sort_keys=True)
            f.flush()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _source_metadata(raw, where) -> dict:
    from ogdata.storage.format import MAX_METADATA_BYTES, check_depth

    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(f"{where}: attribute {META_ATTR!r} is not ogdata metadata JSON")
    try:
        meta = json.loads(raw)
        check_depth(meta, f"{where}: attribute {META_ATTR!r}")
    except (ValueError, RecursionError) as e:
        raise MetadataError(f"{where}: attribute {META_ATTR!r} is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(meta, dict):
        raise MetadataError(f"{where}: attribute {META_ATTR!r} is not a JSON object")
    return meta


def from_hdf5(hdf5_path: str | os.PathLike, dataset_path: str | os.PathLike, *, overwrite: bool = False,
              metadata: dict | None = None) -> Path:
    """Convert a D4RL-style HDF5 file into the native format at `dataset_path`; returns its Path
    (`ogdata.from_hdf5` returns the opened Dataset).

    Episodes end at terminals, at timeouts, at the file's last step, and wherever
    next_observations[t] != observations[t+1]. Files without next_observations (the
    original D4RL MuJoCo files) lack each episode's final observation: the last observation
    is repeated there and metadata records it (`final_observation: "repeated"`).
    """
    import h5py

    from ogdata.spaces import space_from_json
    from ogdata.storage.create import create_dataset

    hdf5_path = Path(hdf5_path)
    if not hdf5_path.is_file():
        raise DatasetNotFoundError(f"no HDF5 file at {str(hdf5_path)!r}")
    try:
        f = h5py.File(hdf5_path, "r")
    except OSError as e:
        raise MetadataError(f"{hdf5_path} is not a readable HDF5 file ({e})") from e
    with f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
        if missing:
            raise MetadataError(f"{hdf5_path} lacks the D4RL keys {missing}; expected observations, actions, "
                                "rewards, terminals (+ timeouts, next_observations)")
        obs = f["observations"][:]
        act = f["actions"][:]
        rew = f["rewards"][:]
        n = len(act)
        term = f["terminals"][:].astype(bool).reshape(rew.shape if rew.ndim > 1 else (n,))
        trunc = (f[TRUNC_KEY][:].astype(bool).reshape(term.shape) if TRUNC_KEY in f
                 else f["timeouts"][:].astype(bool).reshape(term.shape) if "timeouts" in f
                 else np.zeros_like(term))
        nxt = f["next_observations"][:] if "next_observations" in f else None
        lengths = f[EP_KEY][:] if EP_KEY in f else None
        st = f["states"][:] if "states" in f else None
        nst = f["next_states"][:] if "next_states" in f else None
        src_meta = _source_metadata(f.attrs[META_ATTR], hdf5_path) if META_ATTR in f.attrs else None
    if rew.ndim == 2 and rew.shape[1] == 1 and src_meta is None:
        rew = rew[:, 0]
        term, trunc = term.reshape(n), trunc.reshape(n)
    meta = {"source": {"hdf5": hdf5_path.name}}
    kw = {}
    if src_meta is not None:
        meta = {k: v for k, v in src_meta.items() if k not in (
            "format", "format_version", "num_transitions", "num_episodes", "observation_space",
            "action_space", "state_space", "agents", "multi_agent", "metadata_sha256")}
        try:
            kw = {"observation_space": space_from_json(src_meta["observation_space"]),
                  "action_space": space_from_json(src_meta["action_space"]),
                  "agents": src_meta.get("agents") or None}
            if src_meta.get("state_space"):
                kw["state_space"] = space_from_json(src_meta["state_space"])
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, MetadataError):
                raise
            raise MetadataError(f"{hdf5_path}: attribute {META_ATTR!r} lacks valid spaces ({e!r}); remove the "
                                "attribute to convert the file as plain D4RL") from None
    meta.update(metadata or {})
    if nxt is None:
        done = (term | trunc) if term.ndim == 1 else (term | trunc).all(axis=1)
        from ogdata.storage.create import episodes_from_flags

        lengths = episodes_from_flags(done) if lengths is None else lengths
        ends = np.cumsum(lengths) - 1
        nxt = np.empty_like(obs)
        nxt[:-1] = obs[1:]
        nxt[ends] = obs[ends]
        meta["final_observation"] = "repeated"
    return create_dataset(dataset_path, observations=obs, next_observations=nxt, actions=act, rewards=rew,
                          terminations=term, truncations=trunc, episode_lengths=lengths, states=st,
                          next_states=nst, metadata=meta, overwrite=overwrite, **kw)
