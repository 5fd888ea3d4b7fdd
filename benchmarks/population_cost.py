"""What P seeds batched in one process cost against P separate runs, on one CPU core.

For each agent: one run of seed 0 alone, then one run of seeds 0..P-1 batched (`--batched`: one
process, the population axis in every tensor), the same command otherwise; wall time of the
learning window (environment steps `warmup`..`warmup + steps`, clocked in the harness as
benchmarks/offpolicy_vs_sb3.py does, no evaluation inside), alternating, median of `--repeats`.
Throughput ratio = P x time(1 seed) / time(P seeds batched): above 1, batching is cheaper than P
separate runs on the same core. Also ms per update alone (benchmarks/profile_sac_update.py's
random-data buffer, SAC only) at 1 and P members.

    taskset -c 1 .venv/bin/python benchmarks/population_cost.py --agents sac,td3 --members 10

--modes eager compile alternates eager runs with compile=true runs (whose 2 compiling learning steps
run before the window), one row each: this VM's speed moves by a third within minutes, so only
alternating runs compare.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from offpolicy_vs_sb3 import ENV, drlbench_timed  # noqa: E402
from profile_sac_update import BATCH, make  # noqa: E402


def window_seconds(agent: str, seeds: str, warmup: int, steps: int, compiled: bool) -> float:
    """Wall seconds of the learning window; with `compiled`, compile=true and its 2 compiling learning
    steps before the window (as in offpolicy_vs_peers.py)."""
    extra = ("buffer_size=100000", *(("compile=true",) if compiled else ()))
    rate, _ = drlbench_timed(agent, warmup, steps, 0, extra, 2 if compiled else 0, seeds=seeds)
    return steps / rate


def update_ms(members: int, updates: int) -> float:
    agent, buffer = make(range(members), ["alpha_resample=false"])
    for _ in range(10):
        agent.update(buffer.sample(BATCH))
    start = time.thread_time()
    for _ in range(updates):
        agent.update(buffer.sample(BATCH))
    return (time.thread_time() - start) / updates * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="sac,td3")
    parser.add_argument("--members", type=int, default=10, help="P, the seeds batched in one process")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=100, help="updates alone, per measurement (SAC)")
    parser.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compile"],
                        help="eager and/or compile=true runs, alternating")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows = []
    for agent in args.agents.split(","):
        one, many = {m: [] for m in args.modes}, {m: [] for m in args.modes}
        for _ in range(args.repeats):
            for mode in args.modes:
                compiled = mode == "compile"
                one[mode].append(window_seconds(agent, "0", args.warmup, args.steps, compiled))
                many[mode].append(window_seconds(agent, f"0-{args.members - 1}", args.warmup, args.steps, compiled))
        for mode in args.modes:
            t1, tp = statistics.median(one[mode]), statistics.median(many[mode])
            rows.append((agent if mode == "eager" else f"{agent} compile", t1, tp, args.members * t1 / tp))
    print(f"\n{ENV}, {args.steps} learning steps after {args.warmup} random ones"
          f"{' (compile: 2 compiling steps before the window)' if 'compile' in args.modes else ''}, one thread, "
          f"median of "
          f"{args.repeats}; torch {torch.__version__}; 1-min load {load:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print(f"| agent | 1 seed (s) | {args.members} seeds batched (s) | {args.members} separate runs (s) | "
          f"batched throughput / separate |")
    print("|---|---:|---:|---:|---:|")
    for agent, t1, tp, ratio in rows:
        print(f"| {agent} | {t1:.1f} | {tp:.1f} | {args.members * t1:.1f} | **{ratio:.2f}x** |")
    if "sac" in args.agents.split(","):
        u1, up = update_ms(1, args.updates), update_ms(args.members, max(args.updates // args.members, 10))
        print(f"\nSAC update alone (thread time): {u1:.2f} ms at P = 1, {up:.2f} ms at P = {args.members} "
              f"({up / args.members:.2f} ms per member, {args.members * u1 / up:.2f}x the throughput)")


if __name__ == "__main__":
    main()
