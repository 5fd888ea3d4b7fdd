#!/usr/bin/env bash
# The published offline section of the leaderboard (results/): drlbench-collected Pendulum datasets
# (the D4RL recipe, SAC behaviour run, seed 0), then 5 seeds per agent per dataset at the
# offline-classic suite's budget (20,000 gradient steps, evaluation every 1,000), one seed at a time
# on one core, and the comparisons with `drlbench compare` (AdaStop, reusing those runs).
# Usage: DRLBENCH_DATA=/path/to/data bash benchmarks/offline_leaderboard.sh [AGENT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
D=.venv/bin/drlbench
AGENTS=${*:-bc td3_bc iql}
$D dataset collect --env Pendulum --quality medium-replay --eval-every 250 --quiet
$D dataset collect --env Pendulum --quality medium-expert --transitions 20000 --quiet
for data in pendulum-medium-replay pendulum-medium-expert; do
  for agent in $AGENTS; do
    $D run "$agent" --env "$data" --seeds 0-4 --out results/offline --quiet
  done
  for agent in $AGENTS; do
    [ "$agent" = bc ] || $D compare "$agent" bc --env "$data" --n 5 --K 1 --out results/offline --quiet
  done
done
$D report results/offline --out results/offline --suite offline-classic
