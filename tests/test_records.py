"""Run records, resume and failure handling, through the real CLI on short real runs."""
import csv
import json

import pytest

from drlbench.harness import Session

SMALL = ["--set", "learning_starts=100", "random_steps=100", "batch_size=32", "hidden_sizes=32,32",
         "buffer_size=1000"]


def run_args(tmp_path, agent="sac", *extra, sets=()):
    return ["run", agent, "--env", "Pendulum", "--steps", "600", "--eval-every", "200", "--eval-episodes", "2",
            "--out", tmp_path, "--tag", "small", "--quiet", *SMALL, *sets, *extra]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_run_record_contents(run_cli, tmp_path):
    code, out, err = run_cli(*run_args(tmp_path))
    assert code == 0, err
    run = tmp_path / "Pendulum-v1" / "small" / "seed_0"
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["error"] is None
    assert meta["agent"] == "sac" and meta["env_id"] == "Pendulum-v1" and meta["seed"] == 0
    assert meta["hyperparameters"]["batch_size"] == 32 and meta["hyperparameters"]["gamma"] == 0.99
    assert meta["overrides"]["hidden_sizes"] == [32, 32]
    assert {"drlbench", "torch", "gymnasium", "mujoco"} <= set(meta["versions"])
    assert meta["started_at"] and meta["ended_at"] and meta["host"]["hostname"]
    rows = read_csv(run / "evaluations.csv")
    assert [int(r["step"]) for r in rows] == [0, 200, 400, 600]
    assert {"step", "return_mean", "return_std", "episodes"} <= set(rows[0])
    assert meta["final_score"] == pytest.approx(float(rows[-1]["return_mean"]))
    assert not (run / "checkpoint.pt").exists()        # removed once completed
    assert "final return" in out
    # a second identical command skips the completed seed
    code, _, err = run_cli(*run_args(tmp_path))
    assert code == 0 and "already completed" in err


def test_same_seed_reproduces_the_run(run_cli, tmp_path):
    assert run_cli(*run_args(tmp_path / "a", "td3"))[0] == 0
    assert run_cli(*run_args(tmp_path / "b", "td3"))[0] == 0
    rows = [read_csv(tmp_path / d / "Pendulum-v1" / "small" / "seed_0" / "evaluations.csv") for d in "ab"]
    assert [r["return_mean"] for r in rows[0]] == [r["return_mean"] for r in rows[1]]


# off-policy agents on the shared loop; each agent's extra settings make its state change inside 600 steps
@pytest.mark.parametrize("agent, sets", [("sac", ()), ("td3", ()), ("mdpo_off", ("old_policy_interval=150",)),
                                         ("pmoe_sac", ("num_experts=3",))])
def test_resume_gives_identical_evaluations(run_cli, tmp_path, monkeypatch, agent, sets):
    args = lambda out, *extra: run_args(out, agent, *extra, sets=sets)
    assert run_cli(*args(tmp_path / "straight"))[0] == 0

    original = Session.save_checkpoint
    calls = {"n": 0}

    def interrupt_after_second_checkpoint(self, loop_state):
        original(self, loop_state)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt_after_second_checkpoint)
    code, _, err = run_cli(*args(tmp_path / "resumed"))
    assert code == 130 and "--resume" in err
    run = tmp_path / "resumed" / "Pendulum-v1" / "small" / "seed_0"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoint.pt").exists()
    monkeypatch.setattr(Session, "save_checkpoint", original)

    code, _, err = run_cli(*args(tmp_path / "resumed"))       # without --resume: refused
    assert code == 2 and "--resume" in err
    code, _, err = run_cli(*args(tmp_path / "resumed", "--resume"))
    assert code == 0, err
    straight = (tmp_path / "straight" / "Pendulum-v1" / "small" / "seed_0" / "evaluations.csv").read_text()
    resumed = (run / "evaluations.csv").read_text()
    cut = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # wall time differs
    assert cut(resumed) == cut(straight)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and len(meta["resumed_at"]) == 1


def test_non_finite_loss_fails_the_run_with_its_step(run_cli, tmp_path):
    code, _, err = run_cli(*run_args(tmp_path), "reward_scale=1e38")   # finite, but the critic loss overflows
    assert code == 1 and "non-finite critic_loss" in err
    meta = json.loads((tmp_path / "Pendulum-v1" / "small" / "seed_0" / "run.json").read_text())
    assert meta["status"] == "failed"
    assert "non-finite critic_loss (seed 0)" in meta["error"] and meta["error"].endswith("at step 100")


def test_batched_seeds_write_one_record_each(run_cli, tmp_path):
    code, out, err = run_cli(*run_args(tmp_path, "td3", "--seeds", "0-2", "--batched"))
    assert code == 0, err
    finals = []
    for seed in range(3):
        meta = json.loads((tmp_path / "Pendulum-v1" / "small" / f"seed_{seed}" / "run.json").read_text())
        assert meta["status"] == "completed" and meta["seed"] == seed and meta["batch_seeds"] == [0, 1, 2]
        finals.append(meta["final_score"])
    assert len(set(finals)) == 3                     # different seeds, different runs
    # member 1 of the batch is the same run as seed 1 alone
    assert run_cli(*run_args(tmp_path / "lone", "td3", "--seed", "1"))[0] == 0
    lone = json.loads((tmp_path / "lone" / "Pendulum-v1" / "small" / "seed_1" / "run.json").read_text())
    assert lone["final_score"] == pytest.approx(finals[1], rel=1e-4)


def test_tensorboard_scalars(run_cli, tmp_path):
    pytest.importorskip("tensorboard")
    assert run_cli(*run_args(tmp_path, "td3", "--tensorboard"))[0] == 0
    events = list((tmp_path / "Pendulum-v1" / "small" / "seed_0" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_unfinished_runs_resume_in_the_grouping_of_their_checkpoint(run_cli, tmp_path, monkeypatch):
    original = Session.save_checkpoint

    def interrupt(self, loop_state):
        original(self, loop_state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt)
    assert run_cli(*run_args(tmp_path, "td3", "--seed", "0"))[0] == 130          # seed 0 alone, interrupted
    assert run_cli(*run_args(tmp_path, "td3", "--seeds", "1-2", "--batched"))[0] == 130   # seeds 1-2 batched
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*run_args(tmp_path, "td3", "--seeds", "1", "--resume"))
    assert code == 2 and "trained batched with seeds 1, 2" in err and "\n" not in err.strip()
    # --batched now: seed 0 resumes alone, seeds 1-2 together, seed 3 is new
    code, _, err = run_cli(*run_args(tmp_path, "td3", "--seeds", "0-3", "--batched", "--resume"))
    assert code == 0, err
    for seed, group in [(0, [0]), (1, [1, 2]), (2, [1, 2]), (3, [3])]:
        meta = json.loads((tmp_path / "Pendulum-v1" / "small" / f"seed_{seed}" / "run.json").read_text())
        assert meta["status"] == "completed" and meta["batch_seeds"] == group
