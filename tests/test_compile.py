"""The off-policy loop's `compile = true`: SAC's and TD3's `Agent.compiled_parts` through torch.compile.

From the same state and seeds, compiled updates equal eager ones to float rounding (Inductor fuses
element-wise work and the min over the twin critics takes a masked path, so not bit for bit), for P = 2
members over several updates; a compiled update is deterministic; a short CLI run completes; the
refusals are one line. Inductor on CPU compiles C++: the compiling tests skip without a C++ compiler.
"""
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench.agents import get_agent
from drlbench.buffer import ReplayBuffer
from drlbench.config import build, load_preset
from drlbench.loops.off_policy import Config as OffPolicyConfig, has_cpp_compiler
from drlbench.population import Population

OBS_DIM, ACT_DIM, SEEDS = 3, 2, (0, 1)
OBS = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
needs_compiler = pytest.mark.skipif(not has_cpp_compiler(), reason="Inductor on CPU needs a C++ compiler")


def trained(name: str, compiled: bool, updates: int, overrides=()) -> tuple:
    """An agent after `updates` updates on a fixed buffer; returns (agent, metrics of the last update)."""
    cls = get_agent(name)
    (hp, _), _ = build([cls.Config, OffPolicyConfig], load_preset(name, None), ["hidden_sizes=32,32", *overrides])
    agent = cls(OBS, ACT, hp, Population(list(SEEDS)))
    if compiled:
        agent.compile_parts()
    buffer = ReplayBuffer(agent.population, 100, OBS_DIM, ACT_DIM)
    g = torch.Generator().manual_seed(7)
    p, n = len(SEEDS), 64
    buffer.add(torch.randn(p, n, OBS_DIM, generator=g), torch.rand(p, n, ACT_DIM, generator=g) * 2 - 1,
               torch.randn(p, n, generator=g), torch.randn(p, n, OBS_DIM, generator=g),
               (torch.rand(p, n, generator=g) < 0.1).float())
    metrics = None
    for _ in range(updates):
        metrics = agent.update(buffer.sample(16))
    return agent, metrics


@needs_compiler
@pytest.mark.parametrize("name,overrides", [("sac", ()), ("sac", ("actor_q=mean", "alpha_resample=false")),
                                            ("td3", ())])
def test_compiled_update_matches_eager(name, overrides):
    eager, eager_metrics = trained(name, False, 4, overrides)
    compiled, compiled_metrics = trained(name, True, 4, overrides)
    for part in compiled.compiled_parts:   # the parts run through torch.compile, not the eager methods
        assert getattr(compiled, part)._torchdynamo_orig_callable.__func__ is getattr(type(compiled), part)
    for (key, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=key)
    assert eager_metrics.keys() == compiled_metrics.keys()
    for key in eager_metrics:
        torch.testing.assert_close(compiled_metrics[key], eager_metrics[key], rtol=1e-4, atol=1e-5, msg=key)


@needs_compiler
def test_compiled_update_is_deterministic():
    first, _ = trained("sac", True, 3)
    second, _ = trained("sac", True, 3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@needs_compiler
def test_compiled_run_through_the_cli(run_cli, tmp_path):
    code, out, err = run_cli("run", "td3", "--env", "Pendulum", "--steps", "300", "--out", tmp_path / "runs",
                             "--quiet", "--set", "compile=true", "hidden_sizes=32,32", "random_steps=100",
                             "learning_starts=100")
    assert code == 0, err
    (meta_path,) = (tmp_path / "runs").rglob("run.json")
    meta = json.loads(meta_path.read_text())
    assert meta["hyperparameters"]["compile"] is True and meta["status"] == "completed"


@pytest.mark.parametrize("agent,extra,message", [
    ("dsac_t", (), "compile=true: compiled updates are written for sac, td3, not dsac_t"),
    ("sac", ("cuda_graph=true",), "compile=true and cuda_graph=true: choose one"),
])
def test_compile_refusals(run_cli, tmp_path, agent, extra, message):
    code, out, err = run_cli("run", agent, "--env", "Pendulum", "--steps", "5000", "--out", tmp_path / "runs",
                             "--set", "compile=true", *extra)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
