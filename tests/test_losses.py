"""Agent losses against hand computations on tiny inputs."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import Batch, get_agent
from drlbench.config import build, load_preset
from drlbench.loops.off_policy import Config as OffPolicyConfig
from drlbench.nn import PopMLP, tanh_gaussian
from drlbench.population import Population

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def make_agent(name, seeds=(0,), overrides=()):
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset(name, None), list(overrides))
    return cls(OBS, ACT, hp, Population(list(seeds)))


def tiny_batch(p=1, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(p, b, 3, generator=g), action=torch.rand(p, b, 1, generator=g) * 2 - 1,
                 reward=torch.randn(p, b, generator=g), next_obs=torch.randn(p, b, 3, generator=g),
                 terminated=torch.tensor([[0.0, 1.0, 0.0, 0.0]] * p))


def mlp_by_hand(mlp: PopMLP, x: torch.Tensor, copy: int) -> torch.Tensor:
    """Plain per-copy MLP evaluation for member 0, layer by layer."""
    h = x
    for i, layer in enumerate(mlp.layers):
        w, b = layer.weight[copy], layer.bias[copy, 0]
        h = h @ w + b
        if i < len(mlp.layers) - 1:
            h = torch.relu(h)
    return h


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    mean, std = torch.tensor([[0.3, -1.2]]), torch.tensor([[0.5, 2.0]])
    noise = torch.tensor([[0.7, -0.4]])
    action, log_prob = tanh_gaussian(mean, std, noise)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, std), [torch.distributions.TanhTransform()])
    assert torch.allclose(action, torch.tanh(mean + std * noise))
    assert torch.allclose(log_prob, dist.log_prob(action).sum(-1), atol=1e-5)


def test_pop_linear_matches_plain_matmul():
    pop = Population([3, 4])
    mlp = PopMLP(pop, [3, 5, 1], copies=2)
    x = torch.randn(2, 6, 3)
    out = mlp(x)                                    # (P, copies, B, 1)
    for member in range(2):
        for copy in range(2):
            h = torch.relu(x[member] @ mlp.layers[0].weight[2 * member + copy] + mlp.layers[0].bias[2 * member + copy])
            expected = h @ mlp.layers[1].weight[2 * member + copy] + mlp.layers[1].bias[2 * member + copy]
            assert torch.allclose(out[member, copy], expected, atol=1e-6)
    assert torch.allclose(mlp(x, first_copy_only=True), out[:, 0], atol=1e-6)


def test_sac_critic_target_by_hand():
    agent = make_agent("sac")
    batch = tiny_batch()
    gamma, alpha = agent.config.gamma, 1.0               # initial_alpha = 1
    # Re-create the noise the update will draw for a' ~ pi(.|s').
    state = agent.population.generators[0].get_state()
    eps = torch.randn(4, 1, generator=agent.population.generators[0])
    agent.population.generators[0].set_state(state)
    with torch.no_grad():
        out = mlp_by_hand(agent.actor, batch.next_obs[0], 0)
        mean, std = out[:, :1], torch.nn.functional.softplus(out[:, 1:]) + 1e-5
        u = mean + std * eps
        a_next = torch.tanh(u)
        log_prob = (torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - a_next.pow(2) + 1e-12)).sum(-1)
        x_next = torch.cat([batch.next_obs[0], a_next], -1)
        q_next = torch.minimum(mlp_by_hand(agent.critic_target, x_next, 0), mlp_by_hand(agent.critic_target, x_next, 1))
        y = batch.reward[0] + gamma * (1 - batch.terminated[0]) * (q_next.squeeze(-1) - alpha * log_prob)
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        q1, q2 = mlp_by_hand(agent.critic, x, 0).squeeze(-1), mlp_by_hand(agent.critic, x, 1).squeeze(-1)
        expected = 0.5 * ((q1 - y).pow(2).mean() + (q2 - y).pow(2).mean())
    metrics = agent.update(batch)
    assert metrics["critic_loss"].shape == (1,)
    assert metrics["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_sac_terminated_transitions_do_not_bootstrap():
    agent = make_agent("sac")
    batch = tiny_batch()
    batch.terminated = torch.ones(1, 4)
    with torch.no_grad():
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        q1, q2 = mlp_by_hand(agent.critic, x, 0).squeeze(-1), mlp_by_hand(agent.critic, x, 1).squeeze(-1)
        expected = 0.5 * ((q1 - batch.reward[0]).pow(2).mean() + (q2 - batch.reward[0]).pow(2).mean())
    assert agent.update(batch)["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_sac_temperature_moves_toward_target_entropy():
    """J(alpha) = -alpha (log pi + Hbar): alpha falls when the entropy exceeds the target."""
    agent = make_agent("sac", overrides=["target_entropy=-5"])
    before = agent.log_alpha.item()
    metrics = agent.update(tiny_batch())
    assert agent.log_alpha.item() < before
    # alpha = 1 before the step: -(log pi + Hbar) = entropy + 5, entropy of the re-sampled actions
    assert metrics["alpha_loss"].item() == pytest.approx(metrics["entropy"].item() + 5.0, rel=1e-5)


def test_sac_actor_loss_by_hand():
    agent = make_agent("sac")
    batch = tiny_batch()
    generator = agent.population.generators[0]
    state = generator.get_state()
    torch.randn(4, 1, generator=generator)                # the critic target's draw
    eps = torch.randn(4, 1, generator=generator)          # the actor loss's draw
    generator.set_state(state)
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.update(batch)
    with torch.no_grad():
        for p, saved in zip(agent.actor.parameters(), actor_before):
            p.copy_(saved)
        out = mlp_by_hand(agent.actor, batch.obs[0], 0)
        mean, std = out[:, :1], torch.nn.functional.softplus(out[:, 1:]) + 1e-5
        u = mean + std * eps
        a = torch.tanh(u)
        log_prob = (torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - a.pow(2) + 1e-12)).sum(-1)
        x = torch.cat([batch.obs[0], a], -1)
        q = torch.minimum(mlp_by_hand(agent.critic, x, 0), mlp_by_hand(agent.critic, x, 1)).squeeze(-1)
        expected = (1.0 * log_prob - q).mean()          # alpha = 1 before the step
    assert metrics["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_td3_critic_loss_and_target_smoothing_by_hand():
    agent = make_agent("td3")
    batch = tiny_batch()
    cfg = agent.config
    state = agent.population.generators[0].get_state()
    noise = (torch.randn(4, 1, generator=agent.population.generators[0]) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
    agent.population.generators[0].set_state(state)
    with torch.no_grad():
        a_next = (torch.tanh(mlp_by_hand(agent.actor_target, batch.next_obs[0], 0)) + noise).clamp(-1, 1)
        x_next = torch.cat([batch.next_obs[0], a_next], -1)
        q_next = torch.minimum(mlp_by_hand(agent.critic_target, x_next, 0), mlp_by_hand(agent.critic_target, x_next, 1)).squeeze(-1)
        y = batch.reward[0] + cfg.gamma * (1 - batch.terminated[0]) * q_next
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        expected = sum((mlp_by_hand(agent.critic, x, c).squeeze(-1) - y).pow(2).mean() for c in (0, 1))
    assert agent.update(batch)["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_td3_actor_is_delayed():
    agent = make_agent("td3")
    batch = tiny_batch()
    actor_before = [p.clone() for p in agent.actor.parameters()]
    agent.update(batch)   # update 1: critic only
    assert all(torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    agent.update(batch)   # update 2: policy_delay = 2 -> actor and targets move
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))


def test_td3_actor_loss_is_minus_q1():
    agent = make_agent("td3")
    batch = tiny_batch()
    agent.update(batch)                                   # critic only
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.update(batch)                         # critic, then actor on the new critic
    with torch.no_grad():
        for p, saved in zip(agent.actor.parameters(), actor_before):
            p.copy_(saved)
        x = torch.cat([batch.obs[0], torch.tanh(mlp_by_hand(agent.actor, batch.obs[0], 0))], -1)
        expected = -mlp_by_hand(agent.critic, x, 0).mean()   # Q1 only, as TD3.py
    assert metrics["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)
