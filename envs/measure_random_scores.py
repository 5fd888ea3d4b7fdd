"""Measure the `random_score` reference of each suite environment: the mean undiscounted return
of a uniform-random policy over 100 episodes (seeds 0-99), via drlbench's own environments.
For MiniGrid, `--optimal` measures the `target_score` instead: the mean return of a shortest-path
planner that sees the whole map (breadth-first search over the environment's own dynamics), on
the same 100 episodes -- the best return any policy can get.

    python envs/measure_random_scores.py Pendulum-v1 HalfCheetah-v5 dmc:cheetah-run ...
    python envs/measure_random_scores.py --suite dmc      # every environment of envs/dmc.toml
    python envs/measure_random_scores.py --optimal --suite minigrid

Works for every backend (gymnasium, dm_control, MiniGrid, ...): Box actions are drawn uniformly in
their bounds, Discrete ones uniformly over the actions.
"""
import copy
import sys
from collections import deque

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


def _shortest_path_return(env) -> float:
    """Return of the fewest-steps rewarded episode from `env`'s current (deterministic) state.

    MiniGrid's success reward 1 - 0.9 * steps / max_steps falls with the step count, so the first
    rewarded terminal that breadth-first search meets is the optimum."""
    import gymnasium as gym

    actions = [a for a in env.actions if a != env.actions.done]
    # Spaces, spec and walls never change: share them between copies (6x faster search).
    shared = {id(v): v for v in vars(env).values() if isinstance(v, (gym.Space, gym.envs.registration.EnvSpec))}
    shared.update({id(cell): cell for cell in env.grid.grid if cell is not None and cell.type == "wall"})
    frontier, seen = deque([env]), set()
    while frontier:
        state = frontier.popleft()
        for action in actions:
            child = copy.deepcopy(state, dict(shared))
            _, reward, terminated, truncated, _ = child.step(action)
            if terminated and reward > 0:
                return float(reward)
            carrying = child.carrying and (child.carrying.type, child.carrying.color)
            key = (child.hash(), carrying)
            if not (terminated or truncated) and key not in seen:
                seen.add(key)
                frontier.append(child)
    return 0.0


def optimal_score(env_id: str) -> float:
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the environments)

    returns = []
    for seed in range(EPISODES):
        env = gym.make(env_id).unwrapped
        env.reset(seed=seed)
        returns.append(_shortest_path_return(env))
    return sum(returns) / len(returns)


if __name__ == "__main__":
    env_ids = sys.argv[1:]
    score = random_score
    if env_ids[:1] == ["--optimal"]:
        env_ids, score = env_ids[1:], optimal_score
    if env_ids[:1] == ["--suite"]:
        from drlbench.config import get_suite

        env_ids = [env_id for name in env_ids[1:] for env_id in get_suite(name).envs]
    for env_id in env_ids:
        print(f"{env_id}: {score(env_id):.4f}", flush=True)
