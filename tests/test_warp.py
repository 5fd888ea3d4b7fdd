"""MuJoCo Warp locomotion envs (`warp:HalfCheetah-v5`, ...) against gymnasium's own v5 envs.

Equivalence is checked one step at a time from the same state: before every step each world's
gymnasium shadow is given the world's qpos, qvel and solver warm start (and, for Ant, the torso
position gymnasium's reward differentiates); both then take the same actions and must agree on
the observation, reward and termination, along several hundred steps of the warp trajectory,
autoresets included. Comparing whole open-loop trajectories instead is meaningless here:
random-action HalfCheetah and Ant are chaotic, and gymnasium run against itself with a 1e-7
perturbation of qpos already differs by O(1)-O(10) in the observation within 50 steps.

Tolerances, on |warp - gymnasium| / (1 + |gymnasium|) over the observation entries of a step:
max 3e-3 and 99th percentile over steps 3e-4; rewards within 1e-3. Measured over 8 worlds x 1000
steps per env: worst 6e-4 (HalfCheetah), 4e-4 (Hopper), 2e-4 (Walker2d), 7e-4 (Ant; 1e-3 in
another run); p99 ~4e-5 (~1e-6 for Hopper); rewards <= 2.5e-4. Without contacts a step agrees
to ~1e-6 (float32 rounding); steps through contacts amplify float32 differences in the
constraint solve (MuJoCo solves in float64 to tolerance 1e-8, MuJoCo Warp in float32), and the
worst steps are velocity or contact-force entries at impacts.
"""
from __future__ import annotations

import importlib.util
import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

from drlbench.errors import UsageError

requires_warp = pytest.mark.skipif(importlib.util.find_spec("mujoco_warp") is None,
                                   reason="mujoco_warp not installed: pip install 'drlbench[warp]'")

ENV_IDS = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"]
OBS_RTOL, OBS_RTOL_P99, REWARD_ATOL = 3e-3, 3e-4, 1e-3
NUM_ENVS, STEPS = 4, 300


def make_warp(env_id: str, num_envs: int = NUM_ENVS, seed=0, **options):
    from drlbench.envs.warp import make

    env = make(env_id, num_envs, "cpu", **options)
    env.reset(seed)
    return env


def sync_shadow(shadow: gym.Env, env, i: int, restarted: bool) -> np.ndarray:
    """Give gymnasium env `shadow` world i's state; returns gymnasium's observation of it."""
    inner = shadow.unwrapped
    qpos, qvel = env.get_state()
    if restarted:
        mujoco.mj_resetData(inner.model, inner.data)      # as gymnasium's reset does
    inner.set_state(qpos[i].double().numpy(), qvel[i].double().numpy())   # mj_forward inside
    inner.data.qacc_warmstart[:] = env.data.qacc_warmstart.numpy()[i]
    if env.forward_body is not None and not restarted:
        # gymnasium differentiates the torso xpos left by the previous mj_step (the last
        # integration stage's kinematics), not the one mj_forward computes from qpos.
        inner.data.xpos[env.forward_body] = env.data.xpos.numpy()[i, env.forward_body]
    return inner._get_obs()


@requires_warp
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_steps_match_gymnasium(env_id):
    env = make_warp(env_id)
    shadows = [gym.make(env_id) for _ in range(NUM_ENVS)]
    for shadow in shadows:
        shadow.reset(seed=0)
    rng = np.random.default_rng(1)
    restarted = np.ones(NUM_ENVS, bool)
    obs_errors, reward_error = [], 0.0
    terminations = contact_steps = 0
    for _ in range(STEPS):
        for i, shadow in enumerate(shadows):
            sync_shadow(shadow, env, i, restarted[i])
        # Beyond the action bounds: MuJoCo clamps the controls, the ctrl cost sees the raw action.
        action = rng.uniform(-1.3, 1.3, (NUM_ENVS, *env.action_space.shape)).astype(np.float32)
        step = env.step(torch.as_tensor(action))
        for i, shadow in enumerate(shadows):
            obs, reward, terminated, truncated, _ = shadow.step(action[i])
            contact_steps += shadow.unwrapped.data.ncon > 0
            error = np.abs(step.final_obs[i].numpy() - obs) / (1 + np.abs(obs))
            obs_errors.append(float(error.max()))
            reward_error = max(reward_error, abs(float(step.reward[i]) - reward))
            assert bool(step.terminated[i]) == terminated, (env_id, i, obs)
            if step.terminated[i] or step.truncated[i]:      # (truncation only if STEPS >= 1000)
                terminations += int(step.terminated[i])
                # The autoreset observation is gymnasium's observation of the fresh state.
                fresh = sync_shadow(shadow, env, i, True).astype(np.float32)
                np.testing.assert_array_equal(step.obs[i].numpy(), fresh)
            else:
                assert torch.equal(step.obs[i], step.final_obs[i])
        restarted = step.terminated.numpy()
    worst, p99 = max(obs_errors), float(np.quantile(obs_errors, 0.99))
    print(f"{env_id}: obs error / (1 + |obs|) max {worst:.1e} p99 {p99:.1e}, max reward error "
          f"{reward_error:.1e}, {terminations} terminations, {contact_steps} steps with contacts")
    assert worst <= OBS_RTOL and p99 <= OBS_RTOL_P99
    assert reward_error <= REWARD_ATOL
    assert contact_steps > NUM_ENVS * STEPS // 10          # the comparison went through contacts
    if env_id in ("Hopper-v5", "Walker2d-v5"):
        assert terminations > 0


UNHEALTHY = {"Hopper-v5": (2, 0.5), "Walker2d-v5": (1, 0.5), "Ant-v5": (2, 1.5)}   # qpos index, value


@requires_warp
@pytest.mark.parametrize("env_id", sorted(UNHEALTHY))
def test_unhealthy_states_terminate(env_id):
    env = make_warp(env_id, num_envs=2)
    qpos, qvel = env.get_state()
    index, value = UNHEALTHY[env_id]
    qpos[0, index] = value                      # world 0 unhealthy, world 1 left as reset
    env.set_state(qpos, qvel)
    action = torch.zeros(2, *env.action_space.shape)
    step = env.step(action)
    shadow = gym.make(env_id)
    shadow.reset(seed=0)
    shadow.unwrapped.set_state(qpos[0].double().numpy(), qvel[0].double().numpy())
    obs, reward, terminated, _, _ = shadow.step(action[0].numpy())
    assert terminated and step.terminated.tolist() == [True, False]
    assert not step.truncated.any()
    assert abs(float(step.reward[0]) - reward) < 1e-4     # no healthy reward on the terminal step
    np.testing.assert_allclose(step.final_obs[0].numpy(), obs, rtol=1e-4, atol=1e-4)
    assert not torch.equal(step.obs[0], step.final_obs[0])
    assert env.elapsed_steps.tolist() == [0, 1]


@requires_warp
def test_truncation_after_1000_steps():
    env = make_warp("HalfCheetah-v5", num_envs=2, seed=3)
    qpos, qvel = env.get_state()
    env.set_state(qpos, qvel, elapsed_steps=[998, 500])
    action = torch.zeros(2, 6)
    step = env.step(action)
    assert not step.truncated.any() and env.elapsed_steps.tolist() == [999, 501]
    step = env.step(action)
    assert step.truncated.tolist() == [True, False] and not step.terminated.any()
    assert env.elapsed_steps.tolist() == [0, 502]
    # world 0 restarted with episode 1 of its seed (3); its final obs is the old episode's.
    fresh_qpos, fresh_qvel = env.reset_states(torch.tensor([3]), torch.tensor([1]))
    assert torch.equal(step.obs[0], torch.cat((fresh_qpos[0, 1:], fresh_qvel[0])))
    assert not torch.equal(step.obs[0], step.final_obs[0])
    assert torch.equal(step.obs[1], step.final_obs[1])


@requires_warp
def test_each_world_depends_on_its_own_seed_only():
    wide = make_warp("Hopper-v5", num_envs=3, seed=10)
    alone = make_warp("Hopper-v5", num_envs=1, seed=[11])
    again = make_warp("Hopper-v5", num_envs=3, seed=[10, 11, 12])
    assert torch.equal(wide.reset(10), again.reset([10, 11, 12]))
    assert torch.equal(wide.reset(10)[1], alone.reset([11])[0])
    assert not torch.equal(wide.reset(10)[0], wide.reset(10)[1])
    assert not torch.equal(wide.reset(11), wide.reset(10))
    generator = torch.Generator().manual_seed(0)
    resets = 0
    for _ in range(60):                          # Hopper falls: autoresets draw episodes 1, 2, ...
        action = torch.rand(3, 3, generator=generator) * 2 - 1
        a, b = wide.step(action), alone.step(action[1:2])
        assert torch.equal(a.obs[1], b.obs[0]) and torch.equal(a.reward[1], b.reward[0])
        resets += int(b.terminated[0])
    assert resets > 0


@requires_warp
@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5"])
def test_reset_noise_has_gymnasium_distribution(env_id):
    from scipy import stats

    env = make_warp(env_id, num_envs=1)
    n = 1500
    qpos, qvel = env.reset_states(torch.arange(n), torch.zeros(n, dtype=torch.int64))
    shadow = gym.make(env_id)
    gym_qpos, gym_qvel = [], []
    for seed in range(n):
        shadow.reset(seed=seed)
        gym_qpos.append(shadow.unwrapped.data.qpos.copy())
        gym_qvel.append(shadow.unwrapped.data.qvel.copy())
    init = shadow.unwrapped.init_qpos
    ours = [(qpos.double().numpy() - init).ravel(), qvel.double().numpy().ravel()]
    theirs = [(np.array(gym_qpos) - init).ravel(), np.array(gym_qvel).ravel()]
    for x, y in zip(ours, theirs):
        assert stats.ks_2samp(x, y).pvalue > 1e-3
    scale = env.task["reset_noise_scale"]
    assert np.abs(ours[0]).max() <= scale * (1 + 1e-6)
    # a sub-env's next episode draws afresh
    later, _ = env.reset_states(torch.arange(n), torch.ones(n, dtype=torch.int64))
    assert not torch.equal(later, qpos)


@requires_warp
def test_state_dict_resumes_bit_for_bit():
    env = make_warp("Hopper-v5", num_envs=3, seed=4)
    generator = torch.Generator().manual_seed(0)
    actions = [torch.rand(3, 3, generator=generator) * 2 - 1 for _ in range(70)]
    for action in actions[:40]:
        env.step(action)
    state = env.state_dict()
    first = [env.step(action) for action in actions[40:]]
    resumed = make_warp("Hopper-v5", num_envs=3, seed=99)
    resumed.load_state_dict(state)
    second = [resumed.step(action) for action in actions[40:]]
    assert sum(int(s.terminated.sum()) for s in first) > 0
    for a, b in zip(first, second):
        for field in ("obs", "reward", "terminated", "truncated", "final_obs"):
            assert torch.equal(getattr(a, field), getattr(b, field))


@requires_warp
def test_dispatcher_options_and_errors():
    from drlbench.envs import make, resolve

    assert resolve("warp:hopper") == "warp:Hopper-v5"
    env = make("warp:Walker2d", num_envs=2, seed=0, healthy_z_range=(0.5, 2.5))
    assert env.task["healthy_z_range"] == (0.5, 2.5) and env.observation_space.shape == (17,)
    with pytest.raises(UsageError, match="healthy_z_range"):
        make("warp:Walker2d-v5", num_envs=1, healthy_z_rang=(0.5, 2.5))
    with pytest.raises(UsageError, match="Ant-v5"):
        make("warp:Antt-v5", num_envs=1)


def test_missing_mujoco_warp_names_the_extra(monkeypatch):
    from drlbench.envs import backend

    monkeypatch.setitem(sys.modules, "mujoco_warp", None)     # import fails: ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "drlbench.envs.warp", raising=False)
    with pytest.raises(UsageError, match=r"needs mujoco_warp: pip install 'drlbench\[warp\]'"):
        backend("warp")
