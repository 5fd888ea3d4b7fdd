"""The hand-written backward passes (drlbench.nn, SAC and TD3 updates) against torch.autograd.

Everything runs in float64 on tiny random inputs with a population of P = 3 members, so a
correct hand gradient matches autograd to ~1e-13; the checks allow 1e-10 (relative to the
largest entry). The references below evaluate the networks with plain broadcasting matmuls and
write the losses straight from the agents' docstrings, sharing no code with the paths under test.
"""
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import drlbench.agents.sac as sac_module
import drlbench.nn as nn_module
from drlbench.agents import Batch, get_agent
from drlbench.config import build, load_preset
from drlbench.loops.off_policy import Config as OffPolicyConfig
from drlbench.nn import PopMLP, batched_matmul, tanh_gaussian, tanh_gaussian_backward
from drlbench.population import Population

P, B = 3, 5
SEEDS = (0, 1, 2)
OBS_DIM, ACT_DIM = 3, 2
RTOL = 1e-10


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """max |actual - expected| <= RTOL * max |expected| (float64, same shape)."""
    assert actual.dtype == torch.float64 and expected.dtype == torch.float64, what
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().item() if expected.numel() else 0.0
    error = (actual - expected).abs().max().item() if expected.numel() else 0.0
    assert error <= RTOL * max(scale, 1e-12), f"{what}: max error {error:.3e}, scale {scale:.3e}"


def mlp_reference(mlp: PopMLP, x: torch.Tensor) -> torch.Tensor:
    """Autograd-able evaluation with broadcasting matmuls: x (P, B, in) -> (P, copies, B, out)."""
    h = x.unsqueeze(1)
    for i, layer in enumerate(mlp.layers):
        m, n_in, n_out = layer.weight.shape
        h = h @ layer.weight.view(m // mlp.copies, mlp.copies, n_in, n_out) + layer.bias.view(
            m // mlp.copies, mlp.copies, 1, n_out)
        if i < len(mlp.layers) - 1:
            h = torch.relu(h)
    return h


def make_mlp(sizes, copies=1, seeds=SEEDS) -> PopMLP:
    return PopMLP(Population(list(seeds)), sizes, copies=copies)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- building blocks -----------------------------------------------------------------------------

@pytest.mark.parametrize("columns", [1, 16, 17])
@pytest.mark.parametrize("with_bias", [False, True])
def test_batched_matmul_equals_matmul(columns, with_bias):
    """Both layouts: <= THIN output columns go through the transposed product."""
    a, b = randn(P, B, 4, seed=1), randn(P, 4, columns, seed=2)
    bias = randn(P, 1, columns, seed=3) if with_bias else None
    expected = a @ b + (bias if with_bias else 0.0)
    assert_close(batched_matmul(a, b, bias), expected, "batched_matmul")


def check_pop_mlp_backward(sizes, copies, seed=0):
    """Hand parameter and input gradients of sum(G * mlp(x)) equal autograd's, G arbitrary."""
    mlp = make_mlp(sizes, copies)
    x = randn(P, B, sizes[0], seed=seed).requires_grad_(True)
    upstream = randn(P, copies, B, sizes[-1], seed=seed + 100)
    out = mlp_reference(mlp, x)
    params = list(mlp.parameters())
    *param_grads, input_grad = torch.autograd.grad((out * upstream).sum(), [*params, x])

    hand_out, trace = mlp.trace(x.detach())
    assert_close(hand_out, out.detach().reshape(P * copies, B, sizes[-1]), "trace output")
    hand_input_grad = mlp.backward(trace, upstream.reshape(P * copies, B, sizes[-1]), input_columns=slice(None))
    for i, (param, expected) in enumerate(zip(params, param_grads)):
        assert_close(param.grad, expected, f"parameter {i} grad")
    # the copies all read the same x: its gradient is the sum over copies
    assert_close(hand_input_grad.view(P, copies, B, -1).sum(1), input_grad, "input grad")
    tail = mlp.backward(trace, upstream.reshape(P * copies, B, sizes[-1]), weight_grads=False,
                        input_columns=slice(-2, None))
    assert_close(tail.view(P, copies, B, -1).sum(1), input_grad[..., -2:], "input grad, last 2 columns")


@pytest.mark.parametrize("sizes,copies", [
    ([4, 6, 5, 3], 1),       # actor-like, several hidden layers
    ([5, 7, 8, 1], 2),       # twin critic: single output, two copies
    ([4, 18, 20], 1),        # > THIN columns: the untransposed matmul paths
    ([3, 17, 2], 3),
    ([4, 2], 2),             # one linear layer, no ReLU
])
def test_pop_mlp_backward_matches_autograd(sizes, copies):
    check_pop_mlp_backward(sizes, copies)


def test_perturbed_relu_backward_is_detected(monkeypatch):
    """The checks can fail: a 1e-8 relative error in ReLU's backward is caught."""
    original = nn_module.relu_backward_
    monkeypatch.setattr(nn_module, "relu_backward_", lambda grad, output: original(grad, output).mul_(1 + 1e-8))
    with pytest.raises(AssertionError, match="grad"):
        check_pop_mlp_backward([5, 7, 8, 1], 2)


def test_pop_mlp_backward_first_copy_only():
    """Input gradient through copy 0 only (TD3's actor loss); parameter grads left alone."""
    mlp = make_mlp([5, 6, 7, 1], copies=2)
    x = randn(P, B, 5, seed=4).requires_grad_(True)
    upstream = randn(P, B, 1, seed=5)
    (expected,) = torch.autograd.grad((mlp_reference(mlp, x)[:, 0] * upstream).sum(), [x])
    out, trace = mlp.trace(x.detach(), first_copy_only=True)
    assert_close(out, mlp_reference(mlp, x)[:, 0].detach(), "first-copy output")
    grad = mlp.backward(trace, upstream, weight_grads=False, input_columns=slice(-2, None), first_copy_only=True)
    assert_close(grad, expected[..., -2:], "first-copy input grad")
    assert all(p.grad is None for p in mlp.parameters())


def test_pop_mlp_backward_on_row_slices_of_a_trace():
    """`inputs` may be row slices of a longer trace (SAC traces [s', s] once, backpropagates s only)."""
    mlp = make_mlp([4, 6, 5, 3])
    head, x = randn(P, B, 4, seed=6), randn(P, B, 4, seed=7).requires_grad_(True)
    upstream = randn(P, B, 3, seed=8)
    params = list(mlp.parameters())
    *param_grads, input_grad = torch.autograd.grad((mlp_reference(mlp, x)[:, 0] * upstream).sum(), [*params, x])
    _, trace = mlp.trace(torch.cat([head, x.detach()], 1))
    hand_input_grad = mlp.backward([t[:, B:] for t in trace], upstream, input_columns=slice(None))
    for i, (param, expected) in enumerate(zip(params, param_grads)):
        assert_close(param.grad, expected, f"parameter {i} grad")
    assert_close(hand_input_grad, input_grad, "input grad")


def chosen_reference(mlp, x, chosen, grad, columns):
    """d/dx[..., columns] of grad * sum_b output[p, chosen[p, b], b], by autograd."""
    x = x.clone().requires_grad_(True)
    out = mlp_reference(mlp, x)[..., 0]                               # (P, copies, B)
    picked = out.gather(1, chosen.unsqueeze(1)).squeeze(1)
    (input_grad,) = torch.autograd.grad(grad * picked.sum(), [x])
    return input_grad[..., columns]


@pytest.mark.parametrize("copies", [2, 3])
@pytest.mark.parametrize("rule", ["argmin", "random", "one_copy_empty"])
def test_chosen_copy_input_grad_matches_autograd(copies, rule):
    mlp = make_mlp([5, 6, 7, 1], copies=copies)
    x = randn(P, B, 5, seed=9)
    out, trace = mlp.trace(x)
    if rule == "argmin":     # as SAC's min over twin critics
        chosen = out.view(P, copies, B).argmin(1)
    else:
        chosen = torch.randint(copies, (P, B), generator=torch.Generator().manual_seed(10))
        if rule == "one_copy_empty":   # member 0 reads copy 1 only, member 1 copy 0 only
            chosen[0], chosen[1] = 1, 0
    columns = slice(-2, None)
    hand = mlp.chosen_copy_input_grad(trace, chosen, -0.37, columns)
    assert_close(hand, chosen_reference(mlp, x, chosen, -0.37, columns), "chosen-copy input grad")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the batched branch runs on non-CPU devices only")
def test_chosen_copy_input_grad_batched_branch_on_cuda():
    pop = Population(list(SEEDS), device="cuda")
    mlp = PopMLP(pop, [5, 6, 7, 1], copies=2)
    x = randn(P, B, 5, seed=9).cuda()
    out, trace = mlp.trace(x)
    chosen = out.view(P, 2, B).argmin(1)
    hand = mlp.chosen_copy_input_grad(trace, chosen, -0.37, slice(-2, None))
    assert_close(hand, chosen_reference(mlp, x, chosen, -0.37, slice(-2, None)), "chosen-copy input grad (cuda)")


def test_tanh_gaussian_and_backward_match_autograd():
    """a = tanh(mean + std eps) and log pi(a) with the tanh correction; (dL/dmean, dL/dstd) for
    L = sum(G_a * a) + sum(G_logp * log pi), arbitrary upstream G (the chain to a log-std is the
    usual * std; SAC's to its raw scale is checked end to end below)."""
    mean = randn(P, B, ACT_DIM, seed=11).requires_grad_(True)
    log_std = (0.5 * randn(P, B, ACT_DIM, seed=12)).requires_grad_(True)
    noise = randn(P, B, ACT_DIM, seed=13)
    grad_action, grad_log_prob = randn(P, B, ACT_DIM, seed=14), randn(P, B, seed=15)
    std = log_std.exp()
    u = mean + std * noise
    action = torch.tanh(u)
    log_prob = (torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - action.pow(2))).sum(-1)
    d_mean, d_std, d_log_std = torch.autograd.grad(
        (grad_action * action).sum() + (grad_log_prob * log_prob).sum(), [mean, std, log_std])

    hand_action, hand_log_prob = tanh_gaussian(mean.detach(), std.detach(), noise)
    assert_close(hand_action, action.detach(), "action")
    assert_close(hand_log_prob, log_prob.detach(), "log-prob")
    hand_mean, hand_std = tanh_gaussian_backward(hand_action, std.detach(), noise, grad_action, grad_log_prob)
    assert_close(hand_mean, d_mean, "dL/dmean")
    assert_close(hand_std, d_std, "dL/dstd")
    assert_close(hand_std * std.detach(), d_log_std, "dL/dlog std")


# --- one agent update, hand gradients against an autograd implementation of the same losses ------

OBS = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)


def make_agent(name, overrides=()):
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset(name, None),
                       ["hidden_sizes=8,18", *overrides])
    return cls(OBS, ACT, hp, Population(list(SEEDS)))


def make_batch(seed):
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(P, B, OBS_DIM, generator=g),
                 action=torch.rand(P, B, ACT_DIM, generator=g) * 2 - 1,
                 reward=torch.randn(P, B, generator=g),
                 next_obs=torch.randn(P, B, OBS_DIM, generator=g),
                 terminated=(torch.rand(P, B, generator=g) < 0.3).to(torch.float64))


def record_gradients(agent) -> list[tuple[str, list[torch.Tensor]]]:
    """Wrap each optimiser's step to log (name, gradients) just before it steps."""
    log = []
    for name, optimizer in agent.optimizers.items():
        def step(name=name, optimizer=optimizer, original=optimizer.step):
            log.append((name, [p.grad.clone() for group in optimizer.param_groups for p in group["params"]]))
            return original()
        optimizer.step = step
    return log


def autograd_step(optimizer, loss: torch.Tensor) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for param, grad in zip(params, torch.autograd.grad(loss, params)):
        param.grad = grad
    optimizer.step()


@torch.no_grad()
def polyak(target, online, tau):
    for t, o in zip(target.parameters(), online.parameters()):
        t.copy_((1 - tau) * t + tau * o)


def sac_reference_update(agent, batch) -> dict[str, torch.Tensor]:
    """The SAC docstring's losses, by autograd; noise drawn in the update's order (a', a~, resample)."""
    cfg, act_dim = agent.config, agent.act_dim
    opt = agent.optimizers

    def policy(obs, eps):
        out = mlp_reference(agent.actor, obs)[:, 0]
        mean, std = out[..., :act_dim], F.softplus(out[..., act_dim:]) + 1e-5
        u = mean + std * eps
        action = torch.tanh(u)
        return action, (torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - action.pow(2))).sum(-1)

    def q_values(critic, obs, action):
        return mlp_reference(critic, torch.cat([obs, action], -1))[..., 0]      # (P, 2, B)

    alpha = agent.log_alpha.detach().exp()[:, None]
    next_noise, noise = agent.population.randn(B, act_dim), agent.population.randn(B, act_dim)
    with torch.no_grad():
        next_action, next_log_prob = policy(batch.next_obs, next_noise)
        soft_next = q_values(agent.critic_target, batch.next_obs, next_action).min(1).values - alpha * next_log_prob
        y = cfg.reward_scale * batch.reward + cfg.gamma * (1 - batch.terminated) * soft_next
    q = q_values(agent.critic, batch.obs, batch.action)
    critic_loss = 0.5 * (q - y.unsqueeze(1)).pow(2).mean(-1).sum(1)          # J_Q(theta_1) + J_Q(theta_2)
    autograd_step(opt["critic"], critic_loss.sum())                          # members' losses are independent

    action, log_prob = policy(batch.obs, noise)
    q_pi = q_values(agent.critic, batch.obs, action)
    q_hat = q_pi.min(1).values if cfg.actor_q == "min" else q_pi.mean(1)
    actor_loss = (alpha * log_prob - q_hat).mean(-1)
    autograd_step(opt["actor"], actor_loss.sum())

    with torch.no_grad():
        if cfg.alpha_resample:
            log_prob = policy(batch.obs, agent.population.randn(B, act_dim))[1]
    alpha_loss = -(agent.log_alpha.exp()[:, None] * (log_prob.detach() + agent.target_entropy)).mean(-1)
    autograd_step(opt["alpha"], alpha_loss.sum())

    agent.updates += 1
    if agent.updates % cfg.target_update_interval == 0:
        polyak(agent.critic_target, agent.critic, cfg.tau)
    return {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss}


def td3_reference_update(agent, batch) -> dict[str, torch.Tensor]:
    """The TD3 docstring's losses, by autograd: clipped double Q with target smoothing, actor -Q1."""
    cfg, opt = agent.config, agent.optimizers
    noise = (agent.population.randn(B, agent.act_dim) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
    with torch.no_grad():
        next_action = (torch.tanh(mlp_reference(agent.actor_target, batch.next_obs)[:, 0]) + noise).clamp(-1, 1)
        next_q = mlp_reference(agent.critic_target, torch.cat([batch.next_obs, next_action], -1))[..., 0]
        y = batch.reward + cfg.gamma * (1 - batch.terminated) * next_q.min(1).values
    q = mlp_reference(agent.critic, torch.cat([batch.obs, batch.action], -1))[..., 0]
    critic_loss = (q - y.unsqueeze(1)).pow(2).mean(-1).sum(1)                # MSE(Q1, y) + MSE(Q2, y)
    autograd_step(opt["critic"], critic_loss.sum())
    metrics = {"critic_loss": critic_loss}

    agent.updates += 1
    if agent.updates % cfg.policy_delay == 0:
        action = torch.tanh(mlp_reference(agent.actor, batch.obs)[:, 0])
        actor_loss = -mlp_reference(agent.critic, torch.cat([batch.obs, action], -1))[:, 0, :, 0].mean(-1)
        autograd_step(opt["actor"], actor_loss.sum())
        polyak(agent.critic_target, agent.critic, cfg.tau)
        polyak(agent.actor_target, agent.actor, cfg.tau)
        metrics["actor_loss"] = actor_loss
    return metrics


def check_update(name, reference_update, overrides=(), updates=2):
    """`updates` hand updates vs autograd ones from identical agents: each optimiser step's
    gradients, the losses, and every parameter (targets, temperature) afterwards."""
    hand, reference = make_agent(name, overrides), make_agent(name, overrides)
    for (key, a), (_, b) in zip(hand.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), f"agents differ before the update: {key}"
    hand_log, reference_log = record_gradients(hand), record_gradients(reference)
    for step in range(updates):
        batch = make_batch(seed=20 + step)
        hand_metrics, reference_metrics = hand.update(batch), reference_update(reference, batch)
        for key, expected in reference_metrics.items():
            assert_close(hand_metrics[key], expected.detach(), f"update {step}: {key}")
    assert [name for name, _ in hand_log] == [name for name, _ in reference_log]
    for i, ((opt_name, hand_grads), (_, reference_grads)) in enumerate(zip(hand_log, reference_log)):
        for j, (a, b) in enumerate(zip(hand_grads, reference_grads)):
            assert b.abs().max() > 0, f"step {i} ({opt_name}), parameter {j}: zero gradient, nothing checked"
            assert_close(a, b, f"step {i} ({opt_name}), parameter {j} grad")
    for (key, a), (_, b) in zip(hand.state_dict().items(), reference.state_dict().items()):
        assert_close(a, b, f"after {updates} updates: {key}")
    return hand_log


@pytest.mark.parametrize("overrides", [(), ("actor_q=mean",), ("alpha_resample=false", "reward_scale=2")])
def test_sac_update_matches_autograd(overrides):
    log = check_update("sac", sac_reference_update, overrides)
    assert [name for name, _ in log] == ["critic", "actor", "alpha"] * 2


def test_td3_update_matches_autograd():
    log = check_update("td3", td3_reference_update)                 # policy_delay = 2: actor on update 2
    assert [name for name, _ in log] == ["critic", "critic", "actor"]


def test_sac_check_detects_perturbed_policy_gradient(monkeypatch):
    """The end-to-end check can fail: a 1e-8 relative error in dL/dstd is caught."""
    def perturbed(*args):
        grad_mean, grad_std = tanh_gaussian_backward(*args)
        return grad_mean, grad_std * (1 + 1e-8)
    monkeypatch.setattr(sac_module, "tanh_gaussian_backward", perturbed)
    with pytest.raises(AssertionError, match="actor"):
        check_update("sac", sac_reference_update, updates=1)
