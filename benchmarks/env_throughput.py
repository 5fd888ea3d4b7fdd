"""Steps per second of the torch-native classic-control envs next to gymnasium's vectorisers.

    taskset -c 1 .venv/bin/python benchmarks/env_throughput.py

For each environment and batch size N it times, in the same run:
- drlbench's torch env (`drlbench.envs.torch_classic`) on CPU, and on CUDA when available;
- gymnasium's own vectorised implementation (`gym.make_vec(..., vectorization_mode=
  "vector_entry_point")`), where the ID registers one (CartPole does, Pendulum does not);
- gymnasium's `SyncVectorEnv` (`vectorization_mode="sync"`): one Python env per sub-env, up to
  `--sync-max-envs` (default 65536: both 65536 rows, Sync included, take ~50 s and ~0.7 GB).
Actions are drawn before timing (on the env's device, 64 batches cycled), so the env is what is
timed. Each rate is the best of 3 timed blocks of at least `--min-seconds / 3` each (after
warm-up), so for huge N the slow backends take only a few steps. Prints a markdown table; the ratios are
the torch CPU rate over each gymnasium rate.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from drlbench import envs  # noqa: E402

ACTION_BATCHES = 64


def rate(step: Callable[[int], None], num_envs: int, min_seconds: float,
         sync: Callable[[], None] = lambda: None, warmup: int = 3, repeats: int = 3) -> float:
    """Env steps per second of `step(i)`: the best of `repeats` timed blocks, each of at least
    `min_seconds / repeats` (the machine is shared; the best block is the least disturbed)."""
    for i in range(warmup):
        step(i)
    sync()
    block, done, best = 1, warmup, 0.0
    while True:                                   # grow the block until it is long enough
        start = time.perf_counter()
        for i in range(block):
            step(done + i)
        sync()
        elapsed = time.perf_counter() - start
        done += block
        best = max(best, block * num_envs / elapsed)
        if elapsed >= min_seconds / repeats:
            break
        block *= 2
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for i in range(block):
            step(done + i)
        sync()
        best = max(best, block * num_envs / (time.perf_counter() - start))
        done += block
    return best


def torch_rate(env_id: str, num_envs: int, device: str, min_seconds: float) -> float:
    env = envs.make(f"torch:{env_id}", num_envs, device, seed=0)   # what `make(env_id)` gives
    generator = torch.Generator(device=device).manual_seed(1)
    if env.discrete:
        actions = torch.randint(0, env.action_space.n, (ACTION_BATCHES, num_envs), device=device,
                                generator=generator)
    else:
        low, high = float(env.action_space.low[0]), float(env.action_space.high[0])
        actions = low + (high - low) * torch.rand(ACTION_BATCHES, num_envs, 1, device=device,
                                                  generator=generator)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return rate(lambda i: env.step(actions[i % ACTION_BATCHES]), num_envs, min_seconds, sync)


def gym_rate(env_id: str, num_envs: int, mode: str, min_seconds: float) -> float | None:
    if mode == "vector_entry_point" and gym.spec(env_id).vector_entry_point is None:
        return None
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    env.reset(seed=0)
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(ACTION_BATCHES)]
    try:
        return rate(lambda i: env.step(actions[i % ACTION_BATCHES]), num_envs, min_seconds,
                    warmup=1)
    finally:
        env.close()


def human(steps_per_second: float | None) -> str:
    if steps_per_second is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if steps_per_second >= scale:
            return f"{steps_per_second / scale:.3g}{unit}"
    return f"{steps_per_second:.3g}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.3g}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 64, 4096, 65536])
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-sync", action="store_true", help="skip gymnasium SyncVectorEnv")
    parser.add_argument("--sync-max-envs", type=int, default=65536,
                        help="largest N timed with SyncVectorEnv (one Python env per sub-env)")
    parser.add_argument("--no-cuda", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and not args.no_cuda
    print(f"python {platform.python_version()}, torch {torch.__version__}, gymnasium "
          f"{gym.__version__}, numpy {np.__version__}; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, CPU affinity "
          f"{sorted(os.sched_getaffinity(0))}, torch CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}"
          + (f", CUDA {torch.cuda.get_device_name()}" if cuda else ", no CUDA")
          + f"; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          + f" on {os.cpu_count()} CPUs")
    print()
    print("| env | N | torch CPU | torch CUDA | gym vector_entry_point | gym SyncVectorEnv "
          "| torch CPU / vector_entry_point | torch CPU / Sync |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for env_id in args.envs:
        for n in args.sizes:
            cpu = torch_rate(env_id, n, "cpu", args.min_seconds)
            gpu = torch_rate(env_id, n, "cuda", args.min_seconds) if cuda else None
            vector = gym_rate(env_id, n, "vector_entry_point", args.min_seconds)
            skip_sync = args.no_sync or n > args.sync_max_envs
            sync = None if skip_sync else gym_rate(env_id, n, "sync", args.min_seconds)
            sync_text = "skipped" if skip_sync else human(sync)
            print(f"| {env_id} | {n} | {human(cpu)} | {human(gpu)} | {human(vector)} | "
                  f"{sync_text} | {ratio(cpu, vector)} | {ratio(cpu, sync)} |", flush=True)
    print("\nsteps/s = environment steps per second (N sub-env steps per batched step); "
          f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")


if __name__ == "__main__":
    main()
