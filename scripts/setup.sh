#!/usr/bin/env bash
# Sets up mmrb in ./.venv: the torch/torchvision pair first (a matching pair; see README), then mmrb with its
# test extras. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,lint]"
.venv/bin/python -c "import torch, torchvision, art, timm, transformers; print('mmrb environment ready: torch', torch.__version__)"
