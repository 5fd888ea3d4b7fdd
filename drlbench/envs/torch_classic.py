"""Torch-native batched classic control: CartPole-v1, Pendulum-v1, MountainCar-v0,
MountainCarContinuous-v0 and Acrobot-v1 behind the `VecEnv` contract.

Each class reproduces gymnasium 1.x's `gymnasium/envs/classic_control` dynamics (same constants,
same order of operations, float64 where gymnasium's numpy computes in float64, float32 where
numpy 2 does) for `num_envs` copies at once: the physics state is one float64 tensor on `device`,
and one `step` is a fixed sequence of tensor ops with no Python loop over environments. The time
limit of each registered ID (500 / 200 / 200 / 999 / 500 steps) and SAME_STEP autoreset are
applied on the device. `get_state()` / `set_state(state, elapsed_steps)` read and write the
`(num_envs, state_dim)` physics state (columns `state_names`).

Randomness. Only initial states are random, and each sub-environment has a stream of its own:
`reset(seed)` gives sub-env i the seed `seed + i` (or `seed[i]` for a list), and the initial state
of its episode e (0 at `reset`, +1 at each autoreset) is a function of (seed_i, e) alone. So sub-env
i of a batch runs exactly as a lone env reset with its seed, whatever the batch size, the other
sub-envs or the device. The draws are counter-based, not a generator: component k of that state
is `low_k + (high_k - low_k) * bits / 2**32` with

    bits = H(H((key_i + e * 0x9E3779B9) mod 2**32) ^ H(k + 1)),   key_i = a 2-round hash of seed_i,

H = `lowbias32` (C. Wellons' integer-hash prospector), all in int64 tensor ops on the device
(values masked to 32 bits, products below 2**63). The same integers come out on every device,
and no step waits for the host (Acrobot then rounds to float32, as gymnasium stores it). A step
hashes either only the sub-envs that just ended (a host-side `nonzero`: cheapest on CPU, the
default there) or every sub-env, selecting with `torch.where` (`dense_resets`, the default on
other devices: no host sync); the two give identical results. `state_dict` carries the per-env
stream keys and episode counters, so a resumed run continues bit for bit, on any device.
`seed=None` picks a random seed. Initial states have 2**32 levels per component (gymnasium's
numpy draws have 2**53) and are not gymnasium's numpy draws.

Deviations from gymnasium, all below 1e-5 (tests/test_torch_classic.py pins this):
- torch's vectorised float64 sin/cos (SLEEF) differ from libm's in the last bit for ~0.1% of
  arguments; otherwise a step is bit-identical to gymnasium's. In the chaotic systems (Acrobot,
  CartPole near upright) such a last-bit difference grows over a long episode, as it would
  between any two float64 implementations.
- MountainCarContinuous: gymnasium stores its state as float32 after each step but computes a
  step in a float32/float64 mix; here a step is computed in float64 and the state is then
  rounded to float32, as gymnasium stores it.
- Actions are not validated (that would need a host sync); discrete actions outside the action
  space act as their nearest gymnasium branch (CartPole: anything but 1 pushes left).

Changed physics (`physics={"g": 15.0}`, or `drlbench.envs.make("Pendulum-v1?g=15")`): each class lists
in `physics` the constants that may be changed (gymnasium's attribute names, lower-cased for
Acrobot's); a changed constant replaces the class value for that instance, and constants derived
from it (CartPole's total_mass, polemass_length) are recomputed. Everything else is unchanged.
"""
from __future__ import annotations

import math
import secrets
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlbench.envs.base import Step, VecEnv

F64 = torch.float64
_MASK32 = 0xFFFFFFFF
# lowbias32's multipliers; the second is used as its negative residue mod 2**32 so that every
# product of a 32-bit value stays inside int64 (x * c == x * (c - 2**32) mod 2**32).
_MUL1 = 0x7FEB352D
_MUL2 = 0x846CA68B - 2**32
_GOLDEN = 0x9E3779B9


def lowbias32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 integer hash, elementwise, of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _MUL1).bitwise_and_(_MASK32)
    x ^= x >> 15
    x = (x * _MUL2).bitwise_and_(_MASK32)
    return x ^ (x >> 16)


def seed_keys(seeds: torch.Tensor) -> torch.Tensor:
    """32-bit stream keys of int64 seeds; distinct for distinct seeds in [0, 2**32)."""
    high = lowbias32(((seeds >> 32) & _MASK32) ^ _GOLDEN)
    return lowbias32((seeds & _MASK32) ^ high)


class TorchClassicEnv(VecEnv):
    """Shared machinery: state, time limit, autoreset, seeding, checkpointing.

    The physics state is stored component-major, `(state_dim, num_envs)` float64, so that each
    component (`state_names`) is a contiguous row and every elementwise op runs on contiguous
    memory; `get_state`/`set_state`/`state_dict` speak the usual `(num_envs, state_dim)`.
    A subclass sets `env_id`, `max_episode_steps`, `state_names`, `discrete`, the initial-state
    box `reset_low`/`reset_high` (one bound per state component; equal bounds give a constant)
    and implements `_spaces()`, `_observe(state)` and `_dynamics(state, action)`.
    """

    env_id: str
    max_episode_steps: int
    state_names: tuple[str, ...]
    discrete: bool
    reset_low: tuple[float, ...]
    reset_high: tuple[float, ...]
    reset_float32 = False            # gymnasium stores the initial state as float32
    physics: tuple[str, ...] = ()    # physical constants a dynamics gap may change

    def __init__(self, num_envs: int, device: str | torch.device = "cpu",
                 seed: int | list[int] | None = 0, dense_resets: bool | None = None,
                 physics: dict[str, float] | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.changed_physics = dict(physics or {})
        for key, value in self.changed_physics.items():
            if key not in self.physics:
                raise ValueError(f"{self.env_id} has no physics parameter {key!r}; have {list(self.physics)}")
            setattr(self, self._attribute(key), float(value))
        self._derive()
        self.num_envs = num_envs
        self.device = torch.device(device)
        # Hash every sub-env's next initial state each step (no host sync) or only the ended
        # ones (needs `nonzero`, a host sync: free on CPU only). Same results either way.
        self.dense_resets = self.device.type != "cpu" if dense_resets is None else dense_resets
        self.observation_space, self.action_space = self._spaces()
        column = lambda values: torch.tensor(values, dtype=F64, device=self.device).unsqueeze(1)
        self._reset_low = column(self.reset_low)
        self._reset_scale = (column(self.reset_high) - self._reset_low) * 2.0**-32
        salts = [lowbias32(torch.tensor(k + 1)).item() for k in range(len(self.state_names))]
        self._component_salts = torch.tensor(salts, device=self.device).unsqueeze(1)
        self._constants()
        self.reset(seed)

    # ---- what a subclass defines -----------------------------------------------------------
    def _spaces(self) -> tuple[gym.Space, gym.Space]:
        raise NotImplementedError

    def _attribute(self, key: str) -> str:
        """The attribute holding physics parameter `key` (gymnasium's name)."""
        return key if hasattr(type(self), key) else key.upper()

    def _derive(self) -> None:
        """Recompute constants derived from the physics parameters (optional)."""

    def _constants(self) -> None:
        """Make constant tensors on `self.device` the step needs (optional)."""

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        """float32 (n, obs_dim) observations of a (state_dim, n) state."""
        raise NotImplementedError

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One physics step: (next_state, a new tensor; reward float32; terminated bool)."""
        raise NotImplementedError

    # ---- initial states ----------------------------------------------------------------------
    def _initial_states(self, keys: torch.Tensor, episodes: torch.Tensor) -> torch.Tensor:
        """float64 (state_dim, n) initial states of episodes `episodes` of the streams `keys`."""
        episode_keys = lowbias32((episodes * _GOLDEN).add_(keys).bitwise_and_(_MASK32))
        bits = lowbias32(episode_keys ^ self._component_salts)           # (state_dim, n)
        state = bits.to(F64).mul_(self._reset_scale).add_(self._reset_low)
        return state.to(torch.float32).to(F64) if self.reset_float32 else state

    # ---- the VecEnv contract -----------------------------------------------------------------
    def reset(self, seed: int | list[int] | None = None) -> torch.Tensor:
        """Seed sub-env i with `seed + i` (or `seed[i]`; a random seed if None), draw fresh
        initial states, zero the step counters."""
        if isinstance(seed, (list, tuple, np.ndarray, torch.Tensor)):
            if len(seed) != self.num_envs:
                raise ValueError(f"got {len(seed)} seeds for {self.num_envs} environments")
            if not isinstance(seed, torch.Tensor):
                seed = torch.as_tensor(np.asarray(seed, dtype=np.int64))
            seeds = seed.to(self.device, torch.int64)
        else:
            start = secrets.randbits(62) if seed is None else int(seed)
            seeds = torch.arange(start, start + self.num_envs, dtype=torch.int64, device=self.device)
        self._keys = seed_keys(seeds)
        self._episodes = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._state = self._initial_states(self._keys, self._episodes)
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        return self._observe(self._state)

    def step(self, action: torch.Tensor) -> Step:
        action = torch.as_tensor(action, device=self.device).reshape(self.num_envs)
        next_state, reward, terminated = self._dynamics(self._state, action)
        elapsed = self._elapsed + 1
        truncated = elapsed >= self.max_episode_steps
        done = terminated | truncated
        final_obs = self._observe(next_state)
        self._episodes = self._episodes + done
        if self.dense_resets:
            fresh = self._initial_states(self._keys, self._episodes)
            next_state = torch.where(done, fresh, next_state)
            obs = torch.where(done.unsqueeze(1), self._observe(fresh), final_obs)
        else:
            ended = done.nonzero().squeeze(1)
            obs = final_obs.clone()
            if len(ended):
                fresh = self._initial_states(self._keys[ended], self._episodes[ended])
                next_state[:, ended] = fresh
                obs[ended] = self._observe(fresh)
        self._state = next_state
        self._elapsed = elapsed.masked_fill_(done, 0)
        return Step(obs=obs, reward=reward, terminated=terminated, truncated=truncated,
                    final_obs=final_obs)

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "state": self.get_state().cpu(),
            "elapsed_steps": self._elapsed.cpu(),
            "stream_keys": self._keys.cpu(),
            "episodes": self._episodes.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`; any device (physics may differ in the last bit)."""
        if state["env_id"] != self.env_id or state["num_envs"] != self.num_envs:
            raise ValueError(f"state of {state['num_envs']}x {state['env_id']} cannot load into "
                             f"{self.num_envs}x {self.env_id}")
        self.set_state(state["state"], state["elapsed_steps"])
        self._keys = state["stream_keys"].to(self.device, torch.int64).clone()
        self._episodes = state["episodes"].to(self.device, torch.int64).clone()

    # ---- direct access (tests, debugging) ---------------------------------------------------
    def get_state(self) -> torch.Tensor:
        """A copy of the float64 physics state, (num_envs, state_dim), columns `state_names`."""
        return self._state.T.clone(memory_format=torch.contiguous_format)

    @property
    def elapsed_steps(self) -> torch.Tensor:
        """Steps taken in each sub-env's current episode, (num_envs,) int64."""
        return self._elapsed.clone()

    @property
    def episodes(self) -> torch.Tensor:
        """Episodes each sub-env has started since `reset`, minus one: (num_envs,) int64."""
        return self._episodes.clone()

    def set_state(self, state: torch.Tensor | np.ndarray,
                  elapsed_steps: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Overwrite the (num_envs, state_dim) physics state, and the step counters if given;
        returns the observation of the new state."""
        state = torch.as_tensor(state, dtype=F64).to(self.device)
        state = state.reshape(self.num_envs, len(self.state_names)).T
        self._state = state.clone(memory_format=torch.contiguous_format)
        if elapsed_steps is not None:
            self._elapsed = (torch.as_tensor(elapsed_steps, dtype=torch.int64).to(self.device)
                             .reshape(self.num_envs).clone())
        return self._observe(self._state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, device={self.device})"


def _rows_to_obs(state: torch.Tensor) -> torch.Tensor:
    """(state_dim, n) float64 -> contiguous (n, state_dim) float32."""
    return state.T.to(torch.float32, memory_format=torch.contiguous_format)


class TorchCartPole(TorchClassicEnv):
    """gymnasium CartPoleEnv (euler integrator, reward 1 every step including the last)."""

    env_id = "CartPole-v1"
    max_episode_steps = 500
    state_names = ("x", "x_dot", "theta", "theta_dot")
    discrete = True

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5                         # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    reset_low, reset_high = (-0.05,) * 4, (0.05,) * 4
    physics = ("gravity", "masscart", "masspole", "length", "force_mag")

    def _derive(self):
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

    def _spaces(self):
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf],
                        dtype=np.float32)
        return gym.spaces.Box(-high, high, dtype=np.float32), gym.spaces.Discrete(2)


    def _observe(self, state):
        return _rows_to_obs(state)

    def _constants(self):
        scalar = lambda value: torch.tensor(value, dtype=F64, device=self.device)
        self._force_right, self._force_left = scalar(self.force_mag), scalar(-self.force_mag)
        self._thresholds = scalar([[self.x_threshold], [self.theta_threshold_radians]])

    def _dynamics(self, state, action):
        # gymnasium's expressions, in gymnasium's order of operations (bit-identical results
        # wherever torch's sin/cos are); in-place ops only where they change no rounding.
        plm, mp, tm = self.polemass_length, self.masspole, self.total_mass
        x, x_dot, theta, theta_dot = state
        force = torch.where(action == 1, self._force_right, self._force_left)
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        temp = (theta_dot * theta_dot).mul_(plm).mul_(sintheta).add_(force).div_(tm)
        denominator = (costheta * costheta).mul_(mp).div_(tm).neg_().add_(4.0 / 3.0).mul_(self.length)
        thetaacc = (sintheta * self.gravity).sub_(costheta * temp).div_(denominator)
        xacc = torch.sub(temp, (thetaacc * plm).mul_(costheta).div_(tm))
        next_state = torch.stack((x_dot, xacc, theta_dot, thetaacc)).mul_(self.tau).add_(state)
        terminated = (next_state[0::2].abs() > self._thresholds).any(0)    # |x|, |theta|
        reward = torch.ones(self.num_envs, dtype=torch.float32, device=self.device)
        return next_state, reward, terminated


class TorchPendulum(TorchClassicEnv):
    """gymnasium PendulumEnv (g = 10); never terminates, truncated after 200 steps."""

    env_id = "Pendulum-v1"
    max_episode_steps = 200
    state_names = ("theta", "theta_dot")
    discrete = False

    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05
    g = 10.0
    m = 1.0
    l = 1.0  # noqa: E741 (gymnasium's name)
    reset_low, reset_high = (-math.pi, -1.0), (math.pi, 1.0)
    physics = ("g", "m", "l")

    def _spaces(self):
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        return (gym.spaces.Box(low=-high, high=high, dtype=np.float32),
                gym.spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,),
                               dtype=np.float32))


    def _observe(self, state):
        theta, theta_dot = state
        return _rows_to_obs(torch.stack((torch.cos(theta), torch.sin(theta), theta_dot)))

    def _dynamics(self, state, action):
        th, thdot = state
        # The torque stays float32 in gymnasium: numpy 2 computes `3.0 * u` and `0.001 * u**2`
        # in float32 (python scalars are weak), then adds them to float64 terms.
        u = action.to(torch.float32).clamp(-self.max_torque, self.max_torque)
        normalized = torch.remainder(th + math.pi, 2 * math.pi).sub_(math.pi)
        costs = (normalized.mul_(normalized).add_((thdot * thdot).mul_(0.1))
                 .add_((u * u).mul_(0.001).to(F64)))
        newthdot = ((torch.sin(th) * (3 * self.g / (2 * self.l)))
                    .add_((u * (3.0 / (self.m * self.l**2))).to(F64)).mul_(self.dt).add_(thdot)
                    .clamp_(-self.max_speed, self.max_speed))
        newth = th + newthdot * self.dt
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return torch.stack((newth, newthdot)), costs.neg_().to(torch.float32), terminated


class TorchMountainCar(TorchClassicEnv):
    """gymnasium MountainCarEnv (discrete: push left, none, right); reward -1 every step."""

    env_id = "MountainCar-v0"
    max_episode_steps = 200
    state_names = ("position", "velocity")
    discrete = True

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0.0
    force = 0.001
    gravity = 0.0025
    reset_low, reset_high = (-0.6, 0.0), (-0.4, 0.0)
    physics = ("force", "gravity")

    def _spaces(self):
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        return gym.spaces.Box(low, high, dtype=np.float32), gym.spaces.Discrete(3)


    def _observe(self, state):
        return _rows_to_obs(state)

    def _push(self, action):
        return (action - 1).to(F64).mul_(self.force)

    def _dynamics(self, state, action):
        position, velocity = state
        velocity = velocity + (torch.cos(3 * position).mul_(-self.gravity).add_(self._push(action)))
        velocity = velocity.clamp_(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp_(self.min_position, self.max_position)
        velocity = velocity.masked_fill_((position == self.min_position) & (velocity < 0), 0.0)
        return self._finish(torch.stack((position, velocity)), action)

    def _finish(self, next_state, action):
        position, velocity = next_state
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        reward = torch.full((self.num_envs,), -1.0, dtype=torch.float32, device=self.device)
        return next_state, reward, terminated


class TorchMountainCarContinuous(TorchMountainCar):
    """gymnasium Continuous_MountainCarEnv: force in [-1, 1], reward 100 at the goal minus
    0.1 * action^2 (of the unclipped action, as gymnasium computes it)."""

    env_id = "MountainCarContinuous-v0"
    max_episode_steps = 999
    discrete = False

    min_action = -1.0
    max_action = 1.0
    goal_position = 0.45
    power = 0.0015
    physics = ("power", "gravity")

    def _spaces(self):
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        return (gym.spaces.Box(low=low, high=high, dtype=np.float32),
                gym.spaces.Box(low=self.min_action, high=self.max_action, shape=(1,),
                               dtype=np.float32))

    def _push(self, action):
        return action.to(torch.float32).clamp(self.min_action, self.max_action).to(F64).mul_(self.power)

    def _finish(self, next_state, action):
        # gymnasium keeps the state as float32 between steps, and numpy 2 compares a float32
        # with a python float in float32: so does torch, with the float32 tensor here.
        state32 = next_state.to(torch.float32)
        position, velocity = state32
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        a = action.to(torch.float32).to(F64)
        reward = terminated.to(F64).mul_(100.0).sub_((a * a).mul_(0.1))
        return state32.to(F64), reward.to(torch.float32), terminated


class TorchAcrobot(TorchClassicEnv):
    """gymnasium AcrobotEnv, `book_or_nips="book"` dynamics, RK4 over one dt = 0.2 s,
    no torque noise; reward -1 per step and 0 on the terminal step."""

    env_id = "Acrobot-v1"
    max_episode_steps = 500
    state_names = ("theta1", "theta2", "dtheta1", "dtheta2")
    discrete = True

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi
    g = 9.8
    reset_low, reset_high = (-0.1,) * 4, (0.1,) * 4
    reset_float32 = True
    physics = ("g", "link_length_1", "link_mass_1", "link_mass_2", "link_com_pos_1", "link_com_pos_2", "link_moi")

    def _spaces(self):
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        return gym.spaces.Box(low=-high, high=high, dtype=np.float32), gym.spaces.Discrete(3)


    def _observe(self, state):
        theta1, theta2, dtheta1, dtheta2 = state
        return _rows_to_obs(torch.stack((torch.cos(theta1), torch.sin(theta1), torch.cos(theta2),
                                         torch.sin(theta2), dtheta1, dtheta2)))

    def _dsdt(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        m1, m2, l1 = self.LINK_MASS_1, self.LINK_MASS_2, self.LINK_LENGTH_1
        lc1, lc2, I1, I2, g = self.LINK_COM_POS_1, self.LINK_COM_POS_2, self.LINK_MOI, self.LINK_MOI, self.g
        theta1, theta2, dtheta1, dtheta2 = s
        cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + I2
        phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (-m2 * l1 * lc2 * (dtheta2 * dtheta2) * sin2
                - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
                + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
                + phi2)
        ddtheta2 = ((a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * sin2 - phi2)
                    / (m2 * lc2**2 + I2 - d2 * d2 / d1))
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))

    def _dynamics(self, state, action):
        torque = (action - 1).to(F64)                   # AVAIL_TORQUE = [-1, 0, +1]
        dt, dt2 = self.dt, self.dt / 2.0
        k1 = self._dsdt(state, torque)
        k2 = self._dsdt(state + dt2 * k1, torque)
        k3 = self._dsdt(state + dt2 * k2, torque)
        k4 = self._dsdt(state + dt * k3, torque)
        ns = state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        theta1, theta2, dtheta1, dtheta2 = ns
        next_state = torch.stack((_wrap(theta1), _wrap(theta2),
                                  dtheta1.clamp(-self.MAX_VEL_1, self.MAX_VEL_1),
                                  dtheta2.clamp(-self.MAX_VEL_2, self.MAX_VEL_2)))
        theta1, theta2 = next_state[0], next_state[1]
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        reward = terminated.to(torch.float32) - 1.0
        return next_state, reward, terminated


def _wrap(x: torch.Tensor, low: float = -math.pi, high: float = math.pi) -> torch.Tensor:
    """gymnasium's acrobot `wrap`: shift by whole periods until low <= x <= high."""
    period = high - low
    x = x - period * torch.ceil((x - high) / period).clamp_min(0)
    return x + period * torch.ceil((low - x) / period).clamp_min(0)


TORCH_ENVS: dict[str, type[TorchClassicEnv]] = {
    cls.env_id: cls
    for cls in (TorchCartPole, TorchPendulum, TorchMountainCar, TorchMountainCarContinuous,
                TorchAcrobot)
}


def make_torch_classic(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu",
                       seed: int | list[int] | None = 0, **kwargs: Any) -> TorchClassicEnv:
    """The torch-native batched `env_id` (a key of `TORCH_ENVS`), reset with `seed`."""
    try:
        cls = TORCH_ENVS[env_id]
    except KeyError:
        raise KeyError(f"no torch-native {env_id!r}; have {sorted(TORCH_ENVS)}") from None
    return cls(num_envs, device=device, seed=seed, **kwargs)


ENV_IDS = tuple(TORCH_ENVS)
EXTRA = None

def physics_parameters(env_id: str) -> dict:
    """Physics parameter name -> its domain (every constant must stay positive)."""
    from drlbench.domains import Domain

    return {key: Domain.parse("(0, inf)") for key in TORCH_ENVS[env_id].physics}


def make(env_id: str, num_envs: int, device: str | torch.device, **options: Any) -> TorchClassicEnv:
    """Backend entry point for `drlbench.envs.make`."""
    return make_torch_classic(env_id, num_envs, device, **options)


__all__ = ["ENV_IDS", "TORCH_ENVS", "physics_parameters", "TorchAcrobot", "TorchCartPole", "TorchClassicEnv", "TorchMountainCar",
           "TorchMountainCarContinuous", "TorchPendulum", "make_torch_classic"]
