"""Bad input: one line naming the bad value and the choices, exit code 2, no traceback."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args, expected", [
    (["run", "sacc", "--env", "Pendulum"], "unknown agent 'sacc'; did you mean: sac"),
    (["run", "sac", "--env", "Pendulm"], "unknown env 'Pendulm'; did you mean: Pendulum-v1"),
    (["run", "sac", "--env", "Pendulum", "--set", "lerning_rate=1"], "unknown hyperparameter 'lerning_rate'"),
    (["run", "sac", "--env", "Pendulum", "--set", "batch_size=big"], "--set batch_size=big: expected an integer"),
    (["run", "sac", "--env", "Pendulum", "--set", "gamma"], "expected key=value"),
    (["run", "sac", "--env", "Pendulum", "--steps", "-5"], "expected a positive integer"),
    (["run", "sac", "--env", "Pendulum", "--seeds", "3-x"], "expected seeds like 0-4"),
    (["run", "sac", "--env", "Pendulum", "--device", "cuda"], "CUDA is not available"),
    (["run", "sac", "--env", "CartPole", "--steps", "10000"], "sac needs a continuous (Box) action space"),
    (["run", "sac"], "the following arguments are required: --env"),
    (["list", "things"], "invalid choice: 'things'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_exit_2(run_cli, tmp_path, args, expected):
    code, out, err = run_cli(*args, *(["--out", tmp_path, "--steps", "10"] if args[0] == "run" and len(args) > 2 and "--steps" not in args else []))
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unknown_key_lists_valid_choices(run_cli, tmp_path):
    code, _, err = run_cli("run", "td3", "--env", "Pendulum", "--set", "policy_dealy=3", "--out", tmp_path)
    assert code == 2 and "policy_delay" in err


def test_unwritable_output(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli("run", "td3", "--env", "Pendulum", "--steps", "10", "--out", blocker / "runs",
                           "--set", "learning_starts=0", "random_steps=0")
    assert code == 2 and "cannot write run records" in err and str(blocker) in err


def test_console_script_exit_code_and_help():
    done = subprocess.run([sys.executable, "-m", "drlbench.cli", "run", "nope", "--env", "Pendulum"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    for verb in ([], ["run"], ["list"]):
        shown = subprocess.run([sys.executable, "-m", "drlbench.cli", *verb, "--help"], capture_output=True, text=True)
        assert shown.returncode == 0 and "usage: drlbench" in shown.stdout


def test_list_agents_and_envs(run_cli):
    code, out, _ = run_cli("list", "agents")
    from drlbench.agents import AGENTS

    lines = out.splitlines()
    assert lines[0].split() == ["agent", "loop", "summary"] and lines[-1].startswith("Hyperparameters of one agent")
    names = [line.split()[0] for line in lines[1:-1]]
    assert code == 0 and names == sorted(AGENTS) and {"sac", "td3"} <= set(names)
    code, out, _ = run_cli("list", "envs")
    assert code == 0 and "Pendulum-v1" in out and "HalfCheetah-v5" in out


def test_short_names_resolve_to_current_ids():
    from drlbench.envs import resolve

    assert resolve("HalfCheetah") == "HalfCheetah-v5"
    assert resolve("pendulum") == "Pendulum-v1"
    assert resolve("Hopper") == "Hopper-v5"
    assert resolve("Hopper-v4") == "Hopper-v4"
