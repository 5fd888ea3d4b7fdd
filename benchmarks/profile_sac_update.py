"""Time drlbench's SAC update alone: P members, batch 256, 256-256 networks, HalfCheetah's
dimensions (17 observations, 6 actions), random replay data, one torch thread.

Reports milliseconds per update in thread CPU time (time the process spends descheduled on a
shared machine does not count), min and median over alternating chunks. With --sb3, chunks of
stable-baselines3's `SAC.train(gradient_steps=1)` on HalfCheetah-v5 alternate with drlbench's,
for the ratio of the updates alone. --gemm-floor adds the update's bare matmul sequence (same
shapes and layouts, operands precomputed): the part no overhead removal can go below.
--profile prints torch.profiler's per-op table. --compile adds an agent whose update parts run through
torch.compile (the off-policy loop's compile=true).

    taskset -c 1 python benchmarks/profile_sac_update.py --sb3 --gemm-floor
"""
from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from drlbench.agents import get_agent
from drlbench.buffer import ReplayBuffer
from drlbench.config import build, load_preset
from drlbench.loops.off_policy import Config as OffPolicyConfig
from drlbench.population import Population

OBS_DIM, ACT_DIM, BATCH = 17, 6, 256


def make(seeds, overrides=()):
    cls = get_agent("sac")
    (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset("sac", None), list(overrides))
    obs = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
    pop = Population(list(seeds))
    agent = cls(obs, act, hp, pop)
    buffer = ReplayBuffer(pop, 100_000, OBS_DIM, ACT_DIM)
    g = torch.Generator().manual_seed(0)
    n = 10_000
    buffer.add(torch.randn(pop.size, n, OBS_DIM, generator=g), torch.rand(pop.size, n, ACT_DIM, generator=g) * 2 - 1,
               torch.randn(pop.size, n, generator=g), torch.randn(pop.size, n, OBS_DIM, generator=g),
               torch.zeros(pop.size, n))
    return agent, buffer


def sb3_train():
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", gym.make("HalfCheetah-v5"), learning_rate=3e-4, buffer_size=100_000, learning_starts=1000,
                batch_size=BATCH, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, seed=0, device="cpu")
    model.learn(1100)
    return lambda: model.train(gradient_steps=1, batch_size=BATCH)


def gemm_floor(agent, buffer):
    """The matmuls (bmm, baddbmm) one update makes, replayed on saved operands."""
    calls = []
    originals = torch.bmm, torch.baddbmm

    def recorder(fn):
        def record(*args):
            calls.append((fn, [a.clone() for a in args]))
            return fn(*args)
        return record

    torch.bmm, torch.baddbmm = recorder(originals[0]), recorder(originals[1])
    try:
        agent.update(buffer.sample(BATCH))
    finally:
        torch.bmm, torch.baddbmm = originals

    def replay():
        for fn, args in calls:
            fn(*args)
    return replay


def alternate(variants: dict, chunk: int, rounds: int) -> dict[str, list[float]]:
    times = {name: [] for name in variants}
    for r in range(rounds + 1):          # round 0 warms up
        for name, fn in variants.items():
            start = time.thread_time()
            for _ in range(chunk):
                fn()
            if r:
                times[name].append((time.thread_time() - start) / chunk * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=20, help="updates per timed chunk")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sb3", action="store_true")
    parser.add_argument("--gemm-floor", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also a second agent with compile=true's compiled parts (Agent.compile_parts)")
    parser.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides, key=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent, buffer = make(range(args.members), args.set)
    for _ in range(20):
        agent.update(buffer.sample(BATCH))
    variants = {"drlbench update": lambda: agent.update(buffer.sample(BATCH))}
    if args.compile:
        compiled, _ = make(range(args.members), args.set)
        compiled.compile_parts()
        start = time.perf_counter()
        for _ in range(3):
            compiled.update(buffer.sample(BATCH))
        print(f"compiling: {time.perf_counter() - start:.1f} s")
        variants["drlbench compiled"] = lambda: compiled.update(buffer.sample(BATCH))
    if args.gemm_floor:
        variants["its matmuls alone"] = gemm_floor(agent, buffer)
    if args.sb3:
        variants["sb3 train(1)"] = sb3_train()
    times = alternate(variants, args.chunk, args.rounds)
    print(f"ms per update, {args.members} member(s), thread time, {args.rounds} alternating chunks of {args.chunk}")
    for name, ms in times.items():
        print(f"  {name:<20} min {min(ms):6.2f}  median {statistics.median(ms):6.2f}")
    if args.sb3:
        ours, sb3 = times["drlbench update"], times["sb3 train(1)"]
        print(f"  sb3 / drlbench: {min(sb3) / min(ours):.2f}x (min), "
              f"{statistics.median(sb3) / statistics.median(ours):.2f}x (median)")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                agent.update(buffer.sample(BATCH))
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
