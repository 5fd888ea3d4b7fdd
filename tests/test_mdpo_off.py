"""Off-policy MDPO: the actor loss and its KL term by hand, the value targets, pi_k copies, populations."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from drlbench.agents.mdpo_off import log_term, tanh_log_density_per_dim
from tests.test_losses import make_agent, mlp_by_hand, tiny_batch
from tests.test_population import params_of


def peek_noise(agent, *shape):
    """The next standard-normal draw of member 0, without consuming it."""
    generator = agent.population.generators[0]
    state = generator.get_state()
    noise = torch.randn(*shape, generator=generator)
    generator.set_state(state)
    return noise


def heads(out):
    mean, log_std = out.chunk(2, -1)
    return mean, log_std.clamp(-20, 2)


def normal_log_pdf(x, mean, log_std):
    return -0.5 * ((x - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


def test_log_term_shannon_is_the_sum_and_code_form_halves_and_floors():
    per_dim = torch.tensor([[0.5, -30.0]])
    assert log_term(per_dim, 1.0, code_form=False).item() == pytest.approx(-29.5)
    assert log_term(per_dim, 1.0, code_form=True).item() == pytest.approx(0.5 * (0.5 + math.log(1e-6)))
    # Tsallis q' = 1.5 -> q = 0.5: log_q(x) = (x^0.5 - 1) / 0.5, on each dimension's density
    expected = sum((math.exp(v) ** 0.5 - 1) / 0.5 for v in (0.5, -30.0))
    assert log_term(per_dim, 1.5, code_form=False).item() == pytest.approx(expected, rel=1e-5)


def test_tanh_log_density_matches_torch_distributions():
    mean, log_std, noise = torch.tensor([[0.3, -1.2]]), torch.tensor([[-0.5, 0.4]]), torch.tensor([[0.7, -0.4]])
    u = mean + log_std.exp() * noise
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()])
    got = tanh_log_density_per_dim(u, mean, log_std, torch.tanh(u), code_form=False)
    assert torch.allclose(got, dist.log_prob(torch.tanh(u)), atol=1e-5)


@pytest.mark.parametrize("form", ["paper", "code"])
def test_actor_loss_kl_term_and_gradient_by_hand(form):
    """J = mean[c log pi(a~) + (lambda - c) log pi_k(a~) - Q1(s, a~)] + reg, pi_k a different policy."""
    agent = make_agent("mdpo_off", overrides=[f"log_prob={form}", "kl_coeff=0.7", "entropy_coeff=0.3"])
    c, lam, reg = 0.7, 0.3, agent.config.policy_reg
    with torch.no_grad():   # make pi_k differ from pi_theta
        for param in agent.old_actor.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=torch.Generator().manual_seed(1)))
    batch = tiny_batch()
    eps = peek_noise(agent, 4, 1)
    actor_params = [prm.detach().clone().requires_grad_(True) for prm in agent.actor.parameters()]

    obs = batch.obs[0]
    out = obs
    for i, (w, bias) in enumerate(zip(actor_params[::2], actor_params[1::2])):
        out = out @ w[0] + bias[0, 0]
        out = torch.relu(out) if i < len(actor_params) // 2 - 1 else out
    mean, log_std = heads(out)
    old_mean, old_log_std = heads(mlp_by_hand(agent.old_actor, obs, 0))
    u = mean + log_std.exp() * eps
    a = torch.tanh(u)
    jac = torch.log(1 - a ** 2) if form == "paper" else torch.log(1 - a ** 2 + 1e-6)
    new_dims = normal_log_pdf(u, mean, log_std) - jac
    old_dims = normal_log_pdf(u, old_mean, old_log_std) - jac
    if form == "code":   # 0.5 * sum log max(p_i, 1e-6)
        log_pi = 0.5 * new_dims.clamp(min=math.log(1e-6)).sum(-1)
        log_pi_old = 0.5 * old_dims.clamp(min=math.log(1e-6)).sum(-1)
    else:
        log_pi, log_pi_old = new_dims.sum(-1), old_dims.sum(-1)
    q1 = mlp_by_hand(agent.critic, torch.cat([obs, a], -1), 0).squeeze(-1)
    expected = (c * log_pi + (lam - c) * log_pi_old - q1).mean()
    penalty = reg * (mean.pow(2).mean() + log_std.pow(2).mean())
    # the KL term: c (log pi - log pi_k) + lambda log pi_k == c log pi + (lambda - c) log pi_k
    assert torch.allclose(c * (log_pi - log_pi_old) + lam * log_pi_old, c * log_pi + (lam - c) * log_pi_old)
    (expected + penalty).backward()

    metrics = agent.update(batch)
    assert metrics["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)
    assert metrics["kl"].item() == pytest.approx((log_pi - log_pi_old).mean().item(), rel=1e-4, abs=1e-5)
    for param, reference in zip(agent.actor.parameters(), actor_params):
        assert torch.allclose(param.grad, reference.grad, rtol=1e-4, atol=1e-6)


def test_value_targets_by_hand():
    """Q_i -> r + gamma (1 - d) Vbar(s'); V -> min_i Q_i(s, a~) - lambda log pi(a~|s)."""
    agent = make_agent("mdpo_off", overrides=["log_prob=paper"])
    cfg = agent.config
    batch = tiny_batch()
    eps = peek_noise(agent, 4, 1)
    obs, act = batch.obs[0], batch.action[0]
    with torch.no_grad():
        mean, log_std = heads(mlp_by_hand(agent.actor, obs, 0))
        u = mean + log_std.exp() * eps
        a = torch.tanh(u)
        log_pi = (normal_log_pdf(u, mean, log_std) - torch.log(1 - a ** 2)).sum(-1)
        x_pi = torch.cat([obs, a], -1)
        v_target = torch.minimum(mlp_by_hand(agent.critic, x_pi, 0), mlp_by_hand(agent.critic, x_pi, 1)).squeeze(-1) \
            - cfg.entropy_coeff * log_pi
        y = batch.reward[0] + cfg.gamma * (1 - batch.terminated[0]) * mlp_by_hand(agent.value_target, batch.next_obs[0], 0).squeeze(-1)
        x = torch.cat([obs, act], -1)
        q_loss = sum(0.5 * (mlp_by_hand(agent.critic, x, i).squeeze(-1) - y).pow(2).mean() for i in (0, 1))
        v_loss = 0.5 * (mlp_by_hand(agent.value, obs, 0).squeeze(-1) - v_target).pow(2).mean()
    metrics = agent.update(batch)
    assert metrics["critic_loss"].item() == pytest.approx(q_loss.item(), rel=1e-4, abs=1e-6)
    assert metrics["value_loss"].item() == pytest.approx(v_loss.item(), rel=1e-4, abs=1e-6)


def test_old_policy_is_copied_every_interval_updates():
    agent = make_agent("mdpo_off", overrides=["old_policy_interval=3"])
    batch = tiny_batch()

    def same_as_actor():
        return all(torch.equal(a, o) for a, o in zip(agent.actor.parameters(), agent.old_actor.parameters()))

    copied = []
    for _ in range(7):
        agent.update(batch)
        copied.append(same_as_actor())
    # copies after updates 1, 4, 7 (indices 0, 3, 6), as the code copies after every m-th step's update
    assert copied == [True, False, False, True, False, False, True]


def test_first_update_has_zero_kl_and_deterministic_exploration():
    agent = make_agent("mdpo_off")
    assert agent.update(tiny_batch())["kl"].item() == pytest.approx(0.0, abs=1e-6)   # pi_k = pi_theta initially
    obs = torch.randn(1, 5, 3)
    assert torch.equal(agent.act(obs, deterministic=False), agent.act(obs, deterministic=True))
    stochastic = make_agent("mdpo_off", overrides=["explore=stochastic"])
    assert not torch.equal(stochastic.act(obs, deterministic=False), stochastic.act(obs, deterministic=True))


def test_bad_choice_is_a_usage_error():
    from drlbench.errors import UsageError
    with pytest.raises(UsageError, match="log_prob=exact: log_prob must be one of: paper, code"):
        make_agent("mdpo_off", overrides=["log_prob=exact"])


def test_member_update_ignores_other_members_data():
    batch_a, batch_b = tiny_batch(p=2, seed=1), tiny_batch(p=2, seed=1)
    other = tiny_batch(p=2, seed=99)
    for field in ("obs", "action", "reward", "next_obs"):
        getattr(batch_b, field)[1] = getattr(other, field)[1]
    agents = []
    for batch in (batch_a, batch_b):
        agent = make_agent("mdpo_off", seeds=(0, 1), overrides=["old_policy_interval=2"])
        for _ in range(3):
            agent.update(batch)
        agents.append(agent)
    member0, member1 = [params_of(a, 0) for a in agents], [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])



@pytest.mark.slow
def test_reaches_minus_300_on_pendulum(run_cli, tmp_path):
    code, _, err = run_cli("run", "mdpo_off", "--env", "Pendulum", "--steps", "12000", "--eval-every", "12000",
                           "--eval-episodes", "10", "--seed", "0", "--out", tmp_path, "--quiet")
    assert code == 0, err
    meta = json.loads((tmp_path / "Pendulum-v1" / "mdpo_off" / "seed_0" / "run.json").read_text())
    assert meta["final_score"] >= -300, meta["final_score"]   # random policy: -1188
