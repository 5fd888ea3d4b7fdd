"""PRDC and A2PR (offline, TD3+BC family): the nearest-neighbour dataset constraint and the
advantage-guided BC target against hand computations on tiny inputs, the two neighbour-search
backends against each other and brute force, population independence, checkpoint round trips."""
import copy
import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import Batch, get_agent
from drlbench.agents.prdc import NearestNeighbour
from drlbench.config import build, load_preset
from drlbench.loops.offline import Config as OfflineConfig
from drlbench.population import Population
from tests.test_losses import mlp_by_hand
from tests.test_population import params_of

OBS_DIM, ACT_DIM = 3, 2
OBS = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)


def make_agent(name, seeds=(0,), overrides=(), suite=None, obs=OBS, act=ACT):
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OfflineConfig], load_preset(name, suite), list(overrides))
    return cls(obs, act, hp, Population(list(seeds)))


def dataset(n=64, seed=0, obs_dim=OBS_DIM, act_dim=ACT_DIM):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1


def tiny_batch(p=1, b=5, seed=0):
    """A minibatch drawn from `dataset()` rows (as the offline loop does), with random rewards; the
    second sample is terminal."""
    obs, act = dataset()
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(obs), (p, b), generator=g)
    return Batch(obs=obs[rows], action=act[rows], reward=torch.randn(p, b, generator=g),
                 next_obs=torch.randn(p, b, OBS_DIM, generator=g),
                 terminated=(torch.arange(b) == 1).float().expand(p, b).clone())


def replay_noise(agent, *shape):
    """The next draw of member 0's generator, leaving the generator as it was."""
    g = agent.population.generators[0]
    state = g.get_state()
    noise = torch.randn(*shape, generator=g)
    g.set_state(state)
    return noise


def actor_leaves(agent):
    """Member 0's actor weights and biases as fresh leaf tensors (for autograd by hand)."""
    return [(layer.weight[0].detach().clone().requires_grad_(), layer.bias[0, 0].detach().clone().requires_grad_())
            for layer in agent.actor.layers]


def actor_by_hand(leaves, s):
    h = s
    for i, (w, b) in enumerate(leaves):
        h = h @ w + b
        h = torch.relu(h) if i < len(leaves) - 1 else torch.tanh(h)
    return h


def twin_min(critic, x):
    return torch.minimum(mlp_by_hand(critic, x, 0), mlp_by_hand(critic, x, 1)).squeeze(-1)


def smoothed(actor_target, next_obs, eps):
    return (torch.tanh(mlp_by_hand(actor_target, next_obs, 0)) + (0.2 * eps).clamp(-0.5, 0.5)).clamp(-1, 1)


def grads_match(agent, leaves):
    return all(torch.allclose(layer.weight.grad[0], w.grad, atol=1e-6)
               and torch.allclose(layer.bias.grad[0, 0], b.grad, atol=1e-6)
               for layer, (w, b) in zip(agent.actor.layers, leaves))


def brute_force_nearest(points, query):
    """Index of the nearest point, by plain Python loops over float64 distances."""
    best, best_d = -1, float("inf")
    for i, x in enumerate(points.double().tolist()):
        d = sum((a - b) ** 2 for a, b in zip(x, query.double().tolist()))
        if d < best_d:
            best, best_d = i, d
    return best


# ----------------------------------------------------------------------------- PRDC: neighbours

@pytest.mark.parametrize("backend", ["kdtree", "torch"])
def test_dataset_constraint_neighbour_by_hand_with_beta(backend):
    """States 0, 1, 3 with actions 0, 0.5, -0.5; query s = 1.4, pi = -0.5.
    beta = 1: squared distances 1.96 + 0.25, 0.16 + 1, 2.56 + 0 -> row 1 (a^ = 0.5).
    beta = 0.1: 0.0196 + 0.25, 0.0016 + 1, 0.0256 + 0 -> row 2 (a^ = -0.5): beta moves the choice."""
    obs1 = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    act1 = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    states, actions = torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.0], [0.5], [-0.5]])
    for beta, expected in ((1.0, 0.5), (0.1, -0.5)):
        agent = make_agent("prdc", overrides=[f"beta={beta}"], obs=obs1, act=act1)
        agent.attach_dataset(states, actions, 10)
        agent.neighbours = NearestNeighbour(agent.neighbours.points, backend)
        target = agent.dataset_constraint_target(torch.tensor([[[1.4]]]), torch.tensor([[[-0.5]]]))
        assert target.shape == (1, 1, 1) and target.item() == pytest.approx(expected)


def test_kdtree_and_torch_search_agree_with_brute_force():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(3000, 9, generator=g) * torch.linspace(0.5, 4.0, 9)
    queries = torch.cat([torch.randn(200, 9, generator=g) * 3, points[:50] + 1e-3])   # incl. near-duplicates
    tree = NearestNeighbour(points, "kdtree")(queries)
    chunked = NearestNeighbour(points, "torch", candidates=4, max_chunk_elements=250 * 97)(queries)  # many chunks
    whole = NearestNeighbour(points, "torch")(queries)
    exact = torch.cdist(queries.double(), points.double()).argmin(1)
    assert torch.equal(tree, exact) and torch.equal(chunked, exact) and torch.equal(whole, exact)
    assert NearestNeighbour(points).backend == "kdtree"            # auto on CPU
    for q in (0, 123, 230):
        assert tree[q].item() == brute_force_nearest(points, queries[q])


def test_prdc_queries_are_per_member_against_one_shared_dataset():
    agent = make_agent("prdc", seeds=(0, 1), suite="d4rl")   # beta = 2
    states, actions = dataset()
    agent.attach_dataset(states, actions, 10)
    batch = tiny_batch(p=2)
    pi = torch.rand(2, 5, ACT_DIM) * 2 - 1
    target = agent.dataset_constraint_target(batch.obs, pi)
    points = torch.cat([2.0 * states, actions], -1)
    for m in range(2):
        for i in range(5):
            row = brute_force_nearest(points, torch.cat([2.0 * batch.obs[m, i], pi[m, i]]))
            assert torch.equal(target[m, i], actions[row])


# ----------------------------------------------------------------------------- PRDC: losses

def test_prdc_actor_loss_and_gradient_by_hand():
    agent = make_agent("prdc", overrides=["alpha=2.5", "beta=2.0"])
    states, actions = dataset()
    agent.attach_dataset(states, actions, 10)
    batch = tiny_batch()
    s = batch.obs[0]
    leaves = actor_leaves(agent)
    pi = actor_by_hand(leaves, s)
    q = mlp_by_hand(agent.critic, torch.cat([s, pi], -1), 0).squeeze(-1)
    lam = 2.5 / q.detach().abs().mean()
    points = torch.cat([2.0 * states, actions], -1)
    rows = [brute_force_nearest(points, torch.cat([2.0 * s[i], pi[i].detach()])) for i in range(5)]
    nearest = actions[rows]
    dc = ((pi - nearest) ** 2).sum() / (5 * ACT_DIM)
    loss = -lam * q.mean() + dc
    loss.backward()
    agent.zero_grad(set_to_none=True)        # the hand computation above read the critic's parameters

    metrics = agent._actor_step(batch)
    assert metrics["dc_loss"].item() == pytest.approx(dc.item(), rel=1e-5)
    assert metrics["actor_loss"].item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    assert metrics["lambda"].item() == pytest.approx(lam.item(), rel=1e-5)
    assert grads_match(agent, leaves)
    assert all(p.grad is None for p in agent.critic.parameters())       # the actor loss only steps the actor


def test_prdc_critic_loss_by_hand_with_reward_transform():
    agent = make_agent("prdc", overrides=["reward_scale=10000", "reward_shift=-1"])
    agent.attach_dataset(*dataset(), 10)
    batch = tiny_batch()
    eps = replay_noise(agent, 5, ACT_DIM)
    with torch.no_grad():
        x_next = torch.cat([batch.next_obs[0], smoothed(agent.actor_target, batch.next_obs[0], eps)], -1)
        y = 10000 * batch.reward[0] - 1 + 0.99 * (1 - batch.terminated[0]) * twin_min(agent.critic_target, x_next)
        x = torch.cat([batch.obs[0], batch.action[0]], -1)
        expected = sum(((mlp_by_hand(agent.critic, x, c).squeeze(-1) - y) ** 2).mean() for c in (0, 1))
    metrics = agent.update(batch)
    assert metrics["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_prdc_actor_waits_for_policy_delay_and_needs_the_dataset():
    agent = make_agent("prdc")
    agent.update(tiny_batch())                    # critic only: no neighbours needed yet
    with pytest.raises(RuntimeError, match="attach_dataset"):
        agent.update(tiny_batch())
    agent = make_agent("prdc")
    agent.attach_dataset(*dataset(), 10)
    actor = copy.deepcopy(agent.actor.state_dict())
    agent.update(tiny_batch())
    assert all(torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor.items())
    agent.update(tiny_batch())
    assert not all(torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor.items())


# ----------------------------------------------------------------------------- A2PR

def test_a2pr_target_action_and_weight_by_hand():
    """Six samples: (Q1(s,a_vae), Q1(s,a), V) chosen to hit every branch of the code's comparisons."""
    agent = make_agent("a2pr", overrides=["mask=0.4"])
    q_vae = torch.tensor([[3.0, 2.0, 1.0, 0.0, 1.0, -1.0]])
    q_data = torch.tensor([[2.0, 2.0, 2.0, -1.0, 1.0, 1.0]])
    v = torch.tensor([[1.0, 1.0, 1.0, 0.5, 1.0, 1.0]])
    action = torch.arange(12.0).view(1, 6, 2)
    recon = -torch.arange(12.0).view(1, 6, 2) - 100
    # A_vae >= A_data picks the VAE action (ties too); weight = mask if Q1(s,a_vae) >= V or Q1(s,a) > V.
    chosen = [True, True, False, True, True, False]
    weight = [0.4, 0.4, 0.4, 0.0, 0.4, 0.0]   # both indicators true -> mask, not 2 mask (the code's bool OR)
    target, w, choose_vae = agent.bc_target(action, recon, q_data, q_vae, v)
    assert choose_vae[0].tolist() == chosen
    for i in range(6):
        assert torch.equal(target[0, i], recon[0, i] if chosen[i] else action[0, i])
    assert w.shape == (1, 6, 1) and w[0, :, 0].tolist() == pytest.approx(weight)


def vae_by_hand(agent, s, a, eps):
    out = mlp_by_hand(agent.encoder, torch.cat([s, a], -1), 0)
    mean, log_std = out[:, :2 * ACT_DIM], out[:, 2 * ACT_DIM:].clamp(-4, 15)
    z = mean + torch.exp(log_std) * eps
    return torch.tanh(mlp_by_hand(agent.decoder, torch.cat([s, z], -1), 0)), mean, torch.exp(log_std)


def test_a2pr_value_and_vae_losses_by_hand():
    """Step order: critic first; V's target uses the updated online critic and the target critic; the
    VAE weight compares the updated critic's Q1(s, a) with V(s) from before the value step."""
    agent = make_agent("a2pr", overrides=["policy_delay=1000", "vae_weight=1.5"])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():           # the online critic away from the target one, so the min takes from both
        first = agent.critic.layers[0].weight
        first.add_(0.2 * torch.randn(first.shape, generator=g))
    before = copy.deepcopy(agent)
    batch = tiny_batch(b=16)
    g = agent.population.generators[0]
    state = g.get_state()
    eps_target, eps_vae = torch.randn(16, ACT_DIM, generator=g), torch.randn(16, 2 * ACT_DIM, generator=g)
    g.set_state(state)
    metrics = agent.update(batch)
    s, a, r, s2, d = batch.obs[0], batch.action[0], batch.reward[0], batch.next_obs[0], batch.terminated[0]
    with torch.no_grad():
        x2 = torch.cat([s2, smoothed(before.actor_target, s2, eps_target)], -1)
        y_tgt = r + 0.99 * (1 - d) * twin_min(before.critic_target, x2)
        y_cur = r + 0.99 * (1 - d) * twin_min(agent.critic, x2)          # the online critic after its step
        v_old = mlp_by_hand(before.value, s, 0).squeeze(-1)
        value_loss = ((v_old - torch.minimum(y_cur, y_tgt)) ** 2).mean()
        assert (y_cur < y_tgt).any() and (y_cur > y_tgt).any()
        q_data = mlp_by_hand(agent.critic, torch.cat([s, a], -1), 0).squeeze(-1)
        recon, mean, std = vae_by_hand(before, s, a, eps_vae)
        w = 1.5 * (q_data > v_old).float().unsqueeze(-1)
        recon_loss = (w * (recon - a) ** 2).mean()
        kl = -0.5 * (1 + torch.log(std ** 2) - mean ** 2 - std ** 2).mean()
    assert metrics["value_loss"].item() == pytest.approx(value_loss.item(), rel=1e-5)
    assert metrics["recon_loss"].item() == pytest.approx(recon_loss.item(), rel=1e-5, abs=1e-7)
    assert metrics["kl_loss"].item() == pytest.approx(kl.item(), rel=1e-4, abs=1e-7)
    assert metrics["vae_loss"].item() == pytest.approx((recon_loss + 0.5 * kl).item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("detach_target", [False, True])
def test_a2pr_actor_loss_and_gradient_by_hand(detach_target):
    """The BC target a_vae is not detached: the actor's gradient includes the path through the VAE.
    The detached variant is computed too, to show the test tells them apart."""
    agent = make_agent("a2pr", overrides=["alpha=2.5", "mask=0.7"])
    batch = tiny_batch(seed=4)
    s, a = batch.obs[0], batch.action[0]
    with torch.no_grad():
        q_data = mlp_by_hand(agent.critic, torch.cat([s, a], -1), 0).squeeze(-1)
        v = q_data + torch.tensor([0.01, -0.01, 0.02, -0.02, 0.0])    # both sides of Q1(s, a) - V
    eps = replay_noise(agent, 5, 2 * ACT_DIM)
    leaves = actor_leaves(agent)
    pi = actor_by_hand(leaves, s)
    q = mlp_by_hand(agent.critic, torch.cat([s, pi], -1), 0).squeeze(-1)
    lam = 2.5 / q.detach().abs().mean()
    recon, _, _ = vae_by_hand(agent, s, pi, eps)
    q_vae = mlp_by_hand(agent.critic, torch.cat([s, recon], -1), 0).squeeze(-1).detach()
    use_vae = ((q_vae - v) >= (q_data - v)).float().unsqueeze(-1)
    target = use_vae * (recon.detach() if detach_target else recon) + (1 - use_vae) * a
    weight = 0.7 * ((q_vae >= v) | (q_data > v)).float().unsqueeze(-1)
    bc = (weight * (pi - target) ** 2).mean()
    loss = -lam * q.mean() + bc
    loss.backward()
    agent.zero_grad(set_to_none=True)

    metrics = agent.actor_step(batch, q_data.unsqueeze(0), v.unsqueeze(0))
    assert metrics["bc_loss"].item() == pytest.approx(bc.item(), rel=1e-5, abs=1e-7)
    assert metrics["actor_loss"].item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    assert 0 < metrics["vae_target_fraction"].item() and metrics["bc_weight"].item() > 0   # both paths are live
    assert grads_match(agent, leaves) != detach_target
    others = (agent.critic, agent.encoder, agent.decoder, agent.value)
    assert all(p.grad is None for m in others for p in m.parameters())


# ----------------------------------------------------------------------------- both agents

SMALL = {"prdc": ["hidden_sizes=[32,32]"],
         "a2pr": ["actor_hidden_sizes=[32,32]", "critic_hidden_sizes=[32,32]", "value_hidden_sizes=[32]",
                  "vae_hidden_sizes=[32]"]}


def ready(name, seeds):
    agent = make_agent(name, seeds=seeds, overrides=SMALL[name])
    agent.attach_dataset(*dataset(), 10)
    return agent


@pytest.mark.parametrize("name", ["prdc", "a2pr"])
def test_member_update_ignores_other_members_data(name):
    batch_a, batch_b = tiny_batch(p=2, seed=1), tiny_batch(p=2, seed=1)
    other = tiny_batch(p=2, seed=99)
    for field in ("obs", "action", "reward", "next_obs"):      # change member 1's data only
        getattr(batch_b, field)[1] = getattr(other, field)[1]
    agents = []
    for batch in (batch_a, batch_b):
        agent = ready(name, (0, 1))
        for _ in range(4):
            agent.update(batch)
        agents.append(agent)
    member0 = [params_of(a, 0) for a in agents]
    member1 = [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


@pytest.mark.parametrize("name", ["prdc", "a2pr"])
def test_member_equals_a_lone_run_with_the_same_seed(name):
    batched, lone = ready(name, (5, 7)), ready(name, (7,))
    batch, lone_batch = tiny_batch(p=2, seed=3), tiny_batch(p=1, seed=3)
    for field in ("obs", "action", "reward", "next_obs", "terminated"):
        setattr(lone_batch, field, getattr(batch, field)[1:].clone())
    for _ in range(4):
        metrics, lone_metrics = batched.update(batch), lone.update(lone_batch)
    member, alone = params_of(batched, 1), params_of(lone, 0)
    for key in member:
        assert torch.allclose(member[key], alone[key], atol=1e-6), key
    for key, value in metrics.items():
        assert value.shape == (2,), key
        assert value[1].item() == pytest.approx(lone_metrics[key].item(), rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("name", ["prdc", "a2pr"])
def test_checkpoint_round_trip_resumes_exactly(name):
    agent = ready(name, (0, 1))
    batches = [tiny_batch(p=2, seed=i) for i in range(6)]
    for batch in batches[:3]:
        agent.update(batch)
    saved = io.BytesIO()
    torch.save({"agent": agent.checkpoint(), "population": agent.population.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    assert not any("neighbour" in k or "dataset" in k for k in state["agent"]["networks"])   # rebuilt, not stored

    resumed = make_agent(name, seeds=(0, 1), overrides=SMALL[name])
    resumed.restore(state["agent"])
    resumed.population.load_state_dict(state["population"])
    resumed.attach_dataset(*dataset(), 10)        # the offline loop calls it again on resume
    for batch in batches[3:]:
        expected, got = agent.update(batch), resumed.update(batch)
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    for (k, a), b in zip(agent.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name", ["prdc", "a2pr"])
def test_act_is_the_deterministic_policy_in_the_unit_box(name):
    agent = ready(name, (0, 1))
    obs = torch.randn(2, 7, OBS_DIM) * 10
    action = agent.act(obs, deterministic=True)
    assert action.shape == (2, 7, ACT_DIM) and action.abs().max() <= 1.0
    assert torch.equal(action, agent.act(obs, deterministic=False))


def test_presets_resolve_for_the_offline_suites():
    for name in ("prdc", "a2pr"):
        cls = get_agent(name)
        assert cls.loop == "offline"
        for suite in (None, "d4rl", "offline-classic"):
            (hp, loop), _ = build([cls.Config, OfflineConfig], load_preset(name, suite), [])
            assert loop.batch_size == 256 and loop.normalize_states and loop.normalize_rewards == "none"
    (prdc, _), _ = build([get_agent("prdc").Config, OfflineConfig], load_preset("prdc", "d4rl"), [])
    assert (prdc.alpha, prdc.beta) == (2.5, 2.0)
