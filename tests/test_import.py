"""`drlbench import` and `drlbench stats --export rliable`: files written by the real libraries
(stable-baselines3's Monitor and EvalCallback, torch's SummaryWriter, rliable's score-dict
conventions, adastop's CSV layout) become run records whose statistics equal `drlbench.stats`
computed directly on the arrays read back from those files; bad input is one line, exit 2 and
nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drlbench import results
from drlbench.stats import interval_estimates

PENDULUM = (-1187.69, -109.0)   # envs/classic.toml random_score, target_score
MCC = (-33.20, 90.0)            # MountainCarContinuous-v0
REPS = 2000


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes (compare before and after a refused command)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


def stats_rows(text: str) -> dict[str, str]:
    """label -> its row of the aggregate table printed by `drlbench stats`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("label "))
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows[line.split()[0]] = line
    return rows


def expected_row(label: str, normalized: np.ndarray) -> list[str]:
    est = interval_estimates({label: normalized}, reps=REPS, seed=0)[label]
    return [f"{e.point:.3f} [{e.lower:.3f}, {e.upper:.3f}]"
            for e in (est["iqm"], est["mean"], est["median"], est["optimality_gap"])]


def assert_stats_equal(text: str, expected: dict[str, np.ndarray]) -> None:
    rows = stats_rows(text)
    assert sorted(rows) == sorted(expected)
    for label, normalized in expected.items():
        # intervals come from the same label-seeded generator: equal only if the arrays are equal
        assert rows[label].split("x", 1)[1].split()[1:] == " ".join(expected_row(label, normalized)).split(), label


# --------------------------------------------------------------------------- stable-baselines3
@pytest.fixture(scope="module")
def sb3_logs(tmp_path_factory):
    """An RL Zoo-style folder logs/dqn/<env>_<n>/ from two real SB3 runs (DQN on CartPole, no
    gradient step: learning_starts beyond the budget) with Monitor and EvalCallback."""
    pytest.importorskip("stable_baselines3", reason="needs stable-baselines3 (pip install 'drlbench[peers]')")
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    root = tmp_path_factory.mktemp("sb3") / "logs" / "dqn"
    for run, seed in ((1, 11), (2, 12)):
        folder = root / f"CartPole-v1_{run}"
        env = Monitor(gym.make("CartPole-v1"), str(folder / "0"))
        model = DQN("MlpPolicy", env, seed=seed, learning_starts=10_000, buffer_size=1000, device="cpu",
                    policy_kwargs={"net_arch": [8]})
        callback = EvalCallback(Monitor(gym.make("CartPole-v1")), eval_freq=100, n_eval_episodes=3,
                                log_path=str(folder), verbose=0)
        model.learn(400, callback=callback)
    (root / "Pendulum-v1_1").mkdir()   # a Zoo folder of another environment is left out
    (root / "Pendulum-v1_1" / "evaluations.npz").write_bytes(b"not read")
    return root


def cartpole_normalized(finals) -> np.ndarray:
    random_score, target, _ = results.reference_scores("CartPole-v1")
    return results.normalize(np.asarray(finals, dtype=float)[:, None], random_score, target)


def test_sb3_zoo_folder_evaluations(sb3_logs, tmp_path, run_cli):
    out = tmp_path / "runs"
    code, text, err = run_cli("import", "sb3", sb3_logs, "--agent", "sb3_dqn", "--env", "CartPole",
                              "--out", out)
    assert code == 0, err
    assert "sb3_dqn CartPole-v1: 2 run(s), seeds 0, 1" in text
    runs, problems = results.scan(out)
    assert problems == [] and [r.seed for r in sorted(runs, key=lambda r: r.seed)] == [0, 1]
    finals = []
    for run, folder in zip(sorted(runs, key=lambda r: r.seed), sorted(sb3_logs.glob("CartPole-v1_*"))):
        data = np.load(folder / "evaluations.npz")
        finals.append(data["results"][-1].mean())
        assert run.final == pytest.approx(finals[-1], abs=1e-12)
        assert run.best == pytest.approx(data["results"].mean(axis=1).max(), abs=1e-12)
        assert run.steps == int(data["timesteps"][-1]) == 400
        meta = json.loads((run.path / "run.json").read_text())
        assert meta["imported_from"]["format"] == "sb3"
        assert meta["imported_from"]["path"] == str(folder.absolute())
        assert meta["eval_episodes"] == 3 and 0 < meta["imported_from"]["training_steps"] <= 400  # finished episodes
    code, text, err = run_cli("stats", out, "--reps", REPS)
    assert code == 0, err
    assert_stats_equal(text, {"sb3_dqn": cartpole_normalized(finals)})


def test_sb3_monitor_only_and_seeds_from_paths(sb3_logs, tmp_path, run_cli):
    from stable_baselines3.common.monitor import load_results

    source = tmp_path / "monitors"
    for folder in sorted(sb3_logs.glob("CartPole-v1_*")):   # no evaluations.npz: training episodes
        (source / f"run_seed{folder.name[-1]}").mkdir(parents=True)
        (source / f"run_seed{folder.name[-1]}" / "0.monitor.csv").write_bytes((folder / "0.monitor.csv").read_bytes())
    out = tmp_path / "runs"
    code, _, err = run_cli("import", "sb3", source, "--agent", "dqn_train", "--env", "CartPole-v1",
                           "--seed-from-path", r"seed(\d+)", "--window", "4", "--out", out)
    assert code == 0, err
    runs = {r.seed: r for r in results.scan(out)[0]}
    assert sorted(runs) == [1, 2]
    finals = []
    for seed, run in runs.items():
        episodes = load_results(str(source / f"run_seed{seed}"))   # SB3's own reader
        finals.append(episodes["r"].to_numpy()[-4:].mean())
        assert run.final == pytest.approx(finals[-1], abs=1e-12)
        assert run.steps == episodes["l"].sum()
        rows = (run.path / "evaluations.csv").read_text().splitlines()
        assert len(rows) - 1 == -(-len(episodes) // 4)   # windows of 4 episodes, back from the last
    code, text, err = run_cli("stats", out, "--reps", REPS)
    assert code == 0, err
    assert_stats_equal(text, {"dqn_train": cartpole_normalized(finals)})


# --------------------------------------------------------------------------- TensorBoard
def write_events(folder: Path, tag: str, points) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for step, value in points:
        writer.add_scalar(tag, value, step)
        writer.add_scalar("losses/td_loss", 0.5, step)
    writer.close()


def test_tensorboard_cleanrl_episodes_and_sb3_evaluations(tmp_path, run_cli):
    pytest.importorskip("tensorboard")
    rng = np.random.default_rng(0)
    cleanrl, finals = tmp_path / "cleanrl", {}
    for seed in (4, 9):
        returns = rng.uniform(-1200, -150, size=23)
        write_events(cleanrl / f"Pendulum-v1__sac_continuous_action__{seed}__1700000000",
                     "charts/episodic_return", [(200 * (i + 1), r) for i, r in enumerate(returns)])
        finals[seed] = returns[-10:].mean()
    sb3 = tmp_path / "sb3_tb"
    evals = {}
    for run in (1, 2):
        means = rng.uniform(-1000, -200, size=5)
        write_events(sb3 / f"SAC_{run}", "eval/mean_reward", [(1000 * (i + 1), m) for i, m in enumerate(means)])
        evals[run - 1] = means
    out = tmp_path / "runs"
    code, text, err = run_cli("import", "tensorboard", cleanrl, "--agent", "cleanrl_sac", "--env", "Pendulum",
                              "--seed-from-path", r"__(\d+)__", "--out", out)
    assert code == 0, err
    code, text, err = run_cli("import", "tensorboard", sb3, "--agent", "sb3_sac", "--env", "Pendulum",
                              "--out", out)
    assert code == 0, err
    runs = {(r.label, r.seed): r for r in results.scan(out)[0]}
    assert sorted(runs) == [("cleanrl_sac", 4), ("cleanrl_sac", 9), ("sb3_sac", 0), ("sb3_sac", 1)]
    for seed in (4, 9):   # float32 in the event file
        assert runs["cleanrl_sac", seed].final == pytest.approx(finals[seed], rel=1e-6)
        assert runs["cleanrl_sac", seed].last_step == 23 * 200
    meta = json.loads((runs["sb3_sac", 0].path / "run.json").read_text())
    assert meta["imported_from"]["tag"] == "eval/mean_reward" and meta["imported_from"]["window"] == 1
    # drlbench.stats on the very arrays the event reader returns (float32 values)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(folder, tag):
        (file,) = folder.iterdir()
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        return np.array([e.value for e in acc.Scalars(tag)])

    expected = {"cleanrl_sac": [scalars(cleanrl / f"Pendulum-v1__sac_continuous_action__{s}__1700000000",
                                        "charts/episodic_return")[-10:].mean() for s in (4, 9)],
                "sb3_sac": [scalars(sb3 / f"SAC_{r}", "eval/mean_reward")[-1] for r in (1, 2)]}
    code, text, err = run_cli("stats", out, "--reps", REPS)
    assert code == 0, err
    assert_stats_equal(text, {label: results.normalize(np.array(v)[:, None], *PENDULUM)
                              for label, v in expected.items()})


# --------------------------------------------------------------------------- rliable round trip
def hand_scores(seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"A": rng.uniform(0.1, 1.1, (6, 2)), "B": rng.uniform(-0.1, 0.9, (6, 2))}


def test_rliable_round_trip(tmp_path, run_cli):
    """score dict -> import -> records -> stats --export -> the same dict; rliable's intervals
    on the exported file agree with drlbench's."""
    rly = pytest.importorskip("rliable.library")
    from rliable import metrics

    scores = hand_scores()
    np.savez(tmp_path / "scores.npz", **scores)   # columns: MountainCarContinuous-v0, Pendulum-v1
    out = tmp_path / "runs"
    code, _, err = run_cli("import", "rliable", tmp_path / "scores.npz", "--env", "MountainCarContinuous,Pendulum",
                           "--out", out)
    assert code == 0, err
    run = next(r for r in results.scan(out)[0] if r.label == "B" and r.env_id == "Pendulum-v1" and r.seed == 3)
    assert run.final == pytest.approx(PENDULUM[0] + scores["B"][3, 1] * (PENDULUM[1] - PENDULUM[0]))
    code, text, err = run_cli("stats", out, "--reps", REPS, "--export", "rliable", tmp_path / "back.npz")
    assert code == 0, err
    assert "tasks (columns): MountainCarContinuous-v0, Pendulum-v1" in text
    assert_stats_equal(text, scores)
    with np.load(tmp_path / "back.npz") as f:   # rliable's convention: a dict of (runs, tasks) arrays
        back = dict(f)
    assert sorted(back) == ["A", "B"]
    for label in scores:
        np.testing.assert_allclose(back[label], scores[label], rtol=0, atol=1e-12)

    def aggregate(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x),
                         metrics.aggregate_optimality_gap(x)])

    np.random.seed(0)   # rliable draws with numpy's global generator
    points, intervals = rly.get_interval_estimates(back, aggregate, reps=REPS)
    ours = interval_estimates(back, reps=REPS, seed=0)
    for label in back:
        for j, name in enumerate(("iqm", "mean", "median", "optimality_gap")):
            assert points[label][j] == pytest.approx(ours[label][name].point, abs=1e-12)
            # two bootstraps of 2000 replicates: their percentiles agree to Monte-Carlo error
            assert intervals[label][0, j] == pytest.approx(ours[label][name].lower, abs=0.03)
            assert intervals[label][1, j] == pytest.approx(ours[label][name].upper, abs=0.03)

    # and back in: the exported dict imports to the same statistics
    again = tmp_path / "again"
    code, _, err = run_cli("import", "rliable", tmp_path / "back.npz", "--env",
                           "MountainCarContinuous-v0,Pendulum-v1", "--out", again)
    assert code == 0, err
    code, text_again, err = run_cli("stats", again, "--reps", REPS)
    assert stats_rows(text_again) == stats_rows(text)


def test_rliable_json_raw_and_select(tmp_path, run_cli):
    (tmp_path / "s.json").write_text(json.dumps({"x": [[-300.0], [-250.0]], "y": [[-900.0], [-800.0]]}))
    out = tmp_path / "runs"
    code, _, err = run_cli("import", "rliable", tmp_path / "s.json", "--env", "Pendulum", "--scores", "raw",
                           "--agent", "x", "--out", out)
    assert code == 0, err
    runs = results.scan(out)[0]
    assert sorted((r.label, r.seed, r.final) for r in runs) == [("x", 0, -300.0), ("x", 1, -250.0)]


# --------------------------------------------------------------------------- adastop CSVs
def test_adastop_csvs_one_per_interim(tmp_path, run_cli):
    folder = tmp_path / "adastop"
    folder.mkdir()
    (folder / "walker1.csv").write_text(",PPO,SAC\n0,-400,-200\n1,-420,-190\n2,-380,-210\n")
    (folder / "walker2.csv").write_text(",PPO\n0,-410\n1,-395\n2,-405\n")
    out = tmp_path / "runs"
    code, _, err = run_cli("import", "adastop", folder, "--env", "Pendulum", "--out", out)
    assert code == 0, err
    runs = results.scan(out)[0]
    ppo = sorted((r.seed, r.final) for r in runs if r.label == "PPO")
    assert ppo == list(enumerate([-400.0, -420.0, -380.0, -410.0, -395.0, -405.0]))
    assert len([r for r in runs if r.label == "SAC"]) == 3
    code, text, err = run_cli("stats", out, "--reps", REPS)
    assert code == 0, err
    assert "PPO" in stats_rows(text) and "SAC" in stats_rows(text)


# --------------------------------------------------------------------------- bad input
def _write_bad_inputs(root: Path) -> None:
    (root / "notnpz").mkdir()
    (root / "notnpz" / "evaluations.npz").write_text("timesteps,results\n1,2\n")
    np.savez(root / "other.npz", rewards=np.zeros(3))
    (root / "plain.csv").write_text("a,b\n1,2\n")
    (root / "empty_dir").mkdir()
    (root / "badmon").mkdir()
    (root / "badmon" / "monitor.csv").write_text('#{"t_start": 0}\nr,l\n1,2\n')
    (root / "tb").mkdir()
    (root / "tb" / "events.out.tfevents.1.host").write_bytes(b"\x00garbage" * 8)
    np.savez(root / "s3.npz", A=np.zeros((4, 3)), B=np.zeros((4, 3)))
    np.savez(root / "ragged.npz", A=np.zeros((4, 3)), B=np.zeros((4, 2)))
    np.savez(root / "curves.npz", A=np.zeros((4, 3, 10)))
    (root / "s.pkl").write_bytes(b"\x80\x04N.")
    (root / "nan.json").write_text('{"A": [[1.0], [NaN]]}')
    (root / "ada.csv").write_text(",PPO,SAC\n0,1.0,abc\n")
    (root / "seeds").mkdir()
    for name in ("run_a", "run_b"):
        (root / "seeds" / name).mkdir()
        (root / "seeds" / name / "monitor.csv").write_text('#{"t_start": 0}\nr,l,t\n1,2,3\n')
    (root / "tb_ok").mkdir()


BAD = [
    ("unknown format", ["import", "wandb", "{root}/plain.csv", "--agent", "a", "--env", "Pendulum"], "'wandb'"),
    ("missing source", ["import", "sb3", "{root}/nothere", "--agent", "a", "--env", "Pendulum"], "nothere"),
    ("sb3: text named evaluations.npz", ["import", "sb3", "{root}/notnpz", "--agent", "a", "--env", "Pendulum"],
     "not a numpy .npz"),
    ("sb3: an npz of another kind", ["import", "sb3", "{root}/other.npz", "--agent", "a", "--env", "Pendulum"],
     "rewards"),
    ("sb3: a CSV that is not a monitor file", ["import", "sb3", "{root}/plain.csv", "--agent", "a", "--env",
                                                "Pendulum"], "plain.csv"),
    ("sb3: folder without logs", ["import", "sb3", "{root}/empty_dir", "--agent", "a", "--env", "Pendulum"],
     "empty_dir"),
    ("sb3: monitor without the t column", ["import", "sb3", "{root}/badmon", "--agent", "a", "--env", "Pendulum"],
     "no column t"),
    ("sb3 without --agent", ["import", "sb3", "{root}/seeds", "--env", "Pendulum"], "--agent"),
    ("unknown env", ["import", "sb3", "{root}/seeds", "--agent", "a", "--env", "Pendulm"], "'Pendulm'"),
    ("label with a slash", ["import", "sb3", "{root}/seeds", "--agent", "a/b", "--env", "Pendulum"], "'a/b'"),
    ("seed regex does not match", ["import", "sb3", "{root}/seeds", "--agent", "a", "--env", "Pendulum",
                                   "--seed-from-path", r"seed(\d+)"], "does not match"),
    ("seed regex matches no number", ["import", "sb3", "{root}/seeds", "--agent", "a", "--env", "Pendulum",
                                      "--seed-from-path", "run_(.)"], "not a seed"),
    ("tensorboard: garbage event file", ["import", "tensorboard", "{root}/tb", "--agent", "a", "--env", "Pendulum"],
     "no scalars"),
    ("tensorboard: no event file", ["import", "tensorboard", "{root}/tb_ok", "--agent", "a", "--env", "Pendulum"],
     "no TensorBoard event file"),
    ("tensorboard: not an event file", ["import", "tensorboard", "{root}/plain.csv", "--agent", "a", "--env",
                                        "Pendulum"], "tfevents"),
    ("tensorboard: missing tag", ["import", "tensorboard", "{root}/tb_real", "--agent", "a", "--env", "Pendulum",
                                  "--tag-name", "charts/nothing"], "'charts/nothing'"),
    ("tensorboard: none of the default tags", ["import", "tensorboard", "{root}/tb_real", "--agent", "a", "--env",
                                               "Pendulum"], "--tag-name"),
    ("rliable: task count differs from --env", ["import", "rliable", "{root}/s3.npz", "--env", "Pendulum"],
     "3 task column(s) but --env names 1"),
    ("rliable: algorithms differ in tasks", ["import", "rliable", "{root}/ragged.npz", "--env", "Pendulum"],
     "different task counts"),
    ("rliable: checkpoint curves", ["import", "rliable", "{root}/curves.npz", "--env", "Pendulum"], "(4, 3, 10)"),
    ("rliable: pickle", ["import", "rliable", "{root}/s.pkl", "--env", "Pendulum"], "pickle"),
    ("rliable: non-finite", ["import", "rliable", "{root}/nan.json", "--env", "Pendulum"], "non-finite"),
    ("rliable: unknown algorithm", ["import", "rliable", "{root}/s3.npz", "--env",
                                    "Pendulum,MountainCarContinuous,CartPole", "--agent", "C"], "'C'"),
    ("rliable: sb3 option", ["import", "rliable", "{root}/s3.npz", "--env", "Pendulum", "--window", "3"], "--window"),
    ("rliable: a normalised score needs a reference", ["import", "rliable", "{root}/s3.npz", "--env",
                                                       "Pendulum,MountainCarContinuous,Swimmer"], "Swimmer-v5"),
    ("adastop: not a number", ["import", "adastop", "{root}/ada.csv", "--env", "Pendulum"], "'abc'"),
    ("existing record", ["import", "rliable", "{root}/s3.npz", "--env", "Pendulum,MountainCarContinuous,CartPole",
                         "--out", "{existing}"], "exists"),
    ("stats --export: unknown format", ["stats", "{existing}", "--export", "csv", "{root}/x.csv"], "--export csv"),
    ("stats --export: wrong extension", ["stats", "{existing}", "--export", "rliable", "{root}/x.pkl"], "x.pkl"),
    ("stats --export: missing folder", ["stats", "{existing}", "--export", "rliable", "{root}/no/x.npz"],
     "does not exist"),
]


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    _write_bad_inputs(root)
    pytest.importorskip("tensorboard")
    write_events(root / "tb_real", "some/other", [(1, 1.0), (2, 2.0)])
    existing = root / "existing"
    from tests.test_results import write_run

    write_run(existing, "A", "Acrobot-v1", 3, [-500.0, -100.0], suite="classic-discrete")
    write_run(existing, "A", "CartPole-v1", 3, [10.0, 20.0], suite="classic-discrete")
    return root


@pytest.mark.parametrize("name,argv,needle", BAD, ids=[case[0] for case in BAD])
def test_bad_input_is_one_line_exit_2_nothing_written(bad_root, tmp_path, run_cli, name, argv, needle):
    out = tmp_path / "runs"
    argv = [a.format(root=bad_root, existing=bad_root / "existing") for a in argv]
    if argv[0] == "import" and "--out" not in argv:
        argv += ["--out", str(out)]
    before = tree(bad_root)
    code, stdout, err = run_cli(*argv)
    assert code == 2, (name, stdout, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    assert tree(bad_root) == before and not out.exists(), name


def test_seed_collision_and_duplicate_seeds_refused(bad_root, tmp_path, run_cli):
    code, _, err = run_cli("import", "sb3", bad_root / "seeds", "--agent", "a", "--env", "Pendulum",
                           "--seed-from-path", r"run_", "--out", tmp_path / "runs")
    assert code == 2 and "not a seed" in err
    (tmp_path / "dup" / "x1" / "a").mkdir(parents=True)
    (tmp_path / "dup" / "x1" / "b").mkdir(parents=True)
    for sub in ("a", "b"):
        (tmp_path / "dup" / "x1" / sub / "monitor.csv").write_text('#{"t_start": 0}\nr,l,t\n1,2,3\n')
    code, _, err = run_cli("import", "sb3", tmp_path / "dup", "--agent", "a", "--env", "Pendulum",
                           "--seed-from-path", r"x(\d)", "--out", tmp_path / "runs")
    assert code == 2 and "seed 1 found twice" in err
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- compare and report
def _adastop_csv(path: Path, centres: dict[str, float], runs: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    columns = {name: centre + rng.normal(0.0, 10.0, runs) for name, centre in centres.items()}
    lines = ["," + ",".join(columns)] + [f"{i}," + ",".join(f"{columns[c][i]:.3f}" for c in columns)
                                         for i in range(runs)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_imported_agents_decides_with_the_runs_that_exist(tmp_path, run_cli):
    out = tmp_path / "runs"
    csv_path = _adastop_csv(tmp_path / "scores.csv", {"ppo_sb3": -300.0, "ppo_cleanrl": -300.0}, runs=10)
    assert run_cli("import", "adastop", csv_path, "--env", "Pendulum", "--out", out)[0] == 0
    code, text, err = run_cli("compare", "ppo_sb3", "ppo_cleanrl", "--env", "Pendulum", "--n", "5", "--K", "4",
                              "--out", out)
    assert code == 0, err
    assert "at most K=2 interim(s) of n=5 instead of K=4" in err and "cannot train" in err
    assert "finished after interim 2" in text and "(equal)" in text
    assert "10 imported runs, not trained by drlbench" in text
    # the scores used are the imported ones: the table's mean is the CSV column's
    column = np.loadtxt(csv_path, delimiter=",", skiprows=1)[:, 1]
    assert f"{column.mean():.2f}" in text


def test_compare_imported_against_a_drlbench_agent(tmp_path, run_cli, monkeypatch):
    from tests.test_compare import _fake_trainer

    out = tmp_path / "runs"
    calls = _fake_trainer(monkeypatch, {"sac": -150.0})
    csv_path = _adastop_csv(tmp_path / "scores.csv", {"sb3_sac": -900.0}, runs=5)
    assert run_cli("import", "adastop", csv_path, "--env", "Pendulum", "--out", out)[0] == 0
    code, text, err = run_cli("compare", "sac", "sb3_sac", "--env", "Pendulum", "--n", "5", "--K", "3",
                              "--steps", "2000", "--out", out)
    assert code == 0, err
    assert sorted(calls) == [("sac", s) for s in range(5)]      # only drlbench's agent is trained
    assert "sac vs sb3_sac" in text and "(larger)" in text and "finished after interim 1" in text


def test_compare_stops_with_the_decisions_so_far_when_imported_runs_run_out(tmp_path, run_cli):
    import shutil

    from drlbench import compare

    out = tmp_path / "runs"
    csv_path = _adastop_csv(tmp_path / "scores.csv", {"a": -300.0, "b": -300.0}, runs=10, seed=1)
    assert run_cli("import", "adastop", csv_path, "--env", "Pendulum", "--out", out)[0] == 0

    def stop_after_first(line):
        if line.startswith("interim 1/2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compare.run_compare(["a", "b"], "Pendulum", n=5, K=2, out=out, echo=stop_after_first)
    shutil.rmtree(out / "Pendulum-v1" / "b" / "seed_7")
    code, text, err = run_cli("compare", "a", "b", "--env", "Pendulum", "--n", "5", "--K", "2", "--out", out)
    assert code == 0, err
    assert "stopped before interim 2: b is imported with 9 runs and interim 2 needs 10" in err
    assert "not finished after interim 1" in text and "undecided" in text


def test_compare_with_too_few_imported_runs_is_refused(tmp_path, run_cli):
    out = tmp_path / "runs"
    csv_path = _adastop_csv(tmp_path / "scores.csv", {"a": -300.0, "b": -200.0}, runs=3)
    assert run_cli("import", "adastop", csv_path, "--env", "Pendulum", "--out", out)[0] == 0
    before = tree(out)
    code, _, err = run_cli("compare", "a", "b", "--env", "Pendulum", "--n", "5", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "pass --n 3 or fewer" in err
    assert tree(out) == before


def test_report_on_imported_records(tmp_path, run_cli):
    np.savez(tmp_path / "scores.npz", **hand_scores(1))
    out = tmp_path / "runs"
    assert run_cli("import", "rliable", tmp_path / "scores.npz", "--env", "MountainCarContinuous,Pendulum",
                   "--out", out)[0] == 0
    code, text, err = run_cli("report", out, "--out", tmp_path / "report", "--reps", "200")
    assert code == 0, err
    board = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "| A" in board or "A |" in board or " A " in board
    assert "24 runs" in text
    assert "None episode" not in board and "imported (rliable)" in board
    assert "imported: final score from an rliable score dict" in board


def test_folders_named_like_zoo_runs_but_not_gym_ids_are_all_runs(tmp_path, run_cli):
    for name, returns in (("run_1", [1.0, 3.0]), ("run_2", [5.0, 7.0]), ("Pendulum-v1_9", [0.0, 2.0])):
        (tmp_path / "src" / name).mkdir(parents=True)
        lines = ['#{"t_start": 100.0, "env_id": "Pendulum-v1"}', "r,l,t"]
        lines += [f"{r},200,{i + 1}.5" for i, r in enumerate(returns)]
        (tmp_path / "src" / name / "monitor.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run_cli("import", "sb3", tmp_path / "src", "--agent", "x", "--env", "Pendulum",
                           "--seed-from-path", r"_(\d+)$", "--window", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    runs = {r.seed: r for r in results.scan(tmp_path / "runs")[0]}
    assert {seed: run.final for seed, run in runs.items()} == {1: 2.0, 2: 6.0, 9: 1.0}
    assert runs[1].steps == 400
    assert json.loads((runs[1].path / "run.json").read_text())["wall_time_s"] == 2.5


def test_tensorboard_tensor_scalars_as_tf2_writes_them(tmp_path, run_cli):
    """tf.summary.scalar stores a tensor, not a simple_value; written here with tensorboard's own
    event writer and protos (no TensorFlow needed)."""
    pytest.importorskip("tensorboard")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    writer = EventFileWriter(str(tmp_path / "tf2"))
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    for step, value in ((100, -900.0), (200, -400.0), (300, -250.0)):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag="eval/mean_reward", metadata=metadata, tensor=tensor_util.make_tensor_proto(np.float32(value)))])
        writer.add_event(event_pb2.Event(wall_time=1000.0 + step, step=step, summary=summary))
    writer.close()
    code, _, err = run_cli("import", "tensorboard", tmp_path / "tf2", "--agent", "tf", "--env", "Pendulum",
                           "--out", tmp_path / "runs")
    assert code == 0, err
    (run,) = results.scan(tmp_path / "runs")[0]
    assert (run.final, run.best, run.last_step) == (-250.0, -250.0, 300)
