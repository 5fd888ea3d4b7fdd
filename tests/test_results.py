"""Run records -> score tables, and `drlbench stats`: records written by hand in the documented
format (README, "Run records"), corrupt and partial ones included."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drlbench import results
from drlbench.config import Suite
from drlbench.errors import UsageError
from drlbench.stats import interval_estimates, iqm

PENDULUM = (-1187.69, -109.0)   # envs/classic.toml random_score, target_score
MCC = (-33.20, 90.0)            # MountainCarContinuous-v0


def write_run(root: Path, label: str, env_id: str, seed: int, returns, *, status="completed",
              steps=None, last_step=None, suite="classic", agent="sac", hyperparameters=None,
              **meta) -> Path:
    """A run directory as the harness writes it: run.json and evaluations.csv (evaluations
    evenly spaced from step 0 to `last_step`, by default the run's `steps`)."""
    path = root / env_id / label / f"seed_{seed}"
    path.mkdir(parents=True)
    steps = 100 * (len(returns) - 1) if steps is None else steps
    last_step = steps if last_step is None else last_step
    every = last_step // max(len(returns) - 1, 1)
    record = {"format": 1, "agent": agent, "label": label, "env_id": env_id, "suite": suite,
              "seed": seed, "steps": steps, "num_envs": 1, "eval_episodes": 10,
              "hyperparameters": hyperparameters or {"gamma": 0.99}, "status": status, **meta}
    (path / "run.json").write_text(json.dumps(record))
    lines = ["step,return_mean,return_std,episodes,length_mean,wall_time_s"]
    lines += [f"{i * every},{r},1.0,10,200.0,{i}.0" for i, r in enumerate(returns)]
    (path / "evaluations.csv").write_text("\n".join(lines) + "\n")
    return path


def test_final_and_best_scores_and_normalisation(tmp_path):
    write_run(tmp_path, "sac", "Pendulum-v1", 0, [-1200.0, -150.0, -300.0])
    (run,), problems = results.scan(tmp_path)
    assert problems == []
    assert run.final == -300.0 and run.best == -150.0 and run.last_step == 200
    table = results.score_table([run])
    expected = (-300.0 - PENDULUM[0]) / (PENDULUM[1] - PENDULUM[0])
    assert table.normalized["sac"][0, 0] == pytest.approx(expected, abs=1e-12)
    assert results.score_table([run], score="best").raw["sac"][0, 0] == -150.0
    assert table.references["Pendulum-v1"] == (*PENDULUM, "classic")
    # 0 = random policy, 1 = target
    assert results.normalize([PENDULUM[0], PENDULUM[1]], *PENDULUM).tolist() == [0.0, 1.0]


def test_corrupt_and_partial_records_become_problems(tmp_path):
    good = write_run(tmp_path, "sac", "Pendulum-v1", 0, [-1000.0, -200.0])
    bad = {}
    bad["json"] = write_run(tmp_path, "sac", "Pendulum-v1", 1, [-1.0, -2.0])
    (bad["json"] / "run.json").write_text('{"agent": "sac", "lab')
    bad["key"] = write_run(tmp_path, "sac", "Pendulum-v1", 2, [-1.0, -2.0])
    meta = json.loads((bad["key"] / "run.json").read_text())
    del meta["steps"]
    (bad["key"] / "run.json").write_text(json.dumps(meta))
    bad["running"] = write_run(tmp_path, "sac", "Pendulum-v1", 3, [-1.0], status="running", steps=1000)
    bad["failed"] = write_run(tmp_path, "sac", "Pendulum-v1", 4, [-1.0], status="failed", steps=1000,
                              error="NonFiniteError: non-finite critic_loss (seed 4) at step 7")
    bad["nan"] = write_run(tmp_path, "sac", "Pendulum-v1", 5, [-1.0, float("nan")])
    bad["short"] = write_run(tmp_path, "sac", "Pendulum-v1", 6, [-1.0, -2.0], steps=5000, last_step=100)
    bad["empty"] = write_run(tmp_path, "sac", "Pendulum-v1", 7, [-1.0])
    (bad["empty"] / "evaluations.csv").write_text("step,return_mean\n")
    bad["garbage"] = write_run(tmp_path, "sac", "Pendulum-v1", 8, [-1.0])
    (bad["garbage"] / "evaluations.csv").write_text("step,return_mean\n0,abc\n")
    bad["nocsv"] = write_run(tmp_path, "sac", "Pendulum-v1", 9, [-1.0])
    (bad["nocsv"] / "evaluations.csv").unlink()
    bad["norun"] = write_run(tmp_path, "sac", "Pendulum-v1", 10, [-1.0])
    (bad["norun"] / "run.json").unlink()
    bad["type"] = write_run(tmp_path, "sac", "Pendulum-v1", 11, [-1.0], hyperparameters=None)
    meta = json.loads((bad["type"] / "run.json").read_text())
    meta["seed"] = "eleven"
    (bad["type"] / "run.json").write_text(json.dumps(meta))
    elsewhere = tmp_path / "copy"
    bad["duplicate"] = write_run(elsewhere, "sac", "Pendulum-v1", 0, [-5.0, -6.0])

    runs, problems = results.scan(tmp_path)
    assert [r.path for r in runs] == [good]
    reasons = {p.path: p.reason for p in problems}
    assert set(reasons) == set(bad.values())
    expected = {"json": "run.json unreadable", "key": "no 'steps'", "running": "status 'running'",
                "failed": "non-finite critic_loss", "nan": "return_mean nan", "short": "end at step 100 of 5000",
                "empty": "no evaluation", "garbage": "not numbers", "nocsv": "no evaluations.csv",
                "norun": "no run.json", "type": "'seed' is 'eleven'", "duplicate": "duplicate of"}
    for key, words in expected.items():
        assert words in reasons[bad[key]], (key, reasons[bad[key]])
        assert "\n" not in reasons[bad[key]]


def test_rectangular_tables_common_tasks_and_seeds(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("sac", "td3"):
        for seed in range(4):
            write_run(tmp_path, label, "Pendulum-v1", seed, [-1200.0, float(rng.uniform(-900, -150))])
        for seed in range(3):  # seed 3 has no MountainCarContinuous run
            write_run(tmp_path, label, "MountainCarContinuous-v0", seed, [-30.0, float(rng.uniform(-10, 90))])
    write_run(tmp_path, "sac", "Pendulum-v1", 9, [-1.0, -2.0])           # only on one task
    write_run(tmp_path, "sac", "MountainCar-v0", 0, [-200.0, -150.0], suite="classic-discrete")  # sac only
    runs, _ = results.scan(tmp_path)
    table = results.score_table(runs)
    assert table.tasks == ["MountainCarContinuous-v0", "Pendulum-v1"]
    assert table.labels == ["sac", "td3"]
    for label in table.labels:
        assert table.normalized[label].shape == (3, 2)
        assert table.seeds[label] == [0, 1, 2]
        by_seed = {(r.env_id, r.seed): r.final for r in runs if r.label == label}
        for i, seed in enumerate(table.seeds[label]):
            for t, (env_id, ref) in enumerate(zip(table.tasks, (MCC, PENDULUM))):
                assert table.normalized[label][i, t] == pytest.approx(
                    (by_seed[env_id, seed] - ref[0]) / (ref[1] - ref[0]), abs=1e-12)
    notes = [str(n) for n in table.notes]
    assert any("MountainCar-v0: left out: no runs of td3" in n for n in notes)
    assert sum("this seed has no run on MountainCarContinuous-v0" in n for n in notes) == 3  # sac 3, 9; td3 3
    # --suite keeps that suite's environments only
    classic = results.score_table(runs, suite="classic")
    assert any("not in suite 'classic'" in str(n) for n in classic.notes)
    with pytest.raises(UsageError, match="no completed run records on environments of suite 'mujoco'"):
        results.score_table(runs, suite="mujoco")


def test_missing_reference_scores_are_one_line_errors(tmp_path, monkeypatch):
    write_run(tmp_path, "sac", "Foo-v0", 0, [1.0, 2.0], suite=None)
    runs, _ = results.scan(tmp_path)
    with pytest.raises(UsageError, match=r"no reference scores for Foo-v0: it is in no suite"):
        results.score_table(runs)
    with pytest.raises(UsageError, match="unknown suite 'nope'"):
        results.score_table(runs, suite="nope")
    suites = {"toy": Suite("toy", "toy suite", 1000, 10, {"Foo-v0": {"steps": 100, "random_score": 0.0}})}
    monkeypatch.setattr(results, "load_suites", lambda: suites)
    with pytest.raises(UsageError) as err:
        results.score_table(runs)
    assert str(err.value) == "suite 'toy' has no target_score for Foo-v0 (envs/toy.toml)"
    suites["toy"].envs["Foo-v0"]["target_score"] = 0.0
    with pytest.raises(UsageError, match="random_score equals target_score"):
        results.score_table(runs)


def test_no_env_shared_by_every_label(tmp_path):
    write_run(tmp_path, "sac", "Pendulum-v1", 0, [-1.0, -2.0])
    write_run(tmp_path, "td3", "MountainCarContinuous-v0", 0, [-1.0, -2.0])
    with pytest.raises(UsageError, match="no environment has runs of every label"):
        results.score_table(results.scan(tmp_path)[0])


def test_reading_records_imports_neither_torch_nor_the_harness():
    code = ("import sys, drlbench.results, drlbench.compare; "
            "print(sorted(m for m in ('torch', 'drlbench.harness', 'drlbench.records') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- drlbench stats
def test_stats_command_prints_aggregates_and_problems(tmp_path, run_cli):
    rng = np.random.default_rng(3)
    for label, centre in (("sac", -200.0), ("td3", -700.0)):
        for seed in range(5):
            write_run(tmp_path, label, "Pendulum-v1", seed, [-1200.0, centre + float(rng.normal(0, 50))])
            write_run(tmp_path, label, "MountainCarContinuous-v0", seed, [-30.0, float(rng.normal(60, 10))])
    broken = write_run(tmp_path, "td3", "Pendulum-v1", 7, [-1.0], status="interrupted", steps=500)
    code, out, err = run_cli("stats", tmp_path, "--reps", "2000", "--seed", "3")
    assert code == 0, err
    table = results.score_table(results.scan(tmp_path)[0])
    estimates = interval_estimates(table.normalized, reps=2000, seed=3)
    for label in ("sac", "td3"):
        line = next(line for line in out.splitlines() if line.startswith(label + " "))
        est = estimates[label]["iqm"]
        assert f"{est.point:.3f} [{est.lower:.3f}, {est.upper:.3f}]" in line
        assert f"{iqm(table.normalized[label]):.3f}" in line
        assert "5 x 2" in line
    assert "Pendulum-v1" in out and "-1187.69" in out and "(5)" in out
    assert f"{broken}: status 'interrupted', not completed" in out
    assert "20 runs of 2 label(s) on 2 environment(s)" in out


@pytest.mark.parametrize("setup, args, expected", [
    (None, ["stats", "{root}/missing"], "not a directory of run records"),
    ("empty", ["stats", "{root}"], "no completed run records"),
    ("foo", ["stats", "{root}"], "no reference scores for Foo-v0"),
    ("ok", ["stats", "{root}", "--suite", "nope"], "unknown suite 'nope'"),
    ("ok", ["stats", "{root}", "--reps", "0"], "expected a positive integer"),
    ("ok", ["stats", "{root}", "--score", "worst"], "invalid choice: 'worst'"),
])
def test_stats_bad_input_is_one_line_exit_2(tmp_path, run_cli, setup, args, expected):
    if setup == "foo":
        write_run(tmp_path, "sac", "Foo-v0", 0, [1.0, 2.0], suite=None)
    elif setup == "ok":
        write_run(tmp_path, "sac", "Pendulum-v1", 0, [-1.0, -2.0])
    elif setup == "empty":
        write_run(tmp_path, "sac", "Pendulum-v1", 0, [-1.0], status="failed", steps=100)
    code, out, err = run_cli(*[a.format(root=tmp_path) for a in args])
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
