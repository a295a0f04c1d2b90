"""Behaviour-policy checkpoints: safetensors weights + a JSON config, loaded as batched numpy policies.

A checkpoint is two files side by side, `<stem>.safetensors` (float tensors only, no
pickle) and `<stem>.json` (architecture, action mapping, env id, training and evaluation
record). `load_policy` turns it back into `policy(obs, rng) -> actions` over a whole
batch of markets, running the actor MLP in numpy: generation workers never import torch,
and the same numpy code scores checkpoints during training, so a checkpoint's recorded
score is the score of exactly the policy that generates data.

Action convention: the actor works on a normalised scale — Box actions in [-1, 1] mapped
affinely onto [low, high] (identity where a bound is infinite), Discrete actions as logits.
Rollout noise is expressed on that scale: Gaussian σ for Box actions, ε-greedy for Discrete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import DatasetNotFoundError, MetadataError
from ogdata.storage.format import write_bytes_atomic

FORMAT = "ogdata-policy"
FORMAT_VERSION = 1
OBS_CLIP = 10.0
ACTOR_KEYS_PREFIX = "actor."


# -- files ---------------------------------------------------------------------------------

def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write `<stem>.safetensors` and `<stem>.json` atomically; returns the stem.

    tensors: name -> numpy array or torch tensor (stored as given: float32 weights, float64
    normaliser statistics). config must be JSON-serialisable.
    """
    from safetensors.numpy import save

    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, v in tensors.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        arrays[k] = np.ascontiguousarray(v)
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    write_bytes_atomic(stem.with_suffix(".safetensors"), save(arrays, metadata={"format": FORMAT}))
    write_bytes_atomic(stem.with_suffix(".json"),
                  (json.dumps(cfg, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())
    return stem


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint: (tensors as numpy arrays, config dict)."""
    from safetensors.numpy import load_file

    stem = _stem(path)
    w, c = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for f in (w, c):
        if not f.is_file():
            raise DatasetNotFoundError(f"policy checkpoint file {f} is missing; a checkpoint is a "
                                       "<stem>.safetensors + <stem>.json pair (see scripts/train_behaviour.py)")
    try:
        config = json.loads(c.read_text())
    except json.JSONDecodeError as e:
        raise MetadataError(f"{c}: not valid JSON ({e})") from e
    if config.get("format") != FORMAT or int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise MetadataError(f"{c}: not an {FORMAT} v{FORMAT_VERSION} checkpoint config "
                            f"(format={config.get('format')!r}, version={config.get('format_version')!r})")
    return load_file(str(w)), config


# -- action mapping --------------------------------------------------------------------------

def action_spec(space: spaces.Space) -> dict[str, Any]:
    """JSON description of how the actor's output maps onto `space`."""
    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        centre = np.where(finite, (high + low) / 2, 0.0)
        scale = np.where(finite, (high - low) / 2, 1.0)
        return {"type": "box", "shape": list(space.shape), "dtype": np.dtype(space.dtype).name,
                "centre": centre.ravel().tolist(), "scale": scale.ravel().tolist(),
                "bounded": finite.ravel().tolist()}
    raise MetadataError(f"behaviour policies support Box and Discrete action spaces, not {space}")


def action_dim(spec: dict[str, Any]) -> int:
    return int(spec["n"]) if spec["type"] == "discrete" else int(np.prod(spec["shape"], dtype=np.int64))


def normalise_obs(flat: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Standardised, clipped flat observations (…, dim) as float32 (the actor's and critic's input)."""
    z = (flat.astype(np.float64) - mean) / np.sqrt(var + 1e-8)
    return np.clip(z, -OBS_CLIP, OBS_CLIP).astype(np.float32)


class BehaviourPolicy:
    """A checkpoint's actor as `policy(obs, rng) -> actions`, batched over markets, in numpy.

    mode="deterministic": the mean action (Box) / the arg-max (Discrete), then the
    rollout noise: `noise` = Gaussian σ on the [-1, 1] action scale (Box) or ε of ε-greedy
    (Discrete). mode="sample": draw from the policy's own distribution (training behaviour).
    `random_prob` = p mixes in the uniform random policy: at every step each market (each agent)
    independently acts uniformly at random with probability p. It degrades a checkpoint towards
    the Random tier continuously, which is how a Poor tier is made when training never passed
    through a poor policy (the untrained actor is often already decent). p = 0 draws nothing, so
    rollouts without mixing are unchanged.
    Multi-agent: obs (B, n, *obs) -> actions (B, n, *act), one shared actor fed the agent's
    one-hot id.
    """

    def __init__(self, tensors: dict[str, np.ndarray], config: dict[str, Any], noise: float = 0.0,
                 mode: str = "deterministic", random_prob: float = 0.0):
        if mode not in ("deterministic", "sample"):
            raise ValueError(f"mode must be 'deterministic' or 'sample', got {mode!r}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite value >= 0, got {noise!r}")
        if not (np.isfinite(random_prob) and 0.0 <= random_prob <= 1.0):
            raise ValueError(f"random_prob must be a probability in [0, 1], got {random_prob!r}")
        self.config = config
        self.mode = mode
        self.noise = float(noise)
        self.random_prob = float(random_prob)
        self.action = config["action"]
        self.multi_agent = bool(config.get("multi_agent"))
        self.n_agents = len(config.get("agents") or []) if self.multi_agent else 0
        n_layers = sum(1 for k in tensors if k.startswith("actor.") and k.endswith(".weight"))
        if n_layers != int(config.get("n_layers", n_layers)) or n_layers == 0:
            raise MetadataError(f"checkpoint has {n_layers} actor layers but its config says "
                                f"{config.get('n_layers')}; the files do not belong together")
        self.layers = [(np.ascontiguousarray(tensors[f"actor.{2 * i}.weight"].T),
                        tensors[f"actor.{2 * i}.bias"]) for i in range(n_layers)]
        self.obs_mean = tensors["obs_mean"]
        self.obs_var = tensors["obs_var"]
        self.log_std = tensors.get("log_std")
        self.obs_shape = tuple(config["obs_shape"])
        if self.action["type"] == "box":
            self.centre = np.asarray(self.action["centre"], np.float64)
            self.scale = np.asarray(self.action["scale"], np.float64)
            self.bounded = np.asarray(self.action["bounded"], bool)
            self.act_shape = tuple(self.action["shape"])
            self.act_dtype = np.dtype(self.action["dtype"])
        self._eye = np.eye(self.n_agents, dtype=np.float32) if self.multi_agent else None

    @classmethod
    def load(cls, path: str | os.PathLike, noise: float = 0.0, mode: str = "deterministic",
             random_prob: float = 0.0) -> BehaviourPolicy:
        tensors, config = load_checkpoint(path)
        return cls(tensors, config, noise=noise, mode=mode, random_prob=random_prob)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """Actor output (Gaussian mean on the [-1, 1] scale, or logits): (B[, n], act_dim) float32."""
        obs = np.asarray(obs)
        lead = obs.shape[: obs.ndim - len(self.obs_shape)]
        x = normalise_obs(obs.reshape(lead + (-1,)), self.obs_mean, self.obs_var)
        if self.multi_agent:
            x = np.concatenate([x, np.broadcast_to(self._eye, lead + (self.n_agents,))], axis=-1)
        h = x.reshape(-1, x.shape[-1])
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                np.tanh(h, out=h)
        return h.reshape(lead + (h.shape[-1],))

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = self.forward(obs)
        lead = out.shape[:-1]
        if self.action["type"] == "discrete":
            if self.mode == "sample":
                g = -np.log(-np.log(rng.random(out.shape)))
                a = np.argmax(out + g, axis=-1)
            else:
                a = np.argmax(out, axis=-1)
            if self.noise > 0:
                explore = rng.random(lead) < self.noise
                a = np.where(explore, rng.integers(0, self.action["n"], size=lead), a)
            if self.random_prob > 0:
                mix = rng.random(lead) < self.random_prob
                a = np.where(mix, rng.integers(0, self.action["n"], size=lead), a)
            return (a + self.action["start"]).astype(np.int64)
        u = out.astype(np.float64)
        if self.mode == "sample":
            u = u + np.exp(self.log_std.astype(np.float64)) * rng.standard_normal(u.shape)
        if self.noise > 0:
            u = u + self.noise * rng.standard_normal(u.shape)
        if self.random_prob > 0:  # uniform on [-1, 1] is uniform between the bounds after to_env
            mix = rng.random(lead) < self.random_prob
            u = np.where(mix[..., None], rng.uniform(-1.0, 1.0, u.shape), u)
        return self.to_env(u).reshape(lead + self.act_shape)

    def to_env(self, u: np.ndarray) -> np.ndarray:
        """Map [-1, 1]-scale Box actions (…, act_dim) onto the env's bounds (clipped where bounded)."""
        u = np.where(self.bounded, np.clip(u, -1.0, 1.0), u)
        return (self.centre + self.scale * u).astype(self.act_dtype)


def load_policy(path: str | os.PathLike, noise: float = 0.0, mode: str = "deterministic",
                random_prob: float = 0.0) -> BehaviourPolicy:
    """Load a checkpoint as a batched callable policy `policy(obs, rng)` (see BehaviourPolicy)."""
    return BehaviourPolicy.load(path, noise=noise, mode=mode, random_prob=random_prob)
