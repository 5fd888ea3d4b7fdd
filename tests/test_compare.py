"""`drlbench compare`: AdaStop over real training runs, reuse of records, resume, bad input.

The first test trains for real (tiny Pendulum runs); the others replace the trainer by one that
writes run records with chosen scores, to check decisions and bookkeeping quickly.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_results import write_run

from drlbench import compare
from drlbench.results import scan

TINY = ["--steps", "300", "--set", "learning_starts=100", "random_steps=100", "batch_size=32",
        "buffer_size=1000"]


def _state_files(out):
    return sorted((out / "compare").rglob("*.json"))


@pytest.mark.slow
def test_real_runs_reuse_resume_and_table(tmp_path, run_cli, monkeypatch):
    out = tmp_path / "runs"
    # a matching sac run made earlier under another label is reused, not retrained
    code, _, err = run_cli("run", "sac", "--env", "Pendulum", *TINY, "--seed", "0", "--tag", "mysac",
                           "--out", out, "--quiet")
    assert code == 0, err
    trained = []
    real_train = compare._train

    def train(cfg, stop_at=None):
        if stop_at is not None and len(trained) + 1 == stop_at:
            raise KeyboardInterrupt  # as if Ctrl-C hit while this seed was starting
        trained.append((cfg.agent, cfg.seeds))
        real_train(cfg)

    args = ["compare", "sac", "td3", "--env", "Pendulum", "--n", "2", "--K", "2", *TINY, "--out", out, "--quiet"]
    monkeypatch.setattr(compare, "_train", lambda cfg: train(cfg, stop_at=4))
    code, out_text, err = run_cli(*args)
    assert code == 130 and "run the same command again to resume" in err
    assert trained == [("sac", (1,)), ("td3", (0,)), ("td3", (1,))]  # interim 1 done, then Ctrl-C
    (state,) = _state_files(out)
    assert json.loads(state.read_text())["adastop"]["interims"][0]["interim"] == 1

    monkeypatch.setattr(compare, "_train", train)
    code, out_text, err = run_cli(*args)
    assert code == 0, err
    assert "resuming" in err and "after interim 1" in err
    assert trained[3:] == [("sac", (2,)), ("sac", (3,)), ("td3", (2,)), ("td3", (3,))]
    assert "sac vs td3" in out_text and "(equal)" in out_text  # n=2, K=2 cannot reject at 5%
    rows = [line.split() for line in out_text.splitlines() if line.startswith(("sac ", "td3 "))]
    assert [row[2] for row in rows if row[1] != "vs"] == ["4", "4"]  # runs used per agent
    labels = {r.label for r in scan(out)[0]}
    assert "mysac" in labels and len(scan(out)[0]) == 8  # 1 earlier run + 7 trained
    # the finished comparison only prints its table again
    code, again, _ = run_cli(*args)
    assert code == 0 and again == out_text and len(trained) == 7
    # the decision table uses the scores in the records
    sac_scores = sorted(r.final for r in scan(out)[0] if r.agent == "sac")
    assert f"{np.mean(sac_scores):.2f}" in out_text


# ----------------------------------------------------------------------------- fake trainer
def _fake_trainer(monkeypatch, centres, spread=1.0):
    """Replace training by records whose final score is centres[agent] + noise(seed)."""
    calls = []

    def train(cfg):
        (seed,) = cfg.seeds
        calls.append((cfg.agent, seed))
        noise = np.random.default_rng([seed, len(cfg.agent)]).normal(0.0, spread)
        write_run(cfg.out, cfg.label, cfg.env_id, seed, [-1500.0, centres[cfg.agent] + noise],
                  steps=cfg.steps, agent=cfg.agent, suite=cfg.suite,
                  hyperparameters=json.loads(json.dumps(cfg.hyperparameter_dict())),
                  num_envs=cfg.num_envs, eval_episodes=cfg.eval_episodes)

    monkeypatch.setattr(compare, "_train", train)
    return calls


def test_clear_difference_is_decided_at_the_first_interim(tmp_path, run_cli, monkeypatch):
    calls = _fake_trainer(monkeypatch, {"sac": -150.0, "td3": -900.0})
    code, out, err = run_cli("compare", "sac", "td3", "--env", "Pendulum", "--n", "5", "--K", "3",
                             "--steps", "2000", "--out", tmp_path)
    assert code == 0, err
    assert sorted(calls) == [(a, s) for a in ("sac", "td3") for s in range(5)]
    row = next(line for line in out.splitlines() if line.startswith("sac vs td3"))
    assert "sac > td3 (larger)" in row and row.split()[-2] == "1"
    assert "finished after interim 1" in out


def test_other_settings_are_not_reused_and_conflicts_are_refused(tmp_path, run_cli, monkeypatch):
    calls = _fake_trainer(monkeypatch, {"sac": -150.0, "td3": -160.0})
    # same agent and env but other hyperparameters / steps: not reusable
    write_run(tmp_path, "tuned", "Pendulum-v1", 0, [-1500.0, 0.0], steps=2000, hyperparameters={"gamma": 0.5})
    write_run(tmp_path, "long", "Pendulum-v1", 1, [-1500.0, 0.0], steps=600)
    code, out, err = run_cli("compare", "sac", "td3", "--env", "Pendulum", "--n", "2", "--K", "1",
                             "--steps", "2000", "--out", tmp_path)
    assert code == 0, err
    assert sorted(calls) == [("sac", 0), ("sac", 1), ("td3", 0), ("td3", 1)]
    # a record in the path this comparison would train into, made with other steps, is refused
    other = tmp_path / "other"
    write_run(other, "sac", "Pendulum-v1", 0, [-1500.0, 0.0], steps=999)
    code, _, err = run_cli("compare", "sac", "td3", "--env", "Pendulum", "--n", "2", "--K", "1",
                           "--steps", "2000", "--out", other)
    assert code == 2 and "holds another run (steps is 999, not 2000)" in err
    assert len(err.strip().splitlines()) == 1
    # the same comparison with other settings in the same --out is refused
    code, _, err = run_cli("compare", "sac", "td3", "--env", "Pendulum", "--n", "2", "--K", "3",
                           "--steps", "2000", "--out", tmp_path)
    assert code == 2 and "other settings (K differ)" in err


def _error_lines(err):
    return [line for line in err.splitlines() if line.startswith("drlbench")]


def test_changed_scores_and_corrupt_state_are_one_line_errors(tmp_path, run_cli, monkeypatch):
    calls = _fake_trainer(monkeypatch, {"sac": -150.0, "td3": -155.0}, spread=30.0)
    fake, stopped = compare._train, []

    def stop_in_interim_2(cfg):
        if len(calls) == 4 and not stopped:
            stopped.append(cfg.seeds)
            raise KeyboardInterrupt
        fake(cfg)

    monkeypatch.setattr(compare, "_train", stop_in_interim_2)
    args = ["compare", "sac", "td3", "--env", "Pendulum", "--n", "2", "--K", "3", "--steps", "2000",
            "--out", tmp_path]
    code, _, err = run_cli(*args)
    assert code == 130, err
    (state,) = _state_files(tmp_path)
    # a record used at interim 1 now says something else
    record = next(r for r in scan(tmp_path)[0] if r.agent == "sac" and r.seed == 0)
    text = (record.path / "evaluations.csv").read_text().replace(str(record.final), "-1.0")
    (record.path / "evaluations.csv").write_text(text)
    code, _, err = run_cli(*args)
    assert code == 2 and len(_error_lines(err)) == 1
    assert "sac seed 0: final score -1.0 differs from the" in err and "used at an earlier interim" in err
    assert len(calls) == 4  # refused before training anything for interim 2
    assert "Traceback" not in err
    state.write_text("{ not json")
    code, _, err = run_cli(*args)
    assert code == 2 and len(_error_lines(err)) == 1 and "unreadable comparison state" in err


@pytest.mark.parametrize("args, expected", [
    (["compare", "sac", "--env", "Pendulum"], "at least 2 agents"),
    (["compare", "sac", "sac", "--env", "Pendulum"], "agent 'sac' is listed twice"),
    (["compare", "sac", "tdd3", "--env", "Pendulum"], "unknown agent 'tdd3'; did you mean: td3"),
    (["compare", "sac", "td3", "--env", "Pendulm"], "unknown env 'Pendulm'"),
    (["compare", "sac", "td3", "--env", "Pendulum", "--set", "ppo:batch_size=3"],
     "'ppo' is not one of the compared agents"),
    (["compare", "sac", "td3", "--env", "Pendulum", "--set", "policy_delay=3"],
     "unknown hyperparameter 'policy_delay'"),
    (["compare", "sac", "td3", "--env", "Pendulum", "--suite", "mujoco"], "Pendulum-v1 is not in suite 'mujoco'"),
    (["compare", "sac", "td3", "--env", "Pendulum", "--suite", "classics"], "unknown suite 'classics'"),
    (["compare", "sac", "td3", "--env", "Pendulum", "--alpha", "1.5"], "--alpha 1.5"),
    (["compare", "sac", "td3", "--env", "Pendulum", "--n", "0"], "expected a positive integer"),
    (["compare", "sac", "td3"], "the following arguments are required: --env"),
])
def test_compare_bad_input_is_one_line_exit_2(tmp_path, run_cli, args, expected):
    code, _, err = run_cli(*args, "--out", tmp_path)
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_per_agent_overrides(tmp_path, run_cli, monkeypatch):
    calls = _fake_trainer(monkeypatch, {"sac": -150.0, "td3": -900.0})
    code, out, err = run_cli("compare", "sac", "td3", "--env", "Pendulum", "--n", "5", "--K", "1",
                             "--steps", "300", "--out", tmp_path, "--set", "batch_size=64", "td3:policy_delay=3",
                             "learning_starts=100")
    assert code == 0, err
    runs = scan(tmp_path)[0]
    assert {r.hyperparameters["batch_size"] for r in runs} == {64}
    assert {r.hyperparameters["policy_delay"] for r in runs if r.agent == "td3"} == {3}
    assert all("policy_delay" not in r.hyperparameters for r in runs if r.agent == "sac")
    assert len(calls) == 10


def test_a_sim_trained_run_is_not_reused_as_a_plain_one():
    """`--sim-env` changes what was trained: compare's reuse check must tell the two apart."""
    from drlbench.compare import Contender, _mismatch
    from drlbench.config import resolve

    plain = Contender("sac", resolve("sac", "Pendulum-v1", steps=3000))
    sim = Contender("sac", resolve("sac", "Pendulum-v1", steps=3000, sim_env="Pendulum-v1?g=15"))
    sim_record = {**sim.identity}
    assert _mismatch(sim.identity, sim_record) is None
    assert _mismatch(sim.identity, plain.identity) is not None       # a plain run is not the sim agent's
    assert "sim_env" not in plain.identity                          # plain identities (and saved states) unchanged
    assert _mismatch(plain.identity, sim_record) is not None        # and a sim run is not the plain agent's


def test_sim_env_goes_to_the_agents_that_step_an_environment(tmp_path):
    """`compare --sim-env`: sac and h2o train in the simulator, an offline agent learns from the dataset alone."""
    from drlbench.datasets.collect import collect

    data, _ = collect("Pendulum-v1", "random", 300, 0, tmp_path / "pendulum-random.hdf5")
    found = compare.contenders(["h2o", "sac", "td3_bc"], str(data), 20000, tmp_path, [], True,
                               sim_env="Pendulum-v1?g=15")
    sims = {c.name: getattr(c.config, "sim_env", None) for c in found}
    assert sims == {"h2o": "Pendulum-v1?g=15", "sac": "Pendulum-v1?g=15", "td3_bc": None}
    assert {c.config.env_id for c in found} == {found[0].config.env_id}          # one task: the dataset's
    assert "sim_env" in found[1].identity and "sim_env" not in found[2].identity
