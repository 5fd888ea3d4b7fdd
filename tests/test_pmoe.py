"""PMOE (SAC and PPO): mixture log-densities, the best-expert choice and the gate's frequency loss
by hand, population independence, and (slow) learning on Pendulum."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from drlbench.agents.pmoe_ppo import GaussianMixture
from drlbench.agents.pmoe_sac import mixture_log_prob, sample_categorical, tanh_mixture_log_prob
from drlbench.population import Population
from tests import test_onpolicy as onpolicy
from tests.test_losses import make_agent, mlp_by_hand, tiny_batch
from tests.test_population import params_of


def torch_mixture(weights, mean, std):
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=weights),
        torch.distributions.Independent(torch.distributions.Normal(mean, std), 1))


def test_mixture_log_prob_matches_a_direct_computation():
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    mean = torch.tensor([[[0.1, -0.4], [1.0, 0.3], [-0.7, 0.0]]])
    std = torch.tensor([[[0.5, 1.2], [0.3, 0.8], [1.0, 0.2]]])
    x = torch.tensor([[0.4, -0.1]])
    direct = sum(weights[0, k] * math.prod(
        math.exp(-0.5 * ((x[0, i] - mean[0, k, i]) / std[0, k, i]) ** 2) / (std[0, k, i] * math.sqrt(2 * math.pi))
        for i in range(2)) for k in range(3))
    got = mixture_log_prob(weights.log(), mean, std, x)
    assert got.item() == pytest.approx(math.log(direct), rel=1e-5)
    assert torch.allclose(got, torch_mixture(weights, mean, std).log_prob(x), atol=1e-5)
    # squashed: a = tanh(x), density / prod(1 - a^2)
    a = torch.tanh(x)
    expected = math.log(direct) - torch.log(1 - a.pow(2)).sum().item()
    assert tanh_mixture_log_prob(weights.log(), mean, std, a).item() == pytest.approx(expected, rel=1e-4)


def test_mixture_sampling_follows_the_gate_and_the_experts():
    pop = Population([0])
    n = 20000
    weights = torch.tensor([0.25, 0.75]).expand(1, n, 2)
    mean = torch.tensor([[-3.0], [3.0]]).expand(1, n, 2, 1)
    dist = GaussianMixture(weights.log(), mean, torch.full((1, 1, 2, 1), math.log(0.1)))
    x = dist.sample(pop)
    assert (x > 0).float().mean().item() == pytest.approx(0.75, abs=0.015)
    assert x[x > 0].mean().item() == pytest.approx(3.0, abs=0.01)
    counts = torch.bincount(sample_categorical(pop, weights)[0], minlength=2).float() / n
    assert torch.allclose(counts, torch.tensor([0.25, 0.75]), atol=0.015)
    assert torch.equal(dist.mode(), mean[:, :, 1])   # the expert with the largest weight


# --- SAC-PMOE --------------------------------------------------------------------------------
def draws(agent, b, k, a):
    """Member 0's draws in `update` order: gate uniform at s', noise at s', noise of all experts at s."""
    generator = agent.population.generators[0]
    state = generator.get_state()
    u = torch.rand(b, generator=generator)
    next_noise = torch.randn(b, a, generator=generator)
    noise = torch.randn(b, k, a, generator=generator)
    generator.set_state(state)
    return u, next_noise, noise


def tanh_gaussian_by_hand(mean, std, eps):
    u = mean + std * eps
    a = torch.tanh(u)
    return a, (torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - a.pow(2))).sum(-1)


def expert_params(out, k, a):
    mean, log_std = out.view(*out.shape[:-1], 2, k, a).unbind(-3)
    return mean, log_std.clamp(-20, 2).exp()


@pytest.mark.parametrize("actor_q", ["min", "mean"])
def test_best_expert_actor_and_frequency_loss_by_hand(actor_q):
    """k* = argmax_k Q^(s, a~_k); J = mean[alpha log pi_k*(a~_k*) - Q^(s, a~_k*)] + mean (w - onehot(k*))^2,
    with its gradient flowing through expert k* only."""
    k, a_dim = 3, 1
    agent = make_agent("pmoe_sac", overrides=[f"num_experts={k}", f"actor_q={actor_q}"])
    batch = tiny_batch()
    _, _, eps = draws(agent, 4, k, a_dim)
    actor_before = [prm.detach().clone() for prm in agent.actor.parameters()]
    gate_before = [prm.detach().clone() for prm in agent.gate.parameters()]
    metrics = agent.update(batch)      # the critic steps first; the actor loss reads the updated critics

    params = [prm.clone().requires_grad_(True) for prm in actor_before + gate_before]
    obs = batch.obs[0]
    h = obs
    actor_layers = list(zip(params[0:len(actor_before):2], params[1:len(actor_before):2]))
    for i, (w, bias) in enumerate(actor_layers):
        h = h @ w[0] + bias[0, 0]
        h = torch.relu(h) if i < len(actor_layers) - 1 else h
    mean, std = expert_params(h, k, a_dim)                              # (4, K, A)
    gate_w, gate_b = params[len(actor_before):]
    weights = torch.softmax(obs @ gate_w[0] + gate_b[0, 0], -1)         # (4, K)
    with torch.no_grad():
        scores = torch.zeros(4, k)
        for j in range(k):
            a_j = torch.tanh(mean[:, j] + std[:, j] * eps[:, j])
            x = torch.cat([obs, a_j], -1)
            q1, q2 = mlp_by_hand(agent.critic, x, 0).squeeze(-1), mlp_by_hand(agent.critic, x, 1).squeeze(-1)
            scores[:, j] = torch.minimum(q1, q2) if actor_q == "min" else (q1 + q2) / 2
        best = scores.argmax(-1)
    rows = torch.arange(4)
    a_best, log_pi_best = tanh_gaussian_by_hand(mean[rows, best], std[rows, best], eps[rows, best])
    x = torch.cat([obs, a_best], -1)
    q1, q2 = mlp_by_hand(agent.critic, x, 0).squeeze(-1), mlp_by_hand(agent.critic, x, 1).squeeze(-1)
    q_best = torch.minimum(q1, q2) if actor_q == "min" else (q1 + q2) / 2
    actor_loss = (1.0 * log_pi_best - q_best).mean()                    # alpha = 1 before the step
    onehot = torch.zeros(4, k)
    onehot[rows, best] = 1.0
    gate_loss = sum((weights[i, j] - onehot[i, j]) ** 2 for i in range(4) for j in range(k)) / (4 * k)
    (actor_loss + gate_loss).backward()

    assert metrics["actor_loss"].item() == pytest.approx(actor_loss.item(), rel=1e-4, abs=1e-5)
    assert metrics["gate_loss"].item() == pytest.approx(gate_loss.item(), rel=1e-5)
    got = [*agent.actor.parameters(), *agent.gate.parameters()]
    for param, reference in zip(got, params):
        assert torch.allclose(param.grad, reference.grad, rtol=1e-4, atol=1e-6)
    # only the best experts' output columns received gradient
    head_grad = agent.actor.layers[-1].bias.grad[0, 0].view(2, k, a_dim)
    never_best = [j for j in range(k) if j not in best.tolist()]
    for j in never_best:
        assert torch.all(head_grad[:, j] == 0)


def test_critic_target_uses_a_gate_sampled_expert_and_its_own_density():
    k, a_dim = 2, 1
    agent = make_agent("pmoe_sac", overrides=[f"num_experts={k}"])
    cfg = agent.config
    batch = tiny_batch()
    u, next_eps, _ = draws(agent, 4, k, a_dim)
    with torch.no_grad():
        nxt = batch.next_obs[0]
        mean, std = expert_params(mlp_by_hand(agent.actor, nxt, 0), k, a_dim)
        weights = torch.softmax(mlp_by_hand(agent.gate, nxt, 0), -1)
        expert = (weights.cumsum(-1) < u[:, None]).sum(-1).clamp(max=k - 1)   # inverse-CDF draw
        rows = torch.arange(4)
        a_next, log_pi = tanh_gaussian_by_hand(mean[rows, expert], std[rows, expert], next_eps)
        x_next = torch.cat([nxt, a_next], -1)
        q_next = torch.minimum(mlp_by_hand(agent.critic_target, x_next, 0), mlp_by_hand(agent.critic_target, x_next, 1))
        y = batch.reward[0] + cfg.gamma * (1 - batch.terminated[0]) * (q_next.squeeze(-1) - 1.0 * log_pi)
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        expected = sum(0.5 * (mlp_by_hand(agent.critic, x, c).squeeze(-1) - y).pow(2).mean() for c in (0, 1))
    assert agent.update(batch)["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)


def test_batch_reward_normalisation():
    agent = make_agent("pmoe_sac", overrides=["reward_normalization=batch", "reward_scale=10"])
    batch = tiny_batch()
    batch.terminated = torch.ones(1, 4)          # y = normalised reward only
    r = batch.reward[0]
    y = 10 * (r - r.mean()) / (r.std() + 1e-6)
    with torch.no_grad():
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        expected = sum(0.5 * (mlp_by_hand(agent.critic, x, c).squeeze(-1) - y).pow(2).mean() for c in (0, 1))
    assert agent.update(batch)["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_deterministic_action_is_the_largest_weight_experts_mean():
    agent = make_agent("pmoe_sac", overrides=["num_experts=3"])
    obs = torch.randn(1, 6, 3)
    with torch.no_grad():
        mean, _ = expert_params(mlp_by_hand(agent.actor, obs[0], 0), 3, 1)
        best = torch.softmax(mlp_by_hand(agent.gate, obs[0], 0), -1).argmax(-1)
        expected = torch.tanh(mean[torch.arange(6), best])
    assert torch.allclose(agent.act(obs, deterministic=True)[0], expected, atol=1e-6)


def test_sac_pmoe_member_update_ignores_other_members_data():
    batch_a, batch_b = tiny_batch(p=2, seed=1), tiny_batch(p=2, seed=1)
    other = tiny_batch(p=2, seed=99)
    for field in ("obs", "action", "reward", "next_obs"):
        getattr(batch_b, field)[1] = getattr(other, field)[1]
    agents = []
    for batch in (batch_a, batch_b):
        agent = make_agent("pmoe_sac", seeds=(0, 1))
        for _ in range(3):
            agent.update(batch)
        agents.append(agent)
    member0, member1 = [params_of(a, 0) for a in agents], [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


# --- PPO-PMOE --------------------------------------------------------------------------------
def test_ppo_pmoe_ratio_uses_the_mixture_and_gate_targets_come_from_q():
    agent = onpolicy.make_agent("pmoe_ppo", overrides=["num_experts=3", "q_hidden_sizes=8"])
    r = onpolicy.tiny_rollout(agent)
    obs, action = r.obs[0], r.action[0]
    with torch.no_grad():
        means = onpolicy.tanh_mlp_by_hand(agent.actor, obs).view(16, 3, 2)
        weights = torch.softmax(mlp_by_hand(agent.gate, obs, 0), -1)
        std = agent.log_std[0, 0].exp()                                         # (K, A)
        expected_log_prob = torch_mixture(weights, means, std.expand(16, 3, 2)).log_prob(action)
        scores = torch.stack([mlp_by_hand(agent.q_net, torch.cat([obs, means[:, j]], -1), 0).squeeze(-1)
                              for j in range(3)], -1)
        expected_gate = (weights - F.one_hot(scores.argmax(-1), 3)).pow(2).mean()
        expected_q = (mlp_by_hand(agent.q_net, torch.cat([obs, action], -1), 0).squeeze(-1) - r.returns[0]).pow(2).mean()
        assert torch.allclose(agent.distribution(r.obs).log_prob(r.action)[0], expected_log_prob, atol=1e-5)
        extra = agent.extra_losses(r.obs, r.action, r.returns)
        gate_loss, q_loss = extra["gate_loss"], extra["q_loss"]
    assert gate_loss.item() == pytest.approx(expected_gate.item(), rel=1e-5)
    assert q_loss.item() == pytest.approx(expected_q.item(), rel=1e-5)
    metrics = agent.learn(r)
    assert {"policy_loss", "gate_loss", "q_loss", "value_loss", "approx_kl"} <= set(metrics)


def test_ppo_pmoe_member_update_ignores_other_members_data():
    agents = []
    for other_seed in (1, 99):
        agent = onpolicy.make_agent("pmoe_ppo", seeds=(0, 1), overrides=["batch_size=8", "n_epochs=2"])
        r, other = onpolicy.tiny_rollout(agent, p=2, seed=1), onpolicy.tiny_rollout(agent, p=2, seed=other_seed)
        for field in ("obs", "action", "log_prob", "value", "advantage", "returns"):
            getattr(r, field)[1] = getattr(other, field)[1]
        agent.learn(r)
        agents.append(agent)
    member0, member1 = [onpolicy.params_of(a, 0) for a in agents], [onpolicy.params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


def test_ppo_pmoe_runs_from_the_cli(run_cli, tmp_path):
    code, _, err = run_cli("run", "pmoe_ppo", "--env", "Pendulum", "--steps", "256", "--eval-every", "128",
                           "--eval-episodes", "2", "--out", tmp_path, "--quiet",
                           "--set", "n_steps=64", "hidden_sizes=16,16", "batch_size=32", "n_epochs=2")
    assert code == 0, err
    (record,) = list(tmp_path.glob("Pendulum-v1/*/seed_0/run.json"))
    meta = json.loads(record.read_text())
    assert meta["status"] == "completed" and meta["hyperparameters"]["num_experts"] == 5


def test_ppo_pmoe_refuses_discrete_actions(run_cli, tmp_path):
    code, _, err = run_cli("run", "pmoe_ppo", "--env", "CartPole", "--steps", "4096", "--out", tmp_path, "--quiet")
    assert code == 2 and "pmoe_ppo needs a continuous (Box) action space" in err



# --- learning (slow) -------------------------------------------------------------------------
@pytest.mark.slow
def test_sac_pmoe_reaches_minus_300_on_pendulum(run_cli, tmp_path):
    code, _, err = run_cli("run", "pmoe_sac", "--env", "Pendulum", "--steps", "10000", "--eval-every", "10000",
                           "--eval-episodes", "10", "--seed", "0", "--out", tmp_path, "--quiet")
    assert code == 0, err
    meta = json.loads((tmp_path / "Pendulum-v1" / "pmoe_sac" / "seed_0" / "run.json").read_text())
    assert meta["final_score"] >= -300, meta["final_score"]   # random policy: -1188
