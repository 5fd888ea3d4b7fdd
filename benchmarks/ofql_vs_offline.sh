#!/usr/bin/env bash
# OFQL vs the published offline baselines (TD3+BC, IQL, BC in results/offline, reused, not rerun) on the
# drlbench-collected Pendulum datasets at the offline-classic suite's budget (20,000 gradient steps,
# evaluation every 1,000 with 10 episodes), 5 seeds, one seed at a time on one core; then AdaStop
# (`drlbench compare`, n = 5, K = 1) against each baseline; then OFQL with a 5-step MeanFlow sampler
# (sampling_steps=5, label ofql_k5) on pendulum-medium-replay for the 1-step vs 5-step comparison.
# Actions per second of `act`: benchmarks/ofql_act_speed.py. Results: benchmarks/notes/ofql.md.
# Usage: DRLBENCH_DATA=/path/to/data [STEPS=N] [K5_STEPS=N] bash benchmarks/ofql_vs_offline.sh [STAGE ...]
#   stages (default all, in this order): mr, mr-k5, me
# STEPS (default 20000, the suite's budget) below the budget: records labelled ofql_<N>, no `drlbench
# compare` (it would train the baselines at N steps); compare with benchmarks/ofql_adastop_at_step.py,
# which reads the published baselines' evaluations at step N. K5_STEPS (default STEPS) likewise for
# the 5-step sampler (label ofql_k5 or ofql_k5_<N>).
set -euo pipefail
cd "$(dirname "$0")/.."
D=".venv/bin/drlbench"
STAGES=${*:-mr mr-k5 me}
STEPS=${STEPS:-20000}
K5_STEPS=${K5_STEPS:-$STEPS}
label() { if [ "$2" = 20000 ]; then echo "$1"; else echo "$1_$2"; fi; }
for stage in $STAGES; do
  case $stage in
    mr|me)
      data=pendulum-medium-replay; [ "$stage" = me ] && data=pendulum-medium-expert
      $D run ofql --env "$data" --seeds 0-4 --steps "$STEPS" --out results/offline --tag "$(label ofql "$STEPS")" --quiet --resume
      [ "$STEPS" = 20000 ] || continue
      for baseline in td3_bc iql bc; do
        if [ -d "results/offline/$data/$baseline" ]; then
          $D compare ofql "$baseline" --env "$data" --n 5 --K 1 --out results/offline --quiet || true
        fi
      done ;;
    mr-k5)
      $D run ofql --env pendulum-medium-replay --seeds 0-4 --steps "$K5_STEPS" --out results/offline \
        --tag "$(label ofql_k5 "$K5_STEPS")" --set sampling_steps=5 --quiet --resume ;;
    *) echo "unknown stage $stage (mr, mr-k5, me)" >&2; exit 2 ;;
  esac
done
