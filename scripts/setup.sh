#!/usr/bin/env bash
# Create .venv and install drlbench with its test extras. Idempotent.
# torch is installed first and pinned to the CPU build found on this project's machines;
# on a GPU machine set TORCH_SPEC (e.g. TORCH_SPEC="torch" for the default CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
echo "drlbench installed in $(pwd)/.venv ($(.venv/bin/drlbench --version 2>/dev/null || true))"
