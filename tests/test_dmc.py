"""dm_control backend: equality with the suite stepped by hand, time limits, action repeat,
seeding, exact snapshots for --resume, and the missing-extra error."""
import io
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("drlbench.envs.dmc")   # first: it picks a headless OpenGL backend

from dm_control import suite  # noqa: E402

from drlbench import envs  # noqa: E402
from drlbench.errors import UsageError  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def flat(observation) -> np.ndarray:
    """The documented encoding, written independently: dict order, row-major, float32."""
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in observation.values()]).astype(np.float32)


def random_actions(env, steps: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    low, high = torch.as_tensor(env.action_space.low), torch.as_tensor(env.action_space.high)
    return [low + (high - low) * torch.rand(env.num_envs, *low.shape, generator=generator) for _ in range(steps)]


@pytest.mark.parametrize("device", DEVICES)
def test_shapes_dtypes_and_devices(device):
    env = envs.make("dmc:cheetah-run", num_envs=3, device=device, seed=0)
    assert env.env_id == "dmc:cheetah-run"
    assert env.observation_space.shape == (17,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (6,) and (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    obs = env.reset(0)
    step = env.step(torch.zeros(3, 6, device=device))
    for tensor in (obs, step.obs, step.final_obs):
        assert tensor.shape == (3, 17) and tensor.dtype == torch.float32 and tensor.device.type == device
    assert step.reward.shape == (3,) and step.reward.dtype == torch.float32
    assert step.terminated.dtype == torch.bool and step.truncated.dtype == torch.bool
    assert env.vec.envs[0].unwrapped.obs_keys == ("position", "velocity")


@pytest.mark.parametrize("task", ["reacher-hard", "cheetah-run"])
def test_equals_dm_control_stepped_by_hand_through_the_time_limit(task):
    """1010 steps: every obs/reward equal to suite.load(random=seed) by hand; at step 1000 the
    time limit is a truncation whose final_obs is the suite's last observation."""
    seeds = [5, 9]
    env = envs.make(f"dmc:{task}", num_envs=2)
    obs = env.reset(seeds)
    domain, name = task.split("-")
    by_hand = [suite.load(domain, name, task_kwargs={"random": s}) for s in seeds]
    expected = [flat(e.reset().observation) for e in by_hand]
    assert np.array_equal(obs.numpy(), np.stack(expected))
    for t, action in enumerate(random_actions(env, 1010), start=1):
        step = env.step(action)
        for i, e in enumerate(by_hand):
            time_step = e.step(action[i].numpy().astype(np.float64))
            assert step.reward[i].item() == np.float32(time_step.reward)
            assert np.array_equal(step.final_obs[i].numpy(), flat(time_step.observation))
            assert bool(step.truncated[i]) == (t == 1000) and not step.terminated[i]
            if time_step.last():
                assert time_step.discount == 1.0
                assert np.array_equal(step.obs[i].numpy(), flat(e.reset().observation))   # autoreset
            else:
                assert np.array_equal(step.obs[i].numpy(), step.final_obs[i].numpy())


def test_action_repeat_sums_rewards_and_counts_the_limit_in_suite_steps():
    env = envs.make("dmc:cheetah-run", num_envs=1, seed=3, action_repeat=3)
    by_hand = suite.load("cheetah", "run", task_kwargs={"random": 3})
    by_hand.reset()
    for t, action in enumerate(random_actions(env, 334), start=1):
        step = env.step(action)
        rewards = []
        for _ in range(3):
            time_step = by_hand.step(action[0].numpy().astype(np.float64))
            rewards.append(time_step.reward)
            if time_step.last():
                break
        assert len(rewards) == (1 if t == 334 else 3)                 # 1000 = 333 * 3 + 1
        assert step.reward[0].item() == pytest.approx(sum(rewards), rel=1e-6)
        assert np.array_equal(step.final_obs[0].numpy(), flat(time_step.observation))
        assert bool(step.truncated[0]) == (t == 334)


def test_a_zero_discount_is_a_termination(monkeypatch):
    """No benchmarking task ends early, so make sub-env 1's task end with discount 0 at step 5."""
    env = envs.make("dmc:cheetah-run", num_envs=2, seed=0)
    task = env.vec.envs[1].unwrapped.dm_env.task
    monkeypatch.setattr(task, "get_termination", lambda physics: 0.0 if physics.data.time > 0.045 else None)
    steps = [env.step(torch.zeros(2, 6)) for _ in range(6)]          # control timestep 0.01 s
    ended = [bool(s.terminated[1]) for s in steps]
    assert ended == [False, False, False, False, True, False]
    assert not any(s.terminated[0] or s.truncated.any() for s in steps)
    assert not torch.equal(steps[4].obs[1], steps[4].final_obs[1])   # obs: the next episode's start


def test_seeding_is_per_sub_environment():
    batch = envs.make("dmc:reacher-easy", num_envs=3, seed=7)
    again = envs.make("dmc:reacher-easy", num_envs=3, seed=7)
    lone = envs.make("dmc:reacher-easy", num_envs=1, seed=8)
    other = envs.make("dmc:reacher-easy", num_envs=3, seed=70)
    actions = random_actions(batch, 50)
    for action in actions:
        a, b, c, d = batch.step(action), again.step(action), lone.step(action[1:2]), other.step(action)
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)
        assert torch.equal(a.obs[1:2], c.obs) and torch.equal(a.reward[1:2], c.reward)
    assert not torch.equal(a.obs, d.obs)                               # the seed matters (target position)


def test_state_dict_round_trip_continues_bit_for_bit():
    """reacher randomises its target in the MuJoCo model, so this also checks the model fields."""
    env = envs.make("dmc:reacher-hard", num_envs=2, seed=1, action_repeat=4)
    actions = random_actions(env, 400)
    for action in actions[:200]:
        env.step(action)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)                               # as the harness checkpoints
    first = [env.step(action) for action in actions[200:]]            # crosses the episode end at 250
    fresh = envs.make("dmc:reacher-hard", num_envs=2, seed=99, action_repeat=4)
    for action in actions[:37]:
        fresh.step(action)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=False))
    second = [fresh.step(action) for action in actions[200:]]
    assert any(s.truncated.any() for s in first)
    for a, b in zip(first, second):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.final_obs, b.final_obs)
        assert torch.equal(a.reward, b.reward) and torch.equal(a.truncated, b.truncated)


def test_ids_resolve_and_bad_options_are_usage_errors():
    ids = envs.backend("dmc").env_ids()
    assert {f"{d}-{t}" for d, t in suite.BENCHMARKING} <= set(ids) and "dog-run" in ids
    assert envs.resolve("dmc:Walker-Walk") == "dmc:walker-walk"
    assert envs.resolve("dmc:ball_in_cup-catch") == "dmc:ball_in_cup-catch"
    with pytest.raises(UsageError, match="walker-walk"):
        envs.resolve("dmc:walker-wlak")
    with pytest.raises(UsageError, match="action_repeat"):
        envs.make("dmc:cheetah-run", 1, action_repaet=2)
    with pytest.raises(UsageError, match="action_repeat 0"):
        envs.make("dmc:cheetah-run", 1, action_repeat=0)


def test_suite_lists_canonical_ids():
    from drlbench.config import load_suites

    suite_envs = load_suites()["dmc"].envs
    assert "dmc:cheetah-run" in suite_envs
    for env_id, entry in suite_envs.items():
        assert envs.resolve(env_id) == env_id
        assert 0 <= entry["random_score"] < entry["target_score"] <= 1000


def test_missing_dm_control_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dm_control", None)              # `import dm_control` now fails
    monkeypatch.delitem(sys.modules, "drlbench.envs.dmc")
    with pytest.raises(UsageError, match=r"pip install 'drlbench\[dmc\]'"):
        envs.make("dmc:cheetah-run")
