"""`drlbench dataset collect`: the D4RL recipe with a (tiny) behaviour run, names, info, and offline runs
that record their dataset."""
import json

import numpy as np
import pytest

from drlbench.datasets import load_d4rl_hdf5
from drlbench.datasets.collect import snapshots

TINY_SAC = ["--agent", "sac", "--steps", "600", "--eval-every", "200", "--quiet", "--set", "learning_starts=100",
            "random_steps=100", "batch_size=32", "hidden_sizes=[32,32]"]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_random_dataset_is_deterministic_and_named(run_cli, data, tmp_path):
    code, out, err = run_cli("dataset", "collect", "--env", "Pendulum", "--quality", "random", "--transitions", "450")
    assert code == 0, err
    first = (data / "pendulum-random.hdf5").read_bytes()
    code, _, _ = run_cli("dataset", "collect", "--env", "Pendulum", "--quality", "random", "--transitions", "450",
                         "--out", tmp_path / "again.hdf5")
    a, b = load_d4rl_hdf5(data / "pendulum-random.hdf5"), load_d4rl_hdf5(tmp_path / "again.hdf5")
    assert code == 0 and len(first) > 0
    assert np.array_equal(a.observations.numpy(), b.observations.numpy())
    assert np.array_equal(a.actions.numpy(), b.actions.numpy())
    # 450 steps of 200-step episodes: two timeouts (rows 199, 399) dropped, last row dropped, none terminal
    assert a.size == 450 - 3 and a.timeouts_count == 2 and float(a.terminals.sum()) == 0
    assert a.metadata["env_id"] == "Pendulum-v1" and a.metadata["quality"] == "random" and a.metadata["seed"] == 0
    assert float(a.actions.abs().max()) <= 2.0   # environment units (Pendulum torque in [-2, 2])
    code, out, _ = run_cli("dataset", "info", "pendulum-random", "--json")
    info = json.loads(out)
    assert code == 0 and info["transitions"] == 447 and info["episodes"] == 2 and info["evaluation_env"] == "Pendulum-v1"
    expected = 100 * (info["return_mean"] + 1187.69) / (-109.0 + 1187.69)
    assert info["normalized_return_mean"] == pytest.approx(expected, abs=1e-3)


def test_medium_replay_medium_and_medium_expert_from_one_behaviour_run(run_cli, data):
    code, _, err = run_cli("dataset", "collect", "--env", "Pendulum", "--quality", "medium-replay", *TINY_SAC,
                           "--seed", "3")
    assert code == 0, err
    run = data / "behaviour" / "Pendulum-v1" / "behaviour" / "seed_3"
    found = snapshots(run)
    assert [s for s, _, _ in found] == [0, 200, 400, 600]
    replay = load_d4rl_hdf5(data / "pendulum-medium-replay.hdf5")
    meta = replay.metadata
    medium_step = meta["medium_step"]
    # the replay buffer's rows up to the medium snapshot; episodes of 200 steps end in timeouts
    assert meta["behaviour_run"] == str(run) and 0 <= medium_step <= 600
    assert replay.timeouts_count == medium_step // 200 + (medium_step % 200 != 0) or medium_step == 0
    for quality in ("medium", "medium-expert"):
        code, _, err = run_cli("dataset", "collect", "--env", "Pendulum", "--quality", quality, *TINY_SAC,
                               "--seed", "3", "--transitions", "200")
        assert code == 0, err
    medium = load_d4rl_hdf5(data / "pendulum-medium.hdf5")
    both = load_d4rl_hdf5(data / "pendulum-medium-expert.hdf5")
    assert medium.metadata["medium_step"] == medium_step and medium.timeouts_count == 1
    assert both.timeouts_count == 2 and both.size == 2 * 200 - 2   # the timeout rows are dropped
    # the medium half of medium-expert is the medium dataset (same policy, same seed)
    assert np.array_equal(both.observations[:199].numpy(), medium.observations.numpy())


def test_offline_run_records_its_dataset_and_refuses_bad_ones(run_cli, data, tmp_path):
    run_cli("dataset", "collect", "--env", "Pendulum", "--quality", "random", "--transitions", "450")
    code, _, err = run_cli("run", "td3_bc", "--env", "pendulum-random", "--steps", "20", "--eval-every", "10",
                           "--eval-episodes", "1", "--out", tmp_path / "runs", "--quiet")
    assert code == 0, err
    meta = json.loads((tmp_path / "runs" / "pendulum-random" / "td3_bc" / "seed_0" / "run.json").read_text())
    assert meta["steps_unit"] == "gradient steps" and meta["eval_env"] == "Pendulum-v1"
    assert meta["dataset"]["name"] == "pendulum-random" and len(meta["dataset"]["sha256"]) == 64
    assert meta["final_score_normalized"] == pytest.approx(100 * (meta["final_score"] + 1187.69) / (1187.69 - 109.0))
    # a name that is not there says which command makes it; a file for another environment is refused
    code, _, err = run_cli("run", "td3_bc", "--env", "pendulum-expert", "--out", tmp_path / "x")
    assert code == 2 and "drlbench dataset collect --env Pendulum --quality expert" in err
    code, _, err = run_cli("run", "td3_bc", "--dataset", data / "pendulum-random.hdf5", "--env", "MountainCarContinuous",
                           "--steps", "10", "--out", tmp_path / "x")
    assert code == 2 and "observation" in err.lower() and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("run", "sac", "--env", "Pendulum", "--dataset", data / "pendulum-random.hdf5",
                           "--out", tmp_path / "x")
    assert code == 2 and "learns online" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("agent", ["td3_bc", "iql"])
def test_offline_resume_gives_identical_evaluations(run_cli, data, tmp_path, monkeypatch, agent):
    from drlbench.harness import Session

    run_cli("dataset", "collect", "--env", "Pendulum", "--quality", "random", "--transitions", "450")
    args = lambda out, *extra: ("run", agent, "--env", "pendulum-random", "--steps", "60", "--eval-every", "20",
                                "--eval-episodes", "1", "--seeds", "0,1", "--batched", "--out", out, "--quiet",
                                "--set", "hidden_sizes=[16,16]", "batch_size=8", *extra)
    assert run_cli(*args(tmp_path / "straight"))[0] == 0
    original, calls = Session.save_checkpoint, []

    def interrupt_after_second_checkpoint(self, loop_state):
        original(self, loop_state)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt_after_second_checkpoint)
    assert run_cli(*args(tmp_path / "resumed"))[0] == 130
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*args(tmp_path / "resumed", "--resume"))
    assert code == 0, err
    for seed in (0, 1):
        path = f"pendulum-random/{agent}-" + "*" + f"/seed_{seed}/evaluations.csv"
        (straight,), (resumed,) = (list((tmp_path / d).glob(path)) for d in ("straight", "resumed"))
        columns = lambda p: [line.split(",")[:5] for line in p.read_text().splitlines()]
        assert columns(straight) == columns(resumed) and len(columns(straight)) == 5   # header + steps 0, 20, 40, 60
