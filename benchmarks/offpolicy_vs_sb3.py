"""drlbench SAC or TD3 vs stable-baselines3's, side by side, same hyperparameters, one CPU thread.

Both train on HalfCheetah-v5, one gradient step per environment step, buffer 1e6, batch 256,
gamma 0.99, tau 0.005, 256-256 ReLU networks:
- SAC (`--agent sac`): SB3's SAC defaults (which match the paper's Table 1): Adam 3e-4, learned
  temperature starting at 1 with target entropy -|A|.
- TD3 (`--agent td3`): the TD3 authors' code settings (drlbench's preset): Adam 3e-4, policy delay 2,
  target noise 0.2 clipped at 0.5, Gaussian exploration noise 0.1 (SB3: NormalActionNoise(0, 0.1)).
Each run collects `--warmup` uniform-random steps (no updates), then is timed over `--steps`
learning steps (environment step + gradient update each: `steps` updates on both sides, no
evaluation inside the timed window). Runs alternate between the two
libraries `--repeats` times; the median steps/s of each is reported.

    taskset -c 1 python benchmarks/offpolicy_vs_sb3.py --agent sac --steps 2000 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

ENV = "HalfCheetah-v5"


def sb3_steps_per_second(agent: str, warmup: int, steps: int, seed: int) -> float:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    env = gym.make(ENV)
    common = dict(buffer_size=1_000_000, learning_starts=warmup, batch_size=256, tau=0.005, gamma=0.99,
                  train_freq=1, gradient_steps=1, policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu")
    if agent == "sac":
        model = SAC("MlpPolicy", env, learning_rate=3e-4, ent_coef="auto", **common)
    else:
        dims = env.action_space.shape[0]
        model = TD3("MlpPolicy", env, learning_rate=3e-4, policy_delay=2, target_policy_noise=0.2,
                    target_noise_clip=0.5, action_noise=NormalActionNoise(np.zeros(dims), 0.1 * np.ones(dims)),
                    **common)
    model.learn(warmup)
    updates = model._n_updates
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    assert model._n_updates - updates == steps, (model._n_updates - updates, steps)
    return steps / elapsed


SETTINGS = {
    # alpha_resample=false: the temperature loss reads the log-probabilities of the actor loss's sample,
    # as SB3 and SBX do (drlbench's preset re-samples after the actor step, as softlearning does: one
    # more actor forward pass per update, which the peers do not make).
    "sac": ["actor_lr=3e-4", "critic_lr=3e-4", "alpha_lr=3e-4", "initial_alpha=1.0", "alpha_resample=false"],
    "td3": ["actor_lr=3e-4", "critic_lr=3e-4", "policy_delay=2", "policy_noise=0.2", "noise_clip=0.5",
            "exploration_noise=0.1"],
}


def drlbench_steps_per_second(agent: str, warmup: int, steps: int, seed: int) -> float:
    return drlbench_timed(agent, warmup, steps, seed)[0]


def drlbench_timed(agent: str, warmup: int, steps: int, seed: int, extra: tuple[str, ...] = (),
                   untimed: int = 0, seeds: str | None = None) -> tuple[float, float]:
    """(steps/s over `steps` learning steps, seconds of the `untimed` learning steps before them), with
    `extra` --set overrides, applied last (e.g. compile=true, whose first updates compile: untimed, as
    SBX's JIT). `seeds` ("0-9"): those seeds batched in one run instead of `seed` alone."""
    from drlbench.cli import build_parser, resolve_run
    from drlbench.harness import Session, train

    # Clock the loop at the end of environment steps `warmup`, `warmup + untimed` and `warmup + untimed
    # + steps`, before the harness's evaluation there (the only evaluations are at step 0 and the last step).
    first, last = warmup + untimed, warmup + untimed + steps
    clock: dict[int, tuple[float, int]] = {}
    after_step = Session.after_step

    def timed_after_step(self, loop_state):
        if self.step in (warmup, first, last):
            clock[self.step] = time.perf_counter(), self.agent.updates
        after_step(self, loop_state)

    Session.after_step = timed_after_step
    try:
        with tempfile.TemporaryDirectory() as out:
            args = build_parser().parse_args([
                "run", agent, "--env", ENV, "--steps", str(last), "--out", out,
                *(["--seed", str(seed)] if seeds is None else ["--seeds", seeds, "--batched"]),
                "--eval-every", str(last), "--eval-episodes", "1", "--quiet",
                # SB3 trains once per step when num_timesteps > learning_starts; drlbench when step >= learning_starts
                "--set", f"random_steps={warmup}", f"learning_starts={warmup + 1}", "buffer_size=1000000",
                "batch_size=256", "hidden_sizes=256,256", "gamma=0.99", "tau=0.005", "updates_per_step=1",
                *SETTINGS[agent], *extra])
            (cfg,), _ = resolve_run(args)
            train(cfg)
    finally:
        Session.after_step = after_step
    (start, updates_start), (end, updates_end) = clock[first], clock[last]
    assert updates_end - updates_start == steps, (updates_end - updates_start, steps)
    return steps / (end - start), start - clock[warmup][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=sorted(SETTINGS), default="sac")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]   # other processes on a shared machine slow both sides
    results: dict[str, list[float]] = {"stable-baselines3": [], "drlbench": []}
    for repeat in range(args.repeats):
        for name, fn in (("stable-baselines3", sb3_steps_per_second), ("drlbench", drlbench_steps_per_second)):
            rate = fn(args.agent, args.warmup, args.steps, seed=repeat)
            results[name].append(rate)
            print(f"repeat {repeat}: {name:<18} {rate:7.1f} steps/s", file=sys.stderr, flush=True)
    sb3, ours = (statistics.median(results[k]) for k in ("stable-baselines3", "drlbench"))
    print(f"\n{args.agent.upper()} on {ENV}, {args.steps} learning steps after {args.warmup} warm-up steps, 1 torch thread, "
          f"median of {args.repeats} alternating runs (torch {torch.__version__}); "
          f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print("| library | steps/s (median) | runs |")
    print("|---|---|---|")
    for name, rates in results.items():
        print(f"| {name} | {statistics.median(rates):.1f} | {', '.join(f'{r:.1f}' for r in rates)} |")
    print(f"\nratio drlbench / stable-baselines3: {ours / sb3:.2f}x")


if __name__ == "__main__":
    main()
