"""OFQL (one-step flow Q-learning): the MeanFlow identity target against finite differences of
u_theta, the one-step and K-step samplers, the flow-ratio branch, the Q-loss weight alpha = eta/E|Q|,
the critic target by hand, population independence, checkpoint round trips, and (slow) learning:
OFQL beats behaviour cloning on a Pendulum dataset collected inside the test."""
import io
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from drlbench.agents import Batch, get_agent
from drlbench.agents.ofql import clip_grad_norm, sinusoidal
from drlbench.config import build, load_preset
from drlbench.loops.offline import Config as OfflineConfig
from drlbench.nn import mish
from drlbench.population import Population
from tests.test_population import params_of

OBS_DIM, ACT_DIM = 3, 2
OBS = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
SMALL = ["hidden_sizes=[16,16]", "time_embed_dim=8"]


def make_agent(seeds=(0,), overrides=(), double=False):
    cls = get_agent("ofql")
    (hp, _), _ = build([cls.Config, OfflineConfig], load_preset("ofql", None), [*SMALL, *overrides])
    agent = cls(OBS, ACT, hp, Population(list(seeds)))
    return agent.double() if double else agent


def tiny_batch(p=1, b=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(p, b, OBS_DIM, generator=g, dtype=dtype),
                 action=torch.rand(p, b, ACT_DIM, generator=g, dtype=dtype) * 2 - 1,
                 reward=torch.randn(p, b, generator=g, dtype=dtype),
                 next_obs=torch.randn(p, b, OBS_DIM, generator=g, dtype=dtype),
                 terminated=(torch.arange(b) == 1).to(dtype).expand(p, b).clone())


def next_draws(agent, *shapes, kind="randn"):
    """Member 0's next draws (in order), leaving its generator as it was."""
    g = agent.population.generators[0]
    state = g.get_state()
    out = [getattr(torch, kind)(*s, generator=g) for s in shapes]
    g.set_state(state)
    return out


# ----------------------------------------------------------------------------- pieces by hand

def test_mish_matches_torch_in_value_gradient_and_jvp():
    x = (torch.randn(4, 5, dtype=torch.double) * 6).requires_grad_()
    assert torch.autograd.gradcheck(mish, (x,))
    tangent = torch.randn(4, 5, dtype=torch.double)
    (y, dy), (y_ref, dy_ref) = torch.func.jvp(mish, (x.detach(),), (tangent,)), \
        torch.func.jvp(F.mish, (x.detach(),), (tangent,))
    assert torch.allclose(y, y_ref) and torch.allclose(dy, dy_ref)
    with torch.no_grad():
        assert torch.allclose(mish(x), F.mish(x))


def test_sinusoidal_embedding_is_dqls():
    x = torch.tensor([[[0.3]]])
    freqs = [10000 ** (-i / 3) for i in range(4)]
    expected = [math.sin(0.3 * f) for f in freqs] + [math.cos(0.3 * f) for f in freqs]
    assert torch.allclose(sinusoidal(x, 8)[0, 0], torch.tensor(expected), atol=1e-6)


def test_meanflow_target_equals_finite_differences_of_u():
    """u_tgt = v - (t - r)(v . d_a u + d_t u): the directional derivative of u along (v, 0, 1), here by
    central differences in float64."""
    agent = make_agent(double=True)
    batch = tiny_batch(dtype=torch.float64)
    noise = torch.randn(1, 6, ACT_DIM, dtype=torch.float64)
    t = torch.tensor([0.9, 0.7, 0.5, 0.4, 0.8, 0.2], dtype=torch.float64).view(1, 6, 1)
    r = torch.tensor([0.1, 0.7, 0.2, 0.0, 0.5, 0.2], dtype=torch.float64).view(1, 6, 1)
    _, target = agent.flow_loss(batch.obs, batch.action, noise, t, r)

    a_t, v = (1 - t) * batch.action + t * noise, noise - batch.action
    u = lambda h: agent.actor(a_t + h * v, r, t + h, batch.obs).detach()   # noqa: E731
    h = 1e-5
    dudt = (u(h) - u(-h)) / (2 * h)
    assert torch.allclose(target, v - (t - r) * dudt, atol=1e-7)
    # rows with r = t: plain flow matching, the target is v itself
    same = (t == r).squeeze(-1)
    assert torch.allclose(target[same], v[same])


def test_flow_loss_value_and_gradient_match_a_plain_forward():
    agent = make_agent(double=True)
    batch = tiny_batch(dtype=torch.float64)
    noise = torch.randn(1, 6, ACT_DIM, dtype=torch.float64)
    t, r = agent.sample_times(6)
    t, r = t.double(), r.double()
    loss, target = agent.flow_loss(batch.obs, batch.action, noise, t, r)
    loss.sum().backward()
    through_jvp = [p.grad.clone() for p in agent.actor.parameters()]
    agent.actor.zero_grad(set_to_none=True)
    u = agent.actor((1 - t) * batch.action + t * noise, r, t, batch.obs)
    plain = (u - target).pow(2).mean()
    assert loss.item() == pytest.approx(plain.item(), rel=1e-12)
    plain.backward()
    for a, b in zip(through_jvp, agent.actor.parameters()):
        assert torch.allclose(a, b.grad, atol=1e-12)


def test_adaptive_weight_by_hand():
    agent = make_agent(overrides=["adaptive_p=0.5", "adaptive_c=0.01"], double=True)
    batch = tiny_batch(dtype=torch.float64)
    noise = torch.randn(1, 6, ACT_DIM, dtype=torch.float64)
    t = torch.full((1, 6, 1), 0.6, dtype=torch.float64)
    r = torch.full((1, 6, 1), 0.3, dtype=torch.float64)
    loss, target = agent.flow_loss(batch.obs, batch.action, noise, t, r)
    err = (agent.actor((1 - t) * batch.action + t * noise, r, t, batch.obs) - target).pow(2).mean(-1)
    assert loss.item() == pytest.approx((err / (err + 0.01).sqrt()).mean().item(), rel=1e-10)


def test_time_sampling_flow_ratio_branch():
    agent = make_agent(seeds=(0, 1))
    (draw,) = next_draws(agent, (400, 2))
    t, r = agent.sample_times(400)
    assert t.shape == r.shape == (2, 400, 1)
    logit = torch.sigmoid(draw * 1.0 - 0.4)                 # logit-normal(-0.4, 1) pair, member 0
    assert torch.allclose(t[0, :, 0], logit.max(-1).values)
    same = (t == r).squeeze(-1)
    assert same.sum(-1).tolist() == [200, 200]              # int(0.5 B) rows with r = t, per member
    assert torch.allclose(r[0, ~same[0], 0], logit.min(-1).values[~same[0]])
    assert (r <= t).all() and (t > 0).all() and (t < 1).all()
    assert not torch.equal(same[0], same[1])                  # each member picks its own rows
    for ratio, count in (("0.0", 0), ("1.0", 400), ("0.25", 100)):
        t, r = make_agent(overrides=[f"flow_ratio={ratio}"]).sample_times(400)
        assert int((t == r).sum()) == count


def test_one_step_sample_is_noise_minus_u_at_0_1():
    agent = make_agent(seeds=(0, 1))
    obs = torch.randn(2, 5, OBS_DIM)
    noise = torch.randn(2, 5, ACT_DIM) * 0.3
    ones = torch.ones(2, 5, 1)
    expected = (noise - agent.actor(noise, 0 * ones, ones, obs)).clamp(-1, 1)
    assert torch.allclose(agent.actor.sample(obs, noise, 1), expected)
    # act with one candidate is that sample, with the member's own noise
    one = make_agent(seeds=(0, 1), overrides=["act_candidates=1"])
    (eps,) = next_draws(one, (5, ACT_DIM))
    action = one.act(obs, deterministic=True)
    assert torch.allclose(action[0], one.actor.sample(obs, torch.stack([eps, eps]), 1)[0])


def test_k_step_sampler_by_hand():
    agent = make_agent()
    obs, z = torch.randn(1, 4, OBS_DIM), torch.randn(1, 4, ACT_DIM) * 0.2
    ones = torch.ones(1, 4, 1)
    expected = z
    for t, r in ((1.0, 2 / 3), (2 / 3, 1 / 3), (1 / 3, 0.0)):
        expected = expected - (t - r) * agent.actor(expected, r * ones, t * ones, obs)
    assert torch.allclose(agent.actor.sample(obs, z, 3), expected.clamp(-1, 1), atol=1e-6)


def test_q_loss_weight_alpha_is_eta_over_mean_abs_q():
    agent = make_agent(seeds=(0, 1), overrides=["eta=0.3"])
    q = torch.tensor([[[1.0, -3.0, 5.0], [4.0, 2.0, -6.0]],          # member 0: Q1 mean 1, E|Q1| 3; Q2 mean 0, E|Q2| 4
                      [[-2.0, -2.0, -2.0], [1.0, 1.0, 1.0]]])        # (P=2, 2 heads, B=3)
    (coin,) = next_draws(agent, (1,), kind="rand")
    loss, inv = agent.q_loss(q)
    if coin.item() > 0.5:       # DQL: j = 1, k = 2: -Q1.mean() / |Q2|.mean()
        assert (loss[0].item(), inv[0].item()) == pytest.approx((-1 / 4, 1 / 4))
    else:                       # j = 2, k = 1: -Q2.mean() / |Q1|.mean()
        assert (loss[0].item(), inv[0].item()) == pytest.approx((0.0, 1 / 3))
    # min of the twins: [1, -3, -6], mean -8/3, E|.| 10/3;  q1: mean 1, E|.| 3
    for kind, expected in (("min", (0.8, 0.3)), ("q1", (-1 / 3, 1 / 3))):
        loss, inv = make_agent(overrides=[f"actor_q={kind}"]).q_loss(q[:1])
        assert (loss[0].item(), inv[0].item()) == pytest.approx(expected)
    # the update logs alpha = eta / E|Q_k(s, a_theta)|, and the actor loss is bc + eta q_loss
    metrics = agent.update(tiny_batch(p=2))
    assert torch.allclose(metrics["actor_loss"], metrics["bc_loss"] + 0.3 * metrics["q_loss"])
    assert (metrics["alpha"] > 0).all()


def test_critic_target_by_hand_uses_the_ema_actor():
    agent = make_agent(overrides=["grad_norm=0"])
    batch = tiny_batch()
    (eps,) = next_draws(agent, (6, ACT_DIM))
    with torch.no_grad():
        a_next = agent.actor_ema.sample(batch.next_obs, eps.unsqueeze(0), 1)
        q_next = agent.critic_target(torch.cat([batch.next_obs, a_next], -1)).squeeze(-1).min(1).values
        y = batch.reward + 0.99 * (1 - batch.terminated) * q_next
        q = agent.critic(torch.cat([batch.obs, batch.action], -1)).squeeze(-1)
        expected = (q - y.unsqueeze(1)).pow(2).mean(-1).sum(1)
    metrics = agent.update(batch)
    assert metrics["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_ema_actor_waits_for_ema_start_then_every_ema_every():
    agent = make_agent(overrides=["ema_start=2", "ema_every=2", "ema_decay=0.5"])
    initial = [p.clone() for p in agent.actor_ema.parameters()]
    batch = tiny_batch()
    for step in range(2):                                   # updates 0, 1: before ema_start
        agent.update(batch)
        assert all(torch.equal(a, b) for a, b in zip(initial, agent.actor_ema.parameters()))
    before = [p.clone() for p in agent.actor_ema.parameters()]
    agent.update(batch)                                     # update 2: averaged with decay 0.5
    for old, new, online in zip(before, agent.actor_ema.parameters(), agent.actor.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * online)
    before = [p.clone() for p in agent.actor_ema.parameters()]
    agent.update(batch)                                     # update 3: not a multiple of 2
    assert all(torch.equal(a, b) for a, b in zip(before, agent.actor_ema.parameters()))


def test_grad_norm_clipping_is_per_member():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    p.grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    norm = clip_grad_norm([p], 1.0, 2)
    assert norm.tolist() == pytest.approx([5.0, 0.5])
    assert torch.allclose(p.grad, torch.tensor([[0.6, 0.8], [0.3, 0.4]]), atol=1e-6)


def test_max_q_backup_takes_max_over_samples_then_min_over_heads():
    agent = make_agent(overrides=["max_q_backup=true", "backup_samples=3", "grad_norm=0"])
    batch = tiny_batch(b=2)
    (eps,) = next_draws(agent, (6, ACT_DIM))
    with torch.no_grad():
        next_obs = batch.next_obs.repeat_interleave(3, 1)
        a_next = agent.actor_ema.sample(next_obs, eps.unsqueeze(0), 1)
        q = agent.critic_target(torch.cat([next_obs, a_next], -1)).view(1, 2, 2, 3)
        y = batch.reward + 0.99 * (1 - batch.terminated) * q.max(-1).values.min(1).values
        q_now = agent.critic(torch.cat([batch.obs, batch.action], -1)).squeeze(-1)
        expected = (q_now - y.unsqueeze(1)).pow(2).mean(-1).sum(1)
    assert agent.update(batch)["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_act_draws_by_softmax_of_q_and_argmax_option():
    agent = make_agent(seeds=(0, 1), overrides=["act_selection=argmax", "act_candidates=7"])
    obs = torch.randn(2, 3, OBS_DIM)
    (eps,) = next_draws(agent, (21, ACT_DIM))
    action = agent.act(obs, deterministic=True)
    rep = obs.repeat_interleave(7, 1)
    with torch.no_grad():
        cand = agent.actor.sample(rep, torch.stack([eps, eps]), 1)[0]             # member 0's candidates
        q = agent.critic_target(torch.cat([rep, agent.actor.sample(rep, torch.stack([eps, eps]), 1)], -1))
        q = q.min(1).values[0].view(3, 7)
    assert torch.allclose(action[0], cand.view(3, 7, ACT_DIM)[torch.arange(3), q.argmax(-1)])
    soft = make_agent(seeds=(0, 1), overrides=["act_candidates=7"])
    action = soft.act(obs, deterministic=True)
    assert action.shape == (2, 3, ACT_DIM) and action.abs().max() <= 1


# ----------------------------------------------------------------------------- population, checkpoint

def test_member_update_ignores_other_members_data():
    batch_a, batch_b = tiny_batch(p=2, seed=1), tiny_batch(p=2, seed=1)
    other = tiny_batch(p=2, seed=99)
    for field in ("obs", "action", "reward", "next_obs"):        # change member 1's data only
        getattr(batch_b, field)[1] = getattr(other, field)[1]
    agents = []
    for batch in (batch_a, batch_b):
        agent = make_agent(seeds=(0, 1), overrides=["ema_start=0", "ema_every=1"])
        for _ in range(4):
            agent.update(batch)
        agents.append(agent)
    member0 = [params_of(a, 0) for a in agents]
    member1 = [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


def test_member_equals_a_lone_run_with_the_same_seed():
    batched, lone = make_agent(seeds=(5, 7)), make_agent(seeds=(7,))
    batch, lone_batch = tiny_batch(p=2, seed=3), tiny_batch(p=1, seed=3)
    for field in ("obs", "action", "reward", "next_obs", "terminated"):
        setattr(lone_batch, field, getattr(batch, field)[1:].clone())
    for _ in range(4):
        metrics, lone_metrics = batched.update(batch), lone.update(lone_batch)
    member, alone = params_of(batched, 1), params_of(lone, 0)
    for key in member:
        assert torch.allclose(member[key], alone[key], atol=1e-5), key
    for key, value in metrics.items():
        assert value.shape == (2,), key
        assert value[1].item() == pytest.approx(lone_metrics[key].item(), rel=1e-3, abs=1e-5), key


def test_checkpoint_round_trip_resumes_exactly():
    agent = make_agent(seeds=(0, 1), overrides=["ema_start=1", "ema_every=1", "lr_decay=true"])
    agent.attach_dataset(torch.zeros(4, OBS_DIM), torch.zeros(4, ACT_DIM), 10)
    batches = [tiny_batch(p=2, seed=i) for i in range(6)]
    for batch in batches[:3]:
        agent.update(batch)
    saved = io.BytesIO()
    torch.save({"agent": agent.checkpoint(), "population": agent.population.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    resumed = make_agent(seeds=(0, 1), overrides=["ema_start=1", "ema_every=1", "lr_decay=true"])
    resumed.restore(state["agent"])
    resumed.population.load_state_dict(state["population"])
    resumed.attach_dataset(torch.zeros(4, OBS_DIM), torch.zeros(4, ACT_DIM), 10)
    for batch in batches[3:]:
        expected, got = agent.update(batch), resumed.update(batch)
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    for (k, a), b in zip(agent.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    obs = torch.randn(2, 4, OBS_DIM)
    assert torch.equal(agent.act(obs, True), resumed.act(obs, True))


def test_preset_resolves_and_is_an_offline_agent():
    cls = get_agent("ofql")
    assert cls.loop == "offline"
    for suite in (None, "d4rl", "offline-classic"):
        (hp, loop), _ = build([cls.Config, OfflineConfig], load_preset("ofql", suite), [])
        assert hp.sampling_steps == 1 and hp.flow_ratio == 0.5 and hp.hidden_sizes == (256, 256, 256)
        assert loop.batch_size == 256


# ----------------------------------------------------------------------------- learning (slow)

@pytest.mark.slow
def test_ofql_beats_bc_on_medium_replay(run_cli, tmp_path):
    """A small pendulum-medium-replay (a 4k-step SAC behaviour run, mean return -1399), 2 seeds each at 3k
    gradient steps. Measured: OFQL -1024 / -1052 vs BC -1321 / -1533 (at 2k steps OFQL was not yet ahead:
    -1375 / -1447). About 90 s of CPU, two thirds of it OFQL's 3k updates of two members."""
    import os

    from drlbench.cli import main

    os.environ["DRLBENCH_DATA"] = str(tmp_path / "data")
    try:
        assert main(["dataset", "collect", "--env", "Pendulum", "--quality", "medium-replay", "--steps", "4000",
                     "--eval-every", "500", "--quiet", "--set", "learning_starts=500", "random_steps=500",
                     "hidden_sizes=[64,64]"]) == 0
        finals = {}
        for agent, extra in (("bc", ["hidden_sizes=[64,64]"]),
                             ("ofql", ["hidden_sizes=[64,64]", "act_candidates=10"])):
            code, _, err = run_cli("run", agent, "--env", "pendulum-medium-replay", "--steps", "3000",
                                   "--eval-every", "3000", "--seeds", "0-1", "--batched", "--out", tmp_path / "runs",
                                   "--tag", agent,
                                   "--quiet", "--set", *extra)
            assert code == 0, err
            runs = (tmp_path / "runs").glob(f"pendulum-medium-replay/{agent}/seed_*/run.json")
            finals[agent] = float(np.mean([json.loads(p.read_text())["final_score"] for p in runs]))
    finally:
        del os.environ["DRLBENCH_DATA"]
    assert finals["ofql"] > finals["bc"] + 100, finals
