"""Multi-agent env throughput: agent-steps per second at B=1 (PettingZoo API) and B=256 (core).

Spec (issue 4): every registered multi-agent id, next to the single-agent execution core's
env-steps per second. Actions are drawn before the clock starts (uniform over the action
space) so only the environment is timed; episode resets inside the timed loop are counted
(they are part of generating data). Each figure is the best of `--repeat` runs of
`--seconds` each, because the machine is shared. Writes bench_out/multiagent.md.

`--faces` (issue #17): what the PettingZoo dict face costs on top of a B = 1 core step, per id. Three
timings, interleaved round-robin, CPU time of this process, median of `--rounds` rounds:
- core: `core.step` on a (1, n, A) action array, resets included (the B = 1 step);
- face: `MarketParallelEnv.step` with the core's step replaced by a cached result — the face alone
  (the dict check, stacking the agents' actions, the per-agent obs / reward / flag / info dicts);
- face before: the same for the face as it was before issue #17 (a copy, `_step_before` below).
The face's cost is reported as a share of the core step (target ≤ 25 %). Writes bench_out/faces.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import ogdata.envs as E
from ogdata.policies import make_policy

SINGLE_ID = "execution-ac"
POOL = 64  # pre-drawn action batches, cycled


def _best(fn, repeat: int) -> float:
    return max(fn() for _ in range(repeat))


def pettingzoo_rate(env_id: str, seconds: float) -> float:
    """Agent-steps per second through MarketParallelEnv (dict actions in, dicts out)."""
    env = E.make_env(env_id)
    env.reset(seed=0)
    env.action_space(env.possible_agents[0]).seed(0)
    pool = [{a: env.action_space(a).sample() for a in env.possible_agents} for _ in range(POOL)]
    agent_steps, i = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            if not env.agents:
                env.reset()
            act = pool[i % POOL]
            env.step({a: act[a] for a in env.agents})
            agent_steps += len(act)
            i += 1
    return agent_steps / (time.perf_counter() - t0)


def gym_rate(env_id: str, seconds: float) -> float:
    """Env-steps per second through the Gymnasium B=1 face."""
    env = E.make_env(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    pool = [env.action_space.sample() for _ in range(POOL)]
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            _, _, term, trunc, _ = env.step(pool[steps % POOL])
            if term or trunc:
                env.reset()
            steps += 1
    return steps / (time.perf_counter() - t0)


def core_rate(env_id: str, num_envs: int, seconds: float) -> float:
    """Env-steps per second of the raw core at batch B (agent-steps = this × n)."""
    core = E.make_core(env_id, num_envs=num_envs)
    obs, _ = core.reset(seed=0)
    rng = np.random.default_rng(0)
    policy = make_policy("random", core)
    pool = [policy(obs, rng) for _ in range(POOL)]
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            _, _, term, trunc, _ = core.step(pool[steps % POOL])
            ended = term | trunc
            if core.multi_agent:
                ended = ended.all(axis=1)
            if ended.any():
                core.reset(mask=ended)
            steps += 1
    return steps * num_envs / (time.perf_counter() - t0)


def _step_before(env, actions):
    """MarketParallelEnv.step as it was before issue #17 (kept here to measure the face's cost against)."""
    keys = set(actions)
    missing, extra = set(env.agents) - keys, keys - set(env.agents)
    if missing or extra:
        raise ValueError(f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    batch = np.stack([np.asarray(actions[a]) for a in env.possible_agents])[None]
    obs, rew, term, trunc, info = env.core.step(batch)
    ids = env.possible_agents
    n = len(ids)
    o = {a: obs[0, i] for i, a in enumerate(ids)}
    r = {a: float(rew[0, i]) for i, a in enumerate(ids)}
    te = {a: bool(term[0, i]) for i, a in enumerate(ids)}
    tr = {a: bool(trunc[0, i]) for i, a in enumerate(ids)}
    infos = {a: {k: (v[0, i] if np.ndim(v) >= 2 and np.shape(v)[1] == n else v[0]) for k, v in info.items()}
             for i, a in enumerate(ids)}
    return o, r, te, tr, infos


def face_rows(ids: list[str], rounds: int, steps: int) -> list[tuple]:
    """(env id, agents, core µs, face µs, face-before µs) per id: medians of interleaved rounds."""
    trials = []
    for env_id in ids:
        env = E.make_env(env_id)
        env.reset(seed=0)
        core = env.core
        env.action_space(env.possible_agents[0]).seed(0)
        acts = {a: env.action_space(a).sample() for a in env.possible_agents}
        batch = np.stack([acts[a] for a in env.possible_agents])[None]
        c2 = E.make_core(env_id, num_envs=1)
        c2.reset(seed=0)
        cached = core.step(batch)

        def run_core(k, c2=c2, batch=batch):
            for _ in range(k):
                _, _, term, trunc, _ = c2.step(batch)
                if (term | trunc).all():
                    c2.reset()

        def run_face(k, env=env, acts=acts, cached=cached, step=None):
            real = env.core.step
            env.core.step = lambda b, out=cached: out
            try:
                for _ in range(k):
                    (step or type(env).step)(env, acts)
            finally:
                env.core.step = real

        trials.append((env_id, len(env.possible_agents), run_core, run_face,
                       lambda k, f=run_face: f(k, step=_step_before)))
    res = {t[0]: [[], [], []] for t in trials}
    for _ in range(rounds):
        for env_id, _, *fns in trials:
            for j, fn in enumerate(fns):
                t = time.process_time()
                fn(steps)
                res[env_id][j].append((time.process_time() - t) / steps * 1e6)
    return [(e, n, *(float(np.median(x)) for x in res[e])) for e, n, *_ in trials]


def faces_main(args) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ids = E.list_envs(multi_agent=True)
    rows = face_rows(ids, args.rounds, args.steps)
    lines = ["| env id | agents | B=1 core step µs | face µs | face ÷ step | face before #17 µs | before ÷ step |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for e, n, tc, tf, tb in rows:
        lines.append(f"| `{e}` | {n} | {tc:.1f} | {tf:.1f} | {tf / tc:.0%} | {tb:.1f} | {tb / tc:.0%} |")
    worst = max(r[3] / r[2] for r in rows)
    note = (f"\nCPU time of this process, median of {args.rounds} interleaved rounds × {args.steps} steps a cell; "
            f"the face timed with the core step replaced by a cached result. Largest face ÷ step: {worst:.0%} "
            f"(target ≤ 25 %: {'met' if worst <= 0.25 else 'NOT met'}). Machine: {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {load:.1f} at the start (shared), numpy {np.__version__}.\n")
    table = "\n".join(lines) + "\n" + note
    out = Path(args.out if args.out != "bench_out/multiagent.md" else "bench_out/faces.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(table)
    return table


def fmt(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="bench_out/multiagent.md")
    ap.add_argument("--faces", action="store_true", help="the PettingZoo face's cost vs a B=1 core step (issue #17)")
    ap.add_argument("--rounds", type=int, default=9, help="with --faces: interleaved rounds")
    ap.add_argument("--steps", type=int, default=400, help="with --faces: steps a cell and round")
    args = ap.parse_args(argv)
    if args.faces:
        return faces_main(args)
    B = args.batch
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ids = E.list_envs(multi_agent=True)
    rows = []
    for env_id in tqdm([SINGLE_ID, *ids], desc="bench", unit="env"):
        spec = E.env_spec(env_id)
        core = E.make_core(env_id)
        n = len(core.agents) if spec.multi_agent else 1
        if spec.multi_agent:
            b1 = _best(lambda i=env_id: pettingzoo_rate(i, args.seconds), args.repeat)
            api = "PettingZoo"
        else:
            b1 = _best(lambda i=env_id: gym_rate(i, args.seconds), args.repeat)
            api = "Gymnasium"
        bb = _best(lambda i=env_id: core_rate(i, B, args.seconds), args.repeat)
        rows.append((env_id, n, api, b1, 1e6 * n / b1, bb * n, bb))
    head = (f"| env id | agents | B=1 agent-steps/s (API) | B=1 µs/step | B={B} agent-steps/s (core) "
            f"| B={B} env-steps/s (core) |\n|---|---:|---:|---:|---:|---:|\n")
    body = "".join(f"| `{r[0]}` | {r[1]} | {fmt(r[3])} ({r[2]}) | {r[4]:.1f} | {fmt(r[5])} | {fmt(r[6])} |\n"
                   for r in rows)
    note = (f"\nOne run, best of {args.repeat} × {args.seconds:.1f} s per cell, random actions drawn before "
            f"timing, resets included. `{SINGLE_ID}` is the single-agent core (agent-steps = env-steps). "
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {load:.1f} at the start (shared), numpy {np.__version__}.\n")
    table = head + body + note
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
