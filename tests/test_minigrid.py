"""MiniGrid backend: the one-hot encoding, equality with minigrid stepped by hand, goal
termination vs max_steps truncation, seeding, exact snapshots for --resume, the missing extra."""
import io
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("minigrid")

from minigrid.wrappers import OneHotPartialObsWrapper  # noqa: E402

from drlbench import envs  # noqa: E402
from drlbench.errors import UsageError  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
FORWARD, LEFT, RIGHT = 2, 0, 1


def by_hand(env_id: str) -> gym.Env:
    """The library itself, with minigrid's own one-hot view wrapper."""
    return OneHotPartialObsWrapper(gym.make(env_id))


def encode(obs: dict) -> np.ndarray:
    """The documented encoding: one-hot view (row-major), then one-hot direction."""
    return np.concatenate([obs["image"].ravel(), np.eye(4)[obs["direction"]]]).astype(np.float32)


def random_actions(num_envs: int, steps: int, n: int = 7, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(n, (num_envs,), generator=generator) for _ in range(steps)]


@pytest.mark.parametrize("device", DEVICES)
def test_shapes_dtypes_and_devices(device):
    env = envs.make("MiniGrid-DoorKey-5x5-v0", num_envs=4, device=device, seed=0)
    assert env.env_id == "MiniGrid-DoorKey-5x5-v0"
    assert env.observation_space.shape == (7 * 7 * 20 + 4,) and env.action_space == gym.spaces.Discrete(7)
    step = env.step(torch.tensor([0, 1, 2, 3], dtype=torch.int64, device=device))
    for tensor in (env.reset(0), step.obs, step.final_obs):
        assert tensor.shape == (4, 984) and tensor.dtype == torch.float32 and tensor.device.type == device
        assert (tensor.sum(1) == 49 * 3 + 1).all()                    # 3 bits per cell + direction
    assert step.reward.dtype == torch.float32 and step.terminated.dtype == torch.bool


@pytest.mark.parametrize("env_id, actions", [("MiniGrid-Empty-5x5-v0", 3), ("MiniGrid-DoorKey-5x5-v0", 7)])
def test_equals_minigrid_stepped_by_hand(env_id, actions):
    """300 random steps (episodes ending at the goal or at max_steps) against the library by hand."""
    seeds = [3, 11]
    env = envs.make(env_id, num_envs=2)
    obs = env.reset(seeds)
    references = [by_hand(env_id) for _ in seeds]
    first = [e.reset(seed=s)[0] for e, s in zip(references, seeds)]
    assert np.array_equal(obs.numpy(), np.stack([encode(o) for o in first]))
    ends = {"terminated": 0, "truncated": 0}
    for action in random_actions(2, 300, n=actions):
        step = env.step(action)
        for i, e in enumerate(references):
            o, reward, terminated, truncated, _ = e.step(int(action[i]))
            assert step.reward[i].item() == pytest.approx(reward, abs=1e-7)
            assert (bool(step.terminated[i]), bool(step.truncated[i])) == (terminated, truncated)
            assert np.array_equal(step.final_obs[i].numpy(), encode(o))
            if terminated or truncated:
                ends["terminated"] += terminated
                ends["truncated"] += truncated
                o, _ = e.reset()
            assert np.array_equal(step.obs[i].numpy(), encode(o))
    assert ends["truncated"] and (ends["terminated"] or "DoorKey" in env_id)   # random walks miss the key


def test_goal_is_termination_with_the_step_discounted_reward():
    env = envs.make("MiniGrid-Empty-5x5-v0", num_envs=1, seed=0)    # agent (1,1) facing right, goal (3,3)
    path = [FORWARD, FORWARD, RIGHT, FORWARD, FORWARD]
    steps = [env.step(torch.tensor([a])) for a in path]
    assert [bool(s.terminated[0]) for s in steps] == [False] * 4 + [True]
    assert not any(s.truncated[0] for s in steps)
    assert steps[-1].reward[0].item() == pytest.approx(1 - 0.9 * 5 / 100)   # max_steps = 4 * 5^2
    assert not torch.equal(steps[-1].obs, steps[-1].final_obs)      # obs: the next episode's start


def test_max_steps_is_truncation_with_the_true_final_observation():
    env = envs.make("MiniGrid-Empty-5x5-v0", num_envs=1, seed=0)
    reference = by_hand("MiniGrid-Empty-5x5-v0")
    reference.reset(seed=0)
    for t in range(1, 101):
        step = env.step(torch.tensor([LEFT if t < 100 else FORWARD]))
        o, *_ = reference.step(LEFT if t < 100 else FORWARD)
        assert bool(step.truncated[0]) == (t == 100) and not step.terminated[0]
    assert np.array_equal(step.final_obs[0].numpy(), encode(o))
    assert not torch.equal(step.obs, step.final_obs)                 # moved forward, then reset


def test_seeding_is_per_sub_environment():
    batch = envs.make("MiniGrid-DoorKey-5x5-v0", num_envs=3, seed=7)
    again = envs.make("MiniGrid-DoorKey-5x5-v0", num_envs=3, seed=7)
    lone = envs.make("MiniGrid-DoorKey-5x5-v0", num_envs=1, seed=9)
    different = False
    for action in random_actions(3, 300):
        a, b, c = batch.step(action), again.step(action), lone.step(action[2:])
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)
        assert torch.equal(a.obs[2:], c.obs) and torch.equal(a.final_obs[2:], c.final_obs)
        different |= not torch.equal(a.obs[0], a.obs[2])
    assert different


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-5x5-v0", "BabyAI-GoToLocal-v0"])
def test_state_dict_round_trip_continues_bit_for_bit(env_id):
    env = envs.make(env_id, num_envs=3, seed=1)
    actions = random_actions(3, 400)
    for action in actions[:150]:
        env.step(action)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)                               # as the harness checkpoints
    first = [env.step(action) for action in actions[150:]]
    fresh = envs.make(env_id, num_envs=3, seed=50)
    for action in actions[:20]:
        fresh.step(action)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=False))
    second = [fresh.step(action) for action in actions[150:]]
    assert any((s.terminated | s.truncated).any() for s in first)
    for a, b in zip(first, second):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.final_obs, b.final_obs)
        assert torch.equal(a.reward, b.reward)
        assert torch.equal(a.terminated, b.terminated) and torch.equal(a.truncated, b.truncated)


def test_every_registered_id_resolves():
    ids = envs.backend("minigrid").env_ids()
    registered = {i for i in gym.registry if i.startswith(("MiniGrid-", "BabyAI-")) and "-WFC-" not in i}
    assert registered <= set(ids) and len(registered) > 150 and "MiniGrid-DoorKey-5x5-v0" in ids
    assert envs.resolve("minigrid-doorkey-5x5") == "MiniGrid-DoorKey-5x5-v0"
    assert envs.resolve("minigrid:MiniGrid-Empty-8x8-v0") == "MiniGrid-Empty-8x8-v0"
    with pytest.raises(UsageError, match="MiniGrid-DoorKey-5x5-v0"):
        envs.resolve("MiniGrid-DoorKye-5x5-v0")


def test_suite_lists_canonical_ids():
    from drlbench.config import load_suites

    suite_envs = load_suites()["minigrid"].envs
    assert "MiniGrid-DoorKey-5x5-v0" in suite_envs
    for env_id, entry in suite_envs.items():
        assert envs.resolve(env_id) == env_id
        assert 0 <= entry["random_score"] < entry["target_score"] < 1


def test_missing_minigrid_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "minigrid", None)                # `import minigrid` now fails
    monkeypatch.delitem(sys.modules, "drlbench.envs.minigrid")
    with pytest.raises(UsageError, match=r"pip install 'drlbench\[minigrid\]'"):
        envs.make("MiniGrid-Empty-5x5-v0")
