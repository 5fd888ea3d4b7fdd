"""`drlbench report`: an end-to-end report on real short runs (SAC and TD3 on two classic-control
tasks, an AdaStop comparison on one of them, a corrupt and a running record beside them), its
content checked against the statistics computed directly, byte-identical regeneration, the page
opened in headless Chromium, and bad input."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from filelock import FileLock
from test_results import write_run

from drlbench.cli import main
from drlbench.report import iqm_band, seed_text
from drlbench.results import scan, score_table
from drlbench.stats import interval_estimates, iqm

TINY = ["--steps", "300", "--quiet", "--set", "learning_starts=100", "random_steps=100", "batch_size=32",
        "buffer_size=1000"]
REPS = ["--reps", "2000"]


@pytest.fixture(scope="module")
def records(tmp_path_factory, worker_id) -> Path:
    """Real runs: sac and td3, 3 seeds each, on Pendulum-v1 and MountainCarContinuous-v0, an
    AdaStop comparison on Pendulum reusing them, then a corrupt and a still-running record.
    Made once per test session, also when pytest-xdist workers share this module's tests."""
    if worker_id == "master":
        return _make_records(tmp_path_factory.mktemp("records") / "runs")
    shared = tmp_path_factory.getbasetemp().parent       # this session's directory, shared by workers
    with FileLock(str(shared / "report-records.lock")):
        out = shared / "report-records" / "runs"
        if not (out.parent / "done").exists():
            _make_records(out)
            (out.parent / "done").write_text("")
    return out


def _make_records(out: Path) -> Path:
    for agent in ("sac", "td3"):
        for env, extra in (("Pendulum", []), ("MountainCarContinuous", ["--eval-episodes", "1"])):
            code = main(["run", agent, "--env", env, "--seeds", "0-2", "--batched", "--eval-every", "150",
                         "--out", str(out), *extra, *TINY])
            assert code == 0
    assert main(["compare", "sac", "td3", "--env", "Pendulum", "--n", "3", "--K", "1", "--out", str(out),
                 *TINY]) == 0
    sac = next((out / "Pendulum-v1").glob("sac-*"))
    broken = sac / "seed_7"
    shutil.copytree(sac / "seed_0", broken)
    (broken / "evaluations.csv").write_text("step,return_mean\n0,abc\n")
    running = next((out / "Pendulum-v1").glob("td3-*")) / "seed_8"
    shutil.copytree(running.parent / "seed_0", running)
    meta = json.loads((running / "run.json").read_text())
    meta.update(seed=8, status="running")
    (running / "run.json").write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="module")
def report(records, tmp_path_factory):
    """(out dir, stdout, stderr) of `drlbench report records --out ...`."""
    out = tmp_path_factory.mktemp("report") / "site"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["report", str(records), "--out", str(out), *REPS])
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def _section(markdown: str, title: str) -> str:
    start = markdown.index(f"\n{title}\n")
    end = markdown.find("\n## ", start + len(title) + 2)
    return markdown[start:end if end >= 0 else None]


def _table_rows(text: str) -> list[list[str]]:
    """Body rows of the first markdown table in `text`."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]
            if not line.startswith("|---")]


def test_report_contents_match_the_records(records, report):
    out, stdout, stderr = report
    assert "wrote" in stdout and "index.html" in stdout
    # the corrupt and the running record are reported on stderr and in the page, not fatal
    assert "2 record(s) left out" in stderr
    assert "seed_7: evaluations.csv line 2" in stderr and "status 'running'" in stderr
    md = (out / "leaderboard.md").read_text()
    html = (out / "index.html").read_text()
    left_out = _section(md, "## Records left out")
    assert "seed_7 | evaluations.csv line 2" in left_out and "seed_8 | status 'running', not completed" in left_out
    assert "seed_7" in html and "status &#x27;running&#x27;, not completed" in html

    # leaderboard: one row per label, ranked by IQM, numbers as the statistics give them
    runs, _ = scan(records)
    table = score_table(runs)
    estimates = interval_estimates(table.normalized, reps=2000, seed=0)
    ranked = sorted(table.labels, key=lambda label: -estimates[label]["iqm"].point)
    rows = _table_rows(_section(md, "## Leaderboard"))
    assert [row[1] for row in rows] == ranked and [row[0] for row in rows] == ["1", "2"]
    for row, label in zip(rows, ranked):
        e = estimates[label]["iqm"]
        assert row[3] == f"{e.point:,.3f} [{e.lower:,.3f}, {e.upper:,.3f}]"
        assert row[7] == "3 x 2" and row[8] == "300"          # runs x environments, steps per run

    # per-environment tables: final and best returns of the runs, the protocol stated
    envs = _section(md, "## Per-environment results")
    assert "Evaluation: 10 episodes every 150 steps." in envs and "Evaluation: 1 episode every 150 steps." in envs
    pendulum = envs[envs.index("### Pendulum-v1"):]
    for row in _table_rows(pendulum):
        finals = [r.final for r in runs if r.env_id == "Pendulum-v1" and r.label == row[0]]
        bests = [r.best for r in runs if r.env_id == "Pendulum-v1" and r.label == row[0]]
        assert row[1] == "0-2" and row[2] == "300"
        assert row[3].startswith(f"{np.mean(finals):,.1f} [") and row[4].startswith(f"{np.mean(bests):,.1f} [")
        assert np.mean(bests) >= np.mean(finals)

    # AdaStop: the comparison state found under the records, runs used per agent
    adastop = _section(md, "## AdaStop comparisons")
    state = json.loads(next((records / "compare").rglob("*.json")).read_text())
    assert "n=3 runs per agent per interim" in adastop
    agents = {row[0]: row for row in _table_rows(adastop)}
    assert agents["sac"][2] == "3" and agents["td3"][2] == "3"
    decision = state["adastop"]["decisions"][0]
    assert f"sac vs td3 | sac {dict(larger='>', smaller='<', equal='=')[decision]} td3 ({decision})" in adastop

    # provenance: versions, commit and hardware of the runs
    provenance = _section(md, "## Provenance")
    commit = json.loads(runs[0].path.joinpath("run.json").read_text())["git_commit"]
    for text in (f"| torch | {torch.__version__} |", f"| gymnasium | {gymnasium.__version__} |",
                 f"| commit | {commit} |", "device cpu"):
        assert text in provenance

    # figures: every one referenced exists, is a PNG, carries no version stamp
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert set(figures) == set(re.findall(r'<img src="([^"]+)"', html))
    assert len(set(figures)) == 6   # 2 environment curves, aggregate curve, intervals, profiles, P(X > Y)
    for name in figures:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"matplotlib" not in data.lower()


def test_regeneration_is_byte_identical(records, report, tmp_path):
    out, _, _ = report
    copy = tmp_path / "elsewhere" / "results"
    shutil.copytree(records, copy)
    again = tmp_path / "again"
    assert main(["report", str(copy), "--out", str(again), *REPS]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in sorted(again.rglob("*")) if p.is_file()}
    assert first.keys() == second.keys() and len(first) == 8
    assert all(first[k] == second[k] for k in first)
    # regenerated in place (a stale figure of other records is removed)
    (again / "figures" / "curve-Old-v0.png").write_bytes(b"stale")
    assert main(["report", str(copy), "--out", str(again), *REPS]) == 0
    assert {p.relative_to(again): p.read_bytes() for p in sorted(again.rglob("*")) if p.is_file()} == first


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_page_in_headless_chromium(report, tmp_path):
    out, _, _ = report
    url = (out / "index.html").resolve().as_uri()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1280,4000", url],
                   check=True, capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    dom = subprocess.run([*browser, "--dump-dom", url], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    images = len(re.findall(r"<img ", dom))
    assert images == 6
    assert f'data-images-loaded="{images}/{images}"' in dom
    leaderboard = dom[dom.index('class="leaderboard"'):]
    body = leaderboard[leaderboard.index("<tbody>"):leaderboard.index("</tbody>")]
    assert body.count("<tr>") == 2            # one row per agent
    assert "sac-" in body and "td3-" in body


# ------------------------------------------------------------------ hand-written records, fast
def test_records_that_cannot_be_ranked_still_give_a_report(tmp_path, run_cli):
    runs = tmp_path / "runs"
    write_run(runs, "sac", "Pendulum-v1", 0, [-1200.0, -300.0])
    write_run(runs, "sac", "Pendulum-v1", 1, [-1100.0, -250.0])
    write_run(runs, "td3", "MountainCarContinuous-v0", 0, [-30.0, 10.0])
    write_run(runs, "td3", "MountainCarContinuous-v0", 1, [-1.0], status="failed", steps=1000,
              error="NonFiniteError: non-finite critic_loss (seed 1) at step 7")
    code, out, err = run_cli("report", runs, "--out", tmp_path / "site", *REPS)
    assert code == 0, err
    assert "non-finite critic_loss" in err
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "No leaderboard: no environment has runs of every label" in md
    assert "### Pendulum-v1" in md and "### MountainCarContinuous-v0" in md
    assert "| -275.0 [-300.0, -250.0] |" in md       # final return of the two sac runs
    assert "status 'failed', not completed: NonFiniteError: non-finite critic_loss" in md
    assert "None: run `drlbench compare`" in md
    html = (tmp_path / "site" / "index.html").read_text()
    assert html.count("<img ") == 2 and "No leaderboard" in html


@pytest.mark.parametrize("case", ["missing", "empty", "broken only", "unwritable out", "unknown suite"])
def test_bad_input_is_one_line_exit_2(tmp_path, run_cli, case):
    runs, out = tmp_path / "runs", tmp_path / "site"
    runs.mkdir()
    write_run(runs, "sac", "Pendulum-v1", 0, [-1200.0, -300.0])
    args, expected = {
        "missing": ([tmp_path / "nope"], "nope: not a directory of run records"),
        "empty": ([tmp_path / "site"], "no completed run records (0 record(s) left out)"),
        "broken only": ([runs / "Pendulum-v1"], None),
        "unwritable out": ([runs], "cannot write the report there"),
        "unknown suite": ([runs, "--suite", "atari"], "unknown suite 'atari'; choose from: classic"),
    }[case]
    if case == "empty":
        out.mkdir()
    if case == "broken only":
        (runs / "Pendulum-v1" / "sac" / "seed_0" / "evaluations.csv").write_text("step\n")
        expected = "1 record(s) left out; first left out: sac/seed_0: evaluations.csv has no return_mean"
    if case == "unwritable out":
        out.write_text("a file")
        out = out / "site"
    code, stdout, err = run_cli("report", *args, "--out", out)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and expected in err, err


def test_curve_band_and_seed_ranges():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 2, 4))
    point, lower, upper = iqm_band(scores, 500, 0, "x")
    assert np.allclose(point, [iqm(scores[:, :, t]) for t in range(4)])
    assert np.all(lower <= point + 1e-12) and np.all(point <= upper + 1e-12) and np.all(upper > lower)
    again = iqm_band(scores, 500, 0, "x")
    assert all(np.array_equal(a, b) for a, b in zip((point, lower, upper), again))
    assert seed_text([4, 0, 1, 2, 7, 8]) == "0-2, 4, 7-8"


def test_every_agent_gets_its_own_colour_and_line_style():
    from drlbench.plots import style

    styles = style([f"agent{i}" for i in range(36)])
    assert len({(s["color"], s["linestyle"]) for s in styles.values()}) == 36
    assert len({s["color"] for s in list(styles.values())[:9]}) == 9
