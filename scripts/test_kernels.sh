#!/usr/bin/env bash
# Runs the README's test command again under each CPU kernel family torch can select on this machine other than the
# one it picks by itself (ATEN_CPU_CAPABILITY=default, avx2, and avx512 where the CPU has it). Training is canonical
# per kernel family, so a model a test trains differs between them: a test that holds only for one family's draw
# fails here, on the machine where it is written, instead of on a user's. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
best=$(.venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability().lower())")
case "$best" in
  avx512*) others="default avx2" ;;
  avx2) others="default" ;;
  *) others="" ;;
esac
[ -n "$others" ] || { echo "torch selects '$best' kernels here and has no other family to compare"; exit 0; }
for capability in $others; do
  echo "== ATEN_CPU_CAPABILITY=$capability (this CPU's own: $best) =="
  ATEN_CPU_CAPABILITY=$capability .venv/bin/python -m pytest -q "$@"
done
