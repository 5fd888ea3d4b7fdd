"""Fidelity check: drlbench PPO vs stable-baselines3 PPO, final returns compared with AdaStop.

Both libraries train PPO with identical hyperparameters (benchmarks/ppo_vs_sb3.py's TASKS:
Pendulum-v1 with RL Baselines3 Zoo's settings, 4 environments, without gSDE (`--env Pendulum`) or
with it as the Zoo has it (`--env Pendulum-gSDE`); CartPole-v1 with SB3's defaults)
for the same step budget (a multiple of the rollout size, so both make the same updates), seed
by seed. A run's score is its final evaluation: the mean undiscounted return of 10 episodes of
the deterministic policy on separate environments, episode k of seed s reset with seed
10**9 + 1000 s + k (drlbench: the harness's final evaluation; SB3: the same loop here, on
gymnasium's environment, RescaleAction(-1, 1) for Box actions as in training).

The decision is `drlbench compare`'s: AdaStop (drlbench.stats.AdaStop, n runs per interim, at
most K interims), the state saved after each interim, the same decision table. drlbench's runs
are trained and reused through drlbench.compare.Scores (run records under OUT/<env>/<label>/),
SB3's final scores go to OUT/sb3/<env>/<label>.json after each seed, so the same command run
again continues where it stopped and, once finished, only prints the results: means with 95%
stratified-bootstrap intervals and the probability of improvement drlbench > SB3.

    taskset -c 1 .venv/bin/python benchmarks/fidelity_ppo_sb3.py --env Pendulum --out runs/fidelity
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ppo_vs_sb3 import TASKS  # same directory: the shared task settings

from drlbench import compare
from drlbench.errors import UsageError
from drlbench.records import atomic_write
from drlbench.stats import AdaStop, interval_estimates, probability_of_improvement

EVAL_EPISODES = 10
DEFAULT_STEPS = {"Pendulum": 49_152, "Pendulum-gSDE": 49_152, "CartPole": 24_576}  # 12 rollouts (4 x 1024 / 2048)


def eval_seed(seed: int, episode: int) -> int:
    """The harness's evaluation seeds (drlbench/harness.py)."""
    return 10**9 + 1000 * seed + episode


@dataclasses.dataclass(frozen=True)
class SB3Variant:
    """SB3's side in the shape compare.Contender reads of a RunConfig (identity, label, env_id)."""

    agent: str      # "stable-baselines3 <version> PPO"
    label: str
    env_id: str
    steps: int
    num_envs: int
    eval_episodes: int
    sets: dict

    def hyperparameter_dict(self) -> dict:
        return dict(self.sets)


def drlbench_contender(task: dict, env: str, steps: int, out: Path) -> compare.Contender:
    """drlbench PPO as `drlbench run` would configure it."""
    from drlbench.cli import build_parser, resolve_variant

    argv = ["run", "ppo", "--env", env, "--steps", str(steps), "--num-envs", str(task["num_envs"]),
            "--eval-every", str(steps), "--eval-episodes", str(EVAL_EPISODES), "--out", str(out),
            "--resume", "--quiet"]
    argv += ["--set", *(f"{k}={v}" for k, v in task["sets"].items())] if task["sets"] else []
    return compare.Contender("drlbench", resolve_variant(build_parser().parse_args(argv)))


def sb3_contender(task: dict, steps: int) -> compare.Contender:
    import stable_baselines3

    variant = SB3Variant(f"stable-baselines3 {stable_baselines3.__version__} PPO", "", task["env_id"], steps,
                         task["num_envs"], EVAL_EPISODES, task["sets"])
    digest = hashlib.sha1(json.dumps(dataclasses.asdict(variant), sort_keys=True).encode()).hexdigest()[:8]
    return compare.Contender("stable-baselines3", dataclasses.replace(variant, label=f"sb3-ppo-{digest}"))


def sb3_train_and_evaluate(task: dict, steps: int, seed: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    box = task["env_id"] == "Pendulum-v1"
    warnings.filterwarnings("ignore", message=".*precision lowered")   # RescaleAction's float bounds
    wrap = (lambda env: gym.wrappers.RescaleAction(env, -1.0, 1.0)) if box else (lambda env: env)
    env = make_vec_env(task["env_id"], n_envs=task["num_envs"], seed=seed, wrapper_class=wrap)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", **task["sets"])
    start = time.perf_counter()
    model.learn(steps)
    elapsed = time.perf_counter() - start
    assert model.num_timesteps == steps, (model.num_timesteps, steps)
    returns = []
    for k in range(EVAL_EPISODES):
        eval_env = wrap(gym.make(task["env_id"]))
        obs, _ = eval_env.reset(seed=eval_seed(seed, k))
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return {"final": float(np.mean(returns)), "episode_returns": returns, "train_wall_time_s": elapsed}


class SB3Scores:
    """SB3's final scores by seed in one JSON file, written after every seed."""

    def __init__(self, out: Path, contender: compare.Contender, task: dict):
        self.contender, self.task = contender, task
        self.path = Path(out) / "sb3" / contender.config.env_id / f"{contender.config.label}.json"
        self.runs: dict[str, dict] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data["identity"] != contender.identity:
                raise UsageError(f"{self.path} holds SB3 runs with other settings; remove it or use another --out")
            self.runs = data["runs"]

    def get(self, contender: compare.Contender, seeds: list[int]) -> tuple[list[float], int]:
        """Same contract as compare.Scores.get: scores of `seeds`, and how many were trained."""
        trained = 0
        for seed in seeds:
            if str(seed) not in self.runs:
                torch.set_num_threads(1)
                self.runs[str(seed)] = sb3_train_and_evaluate(self.task, contender.config.steps, seed)
                trained += 1
                data = {"identity": contender.identity, "runs": dict(sorted(self.runs.items(), key=lambda kv: int(kv[0])))}
                atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
        return [self.runs[str(s)]["final"] for s in seeds], trained


def run_adastop(found, sources, out: Path, n: int, K: int, alpha: float, B: int, seed: int) -> AdaStop:
    """compare.run_compare's interim loop, with one score source per contender."""
    settings = compare.comparison_settings(found, n, K, alpha, B, seed)
    path = compare.state_path(out, found)
    test = compare.load_state(path, settings) or AdaStop(n=n, K=K, B=B, alpha=alpha, seed=seed)
    while not test.is_finished:
        k = test.interim + 1
        running = test.agents_to_run if test.agents is not None else [c.name for c in found]
        batch, notes = {}, []
        for c in found:
            if c.name not in running:
                batch[c.name] = test.scores[c.name]
                continue
            scores, trained = sources[c.name].get(c, list(range(n * k)))
            batch[c.name] = scores
            notes.append(f"{c.name} seeds 0-{n * k - 1} ({trained} trained)")
        test.decide(batch)
        compare.save_state(path, settings, test)
        decided = [f"{a} vs {b}: {d}" for (a, b), d in test.decisions.items()]
        print(f"interim {k}/{K}: {'; '.join(notes)} -> {', '.join(decided)}", file=sys.stderr, flush=True)
    return test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(TASKS), default="Pendulum")
    parser.add_argument("--steps", type=int, help="environment steps per run (default: 12 rollouts)")
    parser.add_argument("--drlbench-env", help="drlbench environment ID (default: the task's, torch-native)")
    parser.add_argument("--n", type=int, default=5, help="runs per library per AdaStop interim")
    parser.add_argument("--K", type=int, default=2, help="at most this many interims")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--B", type=int, default=10_000, help="AdaStop permutations")
    parser.add_argument("--out", type=Path, default=Path("runs/fidelity"))
    args = parser.parse_args()
    task = TASKS[args.env]
    steps = args.steps or DEFAULT_STEPS[args.env]
    rollout = task["sets"].get("n_steps", 2048) * task["num_envs"]
    if steps % rollout:
        parser.error(f"--steps {steps} is not a multiple of the rollout size {rollout}")

    ours = drlbench_contender(task, args.drlbench_env or task["env_id"], steps, args.out)
    theirs = sb3_contender(task, steps)
    found = [ours, theirs]
    sources = {ours.name: compare.Scores(args.out, [ours]), theirs.name: SB3Scores(args.out, theirs, task)}
    test = run_adastop(found, sources, args.out, args.n, args.K, args.alpha, args.B, seed=0)

    print(f"PPO on {task['env_id']}, {steps} steps, {task['num_envs']} env(s), hyperparameters "
          f"{json.dumps(task['sets']) if task['sets'] else 'SB3 defaults'}; drlbench env {ours.config.env_id}, "
          f"label {ours.config.label}; SB3 label {theirs.config.label} ({theirs.config.agent})\n")
    print(compare.decision_table(test, found), "\n")
    scores = {name: np.asarray(s, dtype=float) for name, s in test.scores.items()}
    estimates = interval_estimates({k: v[:, None] for k, v in scores.items()}, metrics=("mean", "iqm"), seed=0)
    print("| library | runs | mean final return | 95% CI (bootstrap) | IQM | std | per seed |")
    print("|---|---|---|---|---|---|---|")
    for name, s in scores.items():
        m, q = estimates[name]["mean"], estimates[name]["iqm"]
        print(f"| {name} | {s.size} | {m.point:.1f} | [{m.lower:.1f}, {m.upper:.1f}] | {q.point:.1f} | "
              f"{s.std(ddof=1):.1f} | {', '.join(f'{x:.0f}' for x in s)} |")
    poi = probability_of_improvement(scores["drlbench"][:, None], scores["stable-baselines3"][:, None], seed=0)
    print(f"\nP(drlbench > stable-baselines3) = {poi.point:.2f}, 95% CI [{poi.lower:.2f}, {poi.upper:.2f}]")

    table = Path(args.out) / "fidelity" / f"{task['env_id']}_{ours.config.label}_vs_{theirs.config.label}.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["library", "label", "seed", "final_return"])
        for c in found:
            writer.writerows([c.name, c.config.label, seed, x] for seed, x in enumerate(scores[c.name]))
    print(f"scores: {table}")


if __name__ == "__main__":
    try:
        main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
