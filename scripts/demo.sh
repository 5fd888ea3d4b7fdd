#!/usr/bin/env bash
# Set up from scratch if needed, train SAC on Pendulum-v1 for 5,000 steps (about a minute on
# one CPU core) and show its run record.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/demo}
.venv/bin/drlbench run sac --env Pendulum --steps 5000 --eval-every 1000 --seed 0 --out "$OUT" --resume
echo
echo "Run record: $OUT/Pendulum-v1/sac/seed_0/"
column -s, -t < "$OUT/Pendulum-v1/sac/seed_0/evaluations.csv"
