#!/usr/bin/env bash
# Fidelity check: PMOE on SAC (Ren et al.) against drlbench SAC on the classic continuous suite,
# 5 seeds each at the suite's step budgets, decided by `drlbench compare` (AdaStop, n=5, K=1: one
# permutation test at alpha = 0.05; equal final returns are what the PMOE paper's claim of matching
# or beating SAC needs at least). Matching run records under OUT are reused: with OUT=results the
# published leaderboard's runs are the comparison's runs. Usage:
#     bash benchmarks/fidelity_pmoe_sac.sh [OUT]          (default OUT: results)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results}"
for env in Pendulum MountainCarContinuous; do
    .venv/bin/drlbench compare pmoe_sac sac --env "$env" --suite classic --n 5 --K 1 --out "$out" --quiet
done
