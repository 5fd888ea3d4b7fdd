#!/usr/bin/env bash
# LLM track, task A3 (llm:bt-seq-intransitive: Bradley-Terry labels plus a rock-paper-scissors term, so no
# reward explains the preference): the online and game-theoretic methods (XPO, Nash-MD, SPPO, INPO, DNO-Prct,
# APO) against offline and online DPO, five seeds each (one population per method), AdaStop on the score
# (`drlbench compare`, a single interim: every pair decided at 5 seeds), the report, and a table of the exact
# game metrics of the final policies: exploitability max_y P(y > pi) - 1/2 and the duality gap of the
# KL-regularised game (beta = 0.1; drlbench.llm.tasks, "Game metrics"), mean ± std over seeds, lower is better.
# One process at a time, niced.
# Usage: benchmarks/llm_nash.sh [OUT] [STEPS]   (default results/llm-nash, the suite's 1000 gradient steps)
set -euo pipefail
OUT=${1:-results/llm-nash}
STEPS=${2:-}
ENV=llm:bt-seq-intransitive
AGENTS=(dpo online_dpo xpo nash_md sppo inpo dno apo)
steps=()
if [[ -n "$STEPS" ]]; then steps=(--steps "$STEPS"); fi
start=$(date +%s)
for agent in "${AGENTS[@]}"; do
  /usr/bin/time -f "$agent: %e s wall, %U s user" nice -n 5 drlbench run "$agent" --env "$ENV" --seeds 0-4 --batched \
    "${steps[@]}" --out "$OUT" --quiet
done
nice -n 5 drlbench compare "${AGENTS[@]}" --env "$ENV" --n 5 --K 1 "${steps[@]}" --out "$OUT" --quiet
nice -n 5 drlbench report "$OUT" --out "$OUT"
find "$OUT" -name agent.pt -delete
python - "$OUT/$ENV" "${AGENTS[@]}" <<'EOF' | tee "$OUT/game_metrics.md"
import csv, statistics, sys
from pathlib import Path

root, agents = Path(sys.argv[1]), sys.argv[2:]
columns = ("exploitability", "duality_gap", "score", "kl", "win_rate")
print(f"Exact game metrics of the final policies on {root.name} (mean ± std over seeds; exploitability and "
      "duality gap: lower is better; the reference policy is the step-0 row of every run).\n")
print("| method | seeds | step | " + " | ".join(columns) + " |")
print("|---" * (3 + len(columns)) + "|")


def cell(rows, key):
    values = [float(r[key]) for r in rows]
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


references = []
for agent in agents:
    finals = []
    for path in sorted((root / agent).glob("seed_*/llm_evaluations.csv")):
        rows = list(csv.DictReader(open(path)))
        finals.append(rows[-1])
        if len(references) < len(finals):
            references.append(rows[0])   # step 0: pi_ref, the same for every method
    if not finals:
        continue
    print(f"| {agent} | {len(finals)} | {finals[0]['step']} | " + " | ".join(cell(finals, k) for k in columns) + " |")
if references:
    print(f"| pi_ref | {len(references)} | 0 | " + " | ".join(cell(references, k) for k in columns) + " |")
EOF
echo "total wall time: $(( $(date +%s) - start )) s"
