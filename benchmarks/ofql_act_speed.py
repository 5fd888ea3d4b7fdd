"""Actions per second of OFQL's `act` (and milliseconds per `update`) with the 1-step sampler (OFQL) and a K-step MeanFlow sampler, on
Pendulum's shapes (3 observations, 1 action), one torch thread, one population member, the preset's
networks (3 x 256 Mish). Weights do not change the cost, so the agents are freshly initialised.

Two action-selection settings: `act_candidates=1` (one sample per state: the sampler alone, as the
paper's inference rate) and the preset's 50 candidates ranked by the target critics (DQL's
sample_action, what the evaluation uses). For each, states per call N = 1 (one environment) and
N = 10 (the suite's 10 evaluation episodes at once). The settings are timed interleaved, in rounds,
and each reports the median round, so a busy machine slows them alike.

`--updates N` also times N `update` calls per round (batch 256, random data) for each sampler.

Usage: python benchmarks/ofql_act_speed.py [--steps 1 5] [--rounds 7] [--seconds 0.5] [--updates 20]
"""
from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from drlbench.agents import Batch, get_agent
from drlbench.config import build, load_preset
from drlbench.loops.offline import Config as OfflineConfig
from drlbench.population import Population


def make(steps: int, candidates: int):
    cls = get_agent("ofql")
    (hp, _), _ = build([cls.Config, OfflineConfig], load_preset("ofql", "offline-classic"),
                       [f"sampling_steps={steps}", f"act_candidates={candidates}"])
    obs = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    return cls(obs, act, hp, Population([0]))


def rate(agent, n: int, seconds: float) -> float:
    """Actions per second over about `seconds` of calls with N states each."""
    obs = torch.randn(1, n, 3)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        agent.act(obs, deterministic=True)
        calls += 1
    return calls * n / elapsed


def update_ms(agent, updates: int) -> float:
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(1, 256, 3, generator=g), torch.rand(1, 256, 1, generator=g) * 2 - 1,
                  torch.randn(1, 256, generator=g), torch.randn(1, 256, 3, generator=g), torch.zeros(1, 256))
    for _ in range(2):                            # warm-up (optimiser state, allocator)
        agent.update(batch)
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    return 1000 * (time.perf_counter() - start) / updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--updates", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = [(k, c, n) for c in (1, 50) for n in (1, 10) for k in args.steps]
    agents = {(k, c): make(k, c) for k, c, _ in settings}
    for (k, c), agent in agents.items():          # warm-up
        rate(agent, 1, 0.1)
    samples: dict[tuple, list[float]] = {s: [] for s in settings}
    update_times: dict[int, list[float]] = {k: [] for k in args.steps}
    for _ in range(args.rounds):
        for k, c, n in settings:
            samples[(k, c, n)].append(rate(agents[(k, c)], n, args.seconds))
        if args.updates:
            for k in args.steps:
                update_times[k].append(update_ms(agents[(k, 50)], args.updates))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, median of {args.rounds} rounds")
    print(f"{'sampling_steps':>14} {'act_candidates':>14} {'states/call':>11} {'actions/s':>10} {'ms/call':>8}")
    for k, c, n in settings:
        r = statistics.median(samples[(k, c, n)])
        print(f"{k:>14} {c:>14} {n:>11} {r:>10.0f} {1000 * n / r:>8.2f}")
    for k, times in update_times.items():
        if times:
            print(f"update, sampling_steps={k}: {statistics.median(times):.1f} ms (median of {len(times)} rounds "
                  f"of {args.updates}; batch 256)")


if __name__ == "__main__":
    main()
