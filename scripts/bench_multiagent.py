"""Multi-agent env throughput: agent-steps per second at B=1 (PettingZoo API) and B=256 (core).

Spec (issue 4): every registered multi-agent id, next to the single-agent execution core's
env-steps per second. Actions are drawn before the clock starts (uniform over the action
space) so only the environment is timed; episode resets inside the timed loop are counted
(they are part of generating data). Each figure is the best of `--repeat` runs of
`--seconds` each, because the machine is shared. Writes bench_out/multiagent.md.
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


def fmt(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="bench_out/multiagent.md")
    args = ap.parse_args(argv)
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
