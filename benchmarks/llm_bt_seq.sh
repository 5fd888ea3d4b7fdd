#!/usr/bin/env bash
# LLM track, task A (llm:bt-seq: Bradley-Terry labels from a dense token reward): offline DPO, IPO (eq. 17)
# and online DPO, five seeds each (one population per method), the suite's 1000 gradient steps,
# AdaStop on that single interim (K = 1: every pair decided at 5 seeds), then the report. One process at a time, niced.
# Usage: benchmarks/llm_bt_seq.sh [OUT]   (default results/llm)
set -euo pipefail
OUT=${1:-results/llm}
ENV=llm:bt-seq
AGENTS=(dpo ipo online_dpo)
start=$(date +%s)
for agent in "${AGENTS[@]}"; do
  /usr/bin/time -f "$agent: %e s wall, %U s user" nice -n 5 drlbench run "$agent" --env "$ENV" --seeds 0-4 --batched \
    --out "$OUT" --quiet
done
nice -n 5 drlbench compare "${AGENTS[@]}" --env "$ENV" --n 5 --K 1 --out "$OUT" --quiet
nice -n 5 drlbench report "$OUT" --out "$OUT"
echo "total wall time: $(( $(date +%s) - start )) s"
