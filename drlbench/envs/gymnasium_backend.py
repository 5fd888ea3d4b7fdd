"""Gymnasium environments (classic control, MuJoCo v5, ...) behind the torch `VecEnv` contract.

Runs gymnasium's own `SyncVectorEnv` in SAME_STEP autoreset mode and converts its numpy
arrays to tensors. `state_dict` snapshots every sub-environment (its wrappers' counters, its
random generator, and for MuJoCo the full integration state), so `--resume` continues a run
exactly where a plain pickle of a MuJoCo env would silently rebuild it from scratch.

Dynamics gaps (MuJoCo only; `physics=` of `drlbench.envs.make`, see its docstring): `gravity`,
`friction` and `mass` multiply `model.opt.gravity`, every row of `model.geom_friction` and every
`model.body_mass` of each sub-environment's loaded model once, after `gym.make` (the H2O paper edits
the XML's gravity / friction / density instead: the same model, except that a density change also
rescales inertias, which `mass` does not). `joint_noise` = sigma adds N(0, sigma^2) noise to every
action the environment receives (H2O's sampler adds it to the policy's action before `env.step`);
the noise comes from a generator seeded by `reset(seed)` and saved in `state_dict`.
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


MUJOCO_PHYSICS = ("gravity", "friction", "mass", "joint_noise")
_NOISE_STREAM = 0x4A4E   # mixed into the joint-noise generator's seed


def is_mujoco(env_id: str) -> bool:
    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return False
    return "mujoco" in str(entry)


def physics_parameters(env_id: str) -> dict:
    """Physics parameter name -> its domain: MuJoCo environments only (none for the others)."""
    from drlbench.domains import Domain

    if not is_mujoco(env_id):
        return {}
    return {key: Domain.parse("[0, inf)" if key == "joint_noise" else "(0, inf)") for key in MUJOCO_PHYSICS}


def apply_physics(env: gym.Env, physics: dict[str, float]) -> None:
    """Multiply the loaded MuJoCo model's gravity, friction and body masses in place."""
    sim = _mujoco_state(env)
    if sim is None:
        raise ValueError(f"{env.spec.id if env.spec else env}: physics multipliers need a MuJoCo model")
    _, model, _ = sim
    model.opt.gravity[:] = model.opt.gravity * physics.get("gravity", 1.0)
    model.geom_friction[:] = model.geom_friction * physics.get("friction", 1.0)
    model.body_mass[:] = model.body_mass * physics.get("mass", 1.0)


class GymnasiumVecEnv(VecEnv):
    def __init__(self, env_id: str, num_envs: int, device: str | torch.device = "cpu",
                 physics: dict[str, float] | None = None, **env_kwargs):
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
        self.changed_physics = dict(physics or {})
        unknown_keys = set(self.changed_physics) - set(MUJOCO_PHYSICS)
        if unknown_keys:
            raise ValueError(f"unknown physics parameters {sorted(unknown_keys)}; have {list(MUJOCO_PHYSICS)}")
        if self.changed_physics:
            for env in self.vec.envs:
                apply_physics(env, self.changed_physics)
        self.joint_noise = float(self.changed_physics.get("joint_noise", 0.0))
        self._noise = np.random.default_rng([_NOISE_STREAM, 0])

    def _tensor(self, array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype).to(self.device)

    def reset(self, seed: int | list[int]) -> torch.Tensor:
        obs, _ = self.vec.reset(seed=seed)
        if seed is not None:
            seeds = [int(s) for s in (seed if isinstance(seed, (list, tuple, np.ndarray)) else [seed])]
            self._noise = np.random.default_rng([_NOISE_STREAM, *seeds])
        return self._tensor(obs)

    def step(self, action: torch.Tensor) -> Step:
        action = action.detach().cpu().numpy()
        if self.joint_noise > 0.0:
            action = action + self.joint_noise * self._noise.standard_normal(action.shape).astype(action.dtype)
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
        return {"envs": [snapshot(env) for env in self.vec.envs], "noise": self._noise.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for env, env_state in zip(self.vec.envs, state["envs"]):
            restore(env, env_state)
        if "noise" in state:
            self._noise.bit_generator.state = state["noise"]

    def close(self) -> None:
        self.vec.close()


EXTRA = None


def make(env_id: str, num_envs: int, device: str | torch.device, **options) -> GymnasiumVecEnv:
    """Backend entry point for `drlbench.envs.make`."""
    return GymnasiumVecEnv(env_id, num_envs, device, **options)
