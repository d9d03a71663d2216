#!/usr/bin/env bash
# Sets up mmrb in ./.venv: the torch/torchvision pair first (a matching pair; see docs/getting-started.md), then mmrb with its
# test, lint and Ray extras. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[attacks,test,lint,ray]"
# Text attacks need WordNet + English stopwords for NLTK. Offline they come from Debian's WordNet 3.0 packages.
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null
  else
    echo "note: text attacks need WordNet: sudo apt-get install wordnet-base wordnet-sense-index, then .venv/bin/mmrb data text-resources" >&2
  fi
fi
[ -f /usr/share/wordnet/data.noun ] && .venv/bin/mmrb data text-resources
# The leaderboard page's screenshot (mmrb leaderboard screenshot) and its rendering test need headless Chromium.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: the leaderboard screenshot and its page test need headless Chromium: sudo apt-get install chromium" >&2
  fi
fi
.venv/bin/python -c "import torch, torchvision, art, timm, transformers; print('mmrb environment ready: torch', torch.__version__)"
