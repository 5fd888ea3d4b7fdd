"""Measure the `random_score` reference of each suite environment: the mean undiscounted return
of a uniform-random policy over 100 episodes (seeds 0-99), via drlbench's own environments.

    python envs/measure_random_scores.py Pendulum-v1 HalfCheetah-v5 ...
"""
import sys

import torch

from drlbench import envs

EPISODES = 100


def random_score(env_id: str) -> float:
    env = envs.make(env_id, EPISODES)
    generator = torch.Generator().manual_seed(0)
    env.reset(list(range(EPISODES)))
    env.action_space.seed(0)
    done = torch.zeros(EPISODES, dtype=torch.bool)
    returns = torch.zeros(EPISODES, dtype=torch.float64)
    while not done.all():
        if hasattr(env.action_space, "n"):
            action = torch.randint(env.action_space.n, (EPISODES,), generator=generator)
        else:
            low = torch.as_tensor(env.action_space.low)
            high = torch.as_tensor(env.action_space.high)
            action = low + (high - low) * torch.rand(EPISODES, *low.shape, generator=generator)
        step = env.step(action)
        returns += step.reward.double() * ~done
        done |= step.terminated | step.truncated
    return returns.mean().item()


if __name__ == "__main__":
    for env_id in sys.argv[1:]:
        print(f"{env_id}: {random_score(env_id):.2f}", flush=True)
