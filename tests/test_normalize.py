"""Running observation/reward normalisation (drlbench.normalize) against hand computations."""
import numpy as np
import pytest
import torch

from drlbench.normalize import INITIAL_COUNT, ObservationNormalizer, RewardNormalizer, RunningMeanStd
from tests.test_onpolicy import make_agent


def pooled(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the samples pooled with the prior (mean 0, variance 1, weight 1e-4)."""
    n = len(samples)
    mean = samples.sum(0) / (INITIAL_COUNT + n)
    second = INITIAL_COUNT * 1.0 + (samples ** 2).sum(0)      # prior: E[x^2] = var + mean^2 = 1
    return mean, second / (INITIAL_COUNT + n) - mean ** 2


def test_batches_pool_to_the_statistics_of_all_samples():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (b, 2)) for b in (1, 4, 7)]
    stats = RunningMeanStd(members=1, dim=2, device=torch.device("cpu"))
    for batch in batches:
        stats.update(torch.tensor(batch, dtype=torch.float32).unsqueeze(0))
    mean, var = pooled(np.concatenate(batches))
    assert stats.count.item() == pytest.approx(12 + INITIAL_COUNT)
    np.testing.assert_allclose(stats.mean[0].numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(stats.var[0].numpy(), var, rtol=1e-5)


def test_members_keep_their_own_statistics_and_observations_are_clipped():
    norm = ObservationNormalizer(members=2, dim=1, device=torch.device("cpu"))
    obs = torch.tensor([[[1.0], [3.0]], [[100.0], [100.0]]])
    out = norm(obs, update=True)
    assert norm.stats.mean[0].item() == pytest.approx(4.0 / (2 + INITIAL_COUNT), rel=1e-5)
    assert norm.stats.mean[1].item() == pytest.approx(200.0 / (2 + INITIAL_COUNT), rel=1e-5)
    # member 1: two identical samples, variance ~ 1e-4 * 100^2 / 2 -> (x - mean) / std is tiny, not clipped
    assert out[1].abs().max().item() < 10.0
    far = norm(torch.tensor([[[1e6]], [[-1e6]]]), update=False)
    assert far.flatten().tolist() == [10.0, -10.0]
    assert norm.stats.count[0].item() == pytest.approx(2 + INITIAL_COUNT)      # frozen without update


def test_reward_scaling_by_hand():
    gamma = 0.5
    norm = RewardNormalizer(members=1, num_envs=1, gamma=gamma, device=torch.device("cpu"))
    rewards, dones = [1.0, 2.0, 3.0], [False, True, False]
    returns, expected, u = [], [], 0.0
    for r, d in zip(rewards, dones):
        u = gamma * u + r
        returns.append(u)
        _, var = pooled(np.array(returns))
        expected.append(np.clip(r / np.sqrt(var + 1e-8), -10, 10))   # the first step is clipped
        if d:
            u = 0.0
    got = [norm(torch.tensor([[r]]), torch.tensor([[d]])).item() for r, d in zip(rewards, dones)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert norm.returns.item() == 3.0          # reset after the episode end at step 2, then 3


def test_agent_normalises_inputs_and_evaluation_freezes_statistics():
    agent = make_agent("ppo", overrides=["normalize_observations=true"])
    obs = torch.randn(1, 5, 3) * 4 + 2
    x = agent.observe(obs)
    stats = agent.obs_normalizer.stats
    assert stats.count.item() == pytest.approx(5 + INITIAL_COUNT)
    assert x.mean().abs().item() < 0.5
    before = {k: v.clone() for k, v in agent.obs_normalizer.state_dict().items()}
    agent.act(obs * 3, deterministic=True)
    after = agent.obs_normalizer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "obs_normalizer.stats.mean" in agent.checkpoint()["networks"]     # saved with the weights
    plain = make_agent("ppo")
    assert plain.obs_normalizer is None and torch.equal(plain.observe(obs), obs)


class Recorder:
    """The training environment, recording what it returns."""

    def __init__(self, env):
        self.env, self.resets, self.steps = env, [], []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, seed):
        obs = self.env.reset(seed)
        self.resets.append(obs.clone())
        return obs

    def step(self, action):
        step = self.env.step(action)
        self.steps.append(step)
        return step


def test_on_policy_loop_normalises_in_vecnormalizes_order(run_cli, tmp_path, monkeypatch):
    """The raw stream replayed through fresh normalisers in VecNormalize's order -- statistics take each new
    observation (reset ones too) before it is normalised; a truncated episode's final observation is
    normalised with the statistics after that step; rewards scale by the return's std, which resets at
    episode ends -- gives exactly the rollout the agent learns from and the value bootstrapped at the cut."""
    import drlbench.loops.on_policy as loop
    from drlbench.agents.actor_critic import ActorCritic
    from drlbench.agents.ppo import PPO

    recorders, captured, value_inputs = [], {}, []
    original_rollout, original_value = loop.rollout, ActorCritic.value

    def record(cls, env, config):
        if env.num_envs == 2:                       # training (evaluation uses one environment here)
            recorders.append(Recorder(env))
            return recorders[-1]
        return env

    def spy_rollout(buf, last_value, *args):
        if not captured:
            captured.update({k: v.clone() for k, v in buf.items()})
        return original_rollout(buf, last_value, *args)

    def spy_value(self, x):
        value_inputs.append(x.clone())
        return original_value(self, x)

    monkeypatch.setattr(PPO, "wrap_env", classmethod(record))
    monkeypatch.setattr(loop, "rollout", spy_rollout)
    monkeypatch.setattr(ActorCritic, "value", spy_value)
    gamma = 0.95
    code, _, err = run_cli("run", "ppo", "--env", "Pendulum", "--steps", "500", "--num-envs", "2",
                           "--eval-every", "500", "--eval-episodes", "1", "--out", tmp_path, "--quiet", "--set",
                           "n_steps=250", "n_epochs=1", f"gamma={gamma}", "normalize_observations=true",
                           "normalize_rewards=true")
    assert code == 0, err
    (env,) = recorders
    obs_norm = ObservationNormalizer(1, 3, torch.device("cpu"))
    reward_norm = RewardNormalizer(1, 2, gamma, torch.device("cpu"))
    x = obs_norm(env.resets[0].view(1, 2, 3), update=True)
    inputs, rewards, finals = [], [], []
    for step in env.steps[:250]:
        inputs.append(x)
        x = obs_norm(step.obs.view(1, 2, 3), update=True)
        done = (step.terminated | step.truncated).view(1, 2)
        if bool(done.any()):
            finals.append(obs_norm(step.final_obs.view(1, 2, 3), update=False))
        rewards.append(reward_norm(step.reward.view(1, 2), done))
    assert torch.equal(captured["obs"], torch.stack(inputs, 1))
    assert torch.equal(captured["reward"], torch.stack(rewards, 1))
    assert captured["done"][0, 199].tolist() == [1.0, 1.0]              # Pendulum's 200-step time limit
    (final,) = finals
    assert torch.equal(value_inputs[0], final)                              # the bootstrap at the cut
