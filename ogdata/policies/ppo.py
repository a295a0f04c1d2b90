"""Online behaviour-policy training: PPO for single-agent cores, shared-parameter MAPPO for multi-agent ones.

Why our own torch PPO rather than d3rlpy's online SAC/DQN: PPO consumes a whole
vectorised core — B markets stepped as arrays, one forward pass for all of them, one
gradient phase per rollout of B × n_steps transitions — so one CPU core trains at
environment speed. d3rlpy's online loop steps a single Gymnasium env and makes a
gradient update per step, which on these cheap simulators spends nearly all its time in
the network, and it has no multi-agent learner at all. One code path serves both:

- single-agent: Gaussian (Box, on a [-1, 1] action scale mapped onto the bounds) or
  categorical (Discrete) actor, critic on the observation;
- multi-agent (MAPPO-style): one actor shared by every agent, fed the agent's own
  observation plus a one-hot agent id; a centralised critic fed the global state
  `core.state()` plus the agent id, so it predicts each agent's value from everything.

Observations are standardised by running statistics (saved in every checkpoint);
rewards are scaled by the running std of the discounted return (training only).
During training the policy is checkpointed at evenly spaced iterations, each checkpoint
scored over held-out-seed episodes (the same ones for every checkpoint of a run) with the
rollout noise the dataset tiers use, and the
transitions of the first `record_envs` markets can be streamed to a DatasetWriter (the
Replay tier: a uniform thinning of the run by market, every transition of those markets).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from ogdata.errors import EnvError
from ogdata.policies.checkpoint import (
    BehaviourPolicy,
    action_dim,
    action_spec,
    normalise_obs,
    save_checkpoint,
)
from ogdata.progress import progress_bar

DEFAULT_NOISE = {"box": 0.1, "discrete": 0.05}


def default_noise(action: dict[str, Any] | spaces.Space) -> float:
    """The tiers' rollout noise: Gaussian σ=0.1 on the [-1, 1] scale (Box), ε=0.05 (Discrete)."""
    kind = action["type"] if isinstance(action, dict) else ("discrete" if isinstance(action, spaces.Discrete)
                                                              else "box")
    return DEFAULT_NOISE[kind]


@dataclass
class PPOConfig:
    """Hyper-parameters (one set for every env; see scripts/train_behaviour.py for per-env budgets)."""

    total_steps: int = 2_000_000      # environment steps summed over markets (joint steps if multi-agent)
    num_envs: int = 64                # markets stepped together
    n_steps: int = 128                # rollout length per iteration
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 3e-4
    anneal_lr: bool = True
    epochs: int = 5
    minibatches: int = 4
    clip: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = -0.5
    normalise_reward: bool = True
    checkpoints: int = 20             # evenly spaced, plus the untrained policy at iteration 0
    early_checkpoints: int = 6        # extra ones at iterations 1, 2, 4, ... (where scores move fastest)
    eval_episodes: int = 32
    eval_noise: float | None = None   # None: the tiers' default rollout noise
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PPOConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "hidden" in kw:
            kw["hidden"] = tuple(kw["hidden"])
        return cls(**kw)


@dataclass
class TrainResult:
    config: PPOConfig
    checkpoints: list[dict[str, Any]] = field(default_factory=list)   # the learning curve
    wall_time: float = 0.0
    env_steps: int = 0

    def best(self, key: str = "score") -> dict[str, Any]:
        vals = [c[key] if c.get(key) is not None else c["return_mean"] for c in self.checkpoints]
        return self.checkpoints[int(np.argmax(vals))]


class RunningNorm:
    """Running mean / variance (parallel Welford) of flat vectors, float64."""

    def __init__(self, dim: int):
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        x = x.reshape(-1, self.mean.shape[0]).astype(np.float64)
        bm, bv, bc = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = bm - self.mean
        tot = self.count + bc
        self.mean = self.mean + delta * bc / tot
        m2 = self.var * self.count + bv * bc + delta ** 2 * self.count * bc / tot
        self.var = m2 / tot
        self.count = tot


def _torch():
    import torch

    return torch


def build_actor_critic(actor_in: int, critic_in: int, act_dim: int, hidden, discrete: bool, init_log_std: float):
    """Actor and critic MLPs (tanh, orthogonal init), as one torch Module."""
    torch = _torch()
    nn = torch.nn

    def mlp(sizes, out_gain):
        layers = []
        for i in range(len(sizes) - 1):
            lin = nn.Linear(sizes[i], sizes[i + 1])
            last = i == len(sizes) - 2
            nn.init.orthogonal_(lin.weight, gain=out_gain if last else np.sqrt(2))
            nn.init.zeros_(lin.bias)
            layers.append(lin)
            if not last:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    class ActorCritic(nn.Module):
        def __init__(self):
            super().__init__()
            self.actor = mlp([actor_in, *hidden, act_dim], 0.01)
            self.critic = mlp([critic_in, *hidden, 1], 1.0)
            self.log_std = None if discrete else nn.Parameter(torch.full((act_dim,), float(init_log_std)))

        def dist(self, x):
            out = self.actor(x)
            if discrete:
                return torch.distributions.Categorical(logits=out)
            return torch.distributions.Normal(out, self.log_std.exp())

    return ActorCritic()


class PPOTrainer:
    """Trains one behaviour policy on a vectorised core (see the module docstring)."""

    def __init__(self, make_core: Callable[[int], Any] | str, config: PPOConfig | None = None, *,
                 env_id: str | None = None, env_kwargs: dict[str, Any] | None = None,
                 references: dict[str, float] | None = None, out_dir: str | Path | None = None):
        self.cfg = cfg = config or PPOConfig()
        if isinstance(make_core, str):
            from ogdata.envs.registry import make_core as _mk

            env_id = env_id or make_core
            kw = dict(env_kwargs or {})
            ident = make_core
            make_core = lambda b: _mk(ident, b, **kw)  # noqa: E731
        self.make_core = make_core
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.core = make_core(cfg.num_envs)
        core = self.core
        self.multi = bool(core.multi_agent)
        self.agents = list(core.agents) if self.multi else []
        self.n = len(self.agents) if self.multi else 1
        self.obs_shape = tuple(core.observation_space.shape)
        self.obs_dim = int(np.prod(self.obs_shape, dtype=np.int64))
        self.action = action_spec(core.action_space)
        self.discrete = self.action["type"] == "discrete"
        self.act_dim = action_dim(self.action)
        self.state_dim = int(np.prod(core.state_space.shape, dtype=np.int64)) if self.multi else 0
        self.actor_in = self.obs_dim + (self.n if self.multi else 0)
        self.critic_in = (self.state_dim + self.n) if self.multi else self.obs_dim
        if references is None and env_id is not None:
            from ogdata.errors import ReferenceMissingError
            from ogdata.policies.evaluate import reference_returns

            try:
                references = reference_returns(env_id)
            except ReferenceMissingError:
                references = None
        self.references = references
        self.eval_noise = default_noise(self.action) if cfg.eval_noise is None else float(cfg.eval_noise)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.obs_norm = RunningNorm(self.obs_dim)
        self.state_norm = RunningNorm(self.state_dim) if self.multi else None
        self._eye = np.eye(self.n, dtype=np.float32)

    # -- helpers -------------------------------------------------------------------------
    def _flat_obs(self, obs: np.ndarray) -> np.ndarray:
        lead = (self.cfg.num_envs, self.n) if self.multi else (self.cfg.num_envs,)
        return np.asarray(obs).reshape(lead + (self.obs_dim,))

    def _actor_input(self, flat: np.ndarray) -> np.ndarray:
        x = normalise_obs(flat, self.obs_norm.mean, self.obs_norm.var)
        if self.multi:
            x = np.concatenate([x, np.broadcast_to(self._eye, x.shape[:-1] + (self.n,))], axis=-1)
        return x

    def _critic_input(self, x_actor: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        if not self.multi:
            return x_actor
        s = normalise_obs(state.reshape(state.shape[0], -1), self.state_norm.mean, self.state_norm.var)
        B = s.shape[0]
        return np.concatenate([np.broadcast_to(s[:, None, :], (B, self.n, s.shape[1])),
                               np.broadcast_to(self._eye, (B, self.n, self.n))], axis=-1)

    def policy_tensors(self, model) -> dict[str, np.ndarray]:
        """The actor's weights + observation statistics (what a behaviour policy needs)."""
        t = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items() if k.startswith("actor.")}
        if not self.discrete:
            t["log_std"] = model.log_std.detach().cpu().numpy().copy()
        t["obs_mean"], t["obs_var"] = self.obs_norm.mean.copy(), self.obs_norm.var.copy()
        return t

    def policy_config(self) -> dict[str, Any]:
        core = self.core
        return {
            "algo": "mappo" if self.multi else "ppo",
            "env_id": self.env_id, "env_kwargs": self.env_kwargs,
            "multi_agent": self.multi, "agents": self.agents,
            "obs_shape": list(self.obs_shape), "action": self.action,
            "hidden": list(self.cfg.hidden), "n_layers": len(self.cfg.hidden) + 1, "activation": "tanh",
            "observation_space": _space_json(core.observation_space),
            "action_space": _space_json(core.action_space),
        }

    def behaviour_policy(self, model, noise: float = 0.0, mode: str = "deterministic") -> BehaviourPolicy:
        return BehaviourPolicy(self.policy_tensors(model), self.policy_config(), noise=noise, mode=mode)

    # -- training ------------------------------------------------------------------------
    def train(self, writer=None, record_envs: int = 0, progress: bool = True,
              callback: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
        """Run the whole training; returns the learning curve (one entry per checkpoint).

        writer/record_envs: a DatasetWriter with num_envs=record_envs receives every step of
        markets 0..record_envs-1 (the actions actually executed, clipped to the bounds).
        """
        torch = _torch()
        cfg = self.cfg
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        torch.manual_seed(cfg.seed)
        try:
            return self._train(torch, writer, int(record_envs), progress, callback)
        finally:
            torch.set_num_threads(prev_threads)

    def _train(self, torch, writer, record_envs, progress, callback) -> TrainResult:
        cfg, core = self.cfg, self.core
        B, T, n = cfg.num_envs, cfg.n_steps, self.n
        if record_envs > B:
            raise EnvError(f"record_envs={record_envs} exceeds num_envs={B}")
        rng = np.random.default_rng(cfg.seed)
        model = build_actor_critic(self.actor_in, self.critic_in, self.act_dim, cfg.hidden, self.discrete,
                                   cfg.init_log_std)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-5)
        n_iters = max(1, cfg.total_steps // (B * T))
        ck_iters = checkpoint_iterations(n_iters, cfg.checkpoints, cfg.early_checkpoints)
        result = TrainResult(cfg)
        t0 = time.perf_counter()
        lead = (B, n) if self.multi else (B,)

        obs, _ = core.reset(seed=int(rng.integers(2**63)))
        flat = self._flat_obs(obs)
        state = core.state() if self.multi else None
        ret_acc = np.zeros(lead)
        ret_norm = RunningNorm(1)

        buf_a = np.zeros((T,) + lead + (self.actor_in,), np.float32)
        buf_c = np.zeros((T,) + lead + (self.critic_in,), np.float32)
        buf_u = np.zeros((T,) + lead + (() if self.discrete else (self.act_dim,)),
                         np.int64 if self.discrete else np.float32)
        buf_logp = np.zeros((T,) + lead, np.float32)
        buf_v = np.zeros((T,) + lead, np.float32)
        buf_r = np.zeros((T,) + lead, np.float32)
        buf_d = np.zeros((T, B), np.float32)
        policy_view = BehaviourPolicy(self.policy_tensors(model), self.policy_config())  # for to_env

        it_bar = range(n_iters + 1)
        if progress:
            it_bar = progress_bar(it_bar, desc=f"train {self.env_id or 'core'} seed {cfg.seed}", unit="it")
        env_steps = 0
        for it in it_bar:
            if it in ck_iters:
                entry = self._checkpoint(model, it, env_steps, len(result.checkpoints))
                result.checkpoints.append(entry)
                if callback:
                    callback(entry)
                if progress and hasattr(it_bar, "set_postfix"):
                    it_bar.set_postfix(score=entry.get("score"), ret=round(entry["return_mean"], 3), refresh=False)
            if it == n_iters:
                break
            if cfg.anneal_lr:
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * (1.0 - it / n_iters)
            model.eval()
            for t in range(T):
                self.obs_norm.update(flat)
                if self.multi:
                    self.state_norm.update(state.reshape(B, -1))
                xa = self._actor_input(flat)
                xc = self._critic_input(xa, state)
                with torch.no_grad():
                    dist = model.dist(torch.from_numpy(xa))
                    v = model.critic(torch.from_numpy(xc))[..., 0].numpy()
                    if self.discrete:
                        logits = dist.logits.numpy()
                        g = -np.log(-np.log(rng.random(logits.shape)))
                        u = np.argmax(logits + g, axis=-1)
                        logp = dist.log_prob(torch.from_numpy(u)).numpy()
                        act = u + self.action["start"]
                    else:
                        mean = dist.loc.numpy().astype(np.float64)
                        std = dist.scale.numpy().astype(np.float64)
                        u = (mean + std * rng.standard_normal(mean.shape)).astype(np.float32)
                        logp = dist.log_prob(torch.from_numpy(u)).sum(-1).numpy()
                        act = policy_view.to_env(u.astype(np.float64)).reshape(lead + tuple(self.action["shape"]))
                next_obs, rew, term, trunc, _ = core.step(act)
                rew = np.asarray(rew, np.float64)
                term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
                next_state = core.state() if self.multi else None
                done = (term | trunc).all(axis=1) if self.multi else (term | trunc)
                if writer is not None and record_envs:
                    r = record_envs
                    writer.add(obs[:r], act[:r], rew[:r], term[:r], trunc[:r], next_obs[:r],
                               states=None if state is None else state[:r],
                               next_states=None if next_state is None else next_state[:r])
                # reward scaling by the running std of the discounted return
                ret_acc = ret_acc * cfg.gamma + rew
                ret_norm.update(ret_acc.reshape(-1, 1))
                ret_acc[done] = 0.0
                scale = 1.0 / np.sqrt(ret_norm.var[0] + 1e-8) if cfg.normalise_reward else 1.0
                r_scaled = np.clip(rew * scale, -10, 10)
                cut = trunc & ~term   # truncated, not terminated: bootstrap from the final observation
                if cut.any():
                    fx = self._actor_input(self._flat_obs(next_obs))
                    fc = self._critic_input(fx, next_state)
                    with torch.no_grad():
                        fv = model.critic(torch.from_numpy(fc))[..., 0].numpy()
                    r_scaled = r_scaled + cfg.gamma * fv * cut
                buf_a[t], buf_c[t], buf_u[t] = xa, xc, u
                buf_logp[t], buf_v[t], buf_r[t], buf_d[t] = logp, v, r_scaled, done
                if done.any():
                    obs2, _ = core.reset(mask=done)
                    m = done.reshape((B,) + (1,) * (np.ndim(obs2) - 1))
                    obs = np.where(m, obs2, next_obs)
                    state = core.state() if self.multi else None
                else:
                    obs, state = next_obs, next_state
                flat = self._flat_obs(obs)
                env_steps += B
            with torch.no_grad():
                xa = self._actor_input(flat)
                last_v = model.critic(torch.from_numpy(self._critic_input(xa, state)))[..., 0].numpy()
            adv = np.zeros_like(buf_r)
            gae = np.zeros(lead, np.float32)
            for t in reversed(range(T)):
                nonterm = 1.0 - buf_d[t]
                if self.multi:
                    nonterm = nonterm[:, None]
                nv = last_v if t == T - 1 else buf_v[t + 1]
                delta = buf_r[t] + cfg.gamma * nv * nonterm - buf_v[t]
                gae = delta + cfg.gamma * cfg.gae_lambda * nonterm * gae
                adv[t] = gae
            rets = adv + buf_v
            self._update(torch, model, opt, rng, buf_a, buf_c, buf_u, buf_logp, adv, rets)
        result.wall_time = time.perf_counter() - t0
        result.env_steps = env_steps
        self.model = model
        return result

    def _update(self, torch, model, opt, rng, xa, xc, u, logp, adv, rets) -> None:
        cfg = self.cfg
        N = int(np.prod(logp.shape))
        xa_t = torch.from_numpy(xa.reshape(N, -1))
        xc_t = torch.from_numpy(xc.reshape(N, -1))
        u_t = torch.from_numpy(u.reshape((N,) + u.shape[logp.ndim:]))
        logp_t = torch.from_numpy(logp.reshape(N))
        adv_t = torch.from_numpy(adv.reshape(N))
        ret_t = torch.from_numpy(rets.reshape(N))
        mb = max(1, N // cfg.minibatches)
        model.train()
        for _ in range(cfg.epochs):
            perm = torch.from_numpy(rng.permutation(N))
            for s in range(0, N - mb + 1, mb):
                idx = perm[s:s + mb]
                dist = model.dist(xa_t[idx])
                new_logp = dist.log_prob(u_t[idx])
                ent = dist.entropy()
                if not self.discrete:
                    new_logp, ent = new_logp.sum(-1), ent.sum(-1)
                a = adv_t[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                ratio = (new_logp - logp_t[idx]).exp()
                pg = -torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a).mean()
                v = model.critic(xc_t[idx])[..., 0]
                v_loss = 0.5 * ((v - ret_t[idx]) ** 2).mean()
                loss = pg + cfg.vf_coef * v_loss - cfg.ent_coef * ent.mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()

    # -- checkpoints ---------------------------------------------------------------------
    def evaluate(self, policy, episodes: int, seed: int) -> dict[str, Any]:
        """Mean / std return over `episodes` fresh-seed episodes and the normalised score."""
        from ogdata.policies.evaluate import episode_returns, normalised_score

        if not hasattr(self, "_eval_core"):
            self._eval_core = self.make_core(min(episodes, 128))
        rets = episode_returns(self._eval_core, policy, episodes, seed=seed)["returns"]
        out: dict[str, Any] = {"return_mean": float(rets.mean()), "return_std": float(rets.std()),
                               "episodes": int(len(rets)), "score": None}
        if self.references is not None:
            out["score"] = float(normalised_score(rets.mean(), random=self.references["random"],
                                                  expert=self.references["expert"]))
        return out

    def _checkpoint(self, model, it: int, env_steps: int, k: int) -> dict[str, Any]:
        cfg = self.cfg
        # held-out seeds (never a training seed), the same for every checkpoint of a run: common random
        # numbers, so score differences between checkpoints are differences between policies, not noise
        seed = 1_000_003 * (cfg.seed + 1)
        noisy = self.evaluate(self.behaviour_policy(model, noise=self.eval_noise), cfg.eval_episodes, seed)
        det = self.evaluate(self.behaviour_policy(model, noise=0.0), cfg.eval_episodes, seed)
        entry = {"index": k, "iteration": it, "env_steps": env_steps, **noisy,
                 "noise": self.eval_noise, "eval_seed": seed,
                 "return_mean_deterministic": det["return_mean"], "score_deterministic": det["score"]}
        if self.out_dir is not None:
            stem = self.out_dir / f"ckpt-{k:03d}"
            save_checkpoint(stem, self.policy_tensors(model), {
                **self.policy_config(),
                "training": {"seed": cfg.seed, "iteration": it, "env_steps": env_steps, "config": cfg.to_json()},
                "evaluation": {k2: v for k2, v in entry.items() if k2 not in ("index",)},
                "references": self.references,
            })
            entry["path"] = str(stem)
        return entry


def checkpoint_iterations(n_iters: int, evenly: int, early: int) -> list[int]:
    """Iterations at which to checkpoint: 0, `evenly` evenly spaced up to n_iters, and 1, 2, 4, ... (`early`)."""
    its = set(np.round(np.linspace(0, n_iters, evenly + 1)).astype(int).tolist())
    its |= {2 ** k for k in range(early) if 2 ** k < n_iters}
    return sorted(its)


def _space_json(sp) -> dict[str, Any]:
    from ogdata.spaces import space_to_json

    return space_to_json(sp)


def train(make_core: Callable[[int], Any] | str, config: PPOConfig | None = None, **kwargs) -> TrainResult:
    """Train a behaviour policy (PPO single-agent, MAPPO multi-agent); see PPOTrainer."""
    train_kw = {k: kwargs.pop(k) for k in ("writer", "record_envs", "progress", "callback") if k in kwargs}
    trainer = PPOTrainer(make_core, config, **kwargs)
    res = trainer.train(**train_kw)
    res.trainer = trainer  # type: ignore[attr-defined]
    return res
