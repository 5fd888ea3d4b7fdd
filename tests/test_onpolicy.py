"""On-policy side: PPO and on-policy MDPO losses by hand, GAE with time limits, population
independence, resume, and (slow) learning tests."""
import csv
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import get_agent
from drlbench.agents.actor_critic import Categorical, Gaussian, Rollout, clip_grad_norm_per_member_
from drlbench.config import build, load_preset
from drlbench.errors import UsageError
from drlbench.harness import Session
from drlbench.loops.on_policy import Config as OnPolicyConfig, rollout as make_rollout
from drlbench.nn import MemberAdam
from drlbench.population import Population

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
DISCRETE = gym.spaces.Discrete(3)


def make_agent(name, action_space=BOX, seeds=(0,), overrides=()):
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OnPolicyConfig], load_preset(name, None), ["hidden_sizes=8,8", *overrides])
    return cls(OBS, action_space, hp, Population(list(seeds)))


def tiny_rollout(agent, p=1, b=16, seed=0, steps_done=16, total_steps=160):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(p, b, 3, generator=g)
    if agent.discrete:
        action = torch.randint(agent.actor.layers[-1].weight.shape[-1], (p, b), generator=g)
    else:
        action = torch.randn(p, b, 2, generator=g)
    with torch.no_grad():
        log_prob = agent.distribution(obs).log_prob(action) + 0.3 * torch.randn(p, b, generator=g)
    value = torch.randn(p, b, generator=g)
    advantage = torch.randn(p, b, generator=g)
    return Rollout(obs, action, log_prob, value, advantage, advantage + value, steps_done, total_steps)


def tanh_mlp_by_hand(mlp, x, member=0):
    h = x
    for i, layer in enumerate(mlp.layers):
        h = h @ layer.weight[member] + layer.bias[member, 0]
        if i < len(mlp.layers) - 1:
            h = torch.tanh(h)
    return h


# --- distributions ---------------------------------------------------------------------------
def test_gaussian_and_categorical_match_torch_distributions():
    mean, log_std = torch.tensor([[[0.3, -1.2]]]), torch.tensor([[[-0.5, 0.4]]])
    other_mean, other_log_std = torch.tensor([[[0.1, 0.2]]]), torch.tensor([[[0.3, -0.2]]])
    a = torch.tensor([[[0.7, -0.4]]])
    ours, theirs = Gaussian(mean, log_std), torch.distributions.Normal(mean, log_std.exp())
    other = torch.distributions.Normal(other_mean, other_log_std.exp())
    assert torch.allclose(ours.log_prob(a), theirs.log_prob(a).sum(-1))
    assert torch.allclose(ours.entropy(), theirs.entropy().sum(-1))
    assert torch.allclose(ours.kl(Gaussian(other_mean, other_log_std)),
                          torch.distributions.kl_divergence(theirs, other).sum(-1))
    logits, other_logits = torch.tensor([[[0.5, -1.0, 2.0]]]), torch.tensor([[[0.0, 0.3, -0.7]]])
    p, q = torch.softmax(logits, -1)[0, 0], torch.softmax(other_logits, -1)[0, 0]
    kl_by_hand = sum(p[i] * math.log(p[i] / q[i]) for i in range(3))
    assert Categorical(logits).kl(Categorical(other_logits)).item() == pytest.approx(kl_by_hand.item(), rel=1e-5)
    assert Categorical(logits).log_prob(torch.tensor([[2]])).item() == pytest.approx(math.log(p[2].item()), rel=1e-6)


def test_categorical_sampling_follows_the_probabilities():
    pop = Population([0])
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3])).expand(1, 20000, 3)
    counts = torch.bincount(Categorical(logits).sample(pop)[0], minlength=3).float() / 20000
    assert torch.allclose(counts, torch.tensor([0.2, 0.5, 0.3]), atol=0.015)


# --- PPO -------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [False, True])
def test_ppo_clipped_loss_by_hand(normalize):
    agent = make_agent("ppo", overrides=[f"normalize_advantage={normalize}", "clip_range_vf=0.1"])
    with torch.no_grad():
        agent.log_std.copy_(torch.tensor([[[-0.3, 0.2]]]))
    obs = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(1))
    action = torch.tensor([[[0.1, -0.2], [0.5, 0.5], [-1.0, 0.3], [0.0, 0.0]]])
    mean = tanh_mlp_by_hand(agent.actor, obs[0])
    normal = torch.distributions.Normal(mean, agent.log_std[0, 0].detach().exp())
    log_prob = normal.log_prob(action[0]).sum(-1).detach()
    old_log_prob = (log_prob - torch.tensor([0.5, -0.5, 0.1, 0.0])).unsqueeze(0)   # ratios e^.5, e^-.5, e^.1, 1
    advantage = torch.tensor([[1.0, 2.0, -1.5, 0.5]])
    old_value, returns = torch.tensor([[0.0, 1.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, 0.0, 2.0]])
    policy_loss, value_loss, entropy_loss, _, clip_fraction = agent.losses(
        obs, action, old_log_prob, old_value, advantage, returns, clip_range=0.2)

    adv = advantage[0].tolist()
    if normalize:
        m = sum(adv) / 4
        s = math.sqrt(sum((x - m) ** 2 for x in adv) / 3)
        adv = [(x - m) / (s + 1e-8) for x in adv]
    ratios = [math.exp(x) for x in (0.5, -0.5, 0.1, 0.0)]
    surrogate = [min(r * a, min(max(r, 0.8), 1.2) * a) for r, a in zip(ratios, adv)]
    assert policy_loss.item() == pytest.approx(-sum(surrogate) / 4, rel=1e-5)
    assert clip_fraction.item() == pytest.approx(0.5)
    v = tanh_mlp_by_hand(agent.critic, obs[0]).squeeze(-1).tolist()
    clipped = [ov + min(max(x - ov, -0.1), 0.1) for x, ov in zip(v, old_value[0].tolist())]
    assert value_loss.item() == pytest.approx(sum((r - x) ** 2 for r, x in zip(returns[0].tolist(), clipped)) / 4,
                                              rel=1e-5)
    entropy = sum(0.5 + 0.5 * math.log(2 * math.pi) + ls for ls in (-0.3, 0.2))
    assert entropy_loss.item() == pytest.approx(-entropy, rel=1e-5)


def test_ppo_initialisation_is_stable_baselines3s():
    agent = make_agent("ppo", overrides=["hidden_sizes=64,64"])
    hidden = agent.actor.layers[0].weight[0]                    # (in 3, out 64): torch's W^T
    assert torch.allclose(hidden @ hidden.T, 2.0 * torch.eye(3), atol=1e-5)   # orthogonal, gain sqrt(2)
    head = agent.actor.layers[-1].weight[0]                     # (64, 2)
    assert torch.allclose(head.T @ head, 1e-4 * torch.eye(2), atol=1e-8)     # gain 0.01
    assert all(float(layer.bias.detach().abs().max()) == 0.0 for layer in agent.actor.layers)
    assert torch.equal(agent.log_std, torch.zeros(1, 1, 2))


def test_grad_norm_clipping_is_per_member():
    w = torch.nn.Parameter(torch.zeros(2, 3))
    w.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])           # norms 5 and 0.5
    norms = clip_grad_norm_per_member_([w], 1.0, 2)
    assert torch.allclose(norms, torch.tensor([5.0, 0.5]))
    assert torch.allclose(w.grad, torch.tensor([[0.6, 0.8, 0.0], [0.3, 0.4, 0.0]]), atol=1e-6)


def test_member_adam_is_adam_and_leaves_inactive_members_untouched():
    torch.manual_seed(0)
    start = torch.randn(2, 3, 4)
    ours = torch.nn.Parameter(start.clone())
    opt = MemberAdam([ours], lr=1e-2, eps=1e-5, members=2)
    lone = [torch.nn.Parameter(start[i:i + 1].clone()) for i in range(2)]
    refs = [torch.optim.Adam([p], lr=1e-2, eps=1e-5) for p in lone]
    for step in range(5):
        grad = torch.randn(2, 3, 4)
        active = torch.tensor([True, step != 2])          # member 1 skips step 2
        before = ours.detach()[1].clone()
        ours.grad = grad
        opt.step(active)
        for i in range(2):
            if active[i]:
                lone[i].grad = grad[i:i + 1]
                refs[i].step()
        if step == 2:
            assert torch.equal(ours.detach()[1], before)
        for i in range(2):
            assert torch.allclose(ours.detach()[i], lone[i].detach()[0], atol=1e-6), (step, i)
    assert opt.state[ours]["step"].tolist() == [5.0, 4.0]


def test_ppo_target_kl_stops_each_member_on_its_own():
    """Member 1's behaviour log-probs are off by noise (approx_kl ~ 0.04 > 1.5 x 0.02 at once): it takes no
    step; member 0's data is on-policy (approx_kl 0 at first) and it goes on exactly as a lone run."""
    overrides = ["target_kl=0.02", "batch_size=4", "n_epochs=3", "learning_rate=0.05"]
    pair = make_agent("ppo", seeds=(0, 1), overrides=overrides)
    lone = make_agent("ppo", seeds=(0,), overrides=overrides)
    data = tiny_rollout(pair, p=2, b=16)
    with torch.no_grad():
        exact = pair.distribution(data.obs).log_prob(data.action)
    data.log_prob = torch.stack([exact[0], data.log_prob[1]])
    start = {k: v.clone() for k, v in pair.state_dict().items()}
    metrics = pair.learn(data)
    lone_metrics = lone.learn(Rollout(*(x[:1] for x in (data.obs, data.action, data.log_prob, data.value,
                                                         data.advantage, data.returns)), 16, 160))
    assert metrics["minibatch_steps"][1].item() == 0.0
    assert metrics["approx_kl"][1].item() > 0.03      # the minibatch that stopped it is logged, as SB3 logs it
    assert 1 <= metrics["minibatch_steps"][0].item() == lone_metrics["minibatch_steps"][0].item() < 12
    for key, value in pair.state_dict().items():
        assert torch.equal(value[1], start[key][1]), key
        assert torch.allclose(value[0], lone.state_dict()[key][0], atol=1e-6), key


def test_gsde_distribution_and_exploration_by_hand():
    agent = make_agent("ppo", seeds=(0, 1), overrides=["use_sde=true", "sde_sample_freq=3", "log_std_init=-0.5"])
    assert agent.log_std.shape == (2, 8, 2)                      # (members, last hidden width, actions)
    with torch.no_grad():
        agent.log_std.add_(0.1 * torch.randn(2, 8, 2))
    x = torch.randn(2, 4, 3)
    dist = agent.distribution(x)
    for m in range(2):
        h = x[m]
        for layer in agent.actor.layers[:-1]:
            h = torch.tanh(h @ layer.weight[m] + layer.bias[m, 0])
        variance = (h ** 2) @ torch.exp(agent.log_std[m].detach()) ** 2 + 1e-6
        assert torch.allclose(dist.log_std[m], 0.5 * torch.log(variance), atol=1e-6)
        assert torch.allclose(dist.mean[m], tanh_mlp_by_hand(agent.actor, x[m], m), atol=1e-6)
    noise = []
    for t in range(7):
        action, log_prob, _ = agent.explore(x, t)
        mean = agent.distribution(x).mean
        noise.append(action - mean)
        assert torch.allclose(log_prob, agent.distribution(x).log_prob(action), atol=1e-6)
        for m in range(2):                       # a = mu(s) + h(s) E_n, E_n the matrix of env n
            h = x[m]
            for layer in agent.actor.layers[:-1]:
                h = torch.tanh(h @ layer.weight[m] + layer.bias[m, 0])
            for env in range(4):
                assert torch.allclose(noise[-1][m, env], h[env] @ agent.exploration[m, env], atol=1e-6)

    # one exploration matrix per (member, env), kept for sde_sample_freq steps, redrawn at t = 0, 3, 6
    assert torch.allclose(noise[0], noise[2]) and torch.allclose(noise[3], noise[5])
    assert not torch.allclose(noise[2], noise[3]) and not torch.allclose(noise[5], noise[6])
    assert agent.exploration.shape == (2, 4, 8, 2)
    assert not torch.allclose(noise[0][:, 0], noise[0][:, 1])
    # the matrices' entries are N(0, exp(log_std)^2): standardised, about unit variance over many draws
    agent.resample_exploration(5000)
    z = agent.exploration / agent.log_std.detach().exp().unsqueeze(1)
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1.0) < 0.02


def test_gsde_needs_box_actions_and_not_pmoe():
    with pytest.raises(UsageError, match="use_sde=true needs a Box action space"):
        make_agent("ppo", DISCRETE, overrides=["use_sde=true"])
    with pytest.raises(UsageError, match="use_sde=true: gSDE is not defined"):
        make_agent("pmoe_ppo", overrides=["use_sde=true"])
    linear = make_agent("ppo", overrides=["use_sde=true", "hidden_sizes=[]"])     # features = observations
    assert linear.log_std.shape == (1, 3, 2) and linear.explore(torch.randn(1, 2, 3))[0].shape == (1, 2, 2)
    with pytest.raises(UsageError, match="target_kl=-0.1"):
        make_agent("ppo", overrides=["target_kl=-0.1"])


# --- MDPO ------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", [BOX, DISCRETE])
def test_mdpo_objective_by_hand(space):
    agent = make_agent("mdpo_on", space)
    r = tiny_rollout(agent, b=4)
    with torch.no_grad():
        old = agent.distribution(r.obs).detach()
        for p in agent.policy_parameters():                   # move theta away from theta_k
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    objective, kl = agent.policy_objective(r.obs, r.action, r.log_prob, r.advantage, old, t_k=0.5)
    out = tanh_mlp_by_hand(agent.actor, r.obs[0]).detach()
    if agent.discrete:
        new = torch.distributions.Categorical(logits=out)
        prev = torch.distributions.Categorical(logits=old.log_p[0])
        new_log_prob = new.log_prob(r.action[0])
    else:
        new = torch.distributions.Normal(out, agent.log_std[0, 0].detach().exp())
        prev = torch.distributions.Normal(old.mean[0], old.log_std[0].exp())
        new_log_prob = new.log_prob(r.action[0]).sum(-1)
    kl_hand = torch.distributions.kl_divergence(new, prev)           # KL(new || old), new first
    kl_hand = (kl_hand if agent.discrete else kl_hand.sum(-1)).mean().item()
    ratio = (new_log_prob - r.log_prob[0]).exp()
    gain = sum(x * a for x, a in zip(ratio.tolist(), r.advantage[0].tolist())) / 4
    assert kl.item() == pytest.approx(kl_hand, rel=1e-4) and kl_hand > 0
    assert objective.item() == pytest.approx(gain - kl_hand / 0.5, rel=1e-4)


def test_mdpo_step_size_schedule():
    agent = make_agent("mdpo_on")
    r = tiny_rollout(agent, b=16, total_steps=160)              # K = 10 iterations
    expected = [1.1, 1.0, 0.9]                                   # t_k = 1 - (k - 1) / K, k from 0 (mdpo.py)
    for k, t in enumerate(expected):
        agent.iterations = k
        assert agent.step_size(r) == pytest.approx(t)
    agent.iterations = 50
    assert agent.step_size(r) == pytest.approx(0.1)              # floored at 1/K past the horizon
    fixed = make_agent("mdpo_on", overrides=["kl_horizon_steps=1600"])    # official: a fixed horizon
    fixed.iterations = 2
    assert fixed.step_size(r) == pytest.approx(1 - 1 / 100)


def test_mdpo_learn_moves_policy_within_the_kl_proximity():
    agent = make_agent("mdpo_on", DISCRETE)
    r = tiny_rollout(agent, b=64)
    metrics = agent.learn(r)
    assert agent.iterations == 1 and float(metrics["kl"]) > 0
    assert set(metrics) == {"objective", "kl", "entropy", "value_loss", "t_k"}


# --- GAE -------------------------------------------------------------------------------------
def test_gae_with_a_termination_and_a_truncation_by_hand():
    gamma, lam = 0.9, 0.8
    cfg = OnPolicyConfig(n_steps=4, gamma=gamma, gae_lambda=lam, bootstrap_truncation=True,
                         normalize_rewards=False)
    f = lambda *x: torch.tensor(x, dtype=torch.float32).view(1, 4, 1)
    buf = {"reward": f(1.0, 2.0, 3.0, 4.0), "value": f(0.5, 0.6, 0.7, 0.8),
           "terminated": f(0, 1, 0, 0), "done": f(0, 1, 1, 0),       # step 1 terminates, step 2 is truncated
           "next_value": f(0, 0, 2.0, 0),                             # V(final obs of step 2) = 2.0
           "obs": torch.zeros(1, 4, 1, 3), "action": torch.zeros(1, 4, 1, 2), "log_prob": f(0, 0, 0, 0)}
    r = make_rollout(buf, torch.tensor([[3.0]]), cfg, steps_done=4, total_steps=8)
    a3 = 4.0 + gamma * 3.0 - 0.8                    # bootstraps from the value after the rollout
    a2 = 3.0 + gamma * 2.0 - 0.7                    # truncation: bootstraps from V(final obs), stops the trace
    a1 = 2.0 - 0.6                                  # termination: no bootstrap
    a0 = 1.0 + gamma * 0.6 - 0.5 + gamma * lam * a1
    assert torch.allclose(r.advantage, torch.tensor([[a0, a1, a2, a3]]))
    assert torch.allclose(r.returns, r.advantage + torch.tensor([[0.5, 0.6, 0.7, 0.8]]))


def test_rollout_flattens_members_separately():
    cfg = OnPolicyConfig(n_steps=2, gamma=0.99, gae_lambda=0.95, bootstrap_truncation=True,
                         normalize_rewards=False)
    value = torch.arange(8.0).view(2, 2, 2)         # (P, T, N)
    buf = {"reward": torch.zeros(2, 2, 2), "value": value, "terminated": torch.zeros(2, 2, 2),
           "done": torch.zeros(2, 2, 2), "next_value": torch.zeros(2, 2, 2), "obs": value.unsqueeze(-1),
           "action": torch.zeros(2, 2, 2, 1), "log_prob": torch.zeros(2, 2, 2)}
    r = make_rollout(buf, torch.zeros(2, 2), cfg, 4, 8)
    assert r.obs.shape == (2, 4, 1) and torch.equal(r.value[1], torch.tensor([4.0, 5.0, 6.0, 7.0]))


# --- population ------------------------------------------------------------------------------
def params_of(agent, member):
    return {k: p.detach()[member].clone() for k, p in agent.named_parameters()}


@pytest.mark.parametrize("name,space", [("ppo", BOX), ("ppo", DISCRETE), ("mdpo_on", BOX), ("mdpo_on", DISCRETE)])
def test_member_update_ignores_other_members_data(name, space):
    agents = []
    for other_seed in (1, 99):
        agent = make_agent(name, space, seeds=(0, 1), overrides=["vf_batch_size=8", "sgd_steps=3"]
                           if name == "mdpo_on" else ["batch_size=8", "n_epochs=2"])
        r, other = tiny_rollout(agent, p=2, seed=1), tiny_rollout(agent, p=2, seed=other_seed)
        for field in ("obs", "action", "log_prob", "value", "advantage", "returns"):   # member 1's data only
            getattr(r, field)[1] = getattr(other, field)[1]
        agent.learn(r)
        agents.append(agent)
    member0, member1 = [params_of(a, 0) for a in agents], [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


# --- through the CLI: resume, reproducibility ---------------------------------------------------
SMALL = ["--set", "n_steps=64", "hidden_sizes=16,16"]
CASES = {"ppo": ("Pendulum", ["batch_size=32", "n_epochs=2"]),
         "mdpo_on": ("CartPole", ["vf_batch_size=32", "sgd_steps=3"])}


def run_args(tmp_path, agent, *extra):
    env, sets = CASES[agent]
    return ["run", agent, "--env", env, "--steps", "600", "--num-envs", "2", "--eval-every", "200",
            "--eval-episodes", "2", "--out", tmp_path, "--tag", "small", "--quiet", *SMALL, *sets, *extra]


def evaluations(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("agent, extra", [("ppo", []), ("ppo", ["use_sde=true", "sde_sample_freq=5"]),
                                          ("mdpo_on", [])])
def test_resume_mid_rollout_gives_identical_evaluations(run_cli, tmp_path, monkeypatch, agent, extra):
    env_id = {"ppo": "Pendulum-v1", "mdpo_on": "CartPole-v1"}[agent]
    assert run_cli(*run_args(tmp_path / "straight", agent, *extra))[0] == 0
    original = Session.save_checkpoint
    calls = {"n": 0}

    def interrupt_after_second_checkpoint(self, loop_state):
        original(self, loop_state)
        calls["n"] += 1
        if calls["n"] == 2:          # at step 400: the third rollout (of 128 steps) is partly filled
            assert 0 < loop_state["t"] < 64
            raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt_after_second_checkpoint)
    assert run_cli(*run_args(tmp_path / "resumed", agent, *extra))[0] == 130
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*run_args(tmp_path / "resumed", agent, *extra, "--resume"))
    assert code == 0, err
    straight = evaluations(tmp_path / "straight" / env_id / "small" / "seed_0" / "evaluations.csv")
    resumed = evaluations(tmp_path / "resumed" / env_id / "small" / "seed_0" / "evaluations.csv")
    assert resumed == straight and len(straight) == 4
    assert len(set(row["return_mean"] for row in straight)) > 1


@pytest.mark.parametrize("normalize", ["false", "true"])
def test_batched_member_equals_a_lone_run(run_cli, tmp_path, normalize):
    flags = [f"normalize_observations={normalize}", f"normalize_rewards={normalize}"]
    assert run_cli(*run_args(tmp_path / "batch", "ppo", *flags, "--seeds", "0-1", "--batched"))[0] == 0
    assert run_cli(*run_args(tmp_path / "lone", "ppo", *flags, "--seed", "1"))[0] == 0
    batch = json.loads((tmp_path / "batch" / "Pendulum-v1" / "small" / "seed_1" / "run.json").read_text())
    lone = json.loads((tmp_path / "lone" / "Pendulum-v1" / "small" / "seed_1" / "run.json").read_text())
    assert lone["final_score"] == pytest.approx(batch["final_score"], rel=1e-4)


def test_bad_schedule_is_a_usage_error(run_cli, tmp_path):
    code, _, err = run_cli("run", "ppo", "--env", "CartPole", "--steps", "100", "--out", tmp_path, "--quiet",
                           "--set", "learning_rate_schedule=cosine")
    assert code == 2 and "learning_rate_schedule=cosine" in err and "constant, linear" in err


# --- learning (slow) ---------------------------------------------------------------------------
def final_score(run_cli, tmp_path, agent, env, steps, *args):
    code, _, err = run_cli("run", agent, "--env", env, "--steps", steps, "--seed", "0", "--out", tmp_path,
                           "--tag", "t", "--quiet", *args)
    assert code == 0, err
    (record,) = list(tmp_path.glob("*/t/seed_0/run.json"))
    return json.loads(record.read_text())["final_score"]


@pytest.mark.slow
def test_ppo_learns_cartpole(run_cli, tmp_path):
    # preset (SB3 defaults), one environment; random policy: 24, solved: 475
    score = final_score(run_cli, tmp_path, "ppo", "CartPole", "25000", "--eval-every", "25000")
    assert score >= 300, score


@pytest.mark.slow
def test_ppo_learns_pendulum(run_cli, tmp_path):
    # RL Baselines3 Zoo's Pendulum-v1 PPO settings (hyperparams/ppo.yml: 4 envs, n_steps 1024, gamma 0.9,
    # lr 1e-3, gSDE with sde_sample_freq 4); seeds 0, 1 gave -158, -218; random policy: -1188.
    # (Without gSDE: PMOE-PPO's learning test and benchmarks/fidelity_ppo_sb3.py.)
    score = final_score(run_cli, tmp_path, "ppo", "Pendulum", "50000", "--num-envs", "4", "--eval-every", "50000",
                        "--set", "n_steps=1024", "gamma=0.9", "learning_rate=1e-3", "use_sde=true",
                        "sde_sample_freq=4")
    assert score >= -400, score


@pytest.mark.slow
def test_mdpo_on_learns_cartpole(run_cli, tmp_path):
    score = final_score(run_cli, tmp_path, "mdpo_on", "CartPole", "50000", "--eval-every", "50000")
    assert score >= 250, score


@pytest.mark.slow
def test_mdpo_on_learns_pendulum(run_cli, tmp_path):
    # the preset (observation and reward normalisation as the official code) with the rollout shape and
    # gamma of PPO's Pendulum test, shorter rollouts (4 x 128: MDPO takes only sgd_steps=10 full-batch steps
    # per rollout) and lr 1e-3 for both networks. Random policy: -1188. One seed's final score depends on
    # the CPU's float rounding (seed 0: -191 on one machine, -527 on another), so the threshold is on the
    # mean of three batched seeds (-411, -317, -167 here: mean -298).
    code, _, err = run_cli("run", "mdpo_on", "--env", "Pendulum", "--steps", "100000", "--seeds", "0-2", "--batched",
                           "--out", tmp_path, "--tag", "t", "--quiet", "--num-envs", "4", "--eval-every", "100000",
                           "--set", "n_steps=128", "gamma=0.9", "learning_rate=1e-3", "value_learning_rate=1e-3")
    assert code == 0, err
    scores = [json.loads(p.read_text())["final_score"] for p in tmp_path.glob("*/t/seed_*/run.json")]
    assert len(scores) == 3 and sum(scores) / 3 >= -500, scores


@pytest.mark.slow
def test_ppo_learns_minigrid_empty(run_cli, tmp_path):
    # RL Baselines3 Zoo's MiniGrid PPO rollout shape (8 envs x n_steps 128); random policy on Empty-5x5: ~0.1
    pytest.importorskip("minigrid")
    score = final_score(run_cli, tmp_path, "ppo", "MiniGrid-Empty-5x5-v0", "10240", "--num-envs", "8",
                        "--eval-every", "10240", "--set", "n_steps=128")
    assert score >= 0.6, score


@pytest.mark.parametrize("bootstrap", [True, False])
def test_loop_bootstraps_time_limits_from_the_final_observation(run_cli, tmp_path, monkeypatch, bootstrap):
    """Pendulum episodes end by truncation at step 200: inside a 250-step rollout, step 199 is cut."""
    import drlbench.loops.on_policy as loop
    from drlbench.agents.actor_critic import ActorCritic

    captured, value_inputs = {}, []
    original_rollout, original_value = loop.rollout, ActorCritic.value

    def spy_rollout(buf, last_value, *args):
        captured.update({k: v.clone() for k, v in buf.items()})
        return original_rollout(buf, last_value, *args)

    def spy_value(self, obs):
        out = original_value(self, obs)
        value_inputs.append((obs.clone(), out.clone()))
        return out

    monkeypatch.setattr(loop, "rollout", spy_rollout)
    monkeypatch.setattr(ActorCritic, "value", spy_value)
    code, _, err = run_cli("run", "ppo", "--env", "Pendulum", "--steps", "250", "--eval-every", "250",
                           "--eval-episodes", "1", "--out", tmp_path, "--quiet", "--set", "n_steps=250",
                           "n_epochs=1", f"bootstrap_truncation={bootstrap}")
    assert code == 0, err
    assert captured["done"][0, 199, 0] == 1 and captured["done"][0, :199].sum() == 0
    assert captured["terminated"][0, 199, 0] == (0 if bootstrap else 1)
    if bootstrap:   # one value call for the final observation, then one for the rollout's end
        assert len(value_inputs) == 2
        final_obs, final_value = value_inputs[0]
        assert not torch.equal(final_obs[0, 0], captured["obs"][0, 200, 0])       # not the next episode's start
        assert captured["next_value"][0, 199, 0] == final_value[0, 0] != 0
    else:
        assert len(value_inputs) == 1 and captured["next_value"][0, 199, 0] == 0
