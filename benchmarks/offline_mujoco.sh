#!/usr/bin/env bash
# The offline-mujoco section of the published offline leaderboard (results/offline): InvertedDoublePendulum-v5
# datasets collected by the D4RL recipe with drlbench's SAC (the mujoco-control suite's 50k-step budget,
# snapshots every 2,500 steps), then every offline agent at the offline-mujoco suite's CPU budget
# (10,000 gradient steps, evaluation every 1,000), 5 seeds each (A2PR: SEEDS_A2PR, default 0-2, for
# its 60 ms update), one seed at a time on one core, and each agent against BC with `drlbench compare`.
# Usage: DRLBENCH_DATA=/path/to/data bash benchmarks/offline_mujoco.sh [AGENT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
D=.venv/bin/drlbench
AGENTS=${*:-bc td3_bc iql prdc a2pr}   # this session's published runs: bc td3_bc iql prdc
ENV=InvertedDoublePendulum-v5
DATA=${DRLBENCH_DATA:-$HOME/.cache/drlbench/datasets}
[ -f "$DATA/inverteddoublependulum-medium-replay.hdf5" ] ||
  $D dataset collect --env $ENV --quality medium-replay --eval-every 2500 --quiet
[ -f "$DATA/inverteddoublependulum-medium-expert.hdf5" ] ||
  $D dataset collect --env $ENV --quality medium-expert --transitions 20000 --eval-every 2500 --quiet
for data in inverteddoublependulum-medium-replay inverteddoublependulum-medium-expert; do
  for agent in $AGENTS; do
    seeds=0-4; [ "$agent" = a2pr ] && seeds=${SEEDS_A2PR:-0-2}
    $D run "$agent" --env "$data" --seeds "$seeds" --out results/offline --quiet
  done
done
for data in inverteddoublependulum-medium-replay inverteddoublependulum-medium-expert; do
  for agent in $AGENTS; do
    [ "$agent" = bc ] || [ "$agent" = a2pr ] || $D compare "$agent" bc --env "$data" --n 5 --K 1 --out results/offline --quiet
  done
done
$D report results/offline --out results/offline
