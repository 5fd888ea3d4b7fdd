"""`drlbench.envs.make` and the torch-native backend's seeding: per-sub-env random streams,
tensor types, backend prefixes, and one-line errors for unknown IDs."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy import stats

from drlbench import envs
from drlbench.envs.gymnasium_backend import GymnasiumVecEnv
from drlbench.envs.torch_classic import (TORCH_ENVS, TorchClassicEnv, lowbias32, make_torch_classic,
                                         seed_keys)
from drlbench.errors import UsageError

ENV_IDS = sorted(TORCH_ENVS)


def lowbias32_reference(x: int) -> int:
    """Wellons' lowbias32 in plain unsigned 32-bit arithmetic."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_the_32_bit_reference():
    rng = random.Random(0)
    values = [0, 1, 2**31 - 1, 2**31, 2**32 - 1] + [rng.getrandbits(32) for _ in range(5000)]
    assert lowbias32(torch.tensor(values)).tolist() == [lowbias32_reference(v) for v in values]


def test_seed_keys_are_distinct_and_accept_any_int64():
    seeds = torch.cat((torch.arange(100_000), torch.tensor([-1, -2, 2**32, 2**32 + 1, 2**62])))
    keys = seed_keys(seeds)
    assert int(keys.min()) >= 0 and int(keys.max()) < 2**32
    assert len(torch.unique(keys)) == len(seeds)


def actions_for(env: TorchClassicEnv, steps: int, seed: int) -> torch.Tensor:
    """(steps, num_envs[, 1]) random actions, continuous ones beyond the bounds as well."""
    generator = torch.Generator().manual_seed(seed)
    if env.discrete:
        return torch.randint(0, env.action_space.n, (steps, env.num_envs), generator=generator)
    return torch.rand(steps, env.num_envs, 1, generator=generator) * 5 - 2.5


def run(env: TorchClassicEnv, actions: torch.Tensor, truncate_every: int = 7) -> list[torch.Tensor]:
    """Every output of `env.step` under `actions`; every `truncate_every` steps the step counters
    jump to one before the time limit, so each run crosses several autoresets."""
    outputs = []
    for t, action in enumerate(actions):
        if t % truncate_every == 0:
            env.set_state(env.get_state(), torch.full((env.num_envs,), env.max_episode_steps - 1))
        out = env.step(action)
        outputs.append(torch.stack((*out.obs.T, *out.final_obs.T, out.reward,
                                    out.terminated.float(), out.truncated.float())))
    return outputs


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sub_env_of_a_batch_runs_as_a_lone_env_with_its_seed(env_id):
    seeds = [1000, 1, 10**9 + 2001, 3]
    batch = make_torch_classic(env_id, len(seeds), seed=seeds)
    actions = actions_for(batch, 40, seed=5)
    batch_run = torch.stack(run(batch, actions))
    assert int(batch.episodes.min()) >= 5                       # several autoresets happened
    for i, seed in enumerate(seeds):
        lone = make_torch_classic(env_id, 1, seed=seed)
        lone_run = torch.stack(run(lone, actions[:, i:i + 1]))
        assert torch.equal(lone_run[..., 0], batch_run[..., i]), (env_id, seed)
    # an int seed s gives sub-env i the seed s + i
    assert torch.equal(make_torch_classic(env_id, 3, seed=1).get_state(),
                       make_torch_classic(env_id, 3, seed=[1, 2, 3]).get_state())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_run_and_both_reset_modes_agree(env_id):
    runs = []
    for dense in (False, True, False):
        env = make_torch_classic(env_id, 6, seed=42, dense_resets=dense)
        runs.append(torch.stack(run(env, actions_for(env, 30, seed=1))))
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
    other = make_torch_classic(env_id, 6, seed=43)
    assert not torch.equal(torch.stack(run(other, actions_for(other, 30, seed=1))), runs[0])


def test_initial_states_are_uniform_and_independent():
    """Episode starts drawn over seeds and over episodes of one stream: uniform on the box (KS
    test) and uncorrelated between components and between consecutive episodes."""
    env = make_torch_classic("CartPole-v1", 1)
    n = 20_000
    over_seeds = env._initial_states(seed_keys(torch.arange(n)), torch.zeros(n, dtype=torch.int64))
    over_episodes = env._initial_states(seed_keys(torch.full((n,), 7)), torch.arange(n))
    for draws in (over_seeds, over_episodes):
        u = (draws.numpy() + 0.05) / 0.1
        assert u.min() >= 0 and u.max() < 1
        for component in u:
            assert stats.kstest(component, "uniform").pvalue > 1e-4
        assert np.abs(np.corrcoef(u)[np.triu_indices(4, 1)]).max() < 0.03      # 4 sigma: 0.028
        lag = [np.corrcoef(c[:-1], c[1:])[0, 1] for c in u]
        assert np.abs(lag).max() < 0.03


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_returns_torch_tensors_with_the_contract_dtypes(env_id):
    env = envs.make(env_id, 5, "cpu", seed=3)
    assert isinstance(env, TorchClassicEnv) and env.num_envs == 5
    obs_shape = env.observation_space.shape
    assert torch.equal(env.get_state(), make_torch_classic(env_id, 5, seed=3).get_state())
    obs = env.reset(3)
    assert obs.dtype == torch.float32 and obs.shape == (5, *obs_shape) and obs.device.type == "cpu"
    if env.discrete:
        action = torch.zeros(5, dtype=torch.int64)
    else:
        action = torch.zeros(5, *env.action_space.shape, dtype=torch.float32)
    step = env.step(action)
    for name, dtype, shape in [("obs", torch.float32, (5, *obs_shape)),
                               ("final_obs", torch.float32, (5, *obs_shape)),
                               ("reward", torch.float32, (5,)), ("terminated", torch.bool, (5,)),
                               ("truncated", torch.bool, (5,))]:
        value = getattr(step, name)
        assert isinstance(value, torch.Tensor) and value.dtype == dtype and value.shape == shape, name
        assert value.device == env.device, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_cuda_resets_match_cpu(env_id):
    cpu, cuda = envs.make(env_id, 8, "cpu", seed=5), envs.make(env_id, 8, "cuda", seed=5)
    assert cuda.reset(5).device.type == "cuda"
    assert torch.equal(cuda.get_state().cpu(), cpu.get_state())
    for env in (cpu, cuda):
        env.set_state(env.get_state(), torch.full((8,), env.max_episode_steps - 1))
    action = actions_for(cpu, 1, seed=0)[0]
    # the autoreset states are hashed on the device: the same numbers on both
    assert torch.equal(cuda.step(action.cuda()).obs.cpu(), cpu.step(action).obs)


def test_prefix_selects_the_backend():
    assert isinstance(envs.make("Pendulum-v1", 2), TorchClassicEnv)
    assert isinstance(envs.make("torch:Pendulum-v1", 2), TorchClassicEnv)
    assert isinstance(envs.make("gym:Pendulum-v1", 2), GymnasiumVecEnv)
    assert envs.resolve("torch:pendulum") == "Pendulum-v1"
    assert envs.resolve("gym:Pendulum") == "gym:Pendulum-v1"
    assert envs.split("gym:CartPole-v1") == ("gym", "CartPole-v1")
    assert envs.split("CartPole") == ("torch", "CartPole-v1")
    # both backends step the same dynamics from the same state
    torch_env, gym_env = envs.make("CartPole-v1", 1), envs.make("gym:CartPole-v1", 1)
    gym_obs = gym_env.reset(0)
    torch_env.set_state(gym_obs.double())
    action = torch.ones(1, dtype=torch.int64)
    for _ in range(5):
        ours, theirs = torch_env.step(action), gym_env.step(action)
        assert torch.allclose(ours.obs, theirs.obs, atol=1e-6) and torch.equal(ours.reward, theirs.reward)


@pytest.mark.parametrize("env_id,bad,expected", [
    ("Pendulm-v1", "Pendulm-v1", "Pendulum-v1"),
    ("torch:CartPole-v0", "CartPole-v0", "CartPole-v1"),
    ("torch:Hopper-v5", "Hopper-v5", "Acrobot-v1"),      # not a torch env: the torch IDs are listed
    ("gym:MountainCar-v9", "MountainCar-v9", "MountainCar-v0"),
    ("gmy:Pendulum-v1", "gmy", "gym"),
])
def test_unknown_ids_give_a_one_line_usage_error_with_close_matches(env_id, bad, expected):
    with pytest.raises(UsageError) as error:
        envs.make(env_id, 1)
    message = str(error.value)
    assert "\n" not in message and repr(bad) in message and expected in message


def test_unknown_env_on_the_command_line_exits_2_with_one_line(run_cli, tmp_path):
    code, out, err = run_cli("run", "sac", "--env", "torch:Pendulm", "--steps", "10", "--out", tmp_path)
    assert code == 2 and err.strip().count("\n") == 0 and "Pendulum-v1" in err
