"""Updates per second of each multi-agent baseline vs its d3rlpy single-agent counterpart, at equal samples.

The multi-agent networks are shared by the agents: one multi-agent update of B joint transitions of
n agents is one forward/backward pass over B·n agent samples. The like-for-like peer is therefore
d3rlpy's update at batch B·n (same samples per update, same network size): that is the lead ratio.
A second multi-agent row builds the same learners with plain (unfused) torch Adam — d3rlpy's
optimiser — to show what the fused Adam kernel (`baselines.networks.adam`) contributes.
Both sides time the full training step as `python -m baselines train` runs it (batch sampling
included), on random data of the same shapes, with the same torch thread count; the sides are
timed interleaved (order reversed every other round), --repeats rounds, median (min–max); ratios
are per round, then the median. Rates are from wall time and, beside them, CPU time of the process
(less inflated by other jobs on a shared machine). The load average is recorded.

The single-agent learners of our own (`--which native`; issue #23) are timed the same way beside
d3rlpy's nearest learners on the same single-agent data: MOPO / LMOPO (model update + SAC update +
a model rollout every `rollout_every` updates, amortised — the benchmark runs past `rollout_start`
first) beside d3rlpy's SAC (their model-free core, no model) and CQL; ARSQ beside CQL.

    python scripts/bench_baselines.py [--agents 2] [--batch 256] [--hidden 256] [--seconds 3] [--repeats 5] [--which all]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAIRS = [  # (multi-agent algo, its d3rlpy counterpart, action type)
    ("mabc", "bc", "continuous"),
    ("icql", "cql", "discrete"),
    ("itd3bc", "td3bc", "continuous"),
    ("matd3bc", "td3bc", "continuous"),
    ("iiql", "iql", "continuous"),
]


NATIVE_PAIRS = [  # (our single-agent learner, d3rlpy learners it is timed beside)
    ("mopo", ("SAC", "CQL")),
    ("lmopo", ("SAC", "CQL")),
    ("arsq", ("CQL",)),
]


def make_data(root: Path, n_agents: int, obs_dim: int, act_dim: int, n_actions: int, transitions: int, seed=0):
    from gymnasium import spaces

    import ogdata

    rng = np.random.default_rng(seed)
    T = 100
    E = transitions // T
    lengths = np.full(E, T)
    N = E * T
    out = {}
    for kind in ("continuous", "discrete"):
        box = spaces.Box(-1, 1, (act_dim,), np.float32)
        act_sp = box if kind == "continuous" else spaces.Discrete(n_actions)
        term = np.zeros(N, bool)
        trunc = np.zeros(N, bool)
        trunc[T - 1::T] = True

        def actions(lead, kind=kind):
            if kind == "continuous":
                return rng.uniform(-1, 1, lead + (act_dim,)).astype(np.float32)
            return rng.integers(0, n_actions, lead)

        out[("single", kind)] = ogdata.create_dataset(
            root / f"single-{kind}", observations=rng.standard_normal((N + E, obs_dim)).astype(np.float32),
            actions=actions((N,)), rewards=rng.standard_normal(N).astype(np.float32), terminations=term,
            truncations=trunc, episode_lengths=lengths, action_space=act_sp)
        n = n_agents
        out[("multi", kind)] = ogdata.create_dataset(
            root / f"multi-{kind}", observations=rng.standard_normal((N + E, n, obs_dim)).astype(np.float32),
            actions=actions((N, n)), rewards=rng.standard_normal((N, n)).astype(np.float32),
            terminations=np.repeat(term[:, None], n, 1), truncations=np.repeat(trunc[:, None], n, 1),
            episode_lengths=lengths, states=rng.standard_normal((N + E, n * obs_dim)).astype(np.float32),
            agents=[f"agent_{i}" for i in range(n)], action_space=act_sp)
    return out


def rate(learner, seconds: float, warmup: int = 20) -> tuple[float, float]:
    """(updates per wall second, updates per CPU second of this process)."""
    for _ in range(warmup):
        learner.step()
    k, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        learner.step()
        k += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and k >= 10:
            return k / dt, k / max(time.process_time() - c0, 1e-9)


def spread(xs: list[float], fmt: str = ",.0f", unit: str = "") -> str:
    return f"{statistics.median(xs):{fmt}}{unit} ({min(xs):{fmt}}–{max(xs):{fmt}})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--obs-dim", type=int, default=16)
    p.add_argument("--act-dim", type=int, default=2)
    p.add_argument("--actions", type=int, default=5, help="discrete actions")
    p.add_argument("--transitions", type=int, default=20_000)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="bench_out/baselines.md")
    p.add_argument("--which", choices=("multi", "native", "all"), default="all",
                   help="multi-agent vs d3rlpy, our single-agent learners vs d3rlpy, or both")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from baselines import networks, single
    from baselines.data import fit_scaling
    from baselines.multi import MultiLearner
    from baselines.single import D3rlpyLearner

    kw = dict(hidden=args.hidden, layers=args.layers, device=args.device, seed=0)
    n = args.agents
    bn = args.batch * n
    rows, record = [], []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), n, args.obs_dim, args.act_dim, args.actions, args.transitions)
        for ma, sa, kind in (PAIRS if args.which != "native" else ()):
            sa_name = single.ALGOS[sa].configs[kind].removesuffix("Config")  # the d3rlpy class shown
            mds, sds = data[("multi", kind)], data[("single", kind)]
            learners = {"ma": MultiLearner.from_dataset(ma, mds, fit_scaling(mds), batch_size=args.batch, **kw)}
            networks.FUSED_ADAM = False
            try:
                learners["ma_plain"] = MultiLearner.from_dataset(ma, mds, fit_scaling(mds), batch_size=args.batch,
                                                                 **kw)
            finally:
                networks.FUSED_ADAM = True
            learners["sa_bn"] = D3rlpyLearner.from_dataset(sa, sds, fit_scaling(sds), batch_size=bn, **kw)
            wall: dict[str, list[float]] = {k: [] for k in learners}
            cpu: dict[str, list[float]] = {k: [] for k in learners}
            items = list(learners.items())
            for r in range(args.repeats):  # interleaved, so load changes hit every side alike
                for k, lr in (items if r % 2 == 0 else items[::-1]):
                    w, c = rate(lr, args.seconds)
                    wall[k].append(w)
                    cpu[k].append(c)
                loads.append(os.getloadavg()[0])
            eq = [a / b for a, b in zip(wall["ma"], wall["sa_bn"])]
            eq_cpu = [a / b for a, b in zip(cpu["ma"], cpu["sa_bn"])]
            plain = [a / b for a, b in zip(wall["ma_plain"], wall["sa_bn"])]
            fused = [a / b for a, b in zip(wall["ma"], wall["ma_plain"])]
            rows.append((ma.upper(), f"{sa_name} (d3rlpy)", wall, cpu, eq, eq_cpu, plain, fused))
            record.append({"algo": ma, "counterpart": sa_name, "wall_updates_per_s": wall,
                           "cpu_updates_per_s": cpu})
            print(f"{ma:8s} {statistics.median(wall['ma']):8.1f} upd/s (plain Adam "
                  f"{statistics.median(wall['ma_plain']):.1f}) | {sa_name} batch {bn} "
                  f"{statistics.median(wall['sa_bn']):8.1f} upd/s | equal samples {statistics.median(eq):.2f}× "
                  f"(CPU {statistics.median(eq_cpu):.2f}×), fused Adam {statistics.median(fused):.2f}×", flush=True)
        native_rows = bench_native(args, data[("single", "continuous")]) if args.which != "multi" else []

    import platform

    import d3rlpy

    lines = [] if not rows else [
        "# Multi-agent baselines vs d3rlpy at equal samples: updates per second",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}; {n} agents, multi-agent batch {args.batch} joint transitions "
        f"(= {bn} agent samples through the shared networks) vs d3rlpy at batch {bn}; MLP {args.layers}×"
        f"{args.hidden}, obs {args.obs_dim}, continuous actions {args.act_dim}-d / discrete {args.actions}, "
        f"device {args.device}, torch threads {args.threads}; {args.repeats} interleaved rounds of "
        f"{args.seconds:g}-s timings of the full training step (sampling included), median (min–max), ratios per "
        f"round then the median. torch {torch.__version__}, d3rlpy {d3rlpy.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), load average "
        f"{min(loads):.1f}–{max(loads):.1f} while running.",
        "",
        "| multi-agent | counterpart | MA updates/s | d3rlpy updates/s (batch " + str(bn) + ") | "
        "**MA ÷ d3rlpy, equal samples** (wall) | same, CPU time | MA with plain Adam ÷ d3rlpy | "
        "fused Adam's contribution (MA ÷ MA plain) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, peer, wall, _cpu, eq, eq_cpu, plain, fused in rows:
        lines.append(f"| {name} | {peer} | {spread(wall['ma'], '.0f')} | {spread(wall['sa_bn'], '.0f')} | "
                     f"**{spread(eq, '.2f', '×')}** | {spread(eq_cpu, '.2f', '×')} | {spread(plain, '.2f', '×')} | "
                     f"{spread(fused, '.2f', '×')} |")
    if native_rows:
        lines += [
            "", "# Our single-agent learners beside d3rlpy's: updates per second", "",
            f"Single-agent data, batch {args.batch}, MLP {args.layers}×{args.hidden}, obs {args.obs_dim}, continuous "
            f"actions {args.act_dim}-d, device {args.device}, torch threads {args.threads}, median of {args.repeats} "
            f"interleaved {args.seconds:g}-s timings of the full training step (sampling included; MOPO/LMOPO after "
            "their first rollout, rollouts amortised). torch " f"{torch.__version__}, d3rlpy {d3rlpy.__version__}.",
            "", "| ours | updates/s | d3rlpy learner | d3rlpy updates/s | ours / d3rlpy |", "| --- | ---: | --- | ---: | ---: |"]
        for ours, rate_ours, d3, rate_d3 in native_rows:
            lines.append(f"| {ours} | {rate_ours:.1f} | {d3} | {rate_d3:.1f} | {rate_ours / rate_d3:.2f}× |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"load_average": loads, "agents": n, "batch": args.batch,
                                                    "rows": record}, indent=1) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


def bench_native(args, ds) -> list[tuple[str, float, str, float]]:
    """(ours, its updates/s, d3rlpy learner, its updates/s) for each of NATIVE_PAIRS, interleaved timings."""
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory

    from baselines.data import fit_scaling
    from baselines.native import NativeLearner
    from baselines.single import D3rlpyLearner, TransitionSampler, d3rlpy_device, make_config

    scaling = fit_scaling(ds)
    kw = dict(hidden=args.hidden, layers=args.layers, device=args.device, seed=0, batch_size=args.batch)

    def d3(name: str) -> D3rlpyLearner:
        if name == "CQL":
            return D3rlpyLearner.from_dataset("cql", ds, scaling, **kw)
        d3rlpy.seed(0)  # SAC: d3rlpy's SACConfig with the same encoders and batch (not in baselines.single)
        enc = VectorEncoderFactory(hidden_units=[args.hidden] * args.layers)
        base = make_config("bc", "continuous", scaling, args.hidden, args.layers, args.batch)  # its scalers
        cfg = d3rlpy.algos.SACConfig(batch_size=args.batch, actor_encoder_factory=enc, critic_encoder_factory=enc,
                                     observation_scaler=base.observation_scaler, reward_scaler=base.reward_scaler,
                                     action_scaler=base.action_scaler)
        algo = cfg.create(device=d3rlpy_device(args.device))
        algo.build_with_dataset(ds.to_d3rlpy())
        return D3rlpyLearner("sac", algo, scaling, "continuous", ds.action_space.shape, TransitionSampler(ds, 0))

    learners: dict[str, object] = {}
    for ours, theirs in NATIVE_PAIRS:
        lr = NativeLearner.from_dataset(ours, ds, scaling, **kw)
        for _ in range(getattr(lr.algo.config, "rollout_start", 0)):  # past the first rollout: the steady state
            lr.step()
        learners[ours] = lr
        for t in theirs:
            learners.setdefault(t, None)
    for t in [k for k, v in learners.items() if v is None]:
        learners[t] = d3(t)
    times: dict[str, list[float]] = {k: [] for k in learners}
    for _ in range(args.repeats):
        for k, lr in learners.items():
            times[k].append(rate(lr, args.seconds)[0])   # wall updates/s
    med = {k: statistics.median(v) for k, v in times.items()}
    out = []
    for ours, theirs in NATIVE_PAIRS:
        for t in theirs:
            out.append((ours, med[ours], f"{t} (d3rlpy)", med[t]))
            print(f"{ours:8s} {med[ours]:8.1f} upd/s | {t:5s} (d3rlpy) {med[t]:8.1f} upd/s  "
                  f"ratio {med[ours] / med[t]:.2f}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
