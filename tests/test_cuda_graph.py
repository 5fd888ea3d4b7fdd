"""CUDA-graph updates (drlbench.cuda_graph, the off-policy loop's `cuda_graph`).

On CPU: the refusals, the replay buffer's device-size sampling (and that `sample` is unchanged),
the in-place capturable switch of the optimizers. With a CUDA device: graph replays against
eager updates from the same state and seeds (SAC, TD3, P members), member independence, and a
short training run through the CLI. The CUDA tests skip where `torch.cuda.is_available()` is false.
"""
import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import get_agent
from drlbench.buffer import ReplayBuffer
from drlbench.config import build, load_preset
from drlbench.cuda_graph import GraphedUpdate, cycle_length, graphed_agents, make_optimizers_capturable
from drlbench.loops.off_policy import Config as OffPolicyConfig
from drlbench.population import Population

OBS_DIM, ACT_DIM = 3, 2
OBS = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_agent(name, seeds, device="cpu", overrides=()):
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset(name, None), ["hidden_sizes=32,32", *overrides])
    return cls(OBS, ACT, hp, Population(list(seeds), device))


def transitions(seeds, step, n=4, device="cpu"):
    """Step `step`'s N transitions of each member, from that member's seed alone."""
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(10_000 * seed + step)
        rows.append((torch.randn(n, OBS_DIM, generator=g), torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
                     torch.randn(n, generator=g), torch.randn(n, OBS_DIM, generator=g),
                     torch.rand(n, generator=g) < 0.1))
    return [torch.stack(parts).to(device) for parts in zip(*rows)]


def fields(batch):
    return [getattr(batch, f.name) for f in dataclasses.fields(batch)]


# --- CPU ---------------------------------------------------------------------------------------
def old_sample(buffer, batch_size):
    """ReplayBuffer.sample as it was before sample_device_size existed (drlbench commit 64f4fb9)."""
    index = buffer.population.randint(buffer.size, batch_size) + buffer._member_offsets
    rows = buffer.table.view(-1, buffer.width).index_select(0, index.view(-1))
    rows = rows.view(buffer.population.size, batch_size, buffer.width)
    o, a = buffer.obs_dim, buffer.action_dim
    obs, action, reward, next_obs, terminated = rows.split([o, a, 1, o, 1], dim=-1)
    return [obs, action, reward.squeeze(-1), next_obs, terminated.squeeze(-1)]


@pytest.mark.parametrize("capacity", [10, 64, 1000])
def test_sample_unchanged_with_device_size_tracking(capacity):
    """`sample` (the CPU path) gives the old indices bit for bit, also while `size_tensor` is kept."""
    seeds = (0, 1, 7)
    new, old = ReplayBuffer(Population(seeds), capacity, OBS_DIM, ACT_DIM), ReplayBuffer(Population(seeds), capacity,
                                                                                       OBS_DIM, ACT_DIM)
    new.size_tensor
    for step in range(40):   # fills, then wraps around (capacity 10 and 64)
        data = transitions(seeds, step)
        new.add(*data)
        old.add(*data)
        assert all(torch.equal(x, y) for x, y in zip(fields(new.sample(33)), old_sample(old, 33)))
        assert int(new.size_tensor) == new.size == old.size
    for a, b in zip(new.population.generators, old.population.generators):
        assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("capacity", [10, 1000])
def test_sample_device_size(capacity):
    """The graph-safe sampler: indices r % size, r = randint(2**62) from each member's generator,
    within the filled rows at every size; member p's draws do not depend on the other members."""
    seeds = (0, 1, 7)
    buffer = ReplayBuffer(Population(seeds), capacity, OBS_DIM, ACT_DIM)
    alone = ReplayBuffer(Population([1]), capacity, OBS_DIM, ACT_DIM)
    reference = [torch.Generator().manual_seed(s) for s in seeds]
    for step in range(30):
        data = transitions(seeds, step)
        buffer.add(*data)
        alone.add(*transitions([1], step))
        batch = buffer.sample_device_size(50)
        expected = torch.stack([torch.randint(2**62, (50,), generator=g) % buffer.size for g in reference])
        rows = buffer.table[torch.arange(3)[:, None], expected]
        assert torch.equal(batch.obs, rows[..., :OBS_DIM])
        assert torch.equal(batch.reward, rows[..., OBS_DIM + ACT_DIM])
        assert all(torch.equal(x[1], y[0]) for x, y in zip(fields(batch), fields(alone.sample_device_size(50))))
    state = buffer.state_dict()
    fresh = ReplayBuffer(Population(seeds), capacity, OBS_DIM, ACT_DIM)
    fresh.size_tensor
    fresh.load_state_dict(state)
    assert int(fresh.size_tensor) == buffer.size


def test_optimizers_capturable_in_place():
    """The capturable switch keeps every optimizer object, moment and step count."""
    agent = make_agent("sac", (0, 1))
    buffer = ReplayBuffer(agent.population, 100, OBS_DIM, ACT_DIM)
    for step in range(10):
        buffer.add(*transitions((0, 1), step))
    for _ in range(3):
        agent.update(buffer.sample(16))
    before = {name: (opt, {k: {s: v.clone() for s, v in st.items()} for k, st in opt.state_dict()["state"].items()})
              for name, opt in agent.optimizers.items()}
    make_optimizers_capturable(agent)
    for name, opt in agent.optimizers.items():
        assert opt is before[name][0]
        assert all(group["capturable"] for group in opt.param_groups)
        after = opt.state_dict()["state"]
        assert after.keys() == before[name][1].keys()
        for key, entries in before[name][1].items():
            for slot, value in entries.items():
                assert torch.equal(after[key][slot].to(value.device, value.dtype), value), (name, key, slot)
                assert after[key][slot].device == agent.log_alpha.device


def test_cycle_lengths():
    assert graphed_agents() == ["sac", "td3"]      # opted in by Agent.graph_cycle; subclasses opt out
    assert cycle_length(make_agent("sac", (0,))) == 1
    assert cycle_length(make_agent("sac", (0,), overrides=["target_update_interval=3"])) == 3
    assert cycle_length(make_agent("td3", (0,))) == 2
    with pytest.raises(ValueError, match="sac, td3"):
        cycle_length(make_agent("pmoe_sac", (0,)))


def test_graphed_update_refuses_cpu():
    agent = make_agent("sac", (0,))
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedUpdate(agent, ReplayBuffer(agent.population, 10, OBS_DIM, ACT_DIM), 4)


@pytest.mark.parametrize("agent,message", [("sac", "cuda_graph=true needs --device cuda"),
                                           ("dsac_t", "cuda_graph=true needs --device cuda")])
def test_cuda_graph_on_cpu_is_a_usage_error(run_cli, tmp_path, agent, message):
    code, out, err = run_cli("run", agent, "--env", "Pendulum", "--steps", "5000", "--out", tmp_path / "runs",
                             "--set", "cuda_graph=true")
    assert code == 2 and message in err and "(this run's device is cpu)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


# --- CUDA --------------------------------------------------------------------------------------
def run_updates(name, seeds, graphed: bool, updates=9, overrides=()):
    """Fill a buffer, then `updates` updates, each after one more `add` and one `act` (eager draws
    between replays); returns the agent. graphed: through GraphedUpdate (warm-up 2, then replays);
    else the same calls eagerly."""
    agent = make_agent(name, seeds, "cuda", overrides)
    buffer = ReplayBuffer(agent.population, 1000, OBS_DIM, ACT_DIM)
    for step in range(8):
        buffer.add(*transitions(seeds, step, device="cuda"))
    step_fn = GraphedUpdate(agent, buffer, 16, warmup=2) if graphed else (
        lambda: agent.update(buffer.sample_device_size(16)))
    if not graphed:
        buffer.size_tensor
    for i in range(updates):
        buffer.add(*transitions(seeds, 100 + i, device="cuda"))
        agent.act(buffer.table[:, :3, :OBS_DIM], deterministic=False)
        step_fn()
    if graphed:
        assert step_fn.captured and not step_fn.saw_nonfinite()
    torch.cuda.synchronize()
    return agent


def assert_same_parameters(a, b, atol=1e-5):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        if torch.is_tensor(x):
            assert torch.allclose(x, y, atol=atol, rtol=1e-5), name


@cuda
@pytest.mark.parametrize("name,overrides", [("sac", ()), ("sac", ("target_update_interval=2",)), ("td3", ()),
                                            ("td3", ("policy_delay=3",))])
def test_graph_replay_equals_eager(name, overrides):
    graphed = run_updates(name, (0, 1, 2), True, overrides=overrides)
    eager = run_updates(name, (0, 1, 2), False, overrides=overrides)
    assert graphed.updates == eager.updates == 9
    assert_same_parameters(graphed, eager)
    for g, e in zip(graphed.population.generators, eager.population.generators):
        assert torch.equal(g.get_state(), e.get_state())   # the graphs advanced each generator as eager ops do
    for opt_g, opt_e in zip(graphed.optimizers.values(), eager.optimizers.values()):
        for sg, se in zip(opt_g.state.values(), opt_e.state.values()):
            assert torch.allclose(sg["exp_avg_sq"], se["exp_avg_sq"], atol=1e-7)
            assert float(sg["step"]) == float(se["step"])


@cuda
@pytest.mark.parametrize("name", ["sac", "td3"])
def test_graph_members_independent(name):
    """Member 1 of a P = 3 graphed run equals a graphed run of seed 1 alone (to float rounding:
    batched matmuls of other batch counts may take other kernels)."""
    batch = run_updates(name, (0, 1, 2), True)
    alone = run_updates(name, (1,), True)
    for (key, x), (_, y) in zip(batch.state_dict().items(), alone.state_dict().items()):
        if torch.is_tensor(x) and x.dim() > 0 and x.shape[0] in (3, 6):
            member = x.view(3, -1, *x.shape[1:])[1].reshape(y.shape)
            assert torch.allclose(member, y, atol=1e-4, rtol=1e-4), key


@cuda
@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_cuda_graph_run(run_cli, tmp_path, agent):
    """A short run with graphs on: completes, records cuda_graph in run.json, finite returns."""
    code, out, err = run_cli("run", agent, "--env", "Pendulum", "--steps", "600", "--device", "cuda",
                             "--seeds", "0,1", "--batched", "--eval-every", "300", "--eval-episodes", "2", "--quiet",
                             "--out", tmp_path / "runs", "--set", "cuda_graph=true", "learning_starts=200",
                             "random_steps=200", "batch_size=64")
    assert code == 0, err
    records = list((tmp_path / "runs").rglob("run.json"))
    assert len(records) == 2
    for path in records:
        meta = json.loads(path.read_text())
        assert meta["hyperparameters"]["cuda_graph"] is True and meta["status"] == "completed"
