"""The one batched-environment contract every backend implements.

Whatever the backend (gymnasium, torch-native, dm_control, ...), a `VecEnv` speaks torch:
observations, rewards and done flags are tensors on `device`, with a leading `num_envs` axis.

Autoreset convention (gymnasium's SAME_STEP): when sub-environment i ends an episode in
`step`, it is reset inside that same call. The returned `obs[i]` is then the first
observation of the new episode (what the agent acts on next), and `final_obs[i]` is the last
observation of the finished episode (the true s' of the transition). Where an episode did not
end, `final_obs[i] == obs[i]`. `terminated` means a true terminal state (no bootstrap);
`truncated` means a time limit or other cut (bootstrap from `final_obs`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch


@dataclass
class Step:
    obs: torch.Tensor          # (num_envs, *obs_shape) float32: next observation to act on
    reward: torch.Tensor       # (num_envs,) float32
    terminated: torch.Tensor   # (num_envs,) bool
    truncated: torch.Tensor    # (num_envs,) bool
    final_obs: torch.Tensor    # (num_envs, *obs_shape) float32: true s' of this transition


class VecEnv:
    """Base class: `num_envs` copies of one environment, batched as torch tensors.

    Actions: continuous spaces take a float32 tensor (num_envs, *action_shape) in the
    environment's own units; discrete spaces take an int64 tensor (num_envs,).
    """

    env_id: str
    num_envs: int
    device: torch.device
    observation_space: gym.Space   # of ONE sub-environment
    action_space: gym.Space        # of ONE sub-environment

    def reset(self, seed: int | list[int]) -> torch.Tensor:
        """Reset every sub-environment; an int seeds them seed, seed+1, ...; returns obs."""
        raise NotImplementedError

    def step(self, action: torch.Tensor) -> Step:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit after `load_state_dict` (for --resume)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass
