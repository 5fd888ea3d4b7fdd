"""DSAC-T: the critic surrogate, the moving std sigma_bar, the clipping boundary, the actor and
temperature losses against hand computations on tiny inputs; schedule, population independence,
and a learning run on Pendulum-v1."""
import json
import math
from copy import deepcopy

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import Batch, get_agent
from drlbench.agents.dsac_t import clipped_sample_target, critic_surrogate, update_sigma_bar
from drlbench.config import build, load_preset
from drlbench.errors import UsageError
from drlbench.loops.off_policy import Config as OffPolicyConfig
from drlbench.population import Population

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)     # Pendulum's bounds: log((high - low) / 2) = log 2
SMALL = ["hidden_sizes=8,8"]


def make_agent(seeds=(0,), overrides=SMALL, action_space=ACT):
    cls = get_agent("dsac_t")
    (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset("dsac_t", None), list(overrides))
    return cls(OBS, action_space, hp, Population(list(seeds)))


def tiny_batch(p=1, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(p, b, 3, generator=g), action=torch.rand(p, b, 1, generator=g) * 2 - 1,
                 reward=torch.randn(p, b, generator=g), next_obs=torch.randn(p, b, 3, generator=g),
                 terminated=torch.tensor([[0.0, 1.0, 0.0, 0.0]] * p))


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def mlp_by_hand(mlp, x, index):
    """Member 0's network `index` (copy for critics), layer by layer, GELU hidden units."""
    h = x
    for i, layer in enumerate(mlp.layers):
        h = h @ layer.weight[index] + layer.bias[index, 0]
        if i < len(mlp.layers) - 1:
            h = gelu(h)
    return h


def policy_by_hand(actor, obs, eps):
    """a = tanh(mean + std eps), log pi(a|s) in environment units (bounds [-2, 2]): the Gaussian density of
    u, minus log(1 - tanh(u)^2), minus log 2 for the affine map onto [-2, 2]."""
    mean, log_std = mlp_by_hand(actor, obs, 0).chunk(2, dim=-1)
    std = log_std.clamp(-20.0, 0.5).exp()
    u = mean + std * eps
    a = torch.tanh(u)
    log_prob = torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - a.pow(2)) - math.log(2.0)
    return a, log_prob.sum(-1)


def value_by_hand(critic, x, copy):
    out = mlp_by_hand(critic, x, copy)
    return out[:, 0], torch.nn.functional.softplus(out[:, 1])


# --- the critic loss's pieces -------------------------------------------------------------------
def test_sigma_bar_starts_at_the_first_batch_mean_then_moves_by_tau_b():
    sigma = torch.tensor([[[1.0, 3.0], [2.0, 6.0]]])                       # (P=1, 2 critics, B=2)
    first = update_sigma_bar(torch.full((1, 2), -1.0), sigma, tau_b=0.1)
    assert first.tolist() == [[2.0, 4.0]]                                  # batch means
    second = update_sigma_bar(first, torch.tensor([[[4.0, 4.0], [0.0, 0.0]]]), tau_b=0.1)
    assert second[0].tolist() == pytest.approx([0.9 * 2.0 + 0.1 * 4.0, 0.9 * 4.0 + 0.1 * 0.0])


def test_sampled_target_is_clipped_to_three_sigma_bar_around_the_mean():
    mu = torch.tensor([[[0.0, 10.0, 5.0], [1.0, 1.0, 1.0]]])                # (1, 2, 3)
    y_s = torch.tensor([[4.0, 4.0, 5.5]])                                   # (1, 3)
    sigma_bar = torch.tensor([[1.0, 0.5]])                                  # bounds 3 and 1.5
    y_b = clipped_sample_target(mu, y_s, sigma_bar, clip_boundary=3.0)
    assert y_b.tolist() == [[[3.0, 7.0, 5.5], [2.5, 2.5, 2.5]]]


def test_paper_surrogate_value_and_gradients_by_hand():
    mu = torch.tensor([[[1.0, -2.0]]], requires_grad=True)                  # (P=1, one critic, B=2)
    sigma = torch.tensor([[[0.5, 2.0]]], requires_grad=True)
    y = torch.tensor([[2.0, -1.0]])
    y_b = torch.tensor([[[1.5, -5.0]]])
    sigma_bar, eps = torch.tensor([[1.5]]), 0.1
    loss = critic_surrogate(mu, sigma, y, y_b, sigma_bar, eps, "paper")
    omega = 1.5 ** 2 + eps
    # sample 1: mu=1, sigma=.5, y=2, y_b=1.5; sample 2: mu=-2, sigma=2, y=-1, y_b=-5
    d_mu = [-(2.0 - 1.0) / (0.25 + eps), -(-1.0 + 2.0) / (4.0 + eps)]
    d_sigma = [-((1.0 - 1.5) ** 2 - 0.25) / (0.125 + eps), -((-2.0 + 5.0) ** 2 - 4.0) / (8.0 + eps)]
    expected = omega * 0.5 * (d_mu[0] * 1.0 + d_mu[1] * -2.0 + d_sigma[0] * 0.5 + d_sigma[1] * 2.0)
    assert loss.shape == (1, 1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.sum().backward()
    assert mu.grad.flatten().tolist() == pytest.approx([omega * g / 2 for g in d_mu], rel=1e-6)
    assert sigma.grad.flatten().tolist() == pytest.approx([omega * g / 2 for g in d_sigma], rel=1e-6)


def test_paper_surrogate_gradient_is_the_gaussian_nll_gradient_scaled_by_sigma_bar_squared():
    """With eps_b = 0: d/dmu = omega d/dmu[-log N(y; mu, sigma)], d/dsigma = omega d/dsigma[-log N(y_b; mu, sigma)]."""
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(2, 2, 5, generator=g, dtype=torch.float64).requires_grad_()
    sigma = (torch.rand(2, 2, 5, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    y, y_b = torch.randn(2, 5, generator=g, dtype=torch.float64), torch.randn(2, 2, 5, generator=g, dtype=torch.float64)
    sigma_bar = torch.tensor([[0.7, 1.3], [2.0, 0.4]], dtype=torch.float64)
    grads = torch.autograd.grad(critic_surrogate(mu, sigma, y, y_b, sigma_bar, 0.0, "paper").sum(), (mu, sigma))
    omega = sigma_bar.pow(2).unsqueeze(-1)
    nll_mean = (omega * ((y.unsqueeze(1) - mu).pow(2) / (2 * sigma.detach().pow(2)))).mean(-1).sum()
    nll_std = (omega * ((y_b - mu.detach()).pow(2) / (2 * sigma.pow(2)) + sigma.log())).mean(-1).sum()
    assert torch.allclose(grads[0], torch.autograd.grad(nll_mean, mu)[0])
    assert torch.allclose(grads[1], torch.autograd.grad(nll_std, sigma)[0])


def test_omega_makes_the_mean_gradient_scale_free():
    """When sigma = sigma_bar (eps_b = 0) the mean's gradient is the MSE gradient -(y - mu)/B whatever
    the value distribution's spread; scaling returns by c scales it by c, as MSE's."""
    for spread in (0.1, 1.0, 30.0):
        mu = torch.tensor([[[0.0, 1.0]]], requires_grad=True)
        sigma = torch.full((1, 1, 2), spread)
        y = torch.tensor([[3.0, -1.0]])
        critic_surrogate(mu, sigma, y, y.unsqueeze(1), torch.tensor([[spread]]), 0.0, "paper").sum().backward()
        assert mu.grad.flatten().tolist() == pytest.approx([-3.0 / 2, 2.0 / 2], rel=1e-6)


def test_huber_surrogate_by_hand():
    """The authors' 2025 loss: ratio clip(sigma_bar^2 / (sigma^2 + eps), 0.1, 10) on Huber terms."""
    mu = torch.tensor([[[0.0, 0.0]]], requires_grad=True)
    sigma = torch.tensor([[[1.0, 0.1]]], requires_grad=True)
    y = torch.tensor([[0.5, 4.0]])                 # |error| 0.5 < delta = 1 (quadratic), 4 > delta (linear)
    y_b = torch.tensor([[[2.0, 0.2]]])
    sigma_bar, eps, delta = torch.tensor([[2.0]]), 0.1, 1.0
    loss = critic_surrogate(mu, sigma, y, y_b, sigma_bar, eps, "huber", huber_delta=delta)
    ratio = [4.0 / 1.1, min(4.0 / 0.11, 10.0)]     # the second one is clipped at 10
    huber_mean = [0.5 * 0.5 ** 2, 1.0 * (4.0 - 0.5)]
    huber_bound = [1.0 * (2.0 - 0.5), 0.5 * 0.2 ** 2]
    std_term = [1.0 * (1.0 - huber_bound[0]) / 1.1, 0.1 * (0.01 - huber_bound[1]) / 0.2]
    expected = 0.5 * sum(r * (h + s) for r, h, s in zip(ratio, huber_mean, std_term))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.sum().backward()
    assert mu.grad.flatten().tolist() == pytest.approx([ratio[0] * -0.5 / 2, ratio[1] * -1.0 / 2], rel=1e-6)
    assert sigma.grad.flatten().tolist() == pytest.approx(
        [ratio[0] * (1.0 - huber_bound[0]) / 1.1 / 2, ratio[1] * (0.01 - huber_bound[1]) / 0.2 / 2], rel=1e-6)


# --- one agent update against a hand computation ---------------------------------------------------
def draws(agent, *shapes):
    """The update's next standard-normal draws from member 0's generator, without consuming them."""
    generator = agent.population.generators[0]
    state = generator.get_state()
    out = [torch.randn(*shape, generator=generator) for shape in shapes]
    generator.set_state(state)
    return out


def test_critic_loss_of_an_update_by_hand():
    agent = make_agent()
    batch = tiny_batch()
    cfg = agent.config
    eps_next, z = draws(agent, (4, 1), (2, 4))                 # a' ~ pi_target, then the target samples
    alpha = math.e                                             # log alpha = 1
    with torch.no_grad():
        a_next, logp_next = policy_by_hand(agent.actor_target, batch.next_obs[0], eps_next)
        x_next = torch.cat([batch.next_obs[0], a_next], -1)
        (m1, s1), (m2, s2) = (value_by_hand(agent.critic_target, x_next, c) for c in (0, 1))
        z = z.clamp(-3, 3)
        lower = m1 <= m2
        q_next, q_sample = torch.where(lower, m1, m2), torch.where(lower, m1 + z[0] * s1, m2 + z[1] * s2)
        not_done = cfg.gamma * (1 - batch.terminated[0])
        y = batch.reward[0] + not_done * (q_next - alpha * logp_next)
        y_s = batch.reward[0] + not_done * (q_sample - alpha * logp_next)
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        expected = 0.0
        for copy in (0, 1):
            mu, sigma = value_by_hand(agent.critic, x, copy)
            sigma_bar = sigma.mean()                            # first update: the batch mean
            y_b = mu + (y_s - mu).clamp(-3 * sigma_bar, 3 * sigma_bar)
            inner = (-(y - mu) / (sigma ** 2 + 0.1) * mu - ((mu - y_b) ** 2 - sigma ** 2) / (sigma ** 3 + 0.1) * sigma)
            expected += (sigma_bar ** 2 + 0.1) * inner.mean()
    metrics = agent.update(batch)
    assert metrics["critic_loss"].shape == (1,)
    assert metrics["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_actor_and_temperature_losses_of_an_update_by_hand():
    agent = make_agent(overrides=[*SMALL, "target_entropy=-5"])
    batch = tiny_batch()
    _, _, eps = draws(agent, (4, 1), (2, 4), (4, 1))            # the critic target's draws, then a~ ~ pi
    with torch.no_grad():
        a, log_prob = policy_by_hand(agent.actor, batch.obs[0], eps)
        x = torch.cat([batch.obs[0], a], -1)
        q = torch.minimum(value_by_hand(agent.critic, x, 0)[0], value_by_hand(agent.critic, x, 1)[0])
        expected = (math.e * log_prob - q).mean()                 # pre-update critics, alpha = e
    log_alpha = agent.log_alpha.item()
    metrics = agent.update(batch)                                  # update 0 steps the actor and alpha
    assert metrics["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)
    assert metrics["entropy"].item() == pytest.approx(-log_prob.mean().item(), rel=1e-5)
    # J(alpha) = -log alpha mean(log pi + Hbar): gradient -(log pi + Hbar) = entropy + 5 > 0, so alpha falls by lr
    assert agent.log_alpha.grad.item() == pytest.approx(-log_prob.mean().item() + 5.0, rel=1e-5)
    assert agent.log_alpha.item() == pytest.approx(log_alpha - agent.config.alpha_lr, rel=1e-4)


def test_policy_temperature_and_targets_move_every_policy_delay_updates():
    agent = make_agent()
    batch = tiny_batch()
    tau = agent.config.tau
    def snapshot():
        return [p.detach().clone() for p in (*agent.actor.parameters(), agent.log_alpha,
                                             *agent.actor_target.parameters(), *agent.critic_target.parameters())]
    before = snapshot()
    agent.update(batch)                                            # update 0: everything steps
    after = snapshot()
    assert all(not torch.equal(x, y) for x, y in zip(before, after))
    # the targets are Polyak averages of the stepped networks
    for target, online, old in zip(agent.critic_target.parameters(), agent.critic.parameters(),
                                   before[-len(list(agent.critic_target.parameters())):]):
        assert torch.allclose(target, (1 - tau) * old + tau * online, atol=1e-7)
    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.update(batch)                                            # update 1: the critics only
    assert all(torch.equal(x, y) for x, y in zip(after, snapshot()))
    assert not any(torch.equal(x, y) for x, y in zip(critic_before, agent.critic.parameters()))


def test_sigma_bar_tracks_the_critics_std():
    agent = make_agent()
    batch = tiny_batch()
    with torch.no_grad():
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        first = [value_by_hand(agent.critic, x, c)[1].mean().item() for c in (0, 1)]
    agent.update(batch)
    assert agent.sigma_bar[0].tolist() == pytest.approx(first, rel=1e-5)
    with torch.no_grad():
        second = [value_by_hand(agent.critic, x, c)[1].mean().item() for c in (0, 1)]
    agent.update(batch)
    tau_b = agent.config.tau_b
    assert agent.sigma_bar[0].tolist() == pytest.approx([(1 - tau_b) * f + tau_b * s for f, s in zip(first, second)],
                                                        rel=1e-5)


def test_members_are_independent():
    """Member 0's update does not change when member 1's batch does."""
    batch = tiny_batch(p=2)
    other = tiny_batch(p=2, seed=1)
    changed = Batch(*(torch.stack([a[0], b[1]]) for a, b in
                      zip((batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated),
                          (other.obs, other.action, other.reward, other.next_obs, other.terminated))))
    results = []
    for b in (batch, changed):
        agent = make_agent(seeds=(0, 1))
        for _ in range(3):
            metrics = agent.update(b)
        results.append((metrics, [p.detach().clone() for p in agent.parameters()], agent.sigma_bar.clone()))
    (m1, p1, s1), (m2, p2, s2) = results
    assert all(torch.allclose(a[0], b[0], atol=1e-6) for a, b in zip(p1, p2))
    assert not all(torch.allclose(a[1], b[1], atol=1e-6) for a, b in zip(p1, p2))
    assert torch.allclose(s1[0], s2[0]) and not torch.allclose(s1[1], s2[1])
    assert all(torch.allclose(m1[k][0], m2[k][0], atol=1e-6) for k in m1)


def test_checkpoint_restores_sigma_bar_counters_and_optimizers():
    batch = tiny_batch()
    original = make_agent()
    for _ in range(3):
        original.update(batch)
    copy = make_agent(seeds=(0,))
    copy.restore(deepcopy(original.checkpoint()))     # as through a file: Adam's restored state must not alias
    copy.population.load_state_dict(original.population.state_dict())
    assert torch.equal(copy.sigma_bar, original.sigma_bar) and copy.updates == 3
    for _ in range(2):                       # update 3 (critics only), update 4 (everything)
        original.update(batch), copy.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(), copy.state_dict().values()))


def test_huber_variant_updates_and_bad_values_are_refused():
    agent = make_agent(overrides=[*SMALL, "critic_loss=huber"])
    metrics = agent.update(tiny_batch())
    assert all(torch.isfinite(v).all() for v in metrics.values())
    with pytest.raises(UsageError, match="critic_loss=mse: critic_loss must be one of: paper, huber"):
        make_agent(overrides=[*SMALL, "critic_loss=mse"])
    with pytest.raises(UsageError, match="activation"):
        make_agent(overrides=[*SMALL, "activation=swish"])


def test_cli_run_on_pendulum(run_cli, tmp_path):
    code, _, err = run_cli("run", "dsac_t", "--env", "Pendulum", "--steps", "400", "--eval-every", "200",
                           "--eval-episodes", "1", "--out", tmp_path, "--quiet", "--tag", "small",
                           "--set", "learning_starts=200", "batch_size=16", "hidden_sizes=16,16")
    assert code == 0, err
    meta = json.loads((tmp_path / "Pendulum-v1" / "small" / "seed_0" / "run.json").read_text())
    assert meta["status"] == "completed" and meta["steps_done"] == 400


@pytest.mark.slow
def test_dsac_t_reaches_minus_300_on_pendulum_within_15k_steps(run_cli, tmp_path):
    code, _, err = run_cli("run", "dsac_t", "--env", "Pendulum", "--steps", "15000", "--eval-every", "5000",
                           "--eval-episodes", "10", "--seed", "0", "--out", tmp_path, "--quiet")
    assert code == 0, err
    meta = json.loads((tmp_path / "Pendulum-v1" / "dsac_t" / "seed_0" / "run.json").read_text())
    # random policy: -1188; SAC and TD3 are held to the same threshold (tests/test_learning.py)
    assert meta["final_score"] >= -300, meta["final_score"]
