"""BC, TD3+BC and IQL: losses and gradients against hand computations on tiny batches, population
independence, the IQL actor's cosine schedule, and checkpoint round trips.

Everything runs in float64 with tiny networks (hidden_sizes=[3]). The references evaluate each
member's networks with plain matmuls on cloned parameters and write the losses as the agents'
docstrings (and the papers) do; autograd on those clones gives the reference gradients, which the
agents' hand-written backward passes must match.
"""
import copy
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import Batch, get_agent
from drlbench.config import build, load_preset
from drlbench.loops.offline import Config as OfflineConfig
from drlbench.population import Population

OBS_DIM, ACT_DIM = 3, 2
OBS = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
TINY = ["hidden_sizes=[3]"]
AGENT_NAMES = ["bc", "td3_bc", "iql"]


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def make_agent(name, seeds=(0,), overrides=(), total_updates=100):
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OfflineConfig], load_preset(name, None), [*TINY, *overrides])
    agent = cls(OBS, ACT, hp, Population(list(seeds)))
    agent.attach_dataset(torch.zeros(4, OBS_DIM), torch.zeros(4, ACT_DIM), total_updates)
    return agent


def tiny_batch(p=1, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    terminated = torch.zeros(p, b)
    terminated[:, 1] = 1.0
    return Batch(obs=torch.randn(p, b, OBS_DIM, generator=g), action=torch.rand(p, b, ACT_DIM, generator=g) * 1.8 - 0.9,
                 reward=torch.randn(p, b, generator=g), next_obs=torch.randn(p, b, OBS_DIM, generator=g),
                 terminated=terminated)


def member_params(mlp, member, copy=0):
    """Leaf clones [(W, b), ...] of one member's (and twin copy's) layers, for autograd references."""
    index = member * mlp.copies + copy
    return [(layer.weight[index].detach().clone().requires_grad_(True),
             layer.bias[index, 0].detach().clone().requires_grad_(True)) for layer in mlp.layers]


def forward(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = torch.relu(x)
    return x


def assert_grads(mlp, member, params, copy=0, what=""):
    index = member * mlp.copies + copy
    for layer, (w, b) in zip(mlp.layers, params):
        assert torch.allclose(layer.weight.grad[index], w.grad, rtol=1e-9, atol=1e-12), what
        assert torch.allclose(layer.bias.grad[index, 0], b.grad, rtol=1e-9, atol=1e-12), what


# --- BC ------------------------------------------------------------------------------------------

def test_bc_loss_and_gradients_by_hand():
    agent = make_agent("bc", seeds=(3, 4))
    batch = tiny_batch(p=2)
    refs = [member_params(agent.actor, m) for m in range(2)]
    metrics = agent.update(batch)
    assert metrics["actor_loss"].shape == (2,)
    for m, params in enumerate(refs):
        pi = torch.tanh(forward(params, batch.obs[m]))
        loss = ((pi - batch.action[m]) ** 2).mean()                 # mean over batch and action dims
        loss.backward()
        assert metrics["actor_loss"][m].item() == pytest.approx(loss.item(), rel=1e-12)
        assert_grads(agent.actor, m, params, what=f"bc member {m}")


def test_bc_act_is_deterministic_and_in_bounds():
    agent = make_agent("bc")
    obs = 100 * torch.randn(1, 5, OBS_DIM)
    a, b = agent.act(obs, deterministic=False), agent.act(obs, deterministic=True)
    assert torch.equal(a, b) and a.shape == (1, 5, ACT_DIM) and a.abs().max() <= 1.0


def test_bc_fits_a_fixed_batch():
    agent = make_agent("bc", overrides=["hidden_sizes=[16]", "actor_lr=1e-2"])
    batch = tiny_batch(b=8, seed=5)
    first = agent.update(batch)["actor_loss"].item()
    for _ in range(300):
        last = agent.update(batch)["actor_loss"].item()
    assert last < 0.05 * first


# --- TD3+BC --------------------------------------------------------------------------------------

def test_td3_bc_critic_loss_by_hand():
    agent = make_agent("td3_bc", seeds=(1, 2))
    batch = tiny_batch(p=2)
    gamma, sigma, c = agent.config.gamma, agent.config.policy_noise, agent.config.noise_clip
    noises = []
    for g in agent.population.generators:                      # the noise the update will draw, per member
        state = g.get_state()
        noises.append(torch.randn(3, ACT_DIM, generator=g))
        g.set_state(state)
    actor_t = [member_params(agent.actor_target, m) for m in range(2)]
    critic_t = [[member_params(agent.critic_target, m, k) for k in range(2)] for m in range(2)]
    critic = [[member_params(agent.critic, m, k) for k in range(2)] for m in range(2)]
    metrics = agent.update(batch)
    for m in range(2):
        with torch.no_grad():
            noise = (noises[m] * sigma).clamp(-c, c)
            next_a = (torch.tanh(forward(actor_t[m], batch.next_obs[m])) + noise).clamp(-1, 1)
            x_next = torch.cat([batch.next_obs[m], next_a], -1)
            q_next = torch.minimum(forward(critic_t[m][0], x_next), forward(critic_t[m][1], x_next)).squeeze(-1)
            y = batch.reward[m] + gamma * (1 - batch.terminated[m]) * q_next
        x = torch.cat([batch.obs[m], batch.action[m]], -1)
        loss = sum(((forward(critic[m][k], x).squeeze(-1) - y) ** 2).mean() for k in range(2))
        loss.backward()
        assert metrics["critic_loss"][m].item() == pytest.approx(loss.item(), rel=1e-12)
        for k in range(2):
            assert_grads(agent.critic, m, critic[m][k], copy=k, what=f"critic member {m} twin {k}")


def test_td3_bc_actor_loss_lambda_per_member_by_hand():
    """lambda = alpha / mean|Q1(s, pi(s))| over the member's own batch, detached; BC = mean (pi - a)^2."""
    agent = make_agent("td3_bc", seeds=(1, 2), overrides=["policy_delay=1"])
    batch = tiny_batch(p=2, seed=4)
    batch.obs[1] *= 5.0                                          # members see different Q scales
    actor = [member_params(agent.actor, m) for m in range(2)]
    metrics = agent.update(batch)                                # critic step, then the actor step
    alpha = agent.config.alpha
    lambdas = []
    for m in range(2):
        q1_params = member_params(agent.critic, m, 0)            # the critic after its step (the actor's critic)
        for w, b in q1_params:
            w.requires_grad_(False), b.requires_grad_(False)
        pi = torch.tanh(forward(actor[m], batch.obs[m]))
        q1 = forward(q1_params, torch.cat([batch.obs[m], pi], -1)).squeeze(-1)
        lam = alpha / q1.abs().mean().detach()
        bc = ((pi - batch.action[m]) ** 2).mean()
        loss = -lam * q1.mean() + bc
        loss.backward()
        lambdas.append(lam.item())
        assert metrics["lambda"][m].item() == pytest.approx(lam.item(), rel=1e-12)
        assert metrics["bc_loss"][m].item() == pytest.approx(bc.item(), rel=1e-12)
        assert metrics["actor_loss"][m].item() == pytest.approx(loss.item(), rel=1e-12)
        assert_grads(agent.actor, m, actor[m], what=f"actor member {m}")
    assert lambdas[0] != pytest.approx(lambdas[1], rel=1e-3)


def test_td3_bc_delays_the_actor_and_targets():
    agent = make_agent("td3_bc")                                 # policy_delay = 2 in the preset
    batch = tiny_batch()
    actor0 = copy.deepcopy(agent.actor.state_dict())
    target0 = copy.deepcopy(agent.critic_target.state_dict())
    agent.update(batch)
    assert all(torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor0.items())
    assert all(torch.equal(v, agent.critic_target.state_dict()[k]) for k, v in target0.items())
    metrics = agent.update(batch)
    assert any(not torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor0.items())
    assert any(not torch.equal(v, agent.critic_target.state_dict()[k]) for k, v in target0.items())
    assert metrics["lambda"].item() > 0
    a = agent.act(10 * torch.randn(1, 4, OBS_DIM), deterministic=False)
    assert a.abs().max() <= 1.0


# --- IQL -----------------------------------------------------------------------------------------

def shift_value_bias(agent, batch):
    """Move V's output bias so that u = min Qbar(s, a) - V(s) has both signs (one negative, two positive)."""
    with torch.no_grad():
        x = torch.cat([batch.obs, batch.action], -1)
        target_q = agent.critic_target(x).squeeze(-1).min(1).values[0]
        u = (target_q - agent.value(batch.obs).squeeze(-1)[0]).sort().values
        agent.value.layers[-1].bias[0] += (u[0] + u[1]) / 2


def test_iql_losses_gradients_and_update_order_by_hand():
    # value_lr large so that using V before or after its step makes a visible difference;
    # temperature large so that exp(beta A) exceeds 100 and the clip binds for some samples.
    agent = make_agent("iql", overrides=["value_lr=0.1", "temperature=200"])
    batch = tiny_batch(seed=2)
    shift_value_bias(agent, batch)
    with torch.no_grad():
        agent.log_std.copy_(torch.tensor([[[-6.0, 0.3]]]))       # first dim below log_std_min = -5: clipped
    cfg = agent.config
    critic_t = [member_params(agent.critic_target, 0, k) for k in range(2)]
    critic = [member_params(agent.critic, 0, k) for k in range(2)]
    value = member_params(agent.value, 0)
    actor = member_params(agent.actor, 0)
    log_std = agent.log_std[0, 0].detach().clone().requires_grad_(True)
    metrics = agent.update(batch)
    s, a = batch.obs[0], batch.action[0]

    # value: expectile loss on the target critics' min
    with torch.no_grad():
        x = torch.cat([s, a], -1)
        target_q = torch.minimum(forward(critic_t[0], x), forward(critic_t[1], x)).squeeze(-1)
    u = target_q - forward(value, s).squeeze(-1)
    assert (u > 0).any() and (u < 0).any()
    value_loss = (torch.abs(cfg.expectile - (u < 0).double()) * u ** 2).mean()
    value_loss.backward()
    assert metrics["value_loss"].item() == pytest.approx(value_loss.item(), rel=1e-12)
    assert_grads(agent.value, 0, value, what="value")

    # actor: AWR with the value network after its step, weights clipped at 100
    with torch.no_grad():
        v_new = agent.value(batch.obs).squeeze(-1)[0]           # V is not touched after its step
        v_next = agent.value(batch.next_obs).squeeze(-1)[0]
        v_old = forward(value, s).squeeze(-1)
    weight = torch.clamp(torch.exp(cfg.temperature * (target_q - v_new)), max=100.0)
    assert (weight == 100.0).any() and (weight < 100.0).any()
    mean = torch.tanh(forward(actor, s))
    std = torch.clamp(log_std, -5.0, 2.0).exp()
    log_prob = torch.distributions.Normal(mean, std).log_prob(a).sum(-1)
    actor_loss = -(weight * log_prob).mean()
    actor_loss.backward()
    assert metrics["actor_loss"].item() == pytest.approx(actor_loss.item(), rel=1e-12)
    assert metrics["weight"].item() == pytest.approx(weight.mean().item(), rel=1e-12)
    assert_grads(agent.actor, 0, actor, what="actor mean")
    assert log_std.grad[0] == 0.0 and log_std.grad[1] != 0.0
    assert torch.allclose(agent.log_std.grad[0, 0], log_std.grad, rtol=1e-9, atol=1e-12)
    with torch.no_grad():                                        # the old V would have given another loss
        w_old = torch.clamp(torch.exp(cfg.temperature * (target_q - v_old)), max=100.0)
        assert abs(-(w_old * log_prob).mean().item() - actor_loss.item()) > 1e-6

    # critics: r + gamma (1 - d) V(s') with the updated V, both twins
    y = batch.reward[0] + cfg.gamma * (1 - batch.terminated[0]) * v_next
    critic_loss = sum(((forward(critic[k], torch.cat([s, a], -1)).squeeze(-1) - y) ** 2).mean() for k in range(2))
    critic_loss.backward()
    assert metrics["critic_loss"].item() == pytest.approx(critic_loss.item(), rel=1e-12)
    for k in range(2):
        assert_grads(agent.critic, 0, critic[k], copy=k, what=f"critic twin {k}")

    # target critics: Polyak average of the old targets and the stepped critics
    for k in range(2):
        stepped = member_params(agent.critic, 0, k)
        for layer, (w_t, _), (w, _) in zip(agent.critic_target.layers, critic_t[k], stepped):
            assert torch.allclose(layer.weight[k], (1 - cfg.tau) * w_t + cfg.tau * w, rtol=1e-12)


def test_iql_expectile_weights_by_sign():
    """tau = 0.7: positive errors weigh 0.7, negative ones 0.3 (L2^tau(u) = |tau - 1(u < 0)| u^2)."""
    agent = make_agent("iql", overrides=["value_lr=1e-12"])
    batch = tiny_batch(seed=3)
    shift_value_bias(agent, batch)
    with torch.no_grad():
        x = torch.cat([batch.obs, batch.action], -1)
        u = (agent.critic_target(x).squeeze(-1).min(1).values - agent.value(batch.obs).squeeze(-1))[0]
    expected = (torch.where(u > 0, 0.7, 0.3) * u * u).mean()
    assert agent.update(batch)["value_loss"].item() == pytest.approx(expected.item(), rel=1e-12)


def test_iql_policy_mean_acts_and_sampling_stays_in_bounds():
    agent = make_agent("iql")
    obs = 10 * torch.randn(1, 6, OBS_DIM)
    with torch.no_grad():
        params = member_params(agent.actor, 0)
        mean = torch.tanh(forward(params, obs[0]))
    assert torch.allclose(agent.act(obs, deterministic=True)[0], mean)
    sample = agent.act(obs, deterministic=False)
    assert sample.abs().max() <= 1.0 and not torch.equal(sample[0], mean)


def test_iql_actor_lr_cosine_schedule():
    agent = make_agent("iql", total_updates=4)
    batch = tiny_batch()
    lrs = [agent.update(batch)["actor_lr"].item() for _ in range(5)]
    expected = [3e-4 * 0.5 * (1 + math.cos(math.pi * min(k, 4) / 4)) for k in range(5)]
    assert lrs == pytest.approx(expected, abs=1e-15)
    assert agent.optimizers["critic"].param_groups[0]["lr"] == 3e-4        # only the actor decays
    constant = make_agent("iql", overrides=["actor_lr_schedule=constant"], total_updates=4)
    assert [constant.update(batch)["actor_lr"].item() for _ in range(3)] == [3e-4] * 3


def test_iql_cosine_schedule_needs_the_run_length():
    cls = get_agent("iql")
    (hp, _), _ = build([cls.Config, OfflineConfig], load_preset("iql", None), TINY)
    agent = cls(OBS, ACT, hp, Population([0]))
    with pytest.raises(RuntimeError, match="attach_dataset"):
        agent.update(tiny_batch())


def test_presets_follow_the_official_data_conventions():
    def loop(name):
        return build([get_agent(name).Config, OfflineConfig], load_preset(name, None), [])[0][1]
    assert loop("bc").normalize_states and loop("td3_bc").normalize_states
    assert not loop("iql").normalize_states and loop("iql").normalize_rewards == "return_range"
    assert loop("td3_bc").normalize_rewards == "none" and loop("bc").batch_size == 256


# --- population and checkpoints ------------------------------------------------------------------

def params_of(agent, member):
    out = {}
    for name, p in agent.named_parameters():
        per_member = p.shape[0] // agent.population.size
        out[name] = p.detach()[member * per_member:(member + 1) * per_member].clone()
    return out


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_member_equals_a_lone_run_with_the_same_seed(name):
    batched = make_agent(name, seeds=(5, 7))
    lone = make_agent(name, seeds=(7,))
    batch = tiny_batch(p=2, seed=3)
    lone_batch = Batch(*(getattr(batch, f)[1:].clone() for f in ("obs", "action", "reward", "next_obs", "terminated")))
    for _ in range(4):
        m_batched, m_lone = batched.update(batch), lone.update(lone_batch)
    for key, value in m_lone.items():
        assert torch.allclose(m_batched[key][1:], value, rtol=1e-10, atol=1e-12), key
    member, alone = params_of(batched, 1), params_of(lone, 0)
    for key in member:
        assert torch.allclose(member[key], alone[key], rtol=1e-10, atol=1e-12), key


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_member_update_ignores_other_members_data(name):
    batch_a, batch_b = tiny_batch(p=2, seed=1), tiny_batch(p=2, seed=1)
    other = tiny_batch(p=2, seed=99)
    for field in ("obs", "action", "reward", "next_obs"):
        getattr(batch_b, field)[1] = getattr(other, field)[1]
    agents = []
    for batch in (batch_a, batch_b):
        agent = make_agent(name, seeds=(0, 1))
        for _ in range(4):
            agent.update(batch)
        agents.append(agent)
    member0 = [params_of(a, 0) for a in agents]
    member1 = [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_checkpoint_round_trip_resumes_exactly(name):
    agent = make_agent(name, seeds=(2, 3), total_updates=10)
    batch = tiny_batch(p=2, seed=6)
    for _ in range(3):                                   # odd: TD3+BC resumes mid policy delay
        agent.update(batch)
    buffer = io.BytesIO()
    torch.save({"agent": agent.checkpoint(), "population": agent.population.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = make_agent(name, seeds=(2, 3), total_updates=10)
    resumed.restore(saved["agent"])
    resumed.population.load_state_dict(saved["population"])
    for _ in range(3):
        expected, got = agent.update(batch), resumed.update(batch)
        for key in expected:
            assert torch.equal(expected[key], got[key]), key
    for (key, p), q in zip(agent.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), key
