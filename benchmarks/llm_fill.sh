#!/usr/bin/env bash
# Completes the LLM leaderboard grid (every method on both tasks, 5 seeds each), after
# benchmarks/llm_length_bias.sh and benchmarks/llm_bt_seq.sh; then the report. Niced, one run at a time.
# Usage: benchmarks/llm_fill.sh [OUT]   (default results/llm)
set -euo pipefail
OUT=${1:-results/llm}
for run in "ipo llm:len-bias" "online_dpo llm:len-bias" "ln_dpo llm:bt-seq" "simpo llm:bt-seq" "ld_dpo llm:bt-seq"; do
  set -- $run
  /usr/bin/time -f "$1 $2: %e s wall, %U s user" nice -n 5 drlbench run "$1" --env "$2" --seeds 0-4 --batched \
    --out "$OUT" --quiet
done
nice -n 5 drlbench report "$OUT" --out "$OUT"
find "$OUT" -name agent.pt -delete
