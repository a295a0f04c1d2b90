"""Gymnasium spaces <-> JSON, so metadata.json can describe and rebuild them exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import MetadataError


def _enc_bound(a: np.ndarray) -> Any:
    """A scalar when every entry is equal, else a nested list; infinities as strings."""
    a = np.asarray(a)
    flat = np.unique(a)
    if flat.size == 1:
        return _enc_scalar(flat[0])
    return [_enc_bound(x) if np.ndim(x) else _enc_scalar(x) for x in a]


def _enc_scalar(x: Any) -> Any:
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float) and not np.isfinite(x):
        return "inf" if x > 0 else "-inf"
    return x


def _dec_bound(v: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    def dec(x):
        if isinstance(x, list):
            return [dec(y) for y in x]
        return float(x) if isinstance(x, str) else x

    arr = np.asarray(dec(v), dtype=dtype)
    return np.broadcast_to(arr, shape).copy() if arr.shape != shape else arr


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe a Gymnasium space as plain JSON (Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple)."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _enc_bound(space.low),
            "high": _enc_bound(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise MetadataError(f"cannot serialise space {space!r}: only Box, Discrete, MultiDiscrete, "
                        "MultiBinary, Dict and Tuple are supported")


def space_from_json(d: dict[str, Any]) -> spaces.Space:
    """Rebuild the Gymnasium space described by `space_to_json`."""
    try:
        kind = d["type"]
        if kind == "Box":
            shape = tuple(d["shape"])
            dtype = np.dtype(d["dtype"])
            return spaces.Box(_dec_bound(d["low"], shape, dtype), _dec_bound(d["high"], shape, dtype),
                              shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(d["nvec"])
        if kind == "MultiBinary":
            return spaces.MultiBinary(d["n"])
        if kind == "Dict":
            return spaces.Dict({k: space_from_json(v) for k, v in d["spaces"].items()})
        if kind == "Tuple":
            return spaces.Tuple([space_from_json(v) for v in d["spaces"]])
    except (KeyError, TypeError, ValueError) as e:
        raise MetadataError(f"space description {d!r} is malformed ({e}); rewrite it with "
                            "ogdata.spaces.space_to_json") from e
    raise MetadataError(f"unknown space type {kind!r}; expected Box, Discrete, MultiDiscrete, "
                        "MultiBinary, Dict or Tuple")
