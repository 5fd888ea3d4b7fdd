#!/usr/bin/env bash
# LLM track, task B (llm:arith, verifiable arithmetic): the claims about the group / policy-gradient (RLVR)
# methods that issue 16 asks to check with several seeds instead of single curves (specs/llm_track.md §4):
#   1. GRPO vs RLOO vs REINFORCE++ on the exact success probability (OpenRLHF #700/#757, Logic-RL-Lite #1);
#   2. GRPO vs Dr. GRPO on completion-length growth (Dr. GRPO: GRPO's 1/|y| normalisation lengthens answers),
#      length measured exactly (E_pi[length] - E_ref[length], llm_evaluations.csv), AdaStop on it;
#   3. the off-policy knob: lag k in {0, 2, 8} (behaviour policy k updates old) and mu = num_iterations in
#      {1, 4}: does GRPO fall behind the off-policy-capable TOPR and REC as the data grows staler?
# Every cell is N seeds as one batched population (`drlbench run --batched`), then `drlbench compare`
# (AdaStop; it reuses those runs and trains more seeds only if an interim needs them), then tables of the
# exact end-of-run quantities. One process at a time, niced.
#
# Usage: benchmarks/llm_group_claims.sh [OUT]            (default results/llm-group)
#   STEPS=20 N=2 K=1 benchmarks/llm_group_claims.sh /tmp/x   a smoke run (tiny budget; the statistics mean nothing)
#   ENV=llm:bt-seq ...                                     the same comparisons on another task
# Full size: 5 seeds x (3 + 1 + 3x3 + 3) cells at the suite's budget (see envs/llm.toml); not run by the tests.
set -euo pipefail
OUT=${1:-results/llm-group}
ENV=${ENV:-llm:arith}
N=${N:-5}            # seeds per interim
K=${K:-2}            # AdaStop interims at most
STEPS_ARGS=()
if [[ -n "${STEPS:-}" ]]; then STEPS_ARGS=(--steps "$STEPS"); fi
SEEDS="0-$((N - 1))"
start=$(date +%s)

cell() {   # cell AGENT [--set KEY=VALUE ...]: N seeds as one population
  local agent=$1; shift
  /usr/bin/time -f "$agent $*: %e s wall" nice -n 5 drlbench run "$agent" --env "$ENV" --seeds "$SEEDS" --batched \
    --out "$OUT" --quiet "${STEPS_ARGS[@]}" "$@"
}

compare() {   # compare AGENT... [--set KEY=VALUE ...]
  nice -n 5 drlbench compare "$@" --env "$ENV" --n "$N" --K "$K" --out "$OUT" --quiet "${STEPS_ARGS[@]}"
}

table() {   # table TITLE LABEL_GLOB...: the exact end-of-run quantities per run label, mean ± sd over seeds
  python - "$OUT" "$ENV" "$@" <<'PY'
import csv, statistics, sys
from pathlib import Path
out, env, title, globs = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
# length growth: E_pi[length] at the end minus at step 0 (the policy starts as pi_ref)
columns = {"score": lambda f, l: float(l["score"]), "held-out pass@1": lambda f, l: float(l.get("success_test", "nan")),
           "length growth": lambda f, l: float(l["length"]) - float(f["length"]), "KL": lambda f, l: float(l["kl"])}
print(f"\n== {title}")
print(f"{'run label':<24} {'seeds':>5} " + " ".join(f"{c:>15}" for c in columns))
for pattern in globs:
    for label in sorted(p.name for p in (out / env).glob(pattern)):
        runs = [list(csv.DictReader(open(p))) for p in sorted((out / env / label).glob("seed_*/llm_evaluations.csv"))]
        def ms(f):
            v = [f(r[0], r[-1]) for r in runs]
            return f"{statistics.mean(v):7.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:5.3f}"
        print(f"{label:<24} {len(runs):>5} " + " ".join(f"{ms(f):>15}" for f in columns.values()))
PY
}

# --- 1. GRPO vs RLOO vs REINFORCE++ ----------------------------------------------------------------------------
for agent in grpo rloo reinforce_pp; do cell "$agent"; done
compare grpo rloo reinforce_pp
table "1. GRPO vs RLOO vs REINFORCE++ (score: exact pass@1 on the training prompts)" grpo rloo reinforce_pp

# --- 2. GRPO vs Dr. GRPO: completion-length growth --------------------------------------------------------------
cell dr_grpo
compare grpo dr_grpo
table "2. GRPO vs Dr. GRPO" grpo dr_grpo
python - "$OUT" "$ENV" "$N" <<'PY'
import csv, sys
from pathlib import Path
import numpy as np
from drlbench.stats import AdaStop
out, env, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
growth = {}
for agent in ("grpo", "dr_grpo"):
    runs = [list(csv.DictReader(open(p))) for p in sorted((out / env / agent).glob("seed_*/llm_evaluations.csv"))][:n]
    growth[agent] = np.array([float(r[-1]["length"]) - float(r[0]["length"]) for r in runs])   # step 0: pi_ref
print("length growth E_pi[len] - E_ref[len] per seed:", {k: np.round(v, 3).tolist() for k, v in growth.items()})
if min(len(v) for v in growth.values()) >= 2:
    test = AdaStop(n=min(len(v) for v in growth.values()), K=1, alpha=0.05)
    print("AdaStop on length growth (one interim):", test.decide(growth))
PY

# --- 3. the off-policy knob: lag k and mu -----------------------------------------------------------------------
for lag in 0 2 8; do
  sets=()
  if [[ $lag != 0 ]]; then sets=(--set "lag=$lag"); fi
  for agent in grpo topr rec; do cell "$agent" "${sets[@]}"; done
  compare grpo topr rec "${sets[@]}"
done
for agent in grpo topr rec; do cell "$agent" --set num_iterations=4; done
compare grpo topr rec --set num_iterations=4
table "3. off-policy knob (labels with a hash are the lag / num_iterations variants: see their run.json overrides)" \
  "grpo*" "topr*" "rec*"
python - "$OUT" "$ENV" <<'PY'
import json, sys
from pathlib import Path
out, env = Path(sys.argv[1]), sys.argv[2]
for label in sorted(p.name for p in (out / env).iterdir() if p.name.split("-")[0] in ("grpo", "topr", "rec")):
    meta = json.loads(next((out / env / label).glob("seed_*/run.json")).read_text())
    print(f"{label:<28} overrides {meta.get('overrides') or {}}")
PY

nice -n 5 drlbench report "$OUT" --out "$OUT" || echo "drlbench report failed on $ENV (above); the tables and comparisons stand"
echo "total wall time: $(( $(date +%s) - start )) s"
