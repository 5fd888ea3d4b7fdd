"""What P seeds batched in one process cost against P separate runs, on one CPU core.

For each agent: one run of seed 0 alone, then one run of seeds 0..P-1 batched (`--batched`: one
process, the population axis in every tensor), the same command otherwise; wall time of the
learning window (environment steps `warmup`..`warmup + steps`, clocked in the harness as
benchmarks/offpolicy_vs_sb3.py does, no evaluation inside), alternating, median of `--repeats`.
Throughput ratio = P x time(1 seed) / time(P seeds batched): above 1, batching is cheaper than P
separate runs on the same core. Also ms per update alone (benchmarks/profile_sac_update.py's
random-data buffer, SAC only) at 1 and P members.

    taskset -c 1 .venv/bin/python benchmarks/population_cost.py --agents sac,td3 --members 10
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from offpolicy_vs_sb3 import ENV, SETTINGS  # noqa: E402
from profile_sac_update import BATCH, make  # noqa: E402


def window_seconds(agent: str, seeds: str, warmup: int, steps: int) -> float:
    from drlbench.cli import build_parser, resolve_run
    from drlbench.harness import Session, train

    clock: dict[int, float] = {}
    after_step = Session.after_step

    def timed_after_step(self, loop_state):
        if self.step in (warmup, warmup + steps):
            clock[self.step] = time.perf_counter()
        after_step(self, loop_state)

    Session.after_step = timed_after_step
    try:
        with tempfile.TemporaryDirectory() as out:
            args = build_parser().parse_args([
                "run", agent, "--env", ENV, "--steps", str(warmup + steps), "--seeds", seeds, "--batched",
                "--out", out, "--eval-every", str(warmup + steps), "--eval-episodes", "1", "--quiet",
                "--set", f"random_steps={warmup}", f"learning_starts={warmup + 1}", "buffer_size=100000",
                "batch_size=256", "hidden_sizes=256,256", "updates_per_step=1", *SETTINGS[agent]])
            (cfg,), _ = resolve_run(args)
            train(cfg)
    finally:
        Session.after_step = after_step
    return clock[warmup + steps] - clock[warmup]


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
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows = []
    for agent in args.agents.split(","):
        one, many = [], []
        for _ in range(args.repeats):
            one.append(window_seconds(agent, "0", args.warmup, args.steps))
            many.append(window_seconds(agent, f"0-{args.members - 1}", args.warmup, args.steps))
        t1, tp = statistics.median(one), statistics.median(many)
        rows.append((agent, t1, tp, args.members * t1 / tp))
    print(f"\n{ENV}, {args.steps} learning steps after {args.warmup} random ones, one thread, median of "
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
