"""`drlbench.envs.make`: the one entry point to every environment family.

Short names resolve to the newest registered gymnasium version (HalfCheetah -> HalfCheetah-v5,
Pendulum -> Pendulum-v1); full IDs work as they are.
"""
from __future__ import annotations

import re

import torch

from drlbench.envs.base import Step, VecEnv
from drlbench.errors import unknown

_VERSION = re.compile(r"^(?P<name>.+)-v(?P<version>\d+)$")


def _gymnasium_ids() -> dict[str, str]:
    """Every plain gymnasium ID, plus short names mapped to their newest version."""
    import gymnasium as gym

    ids: dict[str, str] = {}
    newest: dict[str, tuple[int, str]] = {}
    for env_id in gym.registry:
        if "/" in env_id or env_id.startswith("GymV"):
            continue
        ids[env_id.lower()] = env_id
        match = _VERSION.match(env_id)
        if match:
            name, version = match["name"], int(match["version"])
            if name.lower() not in newest or version > newest[name.lower()][0]:
                newest[name.lower()] = (version, env_id)
    for short, (_, env_id) in newest.items():
        ids.setdefault(short, env_id)
    return ids


def resolve(env_id: str) -> str:
    """Canonical ID for a short or full name; a UsageError with close matches otherwise."""
    ids = _gymnasium_ids()
    try:
        return ids[env_id.lower()]
    except KeyError:
        raise unknown("env", env_id, sorted(set(ids.values()))) from None


def make(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None) -> VecEnv:
    """A batched environment whose tensors live on `device`; reset with `seed` if one is given."""
    from drlbench.envs.gymnasium_backend import GymnasiumVecEnv

    env = GymnasiumVecEnv(resolve(env_id), num_envs, device)
    if seed is not None:
        env.reset(seed)
    return env


__all__ = ["Step", "VecEnv", "make", "resolve"]
