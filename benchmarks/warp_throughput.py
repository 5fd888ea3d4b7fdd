"""Steps per second of MuJoCo Warp HalfCheetah-v5 (`warp:HalfCheetah-v5`) next to gymnasium's
SyncVectorEnv of HalfCheetah-v5, at the same batch sizes N.

    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/warp_throughput.py

For each N it times, in the same run:
- drlbench's MuJoCo Warp env (`drlbench.envs.warp`) on CUDA when torch and Warp see a GPU, else
  on Warp's CPU device (single-threaded kernels: a correctness fallback, not a fast path); its
  step includes the torch-side observation, reward, termination and autoreset work;
- gymnasium's `SyncVectorEnv` (one Python MuJoCo env per sub-env, float64 MuJoCo), up to
  `--sync-max-envs`.
Actions are random, drawn before timing (64 batches cycled). Each rate is the best of 3 timed
blocks (see benchmarks/env_throughput.py `rate`). The first warp env built compiles Warp's
kernels (~1 min cold, cached afterwards under Warp's kernel cache); that is not timed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import human, rate, ratio  # noqa: E402

ACTION_BATCHES = 64
ENV_ID = "HalfCheetah-v5"


def warp_rate(num_envs: int, device: str, min_seconds: float) -> tuple[float, float]:
    """(env steps/s, seconds to build the env)."""
    from drlbench.envs.warp import make

    start = time.perf_counter()
    env = make(ENV_ID, num_envs, device, seed=0)
    build = time.perf_counter() - start
    generator = torch.Generator(device=device).manual_seed(1)
    actions = torch.rand(ACTION_BATCHES, num_envs, 6, device=device, generator=generator) * 2 - 1
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return rate(lambda i: env.step(actions[i % ACTION_BATCHES]), num_envs, min_seconds, sync), build


def sync_rate(num_envs: int, min_seconds: float) -> float:
    env = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync")
    env.reset(seed=0)
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(ACTION_BATCHES)]
    try:
        return rate(lambda i: env.step(actions[i % ACTION_BATCHES]), num_envs, min_seconds, warmup=1)
    finally:
        env.close()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 64, 1024, 4096])
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--sync-max-envs", type=int, default=1024,
                        help="largest N timed with SyncVectorEnv")
    parser.add_argument("--device", default=None, help="torch device for warp (default: cuda if available)")
    args = parser.parse_args()

    import mujoco
    import mujoco_warp
    import warp as wp

    torch.set_num_threads(1)
    device = args.device or ("cuda" if torch.cuda.is_available() and wp.get_cuda_device_count() else "cpu")
    name = torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()
    print(f"python {platform.python_version()}, torch {torch.__version__}, warp {wp.__version__}, "
          f"mujoco_warp {mujoco_warp.__version__}, mujoco {mujoco.__version__}, gymnasium "
          f"{gym.__version__}; warp device {device} ({name}); CPU affinity "
          f"{sorted(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"| env | N | warp {device} | warp build s | gym SyncVectorEnv | warp / Sync |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        warp, build = warp_rate(n, device, args.min_seconds)
        sync = None if n > args.sync_max_envs else sync_rate(n, args.min_seconds)
        print(f"| {ENV_ID} | {n} | {human(warp)} | {build:.1f} | "
              f"{'skipped' if sync is None else human(sync)} | {ratio(warp, sync)} |", flush=True)
    print(f"\nsteps/s = environment steps per second (N sub-env steps per batched step, frame_skip 5); "
          f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")


if __name__ == "__main__":
    main()
