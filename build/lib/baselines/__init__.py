"""Offline RL baselines for ogdata datasets.

Single-agent algorithms run through d3rlpy (`baselines.single`: BC, CQL, IQL, TD3+BC;
DiscreteBC, DiscreteCQL, DiscreteBCQ). Multi-agent ones are one readable torch file each,
CORL-style, sharing only the data loader (`baselines.data`) and the evaluation
(`baselines.evaluate`): `mabc`, `icql`, `itd3bc`, `matd3bc`, `iiql`.

    python -m baselines list
    python -m baselines train --algo cql --dataset portfolio-sp500/medium-v0 --steps 100000 --seed 0
    python -m baselines evaluate --checkpoint runs/.../checkpoint --dataset portfolio-sp500/medium-v0
    python scripts/reproduce.py --suite lite

From Python: `baselines.train.train(RunSettings(...))`, `baselines.train.load_learner(dir)`.
Checkpoints are safetensors + JSON; nothing is pickled.
"""
