"""SAC on the torch-native Pendulum-v1 with 16 environments per seed: no tensor ever goes through
NumPy between the environment, the replay buffer and the agent, and SAC still learns."""
import json

import numpy as np
import pytest
import torch

from drlbench.envs.torch_classic import TorchClassicEnv

SMALL = ["--set", "learning_starts=100", "random_steps=100", "batch_size=32", "hidden_sizes=32,32",
         "buffer_size=1000"]


@pytest.fixture
def no_numpy(monkeypatch):
    """Fail on any tensor -> NumPy conversion; count the torch-native env steps taken."""
    def refuse(*args, **kwargs):
        raise AssertionError("a tensor was converted to NumPy")

    monkeypatch.setattr(torch.Tensor, "numpy", refuse)
    monkeypatch.setattr(torch.Tensor, "__array__", refuse)
    with pytest.raises(AssertionError):
        np.asarray(torch.zeros(2))                       # the guard is live
    steps = {"n": 0}
    original = TorchClassicEnv.step

    def counting_step(self, action):
        assert isinstance(action, torch.Tensor)
        steps["n"] += self.num_envs
        return original(self, action)

    monkeypatch.setattr(TorchClassicEnv, "step", counting_step)
    return steps


def test_off_policy_loop_on_torch_env_has_no_numpy_round_trip(run_cli, tmp_path, no_numpy):
    code, _, err = run_cli("run", "sac", "--env", "Pendulum", "--num-envs", "16", "--steps", "640",
                           "--eval-every", "320", "--eval-episodes", "2", "--out", tmp_path, "--quiet", *SMALL)
    assert code == 0, err
    # training (640 steps) plus three evaluations of 2 episodes x 200 steps, all torch-native
    assert no_numpy["n"] == 640 + 3 * 2 * 200


@pytest.mark.slow
def test_sac_reaches_minus_300_on_torch_pendulum_with_16_envs_within_12k_steps(run_cli, tmp_path, no_numpy):
    # 12k environment steps = 750 batched steps of 16 envs, 10k updates (UTD 1 after the classic
    # suite's 2k random steps). Measured with 16 envs: seeds 0-3 are at -143 to -199 by 8k steps;
    # seed 3 dips to -594 at 10k and is back at -197 by 12k.
    code, _, err = run_cli("run", "sac", "--env", "Pendulum", "--num-envs", "16", "--steps", "12000",
                           "--eval-every", "4000", "--eval-episodes", "10", "--seed", "0", "--out", tmp_path,
                           "--quiet")
    assert code == 0, err
    meta = json.loads((tmp_path / "Pendulum-v1" / "sac" / "seed_0" / "run.json").read_text())
    assert meta["num_envs"] == 16 and no_numpy["n"] >= 12000
    # random policy: -1188; the single-env learning test (tests/test_learning.py) asks the same
    assert meta["final_score"] >= -300, meta["final_score"]
