"""Gymnasium backend: time limits, final observations, and exact snapshots for --resume."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench import envs


def test_truncation_returns_the_true_final_observation():
    env = envs.make("gym:Pendulum", num_envs=2)
    obs = env.reset([3, 4])
    reference = gym.make("Pendulum-v1")
    ref_obs, _ = reference.reset(seed=3)
    assert np.allclose(obs[0].numpy(), ref_obs)
    action = torch.full((2, 1), 0.5)
    for t in range(200):
        step = env.step(action)
        ref_obs, ref_reward, ref_term, ref_trunc, _ = reference.step(np.array([0.5], np.float32))
        assert step.reward[0].item() == pytest.approx(ref_reward, rel=1e-6)
    assert step.truncated.all() and not step.terminated.any()      # time limit: truncated, not terminal
    assert np.allclose(step.final_obs[0].numpy(), ref_obs)          # s' of the last transition
    assert not torch.allclose(step.obs[0], step.final_obs[0])       # obs is already the next episode's
    assert step.obs.dtype == torch.float32 and step.terminated.dtype == torch.bool


def test_termination_is_reported_as_terminated():
    env = envs.make("gym:CartPole", num_envs=1)
    env.reset(0)
    for _ in range(500):
        step = env.step(torch.ones(1, dtype=torch.int64))          # always push right: falls quickly
        if step.terminated.any():
            break
    assert step.terminated.all() and not step.truncated.any()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v5", "Hopper-v5"])
def test_snapshot_restores_trajectories_exactly(env_id):
    env = envs.make(env_id, num_envs=2)
    env.reset(7)
    generator = torch.Generator().manual_seed(0)
    shape = (2, *env.action_space.shape)
    for _ in range(30):
        env.step(torch.rand(shape, generator=generator) * 2 - 1)
    state = env.state_dict()
    actions = [torch.rand(shape, generator=generator) * 2 - 1 for _ in range(300)]
    first = [env.step(a) for a in actions]
    fresh = envs.make(env_id, num_envs=2)
    fresh.reset(123)                                               # a different state, then restored
    fresh.load_state_dict(state)
    second = [fresh.step(a) for a in actions]
    for a, b in zip(first, second):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)
        assert torch.equal(a.terminated, b.terminated) and torch.equal(a.truncated, b.truncated)
