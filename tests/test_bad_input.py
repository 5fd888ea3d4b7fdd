"""Bad input over every verb: exit code 2, exactly one line on stderr naming the bad value, no
traceback, and nothing written under --out (the directory tree is compared before and after)."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_results import write_run

SAC = ["run", "sac", "--env", "Pendulum", "--steps", "1000", "--out", "{out}"]
PPO = ["run", "ppo", "--env", "Pendulum", "--steps", "4096", "--out", "{out}"]

CASES = [
    # --- run: names ---------------------------------------------------------------------
    ("unknown agent", ["run", "sacc", "--env", "Pendulum", "--out", "{out}"], "'sacc'"),
    ("unknown env", ["run", "sac", "--env", "Pendulm", "--out", "{out}"], "'Pendulm'"),
    ("unknown hyperparameter", [*SAC, "--set", "lerning_rate=1"], "'lerning_rate'"),
    ("no key=value", [*SAC, "--set", "gamma"], "'gamma'"),
    # --- run: domains of each kind of field ---------------------------------------------
    ("discount above 1", [*SAC, "--set", "gamma=1.5"], "gamma=1.5"),
    ("discount 0 (open end)", [*SAC, "--set", "gamma=0"], "gamma=0"),
    ("negative Polyak rate", [*SAC, "--set", "tau=-1"], "tau=-1"),
    ("zero learning rate", [*SAC, "--set", "actor_lr=0"], "actor_lr=0"),
    ("infinite learning rate", [*SAC, "--set", "critic_lr=inf"], "critic_lr=inf"),
    ("NaN", [*SAC, "--set", "alpha_lr=nan"], "alpha_lr=nan"),
    ("negative batch size", [*SAC, "--set", "batch_size=-3"], "batch_size=-3"),
    ("non-integral integer", [*SAC, "--set", "batch_size=1.5"], "batch_size=1.5"),
    ("integer beyond int64", [*SAC, "--set", "learning_starts=1e99"], "learning_starts=1e99"),
    ("zero layer width", [*SAC, "--set", "hidden_sizes=[0]"], "hidden_sizes=[0]"),
    ("layer width not a number", [*SAC, "--set", "hidden_sizes=[a,b]"], "hidden_sizes=[a,b]"),
    ("string not among the choices", [*SAC, "--set", "actor_q=median"], "actor_q=median"),
    ("number-or-auto field", [*SAC, "--set", "target_entropy=manual"], "target_entropy=manual"),
    ("boolean", [*SAC, "--set", "alpha_resample=maybe"], "alpha_resample=maybe"),
    ("probability above 1", ["run", "ppo", "--env", "Pendulum", "--out", "{out}", "--set", "gae_lambda=1.2"],
     "gae_lambda=1.2"),
    ("negative clip range", ["run", "ppo", "--env", "Pendulum", "--out", "{out}", "--set", "clip_range_vf=-0.1"],
     "clip_range_vf=-0.1"),
    ("sparsity 1", ["run", "stream_ac", "--env", "Pendulum", "--out", "{out}", "--set", "sparsity=1"], "sparsity=1"),
    ("epsilon above 1", ["run", "stream_q", "--env", "CartPole", "--out", "{out}", "--set", "epsilon_start=2"],
     "epsilon_start=2"),
    ("schedule name", [*PPO, "--set", "learning_rate_schedule=cosine"], "learning_rate_schedule=cosine"),
    ("zero experts", ["run", "pmoe_sac", "--env", "Pendulum", "--out", "{out}", "--set", "num_experts=0"],
     "num_experts=0"),
    # --- run: relations between fields ---------------------------------------------------
    ("learning_starts beyond steps", [*SAC, "--set", "learning_starts=5000"], "learning_starts=5000"),
    ("batch larger than the buffer", [*SAC, "--set", "buffer_size=100", "batch_size=256", "learning_starts=0"],
     "batch_size=256"),
    ("negative update-to-data ratio", [*SAC, "--set", "updates_per_step=-1"], "updates_per_step=-1"),
    ("rollout longer than the run", ["run", "ppo", "--env", "Pendulum", "--steps", "100", "--out", "{out}"],
     "steps=100"),
    ("log_std_min above log_std_max", ["run", "dsac_t", "--env", "Pendulum", "--out", "{out}",
                                       "--set", "log_std_min=1"], "log_std_min=1"),
    ("value minibatch beyond the rollout", ["run", "mdpo_on", "--env", "Pendulum", "--out", "{out}", "--steps",
                                            "100000", "--set", "vf_batch_size=100000"], "vf_batch_size=100000"),
    # --- run: options ----------------------------------------------------------------------
    ("zero steps", [*SAC, "--steps", "0"], "'0'"),
    ("negative steps", [*SAC, "--steps", "-5"], "'-5'"),
    ("seed range", [*SAC, "--seeds", "3-x"], "'3-x'"),
    ("repeated seeds", [*SAC, "--seeds", "1,1"], "'1,1'"),
    ("device that does not exist", [*SAC, "--device", "tpu"], "tpu"),
    ("CUDA device on a CPU machine", [*SAC, "--device", "cuda:3"], "cuda:3"),
    ("streaming loop with 2 envs", ["run", "stream_ac", "--env", "Pendulum", "--out", "{out}", "--num-envs", "2"],
     "--num-envs 2"),
    ("evaluation every 0 steps", [*SAC, "--eval-every", "0"], "'0'"),
    ("action space the agent cannot use", ["run", "sac", "--env", "CartPole", "--steps", "10000", "--out", "{out}"],
     "Discrete(2)"),
    ("unwritable --out (a file)", ["run", "sac", "--env", "Pendulum", "--steps", "2000", "--out", "{file}/runs"],
     "{file}"),
    ("--resume on a run of another agent", ["run", "sac", "--env", "Pendulum", "--steps", "2000", "--out",
                                            "{other_agent}", "--resume"], "'td3'"),
    # --- run: preset files -------------------------------------------------------------------
    ("missing preset file", [*SAC, "--preset", "{presets}/none.toml"], "none.toml"),
    ("malformed preset file", [*SAC, "--preset", "{presets}/broken.toml"], "broken.toml"),
    ("preset value outside the domain", [*SAC, "--preset", "{presets}/gamma2.toml"], "gamma=2"),
    ("preset value of the wrong type", [*SAC, "--preset", "{presets}/string_tau.toml"], "tau='fast'"),
    ("preset missing a key", [*SAC, "--preset", "{presets}/no_tau.toml"], "tau"),
    ("preset with an unknown key", [*SAC, "--preset", "{presets}/extra.toml"], "'gama'"),
    # --- list --------------------------------------------------------------------------------
    ("list what", ["list", "things"], "'things'"),
    ("list verbose unknown agent", ["list", "agents", "--verbose", "sacc"], "'sacc'"),
    ("list verbose on envs", ["list", "envs", "--verbose", "sac"], "--verbose sac"),
    ("unknown verb", ["frobnicate"], "'frobnicate'"),
    # --- stats -------------------------------------------------------------------------------
    ("stats on a missing directory", ["stats", "{tmp}/nowhere"], "nowhere"),
    ("stats unknown suite", ["stats", "{good}", "--suite", "atari"], "'atari'"),
    ("stats unknown score", ["stats", "{good}", "--score", "median"], "'median'"),
    ("stats zero replicates", ["stats", "{good}", "--reps", "0"], "'0'"),
    ("stats on a corrupt run.json", ["stats", "{corrupt}"], "run.json"),
    ("stats on a truncated evaluations.csv", ["stats", "{truncated}"], "evaluations end at step 0 of 100"),
    ("stats on an evaluations.csv with text", ["stats", "{garbled}"], "evaluations.csv"),
    # --- compare -----------------------------------------------------------------------------
    ("compare one agent", ["compare", "sac", "--env", "Pendulum", "--out", "{out}"], "['sac']"),
    ("compare an agent twice", ["compare", "sac", "sac", "--env", "Pendulum", "--out", "{out}"], "'sac'"),
    ("compare unknown agent", ["compare", "sac", "tdd3", "--env", "Pendulum", "--out", "{out}"], "'tdd3'"),
    ("compare alpha above 1", ["compare", "sac", "td3", "--env", "Pendulum", "--alpha", "2", "--out", "{out}"],
     "--alpha 2"),
    ("compare override outside the domain", ["compare", "sac", "td3", "--env", "Pendulum", "--out", "{out}",
                                             "--set", "tau=2"], "tau=2"),
    ("compare override of an absent agent", ["compare", "sac", "td3", "--env", "Pendulum", "--out", "{out}",
                                             "--set", "ppo:gamma=0.5"], "'ppo'"),
    ("compare env outside the suite", ["compare", "sac", "td3", "--env", "Pendulum", "--suite", "mujoco",
                                       "--out", "{out}"], "'mujoco'"),
    # --- report ------------------------------------------------------------------------------
    ("report on a missing directory", ["report", "{tmp}/nowhere", "--out", "{out}"], "nowhere"),
    ("report unknown suite", ["report", "{good}", "--suite", "atari", "--out", "{out}"], "'atari'"),
    ("report on corrupt records only", ["report", "{corrupt}", "--out", "{out}"], "run.json"),
    ("report on a truncated evaluations.csv", ["report", "{truncated}", "--out", "{out}"], "evaluations end at step 0"),
]


def make_world(tmp: Path) -> dict[str, Path]:
    world = {"tmp": tmp, "out": tmp / "out", "file": tmp / "a-file", "presets": tmp / "presets",
             "good": tmp / "good", "corrupt": tmp / "corrupt", "truncated": tmp / "truncated",
             "other_agent": tmp / "other", "garbled": tmp / "garbled"}
    world["file"].write_text("not a directory\n")
    write_run(world["good"], "sac", "Pendulum-v1", 0, [-1200.0, -150.0])
    bad = write_run(world["corrupt"], "sac", "Pendulum-v1", 0, [-1200.0, -150.0])
    (bad / "run.json").write_text('{"agent": "sac", "label": ')
    cut = write_run(world["truncated"], "sac", "Pendulum-v1", 0, [-1200.0, -150.0])
    (cut / "evaluations.csv").write_text("step,return_mean,return_std,episodes,length_mean,wall_time_s\n0,-12")
    garbled = write_run(world["garbled"], "sac", "Pendulum-v1", 0, [-1200.0, -150.0])
    (garbled / "evaluations.csv").write_text("step,return_mean,return_std,episodes,length_mean,wall_time_s\n"
                                             "0,-1200,1,10,200,0\n100,lots,1,10,200,1\n")
    write_run(world["other_agent"], "sac", "Pendulum-v1", 0, [-1200.0], agent="td3", status="interrupted")
    presets = world["presets"]
    presets.mkdir()
    shipped = (Path(__file__).parents[1] / "agents" / "sac.toml").read_text()
    (presets / "broken.toml").write_text("[hyperparameters\ngamma = 0.99\n")
    (presets / "gamma2.toml").write_text(shipped.replace("gamma = 0.99 ", "gamma = 2.0  "))
    (presets / "string_tau.toml").write_text(shipped.replace("tau = 0.005 ", 'tau = "fast"'))
    (presets / "no_tau.toml").write_text("\n".join(l for l in shipped.splitlines() if not l.startswith("tau ")))
    (presets / "extra.toml").write_text(shipped.replace("[hyperparameters]", "[hyperparameters]\ngama = 0.9"))
    return world


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, argv, expected, tmp_path, run_cli):
    world = make_world(tmp_path)
    args = [a.format(**world) for a in argv]
    before = snapshot(tmp_path)
    code, out, err = run_cli(*args)
    assert code == 2, f"{name}: exit {code}, stderr {err!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{name}: {err!r}"
    assert expected.format(**world) in lines[0], f"{name}: {lines[0]!r}"
    assert "Traceback" not in err and out == ""
    assert snapshot(tmp_path) == before, f"{name}: files were written"


def test_at_least_forty_cases_over_every_verb():
    verbs = {argv[0] for _, argv, _ in CASES}
    assert len(CASES) >= 40 and {"run", "list", "stats", "compare", "report"} <= verbs


def test_bad_input_from_a_real_process(tmp_path):
    """The console entry point itself: exit status 2 and one line, no traceback."""
    result = subprocess.run([sys.executable, "-m", "drlbench.cli", "run", "sac", "--env", "Pendulum",
                             "--set", "gamma=1.5", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "gamma=1.5" in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_agent_lists_every_field_with_domain_and_source(run_cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("run", "--help-agent", "sac")
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[:4] == ["hyperparameter", "type", "default", "domain"]
    gamma = next(line for line in lines if line.startswith("gamma "))
    assert "0.99" in gamma and "(0, 1]" in gamma and "Table 1 discount" in gamma
    assert any(line.startswith("batch_size ") and "<= buffer_size" in line for line in lines)


def test_list_agents_has_a_header(run_cli):
    code, out, _ = run_cli("list", "agents")
    assert code == 0 and out.splitlines()[0].split() == ["agent", "loop", "summary"]


def test_soft_relations_warn_once_and_run(run_cli, tmp_path):
    """A PPO minibatch that does not divide the rollout is allowed (as stable-baselines3) with one warning."""
    code, _, err = run_cli("run", "ppo", "--env", "Pendulum", "--steps", "64", "--quiet", "--eval-episodes", "1",
                           "--out", tmp_path, "--set", "n_steps=32", "batch_size=24", "n_epochs=1")
    assert code == 0, err
    assert err.count("warning") == 1 and "batch_size=24: batch_size should divide n_steps*num_envs=32" in err
