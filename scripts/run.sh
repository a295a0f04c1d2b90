#!/usr/bin/env bash
# The main job end to end, offline: build a small dataset, profile it, train a baseline, print results.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh realdata
python scripts/main_job.py "$@"
