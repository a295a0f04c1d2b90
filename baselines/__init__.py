"""Offline RL baselines for ogdata datasets.

Single-agent algorithms run through d3rlpy (`baselines.single`: BC, CQL, IQL, TD3+BC;
DiscreteBC, DiscreteCQL, DiscreteBCQ). Multi-agent ones are one readable torch file each,
CORL-style (maths in the docstring, a commented config, an update of named steps), sharing only
the building blocks (`baselines.networks`: mlp, Twin, adam, soft_update), the data loader
(`baselines.data`) and the evaluation (`baselines.evaluate`): `mabc`, `icql`, `itd3bc`,
`matd3bc`, `iiql`. Each algorithm carries its own name, action types and description; the
registry (`baselines.registry`) is read off them. `baselines.console` keeps the output plain in
pipes and logs (no gym banner, no colour codes, no progress redraws).

    python -m baselines list
    python -m baselines train --algo cql --dataset portfolio-sp500/medium-v0 --steps 100000 --seed 0
    python -m baselines evaluate --checkpoint runs/.../checkpoint --dataset portfolio-sp500/medium-v0
    python scripts/reproduce.py --suite lite

From Python: `baselines.train.train(RunSettings(...))`, `baselines.train.load_learner(dir)`.
Checkpoints are safetensors + JSON; nothing is pickled.
"""
