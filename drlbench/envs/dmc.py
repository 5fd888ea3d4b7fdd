"""dm_control suite tasks behind the torch `VecEnv` contract, as `dmc:<domain>-<task>`.

    dmc:cheetah-run, dmc:walker-walk, dmc:ball_in_cup-catch, dmc:dog-run, ...   (`env_ids()`: all 51)

Each sub-environment is the suite's own `control.Environment` (`suite.load(domain, task)`),
wrapped as a gymnasium `Env` and batched by the gymnasium backend (`SyncVectorEnv`, SAME_STEP
autoreset), so obs/reward/done conversion and autoreset are shared with every gymnasium task.

Observations: the task's observation OrderedDict, each value flattened row-major (scalars as one
element), concatenated in the dict's own key order -- the order `observation_spec()` lists and the
order DrQ-v2 and TD-MPC2 concatenate in -- cast to float32. `DmControlEnv.obs_keys` names it;
e.g. cheetah-run: position (8), velocity (9) -> 17 floats.

Actions: the task's bounded action spec as a float32 `Box` (almost always [-1, 1]^nu), passed to
MuJoCo unclipped, as dm_control does.

Episode end: a `LAST` time step with discount 0 is a true terminal (`terminated`); any other `LAST`
-- in the suite, the time limit (1000 control steps for the benchmarking tasks) -- is `truncated`.

`action_repeat=k` (default 1) repeats each action k times and returns the sum of the k rewards,
as DrQ-v2's ActionRepeatWrapper. The time limit stays counted in the suite's control steps, so
an episode of a 1000-step task lasts ceil(1000 / k) agent steps (the last repeat is cut short).

Seeding: `reset(seed)` reseeds the task's `random` (a `numpy.random.RandomState`), which is what
`suite.load(domain, task, task_kwargs={"random": seed})` does, so sub-environment i reproduces a
by-hand suite environment with that seed; episodes after an autoreset continue that random state.

`state_dict` holds, per sub-environment: MuJoCo's integration state, the model fields that tasks
randomise per episode (reacher/fish/finger targets, manipulator object poses, quadruped terrain,
...), the plain attributes of the environment and task (step counter, task random state), so a
resumed run continues bit-for-bit.
"""
from __future__ import annotations

import copy
import ctypes.util
import os
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlbench.envs import gymnasium_backend
from drlbench.envs.gymnasium_backend import _PLAIN, GymnasiumVecEnv, restore, snapshot
from drlbench.errors import UsageError, unknown

# dm_control picks its OpenGL backend at import; on a headless Linux machine its default (GLFW)
# fails on first use, e.g. quadruped-escape's heightfield upload. Use EGL there when available.
if sys.platform == "linux" and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl" if ctypes.util.find_library("EGL") else "disable"

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*DISPLAY")   # GLFW probing a display we never use
    from dm_control import suite

import mujoco  # noqa: E402  (after dm_control, which installs its own MuJoCo warning handler)

gymnasium_backend._route_mujoco_warnings()   # restore drlbench's MuJoCo warning routing

EXTRA = "dmc"
OPTIONS = ("action_repeat",)
_GYM_ID = "drlbench/dm_control-v0"
_STATE_TYPES = _PLAIN + (np.random.RandomState, list)
_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION


def env_ids() -> list[str]:
    """Every suite task (`suite.ALL_TASKS`) as `domain-task`."""
    return [f"{domain}-{task}" for domain, task in suite.ALL_TASKS]


class DmControlEnv(gym.Env):
    """One suite task as a gymnasium Env: flat float32 observations, summed action repeats."""

    metadata = {"render_modes": []}

    def __init__(self, domain: str, task: str, action_repeat: int = 1):
        if not isinstance(action_repeat, int) or action_repeat < 1:
            raise UsageError(f"action_repeat {action_repeat!r}: must be an integer >= 1")
        self.dm_env = suite.load(domain, task)
        self.action_repeat = action_repeat
        obs_spec = self.dm_env.observation_spec()
        self.obs_keys = tuple(obs_spec)
        size = sum(int(np.prod(spec.shape)) for spec in obs_spec.values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        spec = self.dm_env.action_spec()
        low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float32)
        high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)

    def _flat(self, observation) -> np.ndarray:
        return np.concatenate([np.ravel(observation[k]) for k in self.obs_keys]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.dm_env.task.random.seed(seed)
        return self._flat(self.dm_env.reset().observation), {}

    def step(self, action):
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self.dm_env.step(action)
            reward += time_step.reward
            if time_step.last():
                break
        terminated = time_step.last() and time_step.discount == 0.0
        truncated = time_step.last() and not terminated
        return self._flat(time_step.observation), reward, terminated, truncated, {}


if _GYM_ID not in gym.registry:
    gym.register(_GYM_ID, entry_point=DmControlEnv, order_enforce=False, disable_env_checker=True)


def _model_arrays(model) -> dict[str, np.ndarray]:
    """Every array field of an `MjModel` (views into the model, writable)."""
    return {name: getattr(model, name) for name in dir(model)
            if not name.startswith("_") and isinstance(getattr(model, name), np.ndarray)}


def _plain(obj) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if isinstance(v, _STATE_TYPES)}


class DmControlVecEnv(GymnasiumVecEnv):
    def __init__(self, env_id: str, num_envs: int, device: str | torch.device = "cpu", action_repeat: int = 1):
        domain, _, task = env_id.partition("-")
        super().__init__(_GYM_ID, num_envs, device, domain=domain, task=task, action_repeat=action_repeat)
        self.env_id = f"dmc:{env_id}"
        self.action_repeat = action_repeat
        # Fields a task changes per episode differ from the freshly loaded model: store only those.
        self._pristine = {k: v.copy() for k, v in _model_arrays(self._dm(0).physics.model.ptr).items()}

    def _dm(self, i: int):
        return self.vec.envs[i].unwrapped.dm_env

    def state_dict(self) -> dict[str, Any]:
        envs = []
        for i, env in enumerate(self.vec.envs):
            dm_env = self._dm(i)
            model, data = dm_env.physics.model.ptr, dm_env.physics.data.ptr
            physics = np.empty(mujoco.mj_stateSize(model, _INTEGRATION))
            mujoco.mj_getState(model, data, physics, _INTEGRATION)
            changed = {k: v.copy() for k, v in _model_arrays(model).items()
                       if not np.array_equal(v, self._pristine[k])}
            envs.append({**snapshot(env), "physics": physics, "model": changed,
                         "environment": _plain(dm_env), "task": _plain(dm_env.task)})
        return {"envs": envs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, (env, env_state) in enumerate(zip(self.vec.envs, state["envs"])):
            restore(env, env_state)
            dm_env = self._dm(i)
            for obj, attrs in ((dm_env, env_state["environment"]), (dm_env.task, env_state["task"])):
                for key, value in attrs.items():
                    setattr(obj, key, copy.deepcopy(value))
            model, data = dm_env.physics.model.ptr, dm_env.physics.data.ptr
            for key, current in _model_arrays(model).items():
                target = env_state["model"].get(key, self._pristine[key])
                if not np.array_equal(current, target):
                    current[...] = target
            mujoco.mj_setState(model, data, env_state["physics"], _INTEGRATION)
            # dm_control steps as mj_step2 then mj_step1 ("legacy step"): recompute the
            # position/velocity stage that the next mj_step2 starts from.
            mujoco.mj_step1(model, data)


def make(env_id: str, num_envs: int, device: str | torch.device, **options) -> DmControlVecEnv:
    """Backend entry point for `drlbench.envs.make`; option: `action_repeat` (default 1)."""
    for key in options:
        if key not in OPTIONS:
            raise unknown("dmc option", key, OPTIONS)
    return DmControlVecEnv(env_id, num_envs, device, **options)
