"""`drlbench report RUNS_DIR --out DIR`: the leaderboard report, as `DIR/index.html` (opens from
disk: inline CSS, figures as PNG files beside it) and `DIR/leaderboard.md`.

Reads run records only (`drlbench.results`) and the AdaStop states `drlbench compare` leaves
under RUNS_DIR/.../compare/<env>/*.json. Contents:
- leaderboard: labels ranked by the IQM of normalised final scores, with 95% stratified-bootstrap
  intervals, mean, median, optimality gap, runs and environment steps per run;
- per environment: final return and best return during training (mean over seeds, 95% bootstrap
  interval), with the evaluation protocol; sample-efficiency curves (IQM over seeds, band);
- aggregate sample-efficiency curve, performance profiles, probability-of-improvement matrix;
- AdaStop decisions; provenance (versions, hardware, commits, seeds); records left out and why.

Regenerating from the same records gives the same bytes: no generation time, every bootstrap
seeded, PNGs without metadata at a fixed dpi, records in sorted order, paths relative to RUNS_DIR.

Layout: this module computes what the report shows and writes it; `drlbench.report_text` holds the
text both renderers share, `drlbench.report_html` and `drlbench.report_markdown` render it.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drlbench.errors import UsageError
from drlbench.report_html import render_html
from drlbench.report_markdown import render_markdown
from drlbench.report_text import ci_text, protocol, rel, seed_text, steps_text
from drlbench.results import (
    Problem,
    Run,
    no_runs_error,
    select_suite,
    read_evaluations,
    reference_scores,
    scan,
    score_table,
)
from drlbench.stats import Estimate

__all__ = ["CURVE_REPS", "METRICS", "Comparison", "EnvRow", "Report", "build", "check_writable", "ci_text",
           "draw_figures", "iqm_band", "mean_interval", "read_comparisons", "render_html", "render_markdown",
           "seed_text", "steps_text", "write_report"]

CURVE_REPS = 2000          # bootstrap replicates for curve bands and performance profiles
METRICS = ("iqm", "mean", "median", "optimality_gap")


# --- numbers ----------------------------------------------------------------------------------
def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def mean_interval(values: np.ndarray, reps: int, seed: int, key: str) -> Estimate:
    """Mean over runs with a 95% percentile-bootstrap interval (runs resampled)."""
    values = np.asarray(values, dtype=np.float64)
    idx = _rng(seed, key).integers(0, values.size, size=(reps, values.size))
    lower, upper = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    return Estimate(float(values.mean()), float(lower), float(upper))


def iqm_band(scores: np.ndarray, reps: int, seed: int, key: str):
    """IQM over runs x tasks at every curve point, with a 95% stratified-bootstrap band.

    scores: (runs, tasks, points); one replicate resamples the runs of every task (the same
    draw for every point, so the band is that of whole curves). Returns (point, lower, upper)."""
    from drlbench.stats.metrics import KERNELS

    iqm = KERNELS["iqm"]
    runs, tasks, points = scores.shape
    point = iqm(scores.transpose(2, 0, 1))
    rng = _rng(seed, key)
    stats = np.empty((reps, points))
    block = max(1, 4_000_000 // (runs * tasks * points))
    for start in range(0, reps, block):
        r = min(block, reps - start)
        R = scores[rng.integers(0, runs, size=(r, runs, tasks)), np.arange(tasks)]  # (r, runs, tasks, points)
        stats[start:start + r] = iqm(R.transpose(0, 3, 1, 2).reshape(r * points, runs, tasks)).reshape(r, points)
    lower, upper = np.percentile(stats, [2.5, 97.5], axis=0)
    return point, lower, upper


# --- what the report shows ---------------------------------------------------------------------
@dataclass
class EnvRow:
    label: str
    agent: str
    seeds: list[int]
    steps: list[int]
    final: Estimate
    best: Estimate
    protocol: str


@dataclass
class Comparison:
    path: str
    env_id: str
    settings: dict
    summary: dict


@dataclass
class Report:
    runs: list[Run]
    problems: list[Problem]
    notes: list[Problem]
    suite: str | None
    reps: int
    seed: int
    labels: list[str]                              # every label, sorted (fixes colours)
    agents: dict[str, str]                         # label -> agent
    envs: dict[str, list[EnvRow]]                  # env -> rows ranked by final mean
    references: dict[str, tuple[float, float, str]]
    ranking: list[str] = field(default_factory=list)
    leaderboard: dict = field(default_factory=dict)  # label -> {metric: Estimate}
    table: object = None                            # results.ScoreTable of the leaderboard
    leaderboard_error: str | None = None
    improvement: dict = field(default_factory=dict)  # (x, y) -> Estimate of P(x > y)
    comparisons: list[Comparison] = field(default_factory=list)
    meta: dict = field(default_factory=dict)        # run path -> run.json
    figures: dict = field(default_factory=dict)     # key -> (file name, caption)


def steps_unit(report: "Report", runs) -> str:
    """'environment steps', 'gradient steps' (offline runs), or 'steps' when the runs mix them."""
    units = {report.meta[r.path].get("steps_unit", "environment steps") for r in runs}
    return units.pop() if len(units) == 1 else "steps"


def build(runs_dir: Path, suite: str | None = None, reps: int = 50_000, seed: int = 0) -> Report:
    """Read the records under `runs_dir` and compute everything the report shows."""
    from drlbench.config import load_suites
    from drlbench.stats import StatsError, interval_estimates, probability_of_improvement

    runs_dir = Path(runs_dir)
    suites = load_suites()
    runs, problems = scan(runs_dir)
    runs, notes = select_suite(runs, suite)
    if not runs:
        raise no_runs_error(runs_dir, problems, suite)
    runs.sort(key=lambda r: (r.env_id, r.label, r.seed))
    labels = sorted({r.label for r in runs})
    meta = {r.path: json.loads((r.path / "run.json").read_text(encoding="utf-8")) for r in runs}

    references = {}
    for env_id in sorted({r.env_id for r in runs}):
        named = next((r.suite for r in runs if r.env_id == env_id and r.suite), None)
        try:
            references[env_id] = reference_scores(env_id, suite or named, suites)
        except UsageError as exc:
            notes.append(Problem(Path(env_id), f"not in the leaderboard: {exc}"))

    envs = {}
    for env_id in sorted({r.env_id for r in runs}):
        rows = []
        for label in labels:
            group = [r for r in runs if r.env_id == env_id and r.label == label]
            if not group:
                continue
            key = f"{env_id}/{label}"
            protocols = sorted({protocol(meta[r.path]) for r in group})
            rows.append(EnvRow(label, group[0].agent, [r.seed for r in group], [r.steps for r in group],
                               mean_interval([r.final for r in group], reps, seed, key + "/final"),
                               mean_interval([r.best for r in group], reps, seed, key + "/best"),
                               "; ".join(protocols)))
        envs[env_id] = sorted(rows, key=lambda row: (-row.final.point, row.label))

    report = Report(runs, problems, notes, suite, reps, seed, labels,
                    {r.label: r.agent for r in runs}, envs, references, meta=meta)
    ranked_runs = [r for r in runs if r.env_id in references]
    try:
        table = score_table(ranked_runs, suite, "final")
        estimates = interval_estimates(table.normalized, metrics=METRICS, reps=reps, seed=seed)
    except (UsageError, StatsError) as exc:
        report.leaderboard_error = str(exc)
        return report
    report.notes += table.notes
    report.table = table
    report.leaderboard = estimates
    report.ranking = sorted(table.labels, key=lambda label: (-estimates[label]["iqm"].point, label))
    for x in report.ranking:
        for y in report.ranking:
            if x != y:
                report.improvement[(x, y)] = probability_of_improvement(
                    table.normalized[x], table.normalized[y], reps=reps, seed=seed)
    return report


def read_comparisons(runs_dir: Path) -> tuple[list[Comparison], list[Problem]]:
    """AdaStop states written by `drlbench compare` anywhere under `runs_dir`."""
    from drlbench.compare import STATE_FORMAT
    from drlbench.stats import AdaStop, StatsError

    found, problems = [], []
    for path in sorted(Path(runs_dir).rglob("*.json")):
        parts = path.relative_to(runs_dir).parts
        if len(parts) < 3 or parts[-3] != "compare":
            continue
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
                raise ValueError(f"format is not {STATE_FORMAT!r}")
            test = AdaStop.from_json(json.dumps(state["adastop"]))
            settings = state["settings"]
            if not isinstance(settings, dict):
                raise ValueError("settings are not a JSON object")
        except (OSError, ValueError, KeyError, TypeError, StatsError) as exc:
            problems.append(Problem(path, f"unreadable comparison state ({exc})"))
            continue
        found.append(Comparison(rel(path, runs_dir), parts[-2], settings, test.summary()))
    return found, problems


# --- curves ------------------------------------------------------------------------------------
def _curve(run: Run) -> tuple[np.ndarray, np.ndarray]:
    rows = read_evaluations(run.path / "evaluations.csv")
    steps = np.array([s for s, _ in rows], dtype=np.float64)
    values = np.array([v for _, v in rows], dtype=np.float64)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def _on_grid(runs: list[Run], grid: np.ndarray, fraction: bool, transform=None) -> np.ndarray:
    out = []
    for run in runs:
        steps, values = _curve(run)
        if transform is not None:
            values = transform(values)
        out.append(np.interp(grid, steps / run.steps if fraction else steps, values))
    return np.array(out)


def _union_grid(runs: list[Run]) -> np.ndarray:
    end = min(r.steps for r in runs)
    steps = np.unique(np.concatenate([_curve(r)[0] for r in runs]))
    return steps[steps <= end]


# --- figures -----------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def draw_figures(report: Report, figures: Path) -> None:
    from drlbench import plots
    from drlbench.results import normalize
    from drlbench.stats import performance_profile

    styles = plots.style(report.labels)
    report.figures = {}

    def add(key, name, caption, draw):
        draw(figures / name)
        report.figures[key] = (f"figures/{name}", caption)

    for env_id, rows in report.envs.items():
        curves = {}
        for label in [row.label for row in sorted(rows, key=lambda row: row.label)]:
            group = [r for r in report.runs if r.env_id == env_id and r.label == label]
            grid = _union_grid(group)
            point, lower, upper = iqm_band(_on_grid(group, grid, False)[:, None, :], CURVE_REPS, report.seed,
                                           f"curve/{env_id}/{label}")
            curves[label] = (grid, point, lower, upper)
        unit = steps_unit(report, [r for r in report.runs if r.env_id == env_id])
        add(("curve", env_id), f"curve-{_slug(env_id)}.png",
            f"{env_id}: {evaluation_words([report.meta[r.path] for r in report.runs if r.env_id == env_id])} "
            f"against {unit}; line = IQM over seeds, band = 95% bootstrap interval "
            f"({CURVE_REPS:,} replicates).",
            lambda p, c=curves, e=env_id, u=unit: plots.sample_efficiency(
                p, c, styles, e, "return per episode (IQM over seeds)", u))
    from drlbench.report_llm import draw_llm_figures

    draw_llm_figures(report, add)   # LLM track: regret-vs-KL frontier per llm: task
    table = report.table
    if table is None:
        return
    ranked = report.ranking
    tasks = table.tasks
    chosen = {label: [next(r for r in report.runs if r.env_id == e and r.label == label and r.seed == s)
                      for s in table.seeds[label] for e in tasks] for label in ranked}
    budgets = {r.steps for group in chosen.values() for r in group}
    grids = {tuple(_union_grid(group)) for group in chosen.values()}
    fraction = len(budgets) > 1 or len(grids) > 1
    grid = np.linspace(0.0, 1.0, 21) if fraction else np.array(grids.pop())
    curves = {}
    for label in ranked:
        per_task = []
        for e in tasks:
            group = [r for r in chosen[label] if r.env_id == e]
            random_score, target, _ = table.references[e]
            per_task.append(_on_grid(group, grid, fraction, lambda v, a=random_score, b=target: normalize(v, a, b)))
        scores = np.stack(per_task, axis=1)                         # (runs, tasks, points)
        curves[label] = (grid, *iqm_band(scores, CURVE_REPS, report.seed, f"aggregate/{label}"))
    xlabel = "fraction of the step budget" if fraction else steps_unit(report, report.runs)
    add("aggregate_curve", "curve-aggregate.png",
        f"Sample efficiency over {len(tasks)} environment(s): IQM of normalized evaluation scores over "
        f"runs x environments against {xlabel}; band = 95% stratified-bootstrap interval "
        f"({CURVE_REPS:,} replicates).",
        lambda p: plots.sample_efficiency(p, curves, styles, "All environments", "normalized score (IQM)", xlabel))
    estimates = {label: {m: report.leaderboard[label][m] for m in METRICS} for label in ranked}
    add("intervals", "aggregate-intervals.png",
        "Aggregate metrics of normalized final scores (0 = random policy, 1 = suite target): "
        "bar = 95% stratified-bootstrap interval, black tick = point estimate. Higher is better "
        "except for the optimality gap.",
        lambda p: plots.aggregate_intervals(p, estimates, styles))
    values = np.concatenate([table.normalized[label].ravel() for label in ranked])
    taus = np.linspace(min(0.0, float(values.min())), max(1.0, float(values.max())), 81)
    profiles = performance_profile({label: table.normalized[label] for label in ranked}, taus,
                                   reps=CURVE_REPS, seed=report.seed)
    add("profiles", "performance-profiles.png",
        "Performance profiles: fraction of runs (all environments pooled) whose normalized final "
        f"score exceeds tau; band = 95% bootstrap interval ({CURVE_REPS:,} replicates).",
        lambda p: plots.performance_profiles(p, profiles, styles))
    if len(ranked) > 1:
        matrix = np.full((len(ranked), len(ranked)), np.nan)
        for i, x in enumerate(ranked):
            for j, y in enumerate(ranked):
                if x != y:
                    matrix[i, j] = report.improvement[(x, y)].point
        add("improvement", "probability-of-improvement.png",
            "Probability of improvement P(X > Y), point estimates; X = row, Y = column.",
            lambda p: plots.improvement_matrix(p, ranked, matrix))


# --- writing -----------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def check_writable(out: Path) -> None:
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write the report there ({exc.strerror or exc})") from None


def write_report(runs_dir: Path, out: Path, suite: str | None = None, reps: int = 50_000,
                 seed: int = 0) -> Report:
    """Build the report from `runs_dir` and write out/index.html, out/leaderboard.md, out/figures/."""
    runs_dir, out = Path(runs_dir), Path(out)
    report = build(runs_dir, suite, reps, seed)
    check_writable(out)
    comparisons, bad = read_comparisons(runs_dir)
    shown = {r.env_id for r in report.runs}   # with --suite: only comparisons on the suite's environments
    report.comparisons = [c for c in comparisons if c.env_id in shown]
    report.problems += bad
    figures = out / "figures"
    draw_figures(report, figures)
    wanted = {Path(p).name for p, _ in report.figures.values()}
    for stale in figures.glob("*.png"):  # figures of an earlier report on other records
        if stale.name not in wanted:
            stale.unlink()
    _write(out / "leaderboard.md", render_markdown(report, runs_dir))
    _write(out / "index.html", render_html(report, runs_dir))
    return report


def evaluation_words(metas: list[dict]) -> str:
    """What the curves' returns are: drlbench's evaluations, and/or what imported records measured."""
    imported = sorted({str(m["imported_from"].get("score", m["imported_from"].get("format")))
                       for m in metas if m.get("imported_from")})
    episodes = sorted({str(m.get("eval_episodes")) for m in metas if not m.get("imported_from")})
    parts = [f"evaluation return (deterministic policy, mean over {'/'.join(episodes)} episode(s))"] if episodes else []
    return "; ".join(parts + [f"imported: {text}" for text in imported])
