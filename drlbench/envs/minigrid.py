"""MiniGrid (and BabyAI) grid worlds behind the torch `VecEnv` contract, for discrete-action agents.

    MiniGrid-Empty-8x8-v0, MiniGrid-DoorKey-5x5-v0, ...   (`env_ids()`: every registered MiniGrid-*
    and BabyAI-* ID; no prefix needed)

Runs the registered environment through gymnasium's `SyncVectorEnv` in SAME_STEP autoreset mode
(the gymnasium backend), with one observation encoding:

Observation (float32, 984 values for the default 7x7 view): the agent's partial egocentric view,
`image[i, j] = (object, colour, state)` indices, each cell one-hot encoded as
[object (11) | colour (6) | state (3)] = 20 bits and flattened row-major over (i, j, bit) -- the
same layout as minigrid's own `OneHotPartialObsWrapper` -- followed by the agent's direction
(0 right, 1 down, 2 left, 3 up) one-hot (4). The mission string is dropped: agents here take no
language input, so tasks whose goal is only stated in the mission (BabyAI, GoToDoor, Fetch, ...)
are partially observable for them.

Why one-hot: the usual baselines use the raw indices -- RL Baselines3 Zoo's MiniGrid PPO
(MlpPolicy) flattens them with minigrid's `FlatObsWrapper` and relies on VecNormalize running
statistics; rl-starter-files (torch-ac) feeds them to a small CNN. The indices are categorical
(wall=2, door=4, key=5, ...), so as numbers (raw or scaled) they put "key" between "door" and
"ball" on a line an MLP must learn to undo, and they need a running normaliser that would then be
part of every agent. The one-hot view carries the same information, is already in {0, 1}, and is
linear-friendly for the MLP torsos drlbench's agents use; it is minigrid's own
`OneHotPartialObsWrapper` encoding (tested equal), computed vectorised.

Actions: `Discrete(n)` (7 for MiniGrid: left, right, forward, pickup, drop, toggle, done), int64.
Reward: 1 - 0.9 * step_count / max_steps on success, 0 otherwise. Reaching the goal (or lava) is
`terminated`; the environment's own `max_steps` (e.g. 4 * size^2) is `truncated`.

`state_dict` stores the whole grid world (grid objects, doors, carried item, agent pose, step
counter, random generator) per sub-environment, so a resumed run continues bit-for-bit.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import minigrid
import numpy as np
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

from drlbench.envs.gymnasium_backend import GymnasiumVecEnv, restore, snapshot

EXTRA = "minigrid"
_GYM_ID = "drlbench/minigrid-one-hot-v0"
_BITS = (len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX))          # 11, 6, 3
_OFFSETS = np.array([0, _BITS[0], _BITS[0] + _BITS[1]], dtype=np.intp)     # object | colour | state
_CELL = sum(_BITS)                                                          # 20 bits per cell
_NOT_STATE = ("window", "clock", "spec")                                    # rendering / metadata


def env_ids() -> list[str]:
    """Every registered MiniGrid-* and BabyAI-* ID (minus the WFC mazes when their pattern images,
    missing from the minigrid 3.2.0 wheel, are absent)."""
    has_wfc = (Path(minigrid.__file__).parent / "envs" / "wfc" / "patterns").is_dir()
    return sorted(i for i in gym.registry if i.startswith(("MiniGrid-", "BabyAI-"))
                  and (has_wfc or not i.startswith("MiniGrid-WFC-")))


class OneHotView(gym.ObservationWrapper):
    """Dict observation -> flat float32 [one-hot view (V*V*20) | one-hot direction (4)]."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        view = env.observation_space["image"].shape[0]
        cells = view * view
        self._cell_base = (np.arange(cells, dtype=np.intp) * _CELL)[:, None] + _OFFSETS
        self._direction = cells * _CELL
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self._direction + 4,), np.float32)

    def observation(self, obs: dict) -> np.ndarray:
        flat = np.zeros(self.observation_space.shape, np.float32)
        flat[(self._cell_base + obs["image"].reshape(-1, 3)).ravel()] = 1.0
        flat[self._direction + obs["direction"]] = 1.0
        return flat


def _one_hot_env(minigrid_id: str, **kwargs) -> OneHotView:
    return OneHotView(gym.make(minigrid_id, **kwargs))


if _GYM_ID not in gym.registry:
    gym.register(_GYM_ID, entry_point=_one_hot_env, order_enforce=False, disable_env_checker=True)


class _Pickler(pickle.Pickler):
    """Pickles an env's attributes, keeping references back to the env itself (BabyAI's
    instruction verifiers hold one) as a placeholder, so they reattach to the live env."""

    def __init__(self, file, env):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.env = env

    def persistent_id(self, obj):
        return "env" if obj is self.env else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, env):
        super().__init__(file)
        self.env = env

    def persistent_load(self, pid):
        return self.env


def world_state(env: gym.Env) -> bytes:
    """The unwrapped MiniGrid env's attributes (grid, objects, agent, counters, rng) as bytes."""
    unwrapped = env.unwrapped
    attrs = {k: v for k, v in vars(unwrapped).items() if k not in _NOT_STATE and not isinstance(v, gym.Space)}
    buffer = io.BytesIO()
    _Pickler(buffer, unwrapped).dump(attrs)
    return buffer.getvalue()


def load_world_state(env: gym.Env, state: bytes) -> None:
    unwrapped = env.unwrapped
    for key, value in _Unpickler(io.BytesIO(state), unwrapped).load().items():
        setattr(unwrapped, key, value)


class MiniGridVecEnv(GymnasiumVecEnv):
    def __init__(self, env_id: str, num_envs: int, device: str | torch.device = "cpu", **env_kwargs):
        super().__init__(_GYM_ID, num_envs, device, minigrid_id=env_id, **env_kwargs)
        self.env_id = env_id

    def state_dict(self) -> dict[str, Any]:
        return {"envs": [{**snapshot(env), "world": world_state(env)} for env in self.vec.envs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for env, env_state in zip(self.vec.envs, state["envs"]):
            restore(env, env_state)
            load_world_state(env, env_state["world"])


def make(env_id: str, num_envs: int, device: str | torch.device, **options) -> MiniGridVecEnv:
    """Backend entry point for `drlbench.envs.make`; `options` go to the MiniGrid env
    (e.g. `max_steps`)."""
    return MiniGridVecEnv(env_id, num_envs, device, **options)
