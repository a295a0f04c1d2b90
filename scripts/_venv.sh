# Sourced by the two set-up commands: create .venv and install ogdata with the given extras.
# Installs the CPU build of torch first where there is no GPU (a plain `torch` requirement
# would pull a multi-GB CUDA build); the package metadata itself does not pin torch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="${1:-}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=".venv/.ogdata-installed-$(cat pyproject.toml scripts/_venv.sh | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  if ! python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      python -m pip install -q torch
    else
      python -m pip install -q "torch==2.13.0"
    fi
  fi
  python -m pip install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
