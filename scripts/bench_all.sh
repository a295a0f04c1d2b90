#!/usr/bin/env bash
# Regenerate every README benchmark table in one go, one script after another (never two at once:
# they would time each other), into bench_out/. Run it on a quiet machine: each table records the
# load average it ran under. Needs the bench extra (pip install -e '.[bench]'); FinRL rows need the
# venv described in scripts/bench_envs.py. About 25 min on 2 quiet cores (SACo alone ~8).
#
#   bash scripts/bench_all.sh            # all
#   bash scripts/bench_all.sh storage envs generation baselines   # a subset, in this order
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
mkdir -p bench_out
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(storage envs generation baselines multiagent saco)
for b in "${which[@]}"; do
  echo "== bench_$b ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'))"
  case $b in
    storage)    "$PY" scripts/bench_storage.py --out bench_out/storage.md ;;
    envs)       "$PY" scripts/bench_envs.py --out bench_out/envs.md ;;
    generation) "$PY" scripts/bench_generation.py --out bench_out ;;
    baselines)  "$PY" scripts/bench_baselines.py --out bench_out/baselines.md ;;
    multiagent) "$PY" scripts/bench_multiagent.py --out bench_out/multiagent.md ;;
    saco)       "$PY" scripts/bench_saco.py --out bench_out/saco.md ;;
    *) echo "unknown benchmark $b (storage envs generation baselines multiagent saco)" >&2; exit 2 ;;
  esac
done
echo "== done ($(date -u +%H:%M:%S)); tables in bench_out/*.md, every round in bench_out/*.json"
