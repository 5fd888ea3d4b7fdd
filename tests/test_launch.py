"""The launcher (drlbench.launch): `sweep`, `run --jobs` and `compare` on the local backend, and
on a real Ray cluster that this module starts on the loopback and stops (no mock).

Records are compared as bytes of evaluations.csv without its last column, wall_time_s: that column
is the wall-clock time of each evaluation, which no two runs share (two local runs neither);
every other byte (steps, returns, stds, episodes, lengths) must be the same.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# Ray reads this when imported: its nodes and drivers use 127.0.0.1, so the traffic of these tests
# stays on the loopback (without it a driver rewrites 127.0.0.1 to the machine's network address)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# and without token authentication: a ~/.ray/auth_token left by any earlier local Ray instance would
# otherwise switch `ray start` to token mode while this driver connects without one
os.environ["RAY_AUTH_MODE"] = "disabled"
try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed: pip install 'drlbench[ray]' "
                                                  "(the test extra installs it)")

# tiny cells: stream Q(lambda) on CartPole, a few hundred steps, one evaluation episode
CELL = ["--envs", "CartPole", "--eval-episodes", "1"]
NAN = ["ppo:learning_rate=1e30", "ppo:n_steps=32", "ppo:batch_size=32"]   # ppo's first update is non-finite


def evaluations(out: Path) -> dict[str, bytes]:
    """evaluations.csv of every record under `out`, without the wall_time_s column."""
    found = {}
    for path in sorted(out.rglob("evaluations.csv")):
        lines = path.read_bytes().splitlines(keepends=True)
        found[str(path.relative_to(out))] = b"".join(line.rsplit(b",", 1)[0] + b"\n" for line in lines)
    return found


def meta(out: Path, pattern: str) -> dict:
    (path,) = out.glob(pattern)
    return json.loads((path / "run.json").read_text())


def same_outcome(a: dict, b: dict) -> None:
    for key in ("status", "final_score", "best_score", "steps_done", "hyperparameters", "label", "seed"):
        assert a[key] == b[key], key


# --- local backend -----------------------------------------------------------------------------
def test_sweep_skips_completed_cells_and_prints_a_summary(run_cli, tmp_path):
    args = ["sweep", "--agents", "stream_q", *CELL, "--seeds", "0,1", "--steps", "200", "--eval-every", "100",
            "--out", tmp_path]
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "2 seed(s) to train in 2 cell(s) on local" in err and "[2/2] stream_q CartPole-v1 seed" in err
    row = next(line.split() for line in out.splitlines() if line.startswith("CartPole-v1"))
    assert row[:6] == ["CartPole-v1", "stream_q", "2", "0", "0", "0"]
    assert f"drlbench report {tmp_path} --out {tmp_path}" in out
    before = evaluations(tmp_path)
    code, out, err = run_cli(*args, "--seeds", "0-2")   # seeds 0, 1 done: only seed 2 trains
    assert code == 0, err
    assert "1 seed(s) to train in 1 cell(s) on local; 2 completed on disk (skipped)" in err
    row = next(line.split() for line in out.splitlines() if line.startswith("CartPole-v1"))
    assert row[2:4] == ["1", "2"] and row[-1] == "(3)"
    after = evaluations(tmp_path)
    assert {k: after[k] for k in before} == before and len(after) == 3


def test_run_jobs_pool_gives_the_records_of_one_process(run_cli, tmp_path):
    args = ["run", "stream_q", "--env", "CartPole", "--seeds", "0,1", "--steps", "200", "--eval-every", "100",
            "--eval-episodes", "1", "--quiet"]
    code, out, err = run_cli(*args, "--out", tmp_path / "one")
    assert code == 0, err
    code, pooled, err = run_cli(*args, "--jobs", "2", "--out", tmp_path / "pool")
    assert code == 0, err
    assert evaluations(tmp_path / "one") == evaluations(tmp_path / "pool")
    assert [line.split(":")[0] for line in pooled.splitlines()] == ["stream_q CartPole-v1 seed 0",
                                                                     "stream_q CartPole-v1 seed 1"]


def test_ctrl_c_leaves_interrupted_records_that_the_same_sweep_resumes(run_cli, tmp_path, monkeypatch):
    from drlbench.harness import Session

    args = ["sweep", "--agents", "stream_q", *CELL, "--seeds", "0", "--steps", "300", "--eval-every", "100"]
    assert run_cli(*args, "--out", tmp_path / "straight")[0] == 0
    original = Session.save_checkpoint

    def ctrl_c_after_first_checkpoint(self, loop_state):
        original(self, loop_state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", ctrl_c_after_first_checkpoint)
    code, _, err = run_cli(*args, "--out", tmp_path / "cut")
    assert code == 130 and "the same command resumes" in err
    assert meta(tmp_path / "cut", "*/*/seed_0")["status"] == "interrupted"
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*args, "--out", tmp_path / "cut")
    assert code == 0, err
    resumed = meta(tmp_path / "cut", "*/*/seed_0")
    assert resumed["status"] == "completed" and len(resumed["resumed_at"]) == 1
    assert evaluations(tmp_path / "cut") == evaluations(tmp_path / "straight")


def test_sweep_refuses_bad_cells_before_training(run_cli, tmp_path):
    code, _, err = run_cli("sweep", "--agents", "stream_q", "sac", *CELL, "--out", tmp_path)
    assert code == 2 and "sac needs a continuous (Box) action space" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.rglob("run.json"))
    code, _, err = run_cli("sweep", "--agents", "stream_q", *CELL, "--address", "x:1", "--out", tmp_path)
    assert code == 2 and "--address is for --backend ray" in err


def test_ray_backend_without_ray_says_how_to_install(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError
    code, _, err = run_cli("sweep", "--agents", "stream_q", *CELL, "--steps", "100", "--backend", "ray",
                           "--out", tmp_path)
    assert code == 2 and "pip install 'drlbench[ray]'" in err and len(err.splitlines()) == 1


# --- a real Ray cluster ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head --block` on 127.0.0.1 with 2 CPUs in its own process group, this driver
    connected to it; afterwards the driver disconnects and the group (head, raylet, workers) is
    stopped, whatever happened in the tests."""
    if ray is None:
        pytest.skip("ray is not installed: pip install 'drlbench[ray]'")
    port = free_port()
    temp = Path(f"/tmp/drlbench-ray-{os.getpid()}")   # short: Ray's socket paths must fit in 107 bytes
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
               "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
               f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}"]
    log_path = tmp_path_factory.mktemp("ray-log") / "ray-start.log"
    log = open(log_path, "w")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log_path.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not start a cluster: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        assert "Local node IP: 127.0.0.1" in _plain(log_path.read_text())
        ray.init(address=address, log_to_driver=False)
        yield address, head.pid
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop_group(head)
        log.close()
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _plain(text: str) -> str:
    """Without terminal colour codes."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def stop_group(head: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` (it stops its cluster), then SIGKILL to what is left of its
    process group: only processes this fixture started."""
    import psutil

    try:
        started = psutil.Process(head.pid).children(recursive=True)
    except psutil.Error:
        started = []
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for process in started:   # any that left the group
        try:
            process.kill()
        except psutil.Error:
            pass
    head.wait(10)


def worker_of(cell: str, head: int) -> int | None:
    """The pid of the Ray worker running task `cell` (its process title is ray::<task name>),
    among the processes our `ray start` started."""
    import psutil   # installed with ray[default]

    for child in psutil.Process(head).children(recursive=True):
        try:
            if child.cmdline()[:1] and child.cmdline()[0].startswith(f"ray::{cell}"):
                return child.pid
        except psutil.Error:
            continue
    return None


@needs_ray
def test_ray_sweep_equals_local_and_a_failing_cell_fails_once(run_cli, tmp_path, cluster):
    address, _ = cluster
    args = ["sweep", "--agents", "stream_q", "ppo", *CELL, "--seeds", "0,1", "--steps", "300",
            "--eval-every", "100", "--set", *NAN]
    code, out, err = run_cli(*args, "--backend", "ray", "--address", address, "--out", tmp_path / "ray")
    assert code == 1, err   # the ppo cells fail (non-finite losses), the others complete
    assert "4 seed(s) to train in 4 cell(s) on ray" in err
    code, _, err = run_cli(*args, "--out", tmp_path / "local")
    assert code == 1, err
    ray_csv, local_csv = evaluations(tmp_path / "ray"), evaluations(tmp_path / "local")
    assert len(ray_csv) == 4 and ray_csv == local_csv
    for seed in (0, 1):
        same_outcome(meta(tmp_path / "ray", f"*/stream_q/seed_{seed}"),
                     meta(tmp_path / "local", f"*/stream_q/seed_{seed}"))
        failed = meta(tmp_path / "ray", f"*/ppo-*/seed_{seed}")
        assert failed["status"] == "failed" and failed["error"].startswith("NonFiniteError: non-finite")
        assert "resumed_at" not in failed   # not retried: a retry would resume from the step-0 record
        assert next((tmp_path / "ray").glob(f"*/ppo-*/seed_{seed}/error.txt")).exists()
    ppo = next(line.split() for line in out.splitlines() if line.startswith("CartPole-v1  ppo"))
    assert ppo[2:6] == ["0", "0", "2", "0"]
    # the same sweep again: completed cells skipped, failed ones left alone, nothing retrained
    code, out, err = run_cli(*args, "--backend", "ray", "--address", address, "--out", tmp_path / "ray")
    assert code == 0, err
    assert "0 seed(s) to train" in err and "2 completed on disk" in err and "2 failed on disk (skipped" in err
    assert evaluations(tmp_path / "ray") == ray_csv


@needs_ray
def test_killed_worker_is_retried_and_resumes_to_the_undisturbed_records(run_cli, tmp_path, cluster):
    from drlbench.launch import task_name

    address, head = cluster
    args = ["sweep", "--agents", "stream_q", *CELL, "--seeds", "0", "--steps", "1200", "--eval-every", "200"]
    code, _, err = run_cli(*args, "--out", tmp_path / "undisturbed")
    assert code == 0, err
    record = next(iter((tmp_path / "undisturbed").glob("*/*/seed_0"))).relative_to(tmp_path / "undisturbed")
    checkpoint = tmp_path / "ray" / record / "checkpoint.pt"
    cell = "drlbench stream_q CartPole-v1 seed 0"
    killed = []

    def kill_mid_cell():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pid = worker_of(cell, head) if checkpoint.exists() else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_mid_cell, daemon=True)
    killer.start()
    code, out, err = run_cli(*args, "--backend", "ray", "--address", address, "--out", tmp_path / "ray")
    killer.join(1)
    assert code == 0, err
    assert killed, "the cell finished before its worker could be killed"
    assert task_name(_Cfg()) == cell
    resumed = meta(tmp_path / "ray", str(record))
    assert resumed["status"] == "completed" and len(resumed["resumed_at"]) == 1   # retried once, from its checkpoint
    same_outcome(resumed, meta(tmp_path / "undisturbed", str(record)))
    assert evaluations(tmp_path / "ray") == evaluations(tmp_path / "undisturbed")
    assert not checkpoint.exists()


class _Cfg:
    label, env_id, seeds = "stream_q", "CartPole-v1", (0,)


@needs_ray
def test_compare_backend_ray_trains_each_interim_on_the_cluster(run_cli, tmp_path, cluster):
    address, _ = cluster
    args = ["compare", "stream_q", "stream_ac", "--env", "CartPole", "--n", "2", "--K", "1", "--steps", "100",
            "--quiet"]
    code, ray_table, err = run_cli(*args, "--backend", "ray", "--address", address, "--out", tmp_path / "ray")
    assert code == 0, err
    code, local_table, err = run_cli(*args, "--out", tmp_path / "local")
    assert code == 0, err
    assert ray_table == local_table and "stream_q vs stream_ac" in ray_table
    assert evaluations(tmp_path / "ray") == evaluations(tmp_path / "local") and len(evaluations(tmp_path / "ray")) == 4


@pytest.mark.slow   # 13 s on 2 busy cores; the kill and sweep tests above keep the file near 90 s
@needs_ray
def test_ctrl_c_on_the_driver_leaves_ray_cells_interrupted_and_resumable(run_cli, tmp_path, cluster):
    address, _ = cluster
    # 6,000 steps: the first checkpoints come at step 200, so the cells are still training when Ctrl-C arrives
    # (with 1,200 steps a loaded machine could finish both before the signal)
    args = ["sweep", "--agents", "stream_q", *CELL, "--seeds", "0,1", "--steps", "6000", "--eval-every", "200",
            "--backend", "ray", "--address", address, "--out", tmp_path]
    checkpoints = [tmp_path / "CartPole-v1" / "stream_q" / f"seed_{s}" / "checkpoint.pt" for s in (0, 1)]

    def ctrl_c_once_both_checkpointed():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(c.exists() for c in checkpoints):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)   # as a terminal's Ctrl-C does to the driver

    threading.Thread(target=ctrl_c_once_both_checkpointed, daemon=True).start()
    code, _, err = run_cli(*args)
    assert code == 130 and "the same command resumes" in err
    assert [meta(tmp_path, f"*/*/seed_{s}")["status"] for s in (0, 1)] == ["interrupted", "interrupted"]
    code, _, err = run_cli(*args)
    assert code == 0 and "2 seed(s) to train" in err, err
    for seed in (0, 1):
        resumed = meta(tmp_path, f"*/*/seed_{seed}")
        assert resumed["status"] == "completed" and len(resumed["resumed_at"]) == 1
