"""Checkpoints without pickle: network weights in safetensors, everything else in JSON.

`model.safetensors` holds every module's state dict under "<module>/<parameter>";
`model.json` holds what rebuilds the networks (algorithm, config, shapes, scaling). d3rlpy's
own `algo.save()` is a pickle and its `save_model()` a torch zip; neither is used.
Optimiser states are not saved: a checkpoint is for acting and evaluating, not resuming.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ogdata.errors import MetadataError

WEIGHTS, CONFIG = "model.safetensors", "model.json"


def save_checkpoint(directory: str | Path, modules: dict[str, nn.Module], config: dict[str, Any]) -> Path:
    """Write model.safetensors + model.json into `directory` (created); returns the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}/{k}": v.detach().to("cpu").contiguous().clone()
               for name, m in modules.items() for k, v in m.state_dict().items()}
    tmp = d / (WEIGHTS + ".partial")
    save_file(tensors, str(tmp), metadata={"format": "ogdata-baselines", "modules": ",".join(modules)})
    tmp.replace(d / WEIGHTS)
    tmpc = d / (CONFIG + ".partial")
    tmpc.write_text(json.dumps(config, indent=1, sort_keys=True))
    tmpc.replace(d / CONFIG)
    return d


def read_checkpoint(directory: str | Path, device: str = "cpu") -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """(state dicts by module, config) from a checkpoint directory."""
    d = Path(directory)
    if not (d / WEIGHTS).is_file() or not (d / CONFIG).is_file():
        raise MetadataError(f"{d} is not a baselines checkpoint: it needs {WEIGHTS} and {CONFIG} "
                            "(written by `python -m baselines train`)")
    flat = load_file(str(d / WEIGHTS), device=str(device))
    states: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in flat.items():
        name, _, k = key.partition("/")
        states.setdefault(name, {})[k] = v
    return states, json.loads((d / CONFIG).read_text())


def load_modules(modules: dict[str, nn.Module], states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Load state dicts into modules strictly: every module and every tensor must match."""
    missing = set(modules) - set(states)
    if missing:
        raise MetadataError(f"checkpoint lacks weights for {sorted(missing)}; it was written by another algorithm")
    for name, m in modules.items():
        m.load_state_dict(states[name], strict=True)
