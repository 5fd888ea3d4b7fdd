"""drlbench PPO vs stable-baselines3 PPO, side by side, same hyperparameters, one CPU thread.

For each seed, both libraries train from scratch for `--steps` environment steps (a multiple of the
rollout size, so both do the same number of updates) and report steps/s and the final return:
the mean undiscounted return of 10 deterministic-policy episodes on separate environments
(drlbench: the harness's final evaluation; SB3: `evaluate_policy`). Timing: SB3's `learn`;
drlbench's training wall time up to the last step (its run record), which includes the step-0
evaluation. Runs alternate between the libraries.

Tasks and hyperparameters (identical on both sides):
- CartPole-v1: SB3's PPO defaults (drlbench's agents/ppo.toml), `--num-envs` environments.
- Pendulum-v1: RL Baselines3 Zoo's settings (hyperparams/ppo.yml) without gSDE: 4 environments,
  n_steps 1024, gamma 0.9, learning rate 1e-3. drlbench's policy acts in [-1, 1] and the harness
  rescales; SB3's acts in the environment's units ([-2, 2]), so its environment is wrapped in
  gymnasium's RescaleAction(-1, 1) to give both the same action units (same log_std meaning).
drlbench steps its torch-native CartPole/Pendulum (`--drlbench-env gym:CartPole-v1` for gymnasium's own).

    taskset -c 1 python benchmarks/ppo_vs_sb3.py --env CartPole --steps 40960 --seeds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

TASKS = {
    "CartPole": {"env_id": "CartPole-v1", "num_envs": 1, "sets": {}},
    "Pendulum": {"env_id": "Pendulum-v1", "num_envs": 4,
                 "sets": {"n_steps": 1024, "gamma": 0.9, "learning_rate": 1e-3}},
    # RL Zoo's exact Pendulum-v1 settings: with gSDE
    "Pendulum-gSDE": {"env_id": "Pendulum-v1", "num_envs": 4,
                      "sets": {"n_steps": 1024, "gamma": 0.9, "learning_rate": 1e-3, "use_sde": True,
                               "sde_sample_freq": 4}},
}


def sb3_run(task: dict, num_envs: int, steps: int, seed: int) -> tuple[float, float]:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    box = task["env_id"] == "Pendulum-v1"
    warnings.filterwarnings("ignore", message=".*precision lowered")   # RescaleAction's float bounds
    wrapper = (lambda env: gym.wrappers.RescaleAction(env, -1.0, 1.0)) if box else None
    env = make_vec_env(task["env_id"], n_envs=num_envs, seed=seed, wrapper_class=wrapper)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", **task["sets"])
    start = time.perf_counter()
    model.learn(steps)
    elapsed = time.perf_counter() - start
    assert model.num_timesteps == steps, (model.num_timesteps, steps)
    eval_env = make_vec_env(task["env_id"], n_envs=1, seed=10**9 + seed, wrapper_class=wrapper)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return steps / elapsed, float(mean)


def drlbench_run(task: dict, env_id: str, num_envs: int, steps: int, seed: int) -> tuple[float, float]:
    from drlbench.cli import build_parser, resolve_run
    from drlbench.harness import train

    with tempfile.TemporaryDirectory() as out:
        args = build_parser().parse_args([
            "run", "ppo", "--env", env_id, "--steps", str(steps), "--num-envs", str(num_envs), "--seed", str(seed),
            "--out", out, "--eval-every", str(steps), "--eval-episodes", "10", "--quiet", "--tag", "bench",
            *(["--set", *(f"{k}={v}" for k, v in task["sets"].items())] if task["sets"] else [])])
        (cfg,), _ = resolve_run(args)
        (record,) = train(cfg)
        last = record.evaluations[-1]
        assert last["step"] == steps
        return steps / last["wall_time_s"], float(last["return_mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(TASKS), default="CartPole")
    parser.add_argument("--steps", type=int, default=40960)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-envs", type=int, help="environments per seed (default: the task's)")
    parser.add_argument("--drlbench-env", help="drlbench environment ID (default: the task's, torch-native)")
    args = parser.parse_args()
    task = TASKS[args.env]
    num_envs = args.num_envs or task["num_envs"]
    rollout = task["sets"].get("n_steps", 2048) * num_envs
    if args.steps % rollout:
        parser.error(f"--steps {args.steps} is not a multiple of the rollout size {rollout}")
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]   # other processes on a shared machine slow both sides
    results: dict[str, list[tuple[float, float]]] = {"stable-baselines3": [], "drlbench": []}
    for seed in range(args.seeds):
        for name in results:
            if name == "drlbench":
                rate, ret = drlbench_run(task, args.drlbench_env or task["env_id"], num_envs, args.steps, seed)
            else:
                rate, ret = sb3_run(task, num_envs, args.steps, seed)
            results[name].append((rate, ret))
            print(f"seed {seed}: {name:<18} {rate:7.1f} steps/s  final return {ret:8.2f}", file=sys.stderr, flush=True)
    print(f"\nPPO on {task['env_id']}, {args.steps} steps, {num_envs} env(s), "
          f"hyperparameters {json.dumps(task['sets']) if task['sets'] else 'SB3 defaults'}, 1 torch thread, "
          f"{args.seeds} seeds (torch {torch.__version__}); 1-min load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after\n")
    print("| library | steps/s (median) | final return mean ± std | per seed |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        rates, returns = [r for r, _ in rows], [x for _, x in rows]
        spread = statistics.stdev(returns) if len(returns) > 1 else 0.0
        print(f"| {name} | {statistics.median(rates):.0f} | {statistics.mean(returns):.1f} ± {spread:.1f} | "
              f"{', '.join(f'{x:.1f}' for x in returns)} |")
    ours, sb3 = (statistics.median([r for r, _ in results[k]]) for k in ("drlbench", "stable-baselines3"))
    print(f"\nspeed ratio drlbench / stable-baselines3: {ours / sb3:.2f}x")


if __name__ == "__main__":
    main()
