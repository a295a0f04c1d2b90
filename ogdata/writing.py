"""Writing datasets, public face: the storage writers, returning opened `Dataset`s.

`ogdata.storage` writes folders and returns their paths (it knows nothing of `Dataset`);
these wrappers open what was written, which is what `ogdata.create_dataset`,
`ogdata.from_hdf5` and `ogdata.DatasetWriter(...).close()` have always returned.
"""

from __future__ import annotations

import functools
import os

from ogdata.dataset import Dataset
from ogdata.errors import DataValidationError
from ogdata.storage import collector, convert, create

__all__ = ["DatasetWriter", "augment_stock", "create_dataset", "from_hdf5"]


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


def augment_stock(ds, path: str | os.PathLike, overwrite: bool = False, **stock_kwargs) -> Dataset:
    """A copy of single-agent dataset `ds` at `path` whose observations carry the stock features that its env
    appends under `augment_stock=True` — computed from each episode's rewards, exactly as the env would
    (tanh(reward so far / stock_scale), time left) — and whose env_kwargs say so. The markets, actions and
    rewards are the data's: the behaviour never saw the features (it did not need them to act), and an
    offline learner that does can condition on them. `stock_kwargs`: e.g. stock_scale (default the env's)."""
    import numpy as np

    from ogdata.envs import make_core

    if ds.multi_agent or not ds.env_id:
        raise DataValidationError(f"{ds.dataset_id or ds.path}: stock features are for single-agent datasets of a "
                                  "known env")
    kwargs = {**(ds.metadata.get("env_kwargs") or {}), "augment_stock": True, **stock_kwargs}
    core = make_core(ds.env_id, num_envs=1, **kwargs)
    scale, horizon = core._stock.scale, core._stock.horizon
    obs, act, rew, term, trunc, lengths = [], [], [], [], [], []
    for ep in ds.iter_episodes():
        n = len(ep)
        acc = np.concatenate([[0.0], np.cumsum(np.asarray(ep.rewards, dtype=np.float64))])
        left = np.clip((horizon - np.arange(n + 1)) / horizon, 0.0, 1.0)
        feats = np.stack([np.tanh(acc / scale), left], axis=1).astype(np.float32)
        obs.append(np.concatenate([np.asarray(ep.observations, dtype=np.float32), feats], axis=1))
        for out, x in ((act, ep.actions), (rew, ep.rewards), (term, ep.terminations), (trunc, ep.truncations)):
            out.append(x)
        lengths.append(n)
    meta = {k: v for k, v in ds.metadata.items() if k in ("env_id", "tier", "recipe", "reference_returns")}
    meta.update(env_id=ds.env_id, env_kwargs=kwargs, dataset_id=None,
                augmented_from=ds.dataset_id or str(ds.path), augmentation="stock features (ogdata.augment_stock)")
    return create_dataset(
        path, observations=np.concatenate(obs), actions=np.concatenate(act), rewards=np.concatenate(rew),
        terminations=np.concatenate(term), truncations=np.concatenate(trunc), episode_lengths=np.array(lengths),
        observation_space=core.observation_space, action_space=ds.action_space, metadata=meta, overwrite=overwrite)
