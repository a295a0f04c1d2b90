#!/usr/bin/env bash
# The whole test suite, lint included, in its own virtualenv (created on first use).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh test,realdata,eval
ruff check ogdata baselines scripts tests
python -m pytest -q -p no:cacheprovider "$@"
