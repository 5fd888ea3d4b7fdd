#!/usr/bin/env bash
# Set up from scratch if needed, then run the whole test suite (learning tests included) on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -n 2 --durations=15 "$@"
