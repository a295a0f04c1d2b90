"""Coarse SACo (`saco_coarse`; multi-agent also `oaco_coarse`): coverage on a low-dimensional grid
fitted on the reference.

An addition of ogdata: on continuous observations of 7-221 dimensions, 100 bins per dimension make
nearly every transition its own cell, so SACo ≈ N / N_ref ≈ 1 for every tier and cannot separate
them (OG-MARL's joint SACo fails the same way). Same ratio u(D) / u(D_ref), on a coarse grid fitted
on the reference alone (`coarse_params`):

- the state block (single-agent obs; multi-agent global state, or one agent's obs for OACo)
  and the continuous action block (joint action for multi-agent) are each standardised with
  the reference's mean / std and projected on their own top principal components of the
  reference: action_k = 2 for the action (its own projection, so action diversity counts even
  next to a 221-dimensional state), k − 2 = 4 for the state (k = 6 in all). Discrete actions
  stay as codes (one of the k dimensions each; then the state gets k − 1 = 5).
- each projected column is cut into b equal bins over ±3 reference standard deviations of
  that component (values beyond fall into the edge bins), b being the largest of
  (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64) for which the reference's unique cells
  are ≤ 50% of its transitions — so the reference does not saturate its own grid.
- mean, std, components, variances, limits and b are stored in the reference's metadata
  under measures["saco_coarse_params"] and reused for every dataset of the env; other
  datasets record `saco_coarse_reference`. Counting is the exact streaming counter of `counter.py`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ogdata.errors import DataValidationError, MetadataError, ReferenceMissingError
from ogdata.measures.binning import Binner, Limits, Part
from ogdata.measures.counter import UniqueCounter
from ogdata.measures.hll import HLL_STANDARD_ERROR
from ogdata.measures.rows import (
    check_reference,
    chunk_keys,
    per_agent,
    reference_counts,
    row_views,
    same_dataset,
    space_part,
    take,
)
from ogdata.progress import progress_bar

COARSE_K = 6
COARSE_ACTION_K = 2
COARSE_CLIP_SIGMA = 3.0
COARSE_SATURATION = 0.5
COARSE_CANDIDATES = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


def _coarse_settings(k: int, action_k: int, clip_sigma: float, saturation: float,
                     candidates: Sequence[int]) -> dict[str, Any]:
    cands = sorted({int(b) for b in candidates})
    if not cands or cands[0] < 1 or cands[-1] > 65536:
        raise ValueError(f"coarse bin candidates must be in [1, 65536], got {list(candidates)}")
    if int(k) < 1 or int(action_k) < 0 or not clip_sigma > 0 or not 0 < saturation <= 1:
        raise ValueError(f"need k >= 1, action_k >= 0, clip_sigma > 0 and 0 < saturation <= 1; got k={k}, "
                         f"action_k={action_k}, clip_sigma={clip_sigma}, saturation={saturation}")
    return {"k": int(k), "action_k": int(action_k), "clip_sigma": float(clip_sigma),
            "saturation": float(saturation), "candidates": cands}


class _Moments:
    """Streaming mean and covariance of a block of columns (sums shifted by the first chunk's mean)."""

    def __init__(self):
        self.n = 0
        self.shift = self.s1 = self.s2 = None

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        if not len(x):
            return
        if not np.isfinite(x).all():
            raise DataValidationError("the reference holds NaN or infinite values; coarse SACo needs finite data")
        if self.shift is None:
            self.shift = x.mean(axis=0)
            self.s1 = np.zeros(x.shape[1])
            self.s2 = np.zeros((x.shape[1], x.shape[1]))
        d = x - self.shift
        self.n += len(d)
        self.s1 += d.sum(axis=0)
        self.s2 += d.T @ d

    def block(self, key: str, k: int) -> dict[str, Any]:
        """Standardise with the reference's mean / std, then keep the top-k principal components."""
        m = self.s1 / self.n
        cov = self.s2 / self.n - np.outer(m, m)
        mean = self.shift + m
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0 / np.where(std > 0, std, 1.0), 0.0)
        c = cov * np.outer(scale, scale)
        lam, vec = np.linalg.eigh((c + c.T) / 2)
        order = np.argsort(lam)[::-1][:k]
        lam, vec = np.maximum(lam[order], 0.0), vec[:, order]
        lam[lam <= 1e-12 * max(float(np.trace(c)), 1e-300)] = 0.0     # numerically flat directions: one bin
        flip = np.sign(vec[np.argmax(np.abs(vec), axis=0), np.arange(vec.shape[1])])
        vec = vec * np.where(flip == 0, 1.0, flip)                      # deterministic sign
        return {"key": key, "kind": "continuous", "mean": mean.tolist(), "scale": scale.tolist(),
                "components": vec.tolist(), "variance": lam.tolist()}


class _CoarseView:
    """Projects one kind of row (state ‖ action) onto the coarse grid's columns, from stored parameters."""

    def __init__(self, view: dict[str, Any], bins: int | None = None):
        try:
            self.blocks = []
            for name in ("state", "action"):
                b = view.get(name)
                if b is None:
                    continue
                if b["kind"] == "continuous":
                    w = np.asarray(b["components"], dtype=np.float64).reshape(len(b["mean"]), -1)
                    self.blocks.append((b["kind"], np.asarray(b["mean"], np.float64),
                                        np.asarray(b["scale"], np.float64), w))
                else:
                    self.blocks.append((b["kind"], np.asarray(b["low"], np.float64), np.asarray(b["high"], np.float64),
                                        None))
            low, high = np.asarray(view["low"], np.float64), np.asarray(view["high"], np.float64)
            parts = [Part("projection", "continuous", low, high)] if len(low) else []
            parts += [Part("actions", "discrete", lo, hi) for kind, lo, hi, _ in self.blocks if kind == "discrete"]
            self.limits = Limits(tuple(parts), int(bins if bins is not None else view["bins"]))
        except (KeyError, TypeError, ValueError) as e:
            raise MetadataError(f"the coarse SACo parameters are malformed ({e}); refit them with "
                                "ogdata.measures.coarse_params(reference)") from e

    def arrays(self, state: np.ndarray, action: np.ndarray) -> list[np.ndarray]:
        """[projected continuous columns (n, k) float64, discrete action codes (n, a)] for the binner."""
        z, disc = [], []
        for (kind, a, b, w), x in zip(self.blocks, (state, action)):
            if kind == "discrete":
                disc.append(x)
                continue
            if x.shape[1] != len(a):
                raise DataValidationError(f"rows have {x.shape[1]} columns but the coarse SACo parameters expect "
                                          f"{len(a)}; they belong to a different environment")
            # ((x - a) * b) @ w with the standardisation folded into the projection: one (n, d) float64
            # copy instead of three
            z.append(x.astype(np.float64) @ (b[:, None] * w) - (a * b) @ w)
        out = [np.concatenate(z, axis=1)] if z else []
        return out + disc


def _coarse_rows(ch: dict[str, np.ndarray], parts) -> tuple[np.ndarray, np.ndarray]:
    (_, sk, sa), (_, ak, aa) = parts
    return take(ch, sk, sa), take(ch, ak, aa)


def coarse_params(reference, k: int = COARSE_K, action_k: int = COARSE_ACTION_K,
                  clip_sigma: float = COARSE_CLIP_SIGMA, saturation: float = COARSE_SATURATION,
                  candidates: Sequence[int] = COARSE_CANDIDATES, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Fit the coarse SACo grid on the reference alone (two streaming passes), JSON-ready.

    Per row kind ("joint"; multi-agent also "agent:<name>"): the state block (obs, or the global
    state) and a continuous action block are each standardised with the reference's mean/std and
    projected on their own top principal components — action_k for the action (so action
    diversity always counts, however wide the state), the rest of k for the state; discrete
    actions stay as codes and take one of the k dimensions each. Each projected column is cut
    into b bins over ±clip_sigma reference standard deviations (values beyond go to the edge
    bins), b being the largest candidate whose reference grid has at most `saturation` × its
    transitions unique cells, so the reference itself does not saturate the grid.
    """
    cfg = _coarse_settings(k, action_k, clip_sigma, saturation, candidates)
    views = row_views(reference)
    n_agents = len(reference.agents) if reference.multi_agent else None
    moments = {v: (_Moments(), _Moments()) for v in views}
    disc: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for v, parts in views.items():
        pkey, _, agent = parts[1]
        kind, lo, hi = space_part(pkey, reference.action_space, n_agents if agent == "all" else None)
        disc[v] = (lo, hi) if kind == "discrete" else None
    keys = chunk_keys(views)
    rows = 0
    for ch in reference.iter_chunks(chunk_size, keys=keys):
        for v, parts in views.items():
            s, a = _coarse_rows(ch, parts)
            for (pkey, _, _), x in zip(parts, (s, a)):
                if x.shape[1] == 0:
                    raise DataValidationError(f"{pkey!r} has zero columns (an empty observation or action); coarse "
                                              "SACo needs at least one column in each: give it a dimension")
            moments[v][0].add(s)
            if disc[v] is None:
                moments[v][1].add(a)
        rows += len(next(iter(ch.values())))
    if rows == 0:
        raise DataValidationError("the reference dataset has no transitions; coarse SACo needs a non-empty Replay "
                                  "dataset")
    fitted: dict[str, dict[str, Any]] = {}
    for v, parts in views.items():
        ms, ma = moments[v]
        d_s = len(ms.s1)
        if disc[v] is not None:
            lo, hi = disc[v]
            ka, n_disc = 0, len(lo)
            action = {"key": "actions", "kind": "discrete", "low": lo.astype(int).tolist(),
                      "high": hi.astype(int).tolist()}
        else:
            ka, n_disc = min(cfg["action_k"], len(ma.s1)), 0
            action = ma.block("actions", ka) if ka else None
        ks = min(max(cfg["k"] - ka - n_disc, 1), d_s)
        state = ms.block(parts[0][0], ks)
        sd = np.sqrt(np.asarray(state["variance"] + (action["variance"] if action and ka else [])))
        fitted[v] = {"state": state, "action": action, "low": (-cfg["clip_sigma"] * sd).tolist(),
                     "high": (cfg["clip_sigma"] * sd).tolist()}
    # second pass: the reference's unique cells for every candidate b, to pick b per row kind
    projs = {v: _CoarseView(fitted[v], bins=1) for v in views}
    counters = {(v, b): UniqueCounter(Limits(projs[v].limits.parts, b).radices(), expected_rows=rows)
                for v in views for b in cfg["candidates"]}
    binners = {(v, b): Binner(Limits(projs[v].limits.parts, b)) for v in views for b in cfg["candidates"]}
    for ch in reference.iter_chunks(chunk_size, keys=keys):
        for v, parts in views.items():
            arrays = projs[v].arrays(*_coarse_rows(ch, parts))
            for b in cfg["candidates"]:
                counters[(v, b)].add_values(arrays, binners[(v, b)])
    for v in views:
        u = {b: counters[(v, b)].count() for b in cfg["candidates"]}
        ok = [b for b in cfg["candidates"] if u[b] <= cfg["saturation"] * rows]
        b = max(ok) if ok else cfg["candidates"][0]
        fitted[v].update(bins=int(b), dims=int(len(fitted[v]["low"]) + (0 if disc[v] is None else len(disc[v][0]))),
                         reference_unique=u[b], reference_unique_by_bins=[int(u[c]) for c in cfg["candidates"]])
    return {"method": "standardise + per-block PCA + grid", **cfg,
            "reference": reference.dataset_id or str(reference.path), "reference_transitions": int(rows),
            "views": fitted}


_COARSE_FIT_CACHE: dict[tuple, dict[str, Any]] = {}


def _same_settings(params: dict[str, Any], cfg: dict[str, Any]) -> bool:
    return all(params.get(k) == v for k, v in cfg.items())


def _coarse_params_for(reference, params: dict | None, cfg: dict[str, Any], chunk_size: int) -> dict[str, Any]:
    """Given params, else the reference's stored ones (same settings), else a fit (cached per reference)."""
    if params is not None:
        return params
    stored = reference.measures.get("saco_coarse_params")
    if isinstance(stored, dict) and _same_settings(stored, cfg) and "joint" in (stored.get("views") or {}) \
            and stored.get("reference_transitions") == len(reference):
        return stored
    cacheable = "parent" not in reference.metadata and getattr(reference, "_arrays", None) is None
    key = (str(reference.path.resolve()), len(reference), json.dumps(cfg, sort_keys=True)) if cacheable else None
    if cacheable and key in _COARSE_FIT_CACHE:
        return _COARSE_FIT_CACHE[key]
    fitted = coarse_params(reference, chunk_size=chunk_size, **cfg)
    if cacheable:
        if len(_COARSE_FIT_CACHE) > 16:
            _COARSE_FIT_CACHE.clear()
        _COARSE_FIT_CACHE[key] = fitted
    return fitted


def count_coarse(dataset, params: dict[str, Any], views: Iterable[str], exact: bool, chunk_size: int,
                  progress: bool = False) -> dict[str, int]:
    """Unique coarse cells of each requested row kind, in one streaming pass over the dataset."""
    all_views = row_views(dataset)
    views = list(views)
    stored = params.get("views") or {}
    missing = [v for v in views if v not in stored]
    if missing:
        raise MetadataError(f"the coarse SACo parameters have no entry for {missing}; they were fitted on a "
                            "different kind of dataset — refit them with ogdata.measures.coarse_params(reference)")
    projs = {v: _CoarseView(stored[v]) for v in views}
    counters = {v: UniqueCounter(projs[v].limits.radices(), exact=exact, expected_rows=len(dataset)) for v in views}
    binners = {v: Binner(projs[v].limits) for v in views}
    it = dataset.iter_chunks(chunk_size, keys=chunk_keys({v: all_views[v] for v in views}))
    if progress and len(dataset) > 4 * chunk_size:
        it = progress_bar(it, total=-(-len(dataset) // chunk_size), desc="coarse SACo", unit="chunk", leave=False)
    for ch in it:
        for v in views:
            counters[v].add_values(projs[v].arrays(*_coarse_rows(ch, all_views[v])), binners[v])
    return {v: int(c.count()) for v, c in counters.items()}


def coarse_coverage(dataset, reference, params: dict | None = None, exact: bool = True, k: int = COARSE_K,
                    action_k: int = COARSE_ACTION_K, clip_sigma: float = COARSE_CLIP_SIGMA,
                    saturation: float = COARSE_SATURATION, candidates: Sequence[int] = COARSE_CANDIDATES,
                    chunk_size: int = 1 << 20, progress: bool = False) -> dict[str, Any]:
    """Coarse SACo (multi-agent: and coarse OACo) of `dataset` against `reference`.

    Same ratio as SACo — unique cells of the dataset ÷ unique cells of the reference — on the
    grid of `coarse_params` (fitted on the reference, or taken from `params` / the reference's
    measures["saco_coarse_params"]), so it stays informative when SACo saturates at ≈ 1.
    Returns {"saco_coarse", "unique_coarse_cells", "reference_unique_coarse_cells", "coarse_bins",
    "coarse_dims", "saco_coarse_reference", "saco_coarse_params", ["oaco_coarse", ...]}.
    """
    check_reference(dataset, reference, "coarse SACo")
    cfg = _coarse_settings(k, action_k, clip_sigma, saturation, candidates)
    params = _coarse_params_for(reference, params, cfg, chunk_size)
    views = list(row_views(dataset))
    u = count_coarse(dataset, params, views, exact, chunk_size, progress)
    same = same_dataset(dataset, reference)
    ur = u if same else reference_counts(reference, params, views, exact, chunk_size, count_coarse)
    if ur["joint"] == 0:
        raise ReferenceMissingError("the reference dataset has no transitions; regenerate the Replay dataset")
    pv = params["views"]
    out: dict[str, Any] = {
        "saco_coarse": u["joint"] / ur["joint"],
        "unique_coarse_cells": u["joint"],
        "reference_unique_coarse_cells": ur["joint"],
        "coarse_bins": int(pv["joint"]["bins"]),
        "coarse_dims": int(pv["joint"].get("dims", len(pv["joint"]["low"]))),
        "saco_coarse_reference": params.get("reference"),
        "saco_coarse_params": params,
    }
    if not exact:
        out["saco_coarse_relative_error"] = HLL_STANDARD_ERROR * math.sqrt(2)
    if dataset.multi_agent:
        per = per_agent(views, u, ur)
        out["oaco_coarse_per_agent"] = per
        out["oaco_coarse"] = float(np.mean(list(per.values()))) if per else None
    return out


def saco_coarse(dataset, reference, params: dict | None = None, exact: bool = True, **kwargs) -> float:
    """Coarse state-action coverage (see `coarse_coverage`); multi-agent: state ‖ joint action."""
    return float(coarse_coverage(dataset, reference, params, exact, **kwargs)["saco_coarse"])
