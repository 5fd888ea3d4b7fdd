"""Dynamics gaps: environments with changed physics (`ENV?name=value`, `physics=`), the `--sim-env` option
(train in the simulator, evaluate in the real environment) and what run.json records."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from drlbench import envs
from drlbench.errors import UsageError


def test_pendulum_gravity_changes_one_step_as_the_equations_say():
    # gymnasium's Pendulum: thdot' = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, -8, 8),
    # th' = th + thdot' dt, reward = -(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2), dt = 0.05
    th, thdot, u = 0.7, -0.3, 1.5
    for physics, (g, m, l) in [({}, (10.0, 1.0, 1.0)), ({"g": 15.0}, (15.0, 1.0, 1.0)),
                               ({"g": 15.0, "m": 2.0, "l": 0.5}, (15.0, 2.0, 0.5))]:
        env = envs.make("Pendulum-v1", 1, physics=physics, seed=0)
        env.set_state(torch.tensor([[th, thdot]], dtype=torch.float64))
        step = env.step(torch.tensor([[u]]))
        newthdot = thdot + (3 * g / (2 * l) * math.sin(th) + 3.0 / (m * l * l) * u) * 0.05
        newth = th + newthdot * 0.05
        assert env.get_state()[0].tolist() == pytest.approx([newth, newthdot], abs=1e-6)
        assert step.obs[0].tolist() == pytest.approx([math.cos(newth), math.sin(newth), newthdot], abs=1e-6)
        assert step.reward.item() == pytest.approx(-(th**2 + 0.1 * thdot**2 + 0.001 * u**2), rel=1e-6)
    # by hand for g = 15: thdot' = -0.3 + (22.5 sin 0.7 + 4.5) 0.05 = -0.3 + (14.49491 + 4.5) 0.05 = 0.64975
    assert -0.3 + (22.5 * math.sin(0.7) + 4.5) * 0.05 == pytest.approx(0.64975, abs=1e-5)


def test_the_spec_string_equals_the_physics_argument_and_resolves_canonically():
    a = envs.make("Pendulum-v1?g=15", 2, seed=3)
    b = envs.make("Pendulum-v1", 2, physics={"g": 15}, seed=3)
    action = torch.full((2, 1), 0.5)
    assert torch.equal(a.step(action).obs, b.step(action).obs)
    assert envs.resolve_with_physics("pendulum?m=2&g=15") == "Pendulum-v1?g=15,m=2"
    assert envs.parse_physics("Pendulum-v1?g=15,m=2") == ("Pendulum-v1", {"g": 15.0, "m": 2.0})
    assert envs.resolve_with_physics("Pendulum") == "Pendulum-v1"


def test_cartpole_masses_recompute_the_derived_constants():
    env = envs.make("CartPole-v1?masspole=0.5,length=1", 1, seed=0)
    assert env.total_mass == pytest.approx(1.5) and env.polemass_length == pytest.approx(0.5)
    default = envs.make("CartPole-v1", 1, seed=0)
    assert default.total_mass == pytest.approx(1.1)          # the class constants are untouched
    state = torch.tensor([[0.0, 0.0, 0.05, 0.0]], dtype=torch.float64)
    for e in (env, default):
        e.set_state(state)
    assert not torch.equal(env.step(torch.ones(1, dtype=torch.int64)).obs,
                           default.step(torch.ones(1, dtype=torch.int64)).obs)


def test_mountain_car_force_and_gravity():
    env = envs.make("MountainCarContinuous-v0?power=0.003,gravity=0.001", 1, seed=0)
    env.set_state(torch.tensor([[-0.5, 0.0]], dtype=torch.float64))
    env.step(torch.tensor([[1.0]]))
    velocity = 0.003 * 1.0 - 0.001 * math.cos(3 * -0.5)       # v' = v + power a - gravity cos(3 x)
    assert env.get_state()[0, 1].item() == pytest.approx(velocity, abs=1e-7)


def test_mujoco_multipliers_change_the_loaded_model():
    pytest.importorskip("mujoco")
    base = envs.make("HalfCheetah-v5", 1).vec.envs[0].unwrapped.model
    env = envs.make("HalfCheetah-v5?gravity=2,friction=0.3,mass=1.5", 1)
    model = env.vec.envs[0].unwrapped.model
    np.testing.assert_allclose(model.opt.gravity, 2.0 * base.opt.gravity)
    assert model.opt.gravity[2] == pytest.approx(-19.62)
    np.testing.assert_allclose(model.geom_friction, 0.3 * base.geom_friction)
    np.testing.assert_allclose(model.body_mass, 1.5 * base.body_mass)
    env.reset(0)        # a reset keeps the changed model
    np.testing.assert_allclose(env.vec.envs[0].unwrapped.model.opt.gravity, 2.0 * base.opt.gravity)


def test_mujoco_joint_noise_perturbs_actions_reproducibly_and_resumes():
    pytest.importorskip("mujoco")
    action = torch.zeros(1, 6)
    plain, noisy, again = (envs.make(i, 1, seed=0) for i in
                           ("HalfCheetah-v5", "HalfCheetah-v5?joint_noise=0.5", "HalfCheetah-v5?joint_noise=0.5"))
    a, b, c = plain.step(action), noisy.step(action), again.step(action)
    assert not torch.equal(a.obs, b.obs) and torch.equal(b.obs, c.obs)
    state = noisy.state_dict()
    first = noisy.step(action).obs
    resumed = envs.make("HalfCheetah-v5?joint_noise=0.5", 1, seed=123)   # another env and noise stream, restored
    resumed.load_state_dict(state)
    assert torch.equal(resumed.step(action).obs, first)


@pytest.mark.parametrize("spec, expected", [
    ("Pendulum-v1?gravity=15", "'gravity'"),                 # Pendulum's constant is g
    ("HalfCheetah-v5?gravty=2", "'gravty'"),
    ("CartPole-v1?g=1", "'g'"),
    ("Pendulum-v1?g=-1", "g=-1"),
    ("Pendulum-v1?g=abc", "g=abc"),
    ("HalfCheetah-v5?joint_noise=-1", "joint_noise=-1"),
    ("dmc:cheetah-run?gravity=2", "dmc:cheetah-run"),
    ("gym:Pendulum-v1?g=15", "gym:Pendulum-v1"),
])
def test_bad_physics_are_refused_with_one_line_naming_the_value(spec, expected):
    if spec.startswith("dmc:"):
        pytest.importorskip("dm_control")
    with pytest.raises(UsageError) as info:
        envs.make(spec, 1)
    message = str(info.value)
    assert expected in message and "\n" not in message
    if "'gravity'" in expected:
        assert "choose from: g, l, m" in message


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    from drlbench.datasets.collect import collect

    path, _ = collect("Pendulum-v1", "random", 400, 0, tmp_path_factory.mktemp("data") / "pendulum-random.hdf5")
    return str(path)


@pytest.mark.parametrize("args, expected", [
    (["run", "sac", "--env", "Pendulum", "--sim-env", "Pendulum-v1?G=15"], "'G'"),
    (["run", "sac", "--env", "Pendulum", "--sim-env", "CartPole-v1"], "CartPole-v1"),
    (["run", "sac", "--env", "Pendulum", "--sim-env", "Pendulm?g=15"], "'Pendulm'"),
    (["run", "td3_bc", "--dataset", "{data}", "--sim-env", "Pendulum-v1?g=15"], "--sim-env"),
    (["run", "h2o", "--dataset", "{data}"], "--sim-env"),
])
def test_bad_sim_env_on_the_command_line_exits_2_with_one_line(run_cli, tmp_path, dataset, args, expected):
    args = [a.replace("{data}", dataset) for a in args]
    code, out, err = run_cli(*args, "--steps", "100", "--out", tmp_path / "runs")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_sim_only_training_evaluates_in_the_real_env_and_records_both(run_cli, tmp_path):
    from drlbench.config import resolve
    from drlbench.harness import Session

    cfg = resolve("sac", "Pendulum", ["learning_starts=50", "random_steps=50", "hidden_sizes=[8]"], steps=100,
                  eval_every=100, eval_episodes=1, out=tmp_path, progress="off", sim_env="pendulum?g=15")
    assert cfg.sim_env == "Pendulum-v1?g=15" and cfg.label.startswith("sac-sim-")
    session = Session(dataclasses.replace(cfg, seeds=(0,)), resume=False)
    assert session.env.g == 15.0 and session.evaluator.env.g == 10.0
    session.close()
    code, _, err = run_cli("run", "sac", "--env", "Pendulum", "--sim-env", "Pendulum-v1?g=15", "--steps", "100",
                           "--eval-every", "100", "--eval-episodes", "1", "--quiet", "--out", tmp_path / "cli",
                           "--set", "learning_starts=50", "random_steps=50", "hidden_sizes=[8]")
    assert code == 0, err
    (record,) = (tmp_path / "cli").glob("Pendulum-v1/*/seed_0/run.json")
    meta = json.loads(record.read_text())
    assert record.parent.parent.name.startswith("sac-sim")
    assert meta["sim_env"] == "Pendulum-v1?g=15" and meta["sim_physics"] == {"g": 15.0}
    assert meta["real_env"] == "Pendulum-v1" and "REAL" in meta["evaluation"]
    # the same label with another simulator is refused, not mixed into the same records
    code, _, err = run_cli("run", "sac", "--env", "Pendulum", "--sim-env", "Pendulum-v1?g=12", "--steps", "100",
                           "--quiet", "--out", tmp_path / "cli", "--set", "learning_starts=50", "random_steps=50",
                           "hidden_sizes=[8]")
    assert code == 2 and "sim_env" in err, err


def test_help_documents_the_sim_env_syntax(capsys):
    from drlbench.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--sim-env" in text and "'Pendulum-v1?g=15'" in text and "gravity=2,friction=0.3" in text
