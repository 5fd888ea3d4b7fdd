"""GPU MuJoCo: gymnasium's HalfCheetah/Hopper/Walker2d/Ant-v5 simulated by MuJoCo Warp.

`warp:HalfCheetah-v5` and its siblings run N copies ("worlds") of the model in one MuJoCo Warp
(`mujoco_warp`, NVIDIA Warp kernels) `Data`, on a CUDA device or, slowly, on Warp's CPU device.
They load gymnasium's own MJCF files (from the installed gymnasium package) with gymnasium's
frame_skip, and compute gymnasium v5's observations, rewards, terminations, the 1000-step time
limit and reset-noise distributions as torch ops on the device: qpos, qvel, xpos and cfrc_ext are
read through zero-copy torch views of the Warp arrays (`wp.to_torch`), and autoreset writes the
fresh states of the finished worlds back through the same views with `torch.where`, so a step
has no host loop over worlds and no host synchronisation. The `frame_skip` physics steps (plus
`rne_postconstraint` for Ant's contact forces, as gymnasium calls `mj_rnePostConstraint`) are
one captured Warp graph (CUDA graph on GPU, launched on torch's current stream; Warp's CPU graph
on CPU, bit-identical to eager launches and ~50x faster there).

Keyword options are gymnasium's constructor arguments that change the task (same names, same
defaults, e.g. `ctrl_cost_weight`, `reset_noise_scale`, `exclude_current_positions_from_
observation`, `healthy_z_range`), plus `max_episode_steps` (1000), `nconmax` / `njmax` (MuJoCo
Warp's per-world contact and constraint capacities; raise them if MuJoCo Warp reports an
overflow) and `graph` (True; False launches kernels one by one).

Randomness. Sub-env i draws its reset noise from a counter-based hash of (its seed, its episode
number, the noise component): `reset(seed)` gives sub-env i the seed `seed + i` (or `seed[i]`),
so its episodes depend on its own seed only, not on N or on the other worlds (bit-for-bit on one
device; across devices up to the last bit of float64 log/cos). The uniforms are 32-bit hash
words (Wellons' lowbias32, computed exactly in int64 torch ops); normals use Box-Muller. The
distributions are gymnasium's (qpos0 + U(-s, s); qvel U(-s, s) for Hopper/Walker2d, s * N(0, 1)
for HalfCheetah/Ant); the numbers are not gymnasium's numpy draws.

Deviations from gymnasium v5 (tests/test_warp.py measures them):
- MuJoCo Warp computes in float32 (MuJoCo in float64, solver tolerance 1e-8). One step from the
  same state agrees to ~1e-6 without contacts; through contacts the float32 constraint solve
  gives |error| / (1 + |value|) of ~4e-5 at the 99th percentile and up to ~1e-3 at impacts.
  Open-loop trajectories diverge after ~10-50 steps, as gymnasium's own do under a 1e-7
  perturbation (random-action HalfCheetah and Ant are chaotic). Observations are float32 (the
  `VecEnv` contract) where gymnasium returns float64.
- MuJoCo Warp 3.17 orients plane-capsule contact frames differently from MuJoCo, which takes
  the capsule axis as first tangent; with pyramidal friction cones that rotates the friction
  pyramid, and Ant's legs then got O(1) different contact forces. A `contactfilter` callback
  (`_align_capsule_frames`) rewrites those frames MuJoCo's way after each collision pass.
- The x positions behind the forward reward are float32, so far from the origin (|x| ~ 100 m)
  the reward carries a rounding of ~1e-4.
- `info` dicts are not produced; actions are not validated.
"""
from __future__ import annotations

import math
import os
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

import drlbench.envs.gymnasium_backend  # noqa: F401  (routes MuJoCo's XML warnings to `warnings`)
from drlbench.envs.base import Step, VecEnv
from drlbench.errors import UsageError, unknown

if wp.config.log_level == wp.LOG_INFO:         # not one line per compiled kernel module
    wp.config.log_level = wp.LOG_WARNING

ASSETS = os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets")
F32, F64, I64 = torch.float32, torch.float64, torch.int64
_M32 = 0xFFFFFFFF


# ---- counter-based random numbers ------------------------------------------------------------
def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for 0 <= x < 2**32, exactly, with no int64 overflow."""
    return ((x & 0xFFFF) * c + ((((x >> 16) * c) & 0xFFFF) << 16)) & _M32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32: a bijective 32-bit integer hash (entries in [0, 2**32))."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def counter_uniforms(seeds: torch.Tensor, episodes: torch.Tensor, components: int) -> torch.Tensor:
    """(n, components) float64 uniforms in (0, 1): entry (i, j) is a hash of (seeds[i],
    episodes[i], j) alone."""
    key = _hash32(_hash32((seeds >> 32) & _M32) ^ (seeds & _M32))
    key = _hash32(key ^ (episodes & _M32))
    j = torch.arange(components, dtype=I64, device=seeds.device)
    bits = _hash32(key.unsqueeze(1) ^ _hash32(j).unsqueeze(0))
    return (bits.to(F64) + 0.5) * 2.0**-32


def _as_seed_tensor(seed: int | list[int] | None, n: int, device: torch.device) -> torch.Tensor:
    if seed is None:
        seed = int(np.random.SeedSequence().entropy) % 2**63
    if isinstance(seed, (list, tuple, np.ndarray, torch.Tensor)):
        seeds = [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} environments")
    else:
        seeds = [int(seed) + i for i in range(n)]
    # Any python int: keep its low 64 bits, as a signed int64.
    seeds = [(s % 2**64) - 2**64 if s % 2**64 >= 2**63 else s % 2**64 for s in seeds]
    return torch.tensor(seeds, dtype=I64, device=device)


# ---- MuJoCo's friction-pyramid orientation for plane-capsule contacts -------------------------
@wp.kernel
def _align_capsule_frames(capsule_on_plane: wp.array2d[wp.int32], geom_xmat: wp.array2d[wp.mat33],
                          nacon: wp.array[int], contact_geom: wp.array[wp.vec2i],
                          contact_worldid: wp.array[int], contact_frame: wp.array[wp.mat33]):
    """MuJoCo's plane-capsule collision gives its contact frame the capsule's axis as first
    tangent (made orthogonal to the normal); MuJoCo Warp's uses a fixed tangent. With pyramidal
    friction cones the tangents orient the pyramid, so a 3D model (Ant's legs) gets different
    friction forces unless the frames agree: rewrite them the way MuJoCo makes them."""
    i = wp.tid()
    if i >= nacon[0]:
        return
    pair = contact_geom[i]
    if pair[0] < 0 or pair[1] < 0 or capsule_on_plane[pair[0], pair[1]] == 0:
        return
    mat = geom_xmat[contact_worldid[i], pair[1]]
    axis = wp.vec3(mat[0, 2], mat[1, 2], mat[2, 2])
    frame = contact_frame[i]
    normal = wp.vec3(frame[0, 0], frame[0, 1], frame[0, 2])
    tangent = axis - wp.dot(normal, axis) * normal
    length = wp.length(tangent)
    if length < 1.0e-6:                         # capsule along the normal: any tangent will do
        return
    tangent = tangent / length
    binormal = wp.cross(normal, tangent)
    contact_frame[i] = wp.mat33(normal[0], normal[1], normal[2], tangent[0], tangent[1], tangent[2],
                                binormal[0], binormal[1], binormal[2])


def _capsule_frame_filter(mj_model: mujoco.MjModel, device):
    """A MuJoCo Warp `contactfilter` callback running `_align_capsule_frames`, or None when the
    model has no plane-capsule pair."""
    geom_type = mj_model.geom_type
    pairs = np.outer(geom_type == mujoco.mjtGeom.mjGEOM_PLANE, geom_type == mujoco.mjtGeom.mjGEOM_CAPSULE)
    if not pairs.any():
        return None
    capsule_on_plane = wp.array(pairs.astype(np.int32), dtype=wp.int32, device=device)

    def contactfilter(m, d):
        wp.launch(_align_capsule_frames, dim=d.naconmax,
                  inputs=[capsule_on_plane, d.geom_xmat, d.nacon, d.contact.geom, d.contact.worldid,
                          d.contact.frame])

    return contactfilter


# ---- the environments ------------------------------------------------------------------------
class WarpLocomotionEnv(VecEnv):
    """Shared machinery; a subclass names the model and sets gymnasium's defaults.

    Subclass attributes: `env_id`, `xml_file`, `frame_skip`, `defaults` (gymnasium's task
    arguments and their defaults), `skipped_qpos` (how many leading qpos entries
    `exclude_current_positions_from_observation` drops), `qvel_obs_clip`, `qvel_noise`
    ("uniform" or "normal"), `forward_body` (None: x is qpos[0]; else the body whose xpos
    gymnasium differentiates, which must be the free-joint root); `_healthy(qpos, qvel)`.
    """

    env_id: ClassVar[str]
    xml_file: ClassVar[str]
    frame_skip: ClassVar[int]
    defaults: ClassVar[dict[str, Any]]
    skipped_qpos: ClassVar[int] = 1
    qvel_obs_clip: ClassVar[float | None] = None
    qvel_noise: ClassVar[str] = "uniform"
    forward_body: ClassVar[int | None] = None
    uses_contact_forces: ClassVar[bool] = False

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu",
                 seed: int | list[int] | None = None, max_episode_steps: int = 1000,
                 nconmax: int | None = None, njmax: int | None = None, graph: bool = True, **task):
        if num_envs < 1:
            raise UsageError(f"num_envs must be >= 1, got {num_envs}")
        for name in task:
            if name not in self.defaults:
                valid = list(self.defaults) + ["max_episode_steps", "nconmax", "njmax", "graph"]
                raise unknown(f"option of warp:{self.env_id}", name, valid)
        self.task = {**self.defaults, **task}
        self.num_envs = num_envs
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if self.device.type not in ("cpu", "cuda"):
            raise UsageError(f"MuJoCo Warp runs on cpu or cuda devices, not {self.device}")
        self.max_episode_steps = max_episode_steps
        self._wp_device = wp.get_device(str(self.device))

        self.mj_model = mujoco.MjModel.from_xml_path(os.path.join(ASSETS, self.xml_file))
        self.dt = self.mj_model.opt.timestep * self.frame_skip
        mj_data = mujoco.MjData(self.mj_model)
        self._init_qpos = torch.as_tensor(mj_data.qpos.copy(), dtype=F64, device=self.device)
        with wp.ScopedDevice(self._wp_device):
            self.model = mjw.put_model(self.mj_model)
            self.model.callback.contactfilter = _capsule_frame_filter(self.mj_model, self._wp_device)
            self.data = mjw.put_data(self.mj_model, mj_data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        # Zero-copy torch views of the Warp arrays (the arrays live as long as `self.data`).
        d = self.data
        self._qpos, self._qvel, self._ctrl = wp.to_torch(d.qpos), wp.to_torch(d.qvel), wp.to_torch(d.ctrl)
        self._warmstart, self._time = wp.to_torch(d.qacc_warmstart), wp.to_torch(d.time)
        self._act = wp.to_torch(d.act) if self.mj_model.na else None
        self._xpos, self._cfrc_ext = wp.to_torch(d.xpos), wp.to_torch(d.cfrc_ext)

        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self._observe().shape[1],), np.float32)
        low, high = self.mj_model.actuator_ctrlrange.T.astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)

        self._graph = self._capture() if graph else None
        self.reset(seed)

    # ---- physics ---------------------------------------------------------------------------
    def _simulate_eager(self) -> None:
        for _ in range(self.frame_skip):
            mjw.step(self.model, self.data)
        if self.uses_contact_forces:           # gymnasium calls mj_rnePostConstraint after mj_step
            mjw.rne_postconstraint(self.model, self.data)

    def _stream(self):
        """torch's current CUDA stream as a Warp stream, so torch and Warp work stay ordered."""
        return wp.stream_from_torch(self.device) if self.device.type == "cuda" else None

    def _capture(self):
        """The `frame_skip` steps recorded as one Warp graph (a CUDA graph, or Warp's CPU graph:
        ~50x fewer Python kernel launches, bit-identical results). A warm-up step loads the
        kernels first; `reset` then overwrites the state it touched."""
        with wp.ScopedDevice(self._wp_device):
            self._simulate_eager()
            wp.synchronize_device(self._wp_device)
            with wp.ScopedCapture() as capture:
                self._simulate_eager()
        return capture.graph

    def _simulate(self) -> None:
        if self._graph is not None:
            wp.capture_launch(self._graph, stream=self._stream())
            return
        with wp.ScopedDevice(self._wp_device):
            if self.device.type == "cuda":
                with wp.ScopedStream(self._stream()):
                    self._simulate_eager()
            else:
                self._simulate_eager()

    # ---- gymnasium's task ------------------------------------------------------------------
    def _forward_position(self) -> torch.Tensor:
        """The x that gymnasium differentiates for the forward reward, now."""
        if self.forward_body is None:
            return self._qpos[:, 0].clone()
        return self._xpos[:, self.forward_body, 0].clone()

    def _observe(self) -> torch.Tensor:
        skip = self.skipped_qpos if self.task["exclude_current_positions_from_observation"] else 0
        clip = self.qvel_obs_clip
        qvel = self._qvel if clip is None else self._qvel.clamp(-clip, clip)
        parts = [self._qpos[:, skip:], qvel]
        if self.uses_contact_forces and self.task["include_cfrc_ext_in_observation"]:
            parts.append(self._contact_forces()[:, 1:].flatten(1))
        return torch.cat(parts, dim=1)

    def _contact_forces(self) -> torch.Tensor:
        low, high = self.task["contact_force_range"]
        return self._cfrc_ext.clamp(low, high)

    def _healthy(self) -> torch.Tensor:
        return torch.ones(self.num_envs, dtype=torch.bool, device=self.device)

    def _reward_and_termination(self, x_velocity: torch.Tensor, action: torch.Tensor):
        task = self.task
        ctrl_cost = (action * action).sum(1) * task["ctrl_cost_weight"]
        reward = x_velocity * task["forward_reward_weight"] - ctrl_cost
        if "healthy_reward" not in task:
            return reward, torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        healthy = self._healthy()
        reward = reward + healthy.to(F32) * task["healthy_reward"]
        if self.uses_contact_forces:
            forces = self._contact_forces()
            reward = reward - (forces * forces).sum((1, 2)) * task["contact_cost_weight"]
        return reward, ~healthy & task["terminate_when_unhealthy"]

    def reset_states(self, seeds: torch.Tensor, episodes: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial (qpos, qvel), float32, of episode `episodes[i]` of a sub-env seeded
        `seeds[i]` (int64 tensors of any length): gymnasium's `reset_model` noise, i.e. qpos0 +
        U(-s, s) and U(-s, s) or s * N(0, 1) velocities, s = `reset_noise_scale`."""
        nq, nv, scale = self.mj_model.nq, self.mj_model.nv, self.task["reset_noise_scale"]
        u = counter_uniforms(seeds, episodes, nq + 2 * nv)
        qpos = self._init_qpos + (2 * u[:, :nq] - 1) * scale
        if self.qvel_noise == "uniform":
            qvel = (2 * u[:, nq:nq + nv] - 1) * scale
        else:                                   # Box-Muller
            radius = torch.sqrt(-2.0 * torch.log(u[:, nq:nq + nv]))
            qvel = radius * torch.cos(2 * math.pi * u[:, nq + nv:]) * scale
        return qpos.to(F32), qvel.to(F32)

    def _restart(self, done: torch.Tensor) -> None:
        """Put the worlds where `done` at the start of a fresh episode (mj_resetData + set_state):
        noise state, zero warm start, time and controls, no contact forces yet."""
        qpos, qvel = self.reset_states(self._seeds, self._episodes)
        mask = done.unsqueeze(1)
        self._qpos.copy_(torch.where(mask, qpos, self._qpos))
        self._qvel.copy_(torch.where(mask, qvel, self._qvel))
        self._warmstart.masked_fill_(mask, 0.0)
        self._ctrl.masked_fill_(mask, 0.0)
        self._time.masked_fill_(done, 0.0)
        if self._act is not None:
            self._act.masked_fill_(mask, 0.0)
        self._cfrc_ext.masked_fill_(mask.unsqueeze(2), 0.0)
        self._elapsed.masked_fill_(done, 0)
        if self.forward_body is not None:
            # After mj_forward, a free-joint root body's xpos is its qpos[0:3].
            root = self._xpos[:, self.forward_body]
            root.copy_(torch.where(mask, self._qpos[:, :3], root))

    # ---- the VecEnv contract -----------------------------------------------------------------
    def reset(self, seed: int | list[int] | None = None) -> torch.Tensor:
        """Seed sub-env i with `seed + i` (or `seed[i]`; None: fresh entropy) and start episode 0
        everywhere."""
        self._seeds = _as_seed_tensor(seed, self.num_envs, self.device)
        self._episodes = torch.zeros(self.num_envs, dtype=I64, device=self.device)
        self._elapsed = torch.zeros(self.num_envs, dtype=I64, device=self.device)
        self._restart(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._observe()

    def step(self, action: torch.Tensor) -> Step:
        action = torch.as_tensor(action, dtype=F32, device=self.device).reshape(self._ctrl.shape)
        x_before = self._forward_position()
        self._ctrl.copy_(action)
        self._simulate()
        x_velocity = (self._forward_position() - x_before) / self.dt
        final_obs = self._observe()
        reward, terminated = self._reward_and_termination(x_velocity, action)
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps
        done = terminated | truncated
        self._episodes += done
        self._restart(done)
        obs = torch.where(done.unsqueeze(1), self._observe(), final_obs)
        return Step(obs=obs, reward=reward, terminated=terminated, truncated=truncated, final_obs=final_obs)

    def state_dict(self) -> dict[str, Any]:
        """The integration state of every world (qpos, qvel, warm start, time, act), the
        forward-reward reference position, step and episode counters and seeds."""
        state = {"env_id": self.env_id, "num_envs": self.num_envs, "task": dict(self.task),
                 "qpos": self._qpos, "qvel": self._qvel, "qacc_warmstart": self._warmstart,
                 "time": self._time, "xpos": self._xpos, "elapsed_steps": self._elapsed,
                 "episodes": self._episodes, "seeds": self._seeds}
        if self._act is not None:
            state["act"] = self._act
        return {k: v.clone().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["env_id"], state["num_envs"], state["task"]) != (self.env_id, self.num_envs, self.task):
            raise ValueError(f"state of {state['num_envs']}x {state['env_id']} {state['task']} cannot "
                             f"load into {self.num_envs}x {self.env_id} {self.task}")
        views = {"qpos": self._qpos, "qvel": self._qvel, "qacc_warmstart": self._warmstart,
                 "time": self._time, "xpos": self._xpos, "act": self._act}
        for key, view in views.items():
            if view is not None:
                view.copy_(state[key])
        self._elapsed = state["elapsed_steps"].to(self.device).clone()
        self._episodes = state["episodes"].to(self.device).clone()
        self._seeds = state["seeds"].to(self.device).clone()

    # ---- direct access (tests, debugging) ---------------------------------------------------
    def get_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of (qpos, qvel), float32 (num_envs, nq) and (num_envs, nv)."""
        return self._qpos.clone(), self._qvel.clone()

    @property
    def elapsed_steps(self) -> torch.Tensor:
        return self._elapsed.clone()

    def set_state(self, qpos, qvel, elapsed_steps=None) -> torch.Tensor:
        """gymnasium's `set_state` for every world (warm start and contact forces cleared, as
        after a reset); the step counters too if given. Returns the observation."""
        everything = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._restart(everything)
        if elapsed_steps is not None:
            elapsed = torch.as_tensor(elapsed_steps, dtype=I64).to(self.device)
            self._elapsed = elapsed.reshape(self.num_envs).clone()
        self._qpos.copy_(torch.as_tensor(qpos, dtype=F32).reshape(self._qpos.shape))
        self._qvel.copy_(torch.as_tensor(qvel, dtype=F32).reshape(self._qvel.shape))
        if self.forward_body is not None:
            self._xpos[:, self.forward_body].copy_(self._qpos[:, :3])
        return self._observe()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, device={self.device})"


class WarpHalfCheetah(WarpLocomotionEnv):
    env_id = "HalfCheetah-v5"
    xml_file = "half_cheetah.xml"
    frame_skip = 5
    qvel_noise = "normal"
    defaults = {"forward_reward_weight": 1.0, "ctrl_cost_weight": 0.1, "reset_noise_scale": 0.1,
                "exclude_current_positions_from_observation": True}


class WarpHopper(WarpLocomotionEnv):
    env_id = "Hopper-v5"
    xml_file = "hopper.xml"
    frame_skip = 4
    qvel_obs_clip = 10.0
    defaults = {"forward_reward_weight": 1.0, "ctrl_cost_weight": 1e-3, "healthy_reward": 1.0,
                "terminate_when_unhealthy": True, "healthy_state_range": (-100.0, 100.0),
                "healthy_z_range": (0.7, float("inf")), "healthy_angle_range": (-0.2, 0.2),
                "reset_noise_scale": 5e-3, "exclude_current_positions_from_observation": True}

    def _healthy(self):
        low, high = self.task["healthy_state_range"]
        state = torch.cat((self._qpos[:, 2:], self._qvel), dim=1)
        z, angle = self._qpos[:, 1], self._qpos[:, 2]
        (z_low, z_high), (a_low, a_high) = self.task["healthy_z_range"], self.task["healthy_angle_range"]
        return (((low < state) & (state < high)).all(1) & (z_low < z) & (z < z_high)
                & (a_low < angle) & (angle < a_high))


class WarpWalker2d(WarpLocomotionEnv):
    env_id = "Walker2d-v5"
    xml_file = "walker2d_v5.xml"
    frame_skip = 4
    qvel_obs_clip = 10.0
    defaults = {"forward_reward_weight": 1.0, "ctrl_cost_weight": 1e-3, "healthy_reward": 1.0,
                "terminate_when_unhealthy": True, "healthy_z_range": (0.8, 2.0),
                "healthy_angle_range": (-1.0, 1.0), "reset_noise_scale": 5e-3,
                "exclude_current_positions_from_observation": True}

    def _healthy(self):
        z, angle = self._qpos[:, 1], self._qpos[:, 2]
        (z_low, z_high), (a_low, a_high) = self.task["healthy_z_range"], self.task["healthy_angle_range"]
        return (z_low < z) & (z < z_high) & (a_low < angle) & (angle < a_high)


class WarpAnt(WarpLocomotionEnv):
    env_id = "Ant-v5"
    xml_file = "ant.xml"
    frame_skip = 5
    skipped_qpos = 2
    qvel_noise = "normal"
    forward_body = 1                            # gymnasium's main_body: the torso
    uses_contact_forces = True
    defaults = {"forward_reward_weight": 1.0, "ctrl_cost_weight": 0.5, "contact_cost_weight": 5e-4,
                "healthy_reward": 1.0, "terminate_when_unhealthy": True, "healthy_z_range": (0.2, 1.0),
                "contact_force_range": (-1.0, 1.0), "reset_noise_scale": 0.1,
                "exclude_current_positions_from_observation": True, "include_cfrc_ext_in_observation": True}

    def _healthy(self):
        z_low, z_high = self.task["healthy_z_range"]
        finite = torch.isfinite(self._qpos).all(1) & torch.isfinite(self._qvel).all(1)
        z = self._qpos[:, 2]
        return finite & (z_low <= z) & (z <= z_high)


WARP_ENVS = {cls.env_id: cls for cls in (WarpHalfCheetah, WarpHopper, WarpWalker2d, WarpAnt)}
ENV_IDS = tuple(WARP_ENVS)
EXTRA = "warp"


def make(env_id: str, num_envs: int, device: str | torch.device, **options) -> WarpLocomotionEnv:
    """Backend entry point for `drlbench.envs.make`."""
    if env_id not in WARP_ENVS:
        raise unknown("warp env", env_id, ENV_IDS)
    return WARP_ENVS[env_id](num_envs, device, **options)
