"""Gymnasium environments (classic control, MuJoCo v5, ...) behind the torch `VecEnv` contract.

Runs gymnasium's own `SyncVectorEnv` in SAME_STEP autoreset mode and converts its numpy
arrays to tensors. `state_dict` snapshots every sub-environment (its wrappers' counters, its
random generator, and for MuJoCo the full integration state), so `--resume` continues a run
exactly where a plain pickle of a MuJoCo env would silently rebuild it from scratch.
"""
from __future__ import annotations

import copy
import warnings
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlbench.envs.base import Step, VecEnv

def _route_mujoco_warnings() -> None:
    """MuJoCo prints its warnings and appends them to ./MUJOCO_LOG.TXT; gymnasium's v5 XMLs
    trigger a harmless 'settotalmass is deprecated' one per environment. Send MuJoCo's warnings
    to Python's `warnings` instead, minus that one."""
    try:
        import mujoco
    except ImportError:
        return

    def handler(message: str) -> None:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)


_route_mujoco_warnings()
_PLAIN = (bool, int, float, str, type(None), np.ndarray, np.generic, np.random.Generator)


def _layers(env: gym.Env):
    while True:
        yield env
        if not hasattr(env, "env"):
            return
        env = env.env


def _mujoco_state(env: gym.Env):
    """(mujoco module, model, data) if `env` simulates with MuJoCo, else None."""
    unwrapped = env.unwrapped
    if not (hasattr(unwrapped, "model") and hasattr(unwrapped, "data")):
        return None
    import mujoco

    return mujoco, unwrapped.model, unwrapped.data


def snapshot(env: gym.Env) -> dict[str, Any]:
    """Plain attributes of every wrapper layer, plus MuJoCo's integration state if any."""
    state: dict[str, Any] = {
        "layers": [{k: copy.deepcopy(v) for k, v in vars(layer).items() if isinstance(v, _PLAIN)}
                   for layer in _layers(env)]
    }
    sim = _mujoco_state(env)
    if sim is not None:
        mujoco, model, data = sim
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, physics, spec)
        state["mujoco"] = physics
    return state


def restore(env: gym.Env, state: dict[str, Any]) -> None:
    for layer, attrs in zip(_layers(env), state["layers"]):
        for key, value in attrs.items():
            setattr(layer, key, copy.deepcopy(value))
    if "mujoco" in state:
        mujoco, model, data = _mujoco_state(env)
        mujoco.mj_setState(model, data, state["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)


class GymnasiumVecEnv(VecEnv):
    def __init__(self, env_id: str, num_envs: int, device: str | torch.device = "cpu", **env_kwargs):
        self.env_id = env_id
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.vec = gym.vector.SyncVectorEnv(
            [partial(gym.make, env_id, **env_kwargs) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self._discrete = isinstance(self.action_space, gym.spaces.Discrete)

    def _tensor(self, array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype).to(self.device)

    def reset(self, seed: int | list[int]) -> torch.Tensor:
        obs, _ = self.vec.reset(seed=seed)
        return self._tensor(obs)

    def step(self, action: torch.Tensor) -> Step:
        action = action.detach().cpu().numpy()
        obs, reward, terminated, truncated, info = self.vec.step(action if not self._discrete else action.astype(np.int64))
        final_obs = obs
        if "_final_obs" in info and info["_final_obs"].any():
            final_obs = obs.copy()
            done = np.flatnonzero(info["_final_obs"])
            final_obs[done] = np.stack(info["final_obs"][done])
        return Step(
            obs=self._tensor(obs),
            reward=self._tensor(reward),
            terminated=self._tensor(terminated, torch.bool),
            truncated=self._tensor(truncated, torch.bool),
            final_obs=self._tensor(final_obs),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"envs": [snapshot(env) for env in self.vec.envs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for env, env_state in zip(self.vec.envs, state["envs"]):
            restore(env, env_state)

    def close(self) -> None:
        self.vec.close()


EXTRA = None


def make(env_id: str, num_envs: int, device: str | torch.device, **options) -> GymnasiumVecEnv:
    """Backend entry point for `drlbench.envs.make`."""
    return GymnasiumVecEnv(env_id, num_envs, device, **options)
