"""H2O (drlbench/agents/h2o.py) and the hybrid loop: the dynamics ratio from the discriminators' logits, the
importance weight and its clip, the dynamics-gap penalty and the discriminator losses by hand on tiny
batches; the critic loss against a line-by-line recomputation; population members independent; the
checkpoint round trip (sim FIFO buffer included); and, slow, learning on a Pendulum gravity gap."""
import copy
import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from drlbench.agents import get_agent
from drlbench.agents.base import Batch
from drlbench.agents.h2o import dynamics_log_ratio, gap_penalty, importance_weight
from drlbench.config import build, load_preset, resolve
from drlbench.loops import MixedBatch, get_loop
from drlbench.population import Population

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
TINY = ["hidden_sizes=[16,16]", "discriminator_hidden_sizes=[16,16]"]


def make_agent(seeds=(0,), overrides=()):
    cls = get_agent("h2o")
    (cfg, _), _ = build([cls.Config, get_loop("hybrid").Config], load_preset("h2o", None), [*TINY, *overrides])
    return cls(OBS, ACT, cfg, Population(list(seeds)))


def batch(p, n, generator, offset=0.0):
    g = lambda *shape: torch.randn(*shape, generator=generator)
    return Batch(g(p, n, 3) + offset, torch.rand(p, n, 1, generator=generator) * 2 - 1, g(p, n), g(p, n, 3) + offset,
                 torch.zeros(p, n))


def mixed(p=1, seed=0, real=4, sim=4, disc=6):
    generator = torch.Generator().manual_seed(seed)
    return MixedBatch(batch(p, real, generator), batch(p, sim, generator, 0.5),
                      batch(p, disc, generator), batch(p, disc, generator, 0.5))


# --- hand computations ---------------------------------------------------------------------------
def test_dynamics_ratio_and_importance_weight_by_hand():
    # D_sa logits (a0, a1) = (0.5, -0.2), D_sas logits (b0, b1) = (0.3, 1.1).
    # P_sa = softmax(a): P_sa(0) = e^0.5 / (e^0.5 + e^-0.2); P_sas = softmax(a + b) = softmax(0.8, 0.9).
    p_sa0 = math.exp(0.5) / (math.exp(0.5) + math.exp(-0.2))
    p_sas0 = math.exp(0.8) / (math.exp(0.8) + math.exp(0.9))
    ratio = (p_sas0 / (1 - p_sas0)) * ((1 - p_sa0) / p_sa0)   # [P_sas(real)/P_sas(sim)] [P_sa(sim)/P_sa(real)]
    assert ratio == pytest.approx(math.exp(0.3 - 1.1))        # = exp(b0 - b1) = 0.449329: D_sa cancels
    sa, sas = torch.tensor([[0.5, -0.2]]), torch.tensor([[0.3, 1.1]])
    assert dynamics_log_ratio(sa, sas).item() == pytest.approx(math.log(ratio), abs=1e-6)
    assert importance_weight(sa, sas, 1e-5, 1.0).item() == pytest.approx(0.449329, abs=1e-6)
    # clip: a ratio exp(2.5) = 12.18 becomes 1 (clip_dynamics_ratio_max), exp(-0.8) below a floor of 0.5 becomes 0.5
    assert importance_weight(sa, torch.tensor([[1.5, -1.0]]), 1e-5, 1.0).item() == 1.0
    assert importance_weight(sa, sas, 0.5, 1.0).item() == 0.5


def test_agent_ratio_comes_from_2tanh_logits_and_equals_the_full_formula():
    agent = make_agent()
    generator = torch.Generator().manual_seed(1)
    obs, action, next_obs = (torch.randn(1, 50, d, generator=generator) * 5 for d in (3, 1, 3))
    sa, sas = agent.discriminate(obs, action, next_obs)
    assert sa.shape == sas.shape == (1, 50, 2) and sa.abs().max() <= 2 and sas.abs().max() <= 2
    torch.testing.assert_close(agent.log_ratio(obs, action, next_obs), dynamics_log_ratio(sa, sas),
                               atol=1e-6, rtol=0)


def test_gap_penalty_by_hand():
    # Q(s_sim, a_sim) = (1, 2, 3), u = (0.5, 1, 0.5) -> omega = (0.25, 0.5, 0.25);
    # logsumexp(Q + log omega) = log(0.25 e + 0.5 e^2 + 0.25 e^3) = log(9.395483) = 2.240229;
    # minus the mean real Q (0.5 + 1.5) / 2 = 1 -> 1.240229; clipped at 1 -> 1.
    q_sim, u, q_real = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 1.0, 0.5]), torch.tensor([0.5, 1.5])
    expected = math.log(0.25 * math.e + 0.5 * math.e**2 + 0.25 * math.e**3) - 1.0
    assert expected == pytest.approx(1.240229, abs=1e-6)
    assert gap_penalty(q_sim, q_real, u, 1.0, 1000.0).item() == pytest.approx(expected, abs=1e-6)
    assert gap_penalty(q_sim, q_real, u, 1.0, 1.0).item() == 1.0
    assert gap_penalty(q_sim, q_real + 2000.0, u, 1.0, 1000.0).item() == -1000.0
    # equal u: omega = 1/3 each, the plain CQL-style logsumexp minus log 3
    flat = gap_penalty(q_sim, q_real, torch.ones(3), 1.0, 1000.0).item()
    assert flat == pytest.approx(torch.logsumexp(q_sim, 0).item() - math.log(3) - 1.0, abs=1e-6)


def test_dynamics_gap_u_is_the_clipped_sim_over_real_log_ratio():
    agent = make_agent(overrides=["s_prime_std_ratio=0"])     # all N perturbed s' equal s': u = clip(-log ratio)
    b = mixed().sim
    u = agent.dynamics_gap(b.obs, b.action, b.next_obs)
    expected = (-agent.log_ratio(b.obs, b.action, b.next_obs)).clamp(1e-45, 10.0)
    torch.testing.assert_close(u, expected, atol=1e-6, rtol=0)
    assert (u > 0).all()


def test_perturbation_std_is_the_codes_zero_padded_buffer_std():
    agent = make_agent()
    x = torch.tensor([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0]])
    agent.attach_dataset(x, torch.zeros(2, 1), 10)
    padded = np.concatenate([x.numpy(), np.zeros((20, 3))])  # 10 zero rows per data row (buffer_ratio 10)
    np.testing.assert_allclose(agent.state_std.numpy(), padded.std(0) + 1e-3, rtol=1e-6)
    plain = make_agent(overrides=["state_std_zero_padding=0"])
    plain.attach_dataset(x, torch.zeros(2, 1), 10)
    np.testing.assert_allclose(plain.state_std.numpy(), x.numpy().std(0) + 1e-3, rtol=1e-6)


def test_discriminator_losses_by_hand():
    agent = make_agent(overrides=["discriminator_noise=0"])
    mb = mixed()
    r, s = mb.discriminator_real, mb.discriminator_sim
    real_sa, real_sas = (x.detach() for x in agent.discriminate(r.obs, r.action, r.next_obs))
    sim_sa, sim_sas = (x.detach() for x in agent.discriminate(s.obs, s.action, s.next_obs))
    softmax = lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)
    dsa = (-torch.log(softmax(real_sa)[..., 0])).mean() + (-torch.log(softmax(sim_sa)[..., 1])).mean()
    dsas = ((-torch.log(softmax(real_sas + real_sa)[..., 0])).mean()
            + (-torch.log(softmax(sim_sas + sim_sa)[..., 1])).mean())
    before = copy.deepcopy(agent.d_sas.state_dict())
    got_sa, got_sas = agent._discriminator_step(r, s)
    assert got_sa.item() == pytest.approx(dsa.item(), rel=1e-5) and got_sas.item() == pytest.approx(dsas.item(), rel=1e-5)
    assert any(not torch.equal(before[k], v) for k, v in agent.d_sas.state_dict().items())


def test_critic_loss_matches_a_line_by_line_recomputation():
    """real MSE + importance-weighted sim MSE + 0.01 x penalty, both critics, no entropy in the target."""
    agent = make_agent(overrides=["discriminator_noise=0"])
    agent.attach_dataset(torch.randn(20, 3, generator=torch.Generator().manual_seed(5)), torch.zeros(20, 1), 10)
    mb = mixed(real=3, sim=5)
    twin = copy.deepcopy(agent)
    generator_state = agent.population.generators[0].get_state()
    metrics = agent.update(mb)

    twin.population.generators[0].set_state(generator_state)
    twin._discriminator_step(mb.discriminator_real, mb.discriminator_sim)
    real, sim, cfg = mb.real, mb.sim, twin.config
    with torch.no_grad():
        g = twin.population.generators[0]
        n = cfg.next_state_samples
        noise = torch.randn(5 * n, 3, generator=g)
        # u: mean over N of log[P_Mhat/P_M] at s' + sigma noise, with the full two-discriminator formula
        s_rep, a_rep = sim.obs[0].repeat_interleave(n, 0), sim.action[0].repeat_interleave(n, 0)
        tilde = sim.next_obs[0].repeat_interleave(n, 0) + noise * twin.state_std
        sa, sas = twin.discriminate(s_rep[None], a_rep[None], tilde[None])
        u = (-dynamics_log_ratio(sa, sas))[0].view(5, n).mean(1).clamp(1e-45, 10.0)
        w = dynamics_log_ratio(*twin.discriminate(sim.obs, sim.action, sim.next_obs))[0].exp().clamp(1e-5, 1.0)
        next_obs = torch.cat([real.next_obs[0], sim.next_obs[0]])
        mean, std = twin._policy(next_obs[None])
        eps = torch.randn(8, 1, generator=g)
        next_action = torch.tanh(mean[0] + std[0] * eps)
        target = twin.critic_target(torch.cat([next_obs, next_action], -1)[None]).squeeze(-1)[0].min(0).values
        y = torch.cat([real.reward[0], sim.reward[0]]) + 0.99 * target
        q = twin.critic(torch.cat([torch.cat([real.obs[0], sim.obs[0]]), torch.cat([real.action[0], sim.action[0]])],
                                  -1)[None]).squeeze(-1)[0]                       # (2, 8)
        total = 0.0
        for i in range(2):
            real_mse = ((q[i, :3] - y[:3]) ** 2).mean()
            sim_mse = (w * (q[i, 3:] - y[3:]) ** 2).mean()
            omega = u / u.sum()
            penalty = (torch.log(torch.sum(torch.exp(q[i, 3:] + torch.log(omega)))) - q[i, :3].mean()).clamp(-1000, 1000)
            total = total + real_mse + sim_mse + 0.01 * penalty
    assert metrics["critic_loss"].item() == pytest.approx(total.item(), rel=1e-4, abs=1e-6)
    assert metrics["sim_weight"].item() == pytest.approx(w.mean().item(), rel=1e-5)
    assert metrics["u_sa"].item() == pytest.approx(u.mean().item(), rel=1e-4)


# --- population ------------------------------------------------------------------------------------
def test_population_members_are_independent():
    """Member 1 of a population of seeds (0, 1) trains exactly as seed 1 alone on the same minibatches."""
    pair, alone = make_agent((0, 1)), make_agent((1,))
    second = lambda b: Batch(*(getattr(b, f.name)[1:] for f in dataclasses.fields(Batch)))
    for step in range(3):
        mb = mixed(p=2, seed=step)
        pair.update(mb)
        alone.update(MixedBatch(*(second(getattr(mb, f.name)) for f in dataclasses.fields(MixedBatch))))
    for (name, a), (_, b) in zip(pair.named_parameters(), alone.named_parameters()):
        m = a.shape[0] // 2
        torch.testing.assert_close(a[m:], b, atol=1e-5, rtol=1e-4, msg=name)


# --- the hybrid loop: checkpoint round trip --------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    from drlbench.datasets.collect import collect

    path, _ = collect("Pendulum-v1", "random", 400, 0, tmp_path_factory.mktemp("data") / "pendulum-random.hdf5")
    return str(path)


LOOP_TINY = ["batch_size=16", "discriminator_batch_size=16", "sim_steps_per_epoch=30", "updates_per_epoch=40",
             "sim_buffer_ratio=0.1"]


def tiny_config(dataset, out, steps=200):
    return resolve("h2o", None, [*TINY, *LOOP_TINY], steps=steps, eval_every=50, eval_episodes=2, out=out,
                   progress="off", dataset=dataset, sim_env="Pendulum-v1?g=15")


def test_checkpoint_round_trip_continues_the_same_run(dataset, tmp_path, monkeypatch):
    from drlbench import harness

    cfg = tiny_config(dataset, tmp_path / "whole")
    harness.train(dataclasses.replace(cfg, seeds=(0, 1)))      # a FIFO of 40 rows overwritten: 200 sim steps

    original = harness.Session.after_step

    def interrupt(self, loop_state):
        original(self, loop_state)
        if self.step == 170:                                   # checkpoint at 150, inside the 4th epoch
            raise KeyboardInterrupt

    cut = dataclasses.replace(tiny_config(dataset, tmp_path / "cut"), seeds=(0, 1))
    monkeypatch.setattr(harness.Session, "after_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        harness.train(cut)
    checkpoint = torch.load(next((tmp_path / "cut").rglob("checkpoint.pt")), weights_only=False)
    assert checkpoint["step"] == 150 and checkpoint["loop"]["in_epoch"] == 150 % 40
    assert checkpoint["loop"]["buffer"]["size"] == 40 and checkpoint["env"] is not None
    monkeypatch.setattr(harness.Session, "after_step", original)
    harness.train(cut, resume=True)
    for seed in (0, 1):
        a = next((tmp_path / "whole").rglob(f"seed_{seed}/evaluations.csv")).read_text()
        b = next((tmp_path / "cut").rglob(f"seed_{seed}/evaluations.csv")).read_text()
        strip = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]   # wall time differs
        assert strip(a) == strip(b)
        meta = json.loads(next((tmp_path / "cut").rglob(f"seed_{seed}/run.json")).read_text())
        assert meta["status"] == "completed" and meta["sim_env"] == "Pendulum-v1?g=15" and meta["real_env"] == "Pendulum-v1"


# --- learning ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_h2o_learns_pendulum_across_a_gravity_gap(tmp_path):
    """Real: Pendulum-v1 (g = 10), 2,000 transitions of a uniform-random policy collected here; sim: g = 12.
    Evaluated in the real dynamics (10 episodes). A random policy scores about -1200. Measured (seed 0, 64 x 64
    networks, about 50 s of CPU): -1179, -1675, -1323, -1137, -1326, -1434, -640, -363, -203 at 0, 1k, ..., 8k
    gradient steps. With sim g = 15 the same run stays at -1238 after 10k steps (the discriminators separate
    the sims' transitions and the importance weights shut most of them out; benchmarks/notes/h2o.md)."""
    from drlbench import harness
    from drlbench.datasets.collect import collect

    path, _ = collect("Pendulum-v1", "random", 2000, 0, tmp_path / "pendulum-random.hdf5")
    cfg = resolve("h2o", None, ["hidden_sizes=[64,64]", "discriminator_hidden_sizes=[64,64]", "batch_size=128",
                                "discriminator_batch_size=128", "sim_steps_per_epoch=500", "updates_per_epoch=500"],
                  steps=8000, eval_every=8000, eval_episodes=10, out=tmp_path / "runs", progress="off",
                  dataset=str(path), sim_env="Pendulum-v1?g=12")
    (record,) = harness.train(dataclasses.replace(cfg, seeds=(0,)))
    assert record.meta["sim_env"] == "Pendulum-v1?g=12" and record.meta["real_env"] == "Pendulum-v1"
    assert record.meta["final_score"] > -500.0, record.meta["final_score"]
