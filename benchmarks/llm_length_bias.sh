#!/usr/bin/env bash
# LLM track, task C (llm:len-bias: the true reward ignores length, 70% of the labels say "the longer answer
# wins"): do SimPO, LD-DPO and length-normalised DPO exploit the length bias less than DPO?
# Five seeds per method (batched as one population each), the suite's 1000 gradient steps, then AdaStop
# (`drlbench compare`, which reuses these runs and trains more seeds only if an interim needs them), a
# per-method table of the exact end-of-run quantities, and the report. One process at a time, niced.
# Usage: benchmarks/llm_length_bias.sh [OUT]   (default results/llm)
set -euo pipefail
OUT=${1:-results/llm}
ENV=llm:len-bias
AGENTS=(dpo simpo ld_dpo ln_dpo)
start=$(date +%s)
for agent in "${AGENTS[@]}"; do
  /usr/bin/time -f "$agent: %e s wall, %U s user" nice -n 5 drlbench run "$agent" --env "$ENV" --seeds 0-4 --batched \
    --out "$OUT" --quiet
done
nice -n 5 drlbench compare "${AGENTS[@]}" --env "$ENV" --n 5 --K 4 --out "$OUT" --quiet
python - "$OUT" "$ENV" "${AGENTS[@]}" <<'PY'
import csv, statistics, sys
from pathlib import Path
out, env, agents = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
print(f"{'agent':<8} {'seeds':>5} {'score':>14} {'length':>14} {'ref length':>10} {'KL':>12} {'reward':>12} {'win rate':>10}")
for agent in agents:
    rows = []
    for path in sorted((out / env / agent).glob("seed_*/llm_evaluations.csv")):
        rows.append(list(csv.DictReader(open(path)))[-1])
    def ms(key):
        v = [float(r[key]) for r in rows]
        return f"{statistics.mean(v):6.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:5.3f}"
    print(f"{agent:<8} {len(rows):>5} {ms('score'):>14} {ms('length'):>14} {statistics.mean(float(r['ref_length']) for r in rows):>10.3f} "
          f"{ms('kl'):>12} {ms('reward'):>12} {ms('win_rate'):>10}")
PY
nice -n 5 drlbench report "$OUT" --out "$OUT"
echo "total wall time: $(( $(date +%s) - start )) s"
