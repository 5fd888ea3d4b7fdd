#!/usr/bin/env bash
# OFQL vs the published offline baselines (TD3+BC, IQL, BC in results/offline, reused, not rerun) on the
# drlbench-collected Pendulum datasets at the offline-classic suite's budget (20,000 gradient steps,
# evaluation every 1,000 with 10 episodes), 5 seeds, one seed at a time on one core; then AdaStop
# (`drlbench compare`, n = 5, K = 1) against each baseline; then OFQL with a 5-step MeanFlow sampler
# (sampling_steps=5, label ofql_k5) on pendulum-medium-replay for the 1-step vs 5-step comparison.
# Actions per second of `act`: benchmarks/ofql_act_speed.py. Results: benchmarks/notes/ofql.md.
# Usage: DRLBENCH_DATA=/path/to/data bash benchmarks/ofql_vs_offline.sh [STAGE ...]
#   stages (default all, in this order): mr, mr-k5, me
set -euo pipefail
cd "$(dirname "$0")/.."
D=".venv/bin/drlbench"
STAGES=${*:-mr mr-k5 me}
for stage in $STAGES; do
  case $stage in
    mr|me)
      data=pendulum-medium-replay; [ "$stage" = me ] && data=pendulum-medium-expert
      $D run ofql --env "$data" --seeds 0-4 --out results/offline --quiet
      for baseline in td3_bc iql bc; do
        if [ -d "results/offline/$data/$baseline" ]; then
          $D compare ofql "$baseline" --env "$data" --n 5 --K 1 --out results/offline --quiet || true
        fi
      done ;;
    mr-k5)
      $D run ofql --env pendulum-medium-replay --seeds 0-4 --out results/offline --tag ofql_k5 \
        --set sampling_steps=5 --quiet ;;
    *) echo "unknown stage $stage (mr, mr-k5, me)" >&2; exit 2 ;;
  esac
done
