"""The GPU path of every baseline, through the public training path: each algorithm (and its HL-Gauss critic
where it has one) trains briefly on `--device cuda` on a small Medium-tier dataset of its kind (generated here
from the catalogue recipe's committed behaviour policies, 20k transitions), writes its checkpoint,
and the checkpoint is read back on the CPU and on the GPU; both must give the same actions on the dataset's
observations (discrete: the same action; continuous: within float tolerance) and the losses must be finite.

CI has no GPU, so this runs where one is lent (a session's device machine): the learner unit tests run there too
with `OGDATA_TEST_DEVICE=cuda pytest tests/test_baselines.py tests/test_baselines_multi.py tests/test_baselines_mb.py`
(their learners train on that device). Writes one JSON record per (algo, value loss).

    python scripts/gpu_check.py --out results/gpu_check.json            # every algorithm, 1,000 updates each
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import ogdata  # noqa: E402
from baselines.data import with_stock_features  # noqa: E402
from baselines.registry import ALGORITHMS, takes_hl_gauss  # noqa: E402
from baselines.train import RunSettings, load_learner, train  # noqa: E402
from ogdata.generate import generate  # noqa: E402

# one env per (multi-agent, action kind); no multi-agent discrete env is in the catalogue, so icql's GPU path is
# checked by tests/test_baselines_multi.py under OGDATA_TEST_DEVICE=cuda instead
ENVS = {(False, "continuous"): "execution-ac", (False, "discrete"): "trading-synth",
        (True, "continuous"): "joint-execution-2"}
TRANSITIONS = 20_000


def make_datasets(work: Path) -> dict[tuple[bool, str], str]:
    """A small ad-hoc Medium dataset of each env (the catalogue ids would rebuild whole envs, PPO training too)."""
    out = {}
    for key, env in ENVS.items():
        path = work / "data" / env
        generate(env, "medium", TRANSITIONS, path, profile=False, progress=False)
        out[key] = str(path)
    return out


def cases(algos: list[str] | None, datasets: dict[tuple[bool, str], str]) -> list[tuple[str, str, str]]:
    """(algo, value_loss, dataset path) to check."""
    out = []
    for info in ALGORITHMS.values():
        if algos and info.name not in algos:
            continue
        for kind in info.action_types:
            did = datasets.get((info.multi_agent, kind))
            if did is None:
                continue
            for loss in ("mse", "hl_gauss") if takes_hl_gauss(info.name) else ("mse",):
                out.append((info.name, loss, did))
    return out


def check(algo: str, loss: str, did: str, steps: int, device: str, work: Path) -> dict:
    out = work / f"{algo}-{loss}-{Path(did).name}"
    s = RunSettings(algo=algo, dataset=did, steps=steps, seed=0, device=device, hidden=64, layers=2,
                    batch_size=256, eval_episodes=8, evals=1, out=str(out), progress=False, protocol="v0",
                    overrides={"value_loss": loss} if loss != "mse" else None)
    t = time.perf_counter()
    res = train(s)
    wall = time.perf_counter() - t
    losses = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    finite = all(math.isfinite(v) for rec in losses if "eval" not in rec for k, v in rec.items()
                 if k not in ("step", "time") and isinstance(v, float))
    ds = ogdata.load(did)
    if ALGORITHMS[algo].needs_stock:  # sqriql acts on the stock-augmented observations train() made
        ds = with_stock_features(ds)
    obs = np.asarray(ds.arrays()["observations"][:512], dtype=np.float32)
    on_gpu, on_cpu = load_learner(out / "checkpoint", device=device), load_learner(out / "checkpoint", "cpu")
    a_gpu, a_cpu = on_gpu.policy(obs), on_cpu.policy(obs)
    if np.issubdtype(a_gpu.dtype, np.integer):
        agree = float(np.mean(a_gpu == a_cpu))
        same, diff = agree >= 0.99, {"action_agreement": agree}  # a near-tie argmax may flip on float noise
    else:  # arsq picks its action digit by digit (argmax over bins): a near-tie may move one row by a bin
        scale = float(np.max(np.abs(a_cpu))) or 1.0
        rows = np.abs(a_gpu - a_cpu).reshape(len(obs), -1).max(1)
        agree = float(np.mean(rows <= 1e-3 * scale))
        same, diff = agree >= 0.99, {"action_agreement": agree, "max_action_gap": float(rows.max()),
                                     "action_scale": scale}
    return {"algo": algo, "value_loss": loss, "dataset": Path(did).name, "device": device, "steps": steps,
            "updates_per_s": res.get("updates_per_s"), "wall_s": wall, "losses_finite": finite,
            "score": (res.get("last") or {}).get("normalised_score"), "gpu_cpu_same_actions": same, **diff,
            "ok": bool(finite and same)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--algos", default=None, help="comma-separated subset (default: all)")
    p.add_argument("--out", default=str(ROOT / "results" / "gpu_check.json"))
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: torch sees no GPU here; run this where one is lent", file=sys.stderr)
        return 2
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        todo = cases(args.algos.split(",") if args.algos else None, make_datasets(Path(tmp)))
        for i, (algo, loss, did) in enumerate(todo, 1):
            try:
                rec = check(algo, loss, did, args.steps, args.device, Path(tmp))
            except Exception as e:  # a failure is the finding: record it and go on
                rec = {"algo": algo, "value_loss": loss, "dataset": Path(did).name, "ok": False,
                       "error": f"{type(e).__name__}: {e}"}
            records.append(rec)
            print(f"[{i}/{len(todo)}] {algo:8s} {loss:8s} {Path(did).name:26s} "
                  + ("ok" if rec["ok"] else "FAILED " + str(rec.get("error", rec))), flush=True)
    doc = {"device": args.device, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "torch": torch.__version__, "machine": platform.machine(), "steps": args.steps,
           "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "records": records}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True))
    bad = [r for r in records if not r["ok"]]
    print(f"{len(records) - len(bad)}/{len(records)} ok; wrote {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
