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
"""
from __future__ import annotations

import html
import json
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drlbench.errors import UsageError
from drlbench.results import (
    Problem,
    Run,
    read_evaluations,
    reference_scores,
    scan,
    score_table,
)
from drlbench.stats import Estimate

CURVE_REPS = 2000          # bootstrap replicates for curve bands and performance profiles
METRICS = ("iqm", "mean", "median", "optimality_gap")
VERSION_KEYS = ("drlbench", "torch", "gymnasium", "mujoco", "python")


# --- numbers ----------------------------------------------------------------------------------
def ci_text(e: Estimate, digits: int) -> str:
    """'point [lower, upper]'."""
    return f"{e.point:,.{digits}f} [{e.lower:,.{digits}f}, {e.upper:,.{digits}f}]"


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


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def seed_text(seeds) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    seeds, parts, i = sorted(seeds), [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ", ".join(parts)


def steps_text(steps) -> str:
    steps = sorted(set(steps))
    return f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}-{steps[-1]:,}"


def _protocol(meta: dict) -> str:
    episodes, every = meta.get("eval_episodes"), meta.get("eval_every_steps")
    text = f"{episodes} episode{'' if episodes == 1 else 's'}" if episodes is not None else "? episodes"
    return text + (f" every {every:,} steps" if isinstance(every, int) else "")


def return_digits(rows) -> int:
    """Decimals that show returns of this size: 1 from 100 up, 2 from 1 up, else 3."""
    scale = max(abs(v) for r in rows for e in (r.final, r.best) for v in (e.point, e.lower, e.upper))
    return 1 if scale >= 100 else 2 if scale >= 1 else 3


def build(runs_dir: Path, suite: str | None = None, reps: int = 50_000, seed: int = 0) -> Report:
    """Read the records under `runs_dir` and compute everything the report shows."""
    from drlbench.config import load_suites
    from drlbench.stats import StatsError, interval_estimates, probability_of_improvement

    runs_dir = Path(runs_dir)
    suites = load_suites()
    if suite is not None and suite not in suites:
        raise UsageError(f"unknown suite {suite!r}; choose from: {', '.join(sorted(suites))}")
    runs, problems = scan(runs_dir)
    notes: list[Problem] = []
    if suite is not None:
        outside = sorted({r.env_id for r in runs if r.env_id not in suites[suite].envs})
        for env_id in outside:
            count = sum(r.env_id == env_id for r in runs)
            notes.append(Problem(Path(env_id), f"{count} run(s) left out: not in suite {suite!r}"))
        runs = [r for r in runs if r.env_id in suites[suite].envs]
    if not runs:
        where = f" on environments of suite {suite!r}" if suite else ""
        first = f"; first left out: {_rel(problems[0].path, runs_dir)}: {problems[0].reason}" if problems else ""
        raise UsageError(f"{runs_dir}: no completed run records{where} "
                         f"({len(problems)} record(s) left out{first})")
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
            protocols = sorted({_protocol(meta[r.path]) for r in group})
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
        found.append(Comparison(_rel(path, runs_dir), parts[-2], settings, test.summary()))
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
        episodes = sorted({str(report.meta[r.path].get("eval_episodes")) for r in report.runs
                           if r.env_id == env_id})
        add(("curve", env_id), f"curve-{_slug(env_id)}.png",
            f"{env_id}: evaluation return (deterministic policy, mean over {'/'.join(episodes)} episode(s)) "
            f"against environment steps; line = IQM over seeds, band = 95% bootstrap interval "
            f"({CURVE_REPS:,} replicates).",
            lambda p, c=curves, e=env_id: plots.sample_efficiency(
                p, c, styles, e, "return per episode (IQM over seeds)"))
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
    xlabel = "fraction of the step budget" if fraction else "environment steps"
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


# --- shared text -------------------------------------------------------------------------------
def _versions(report: Report) -> list[tuple[str, str]]:
    rows = []
    for key in VERSION_KEYS:
        counts = Counter(str(m.get("versions", {}).get(key, "unknown")) for m in report.meta.values())
        rows.append((key, _counted(counts, len(report.meta))))
    return rows


def _counted(counts: Counter, total: int) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{value} ({count} of {total} runs)" for value, count in sorted(counts.items()))


def _hardware(meta: dict) -> str:
    host = meta.get("host") or {}
    parts = [str(host.get("processor") or "unknown processor"), f"{host.get('cpu_count', '?')} CPUs"]
    if host.get("cuda_device"):
        parts.append(str(host["cuda_device"]))
    parts.append(f"device {meta.get('device', '?')}")
    parts.append(str(host.get("platform", "unknown platform")))
    return ", ".join(parts)


def _provenance(report: Report) -> list[tuple[str, str]]:
    total = len(report.meta)
    rows = _versions(report)
    rows.append(("hardware", _counted(Counter(_hardware(m) for m in report.meta.values()), total)))
    rows.append(("commit", _counted(Counter(str(m.get("git_commit") or "unknown") for m in report.meta.values()),
                                    total)))
    return rows


def _runs_rows(report: Report) -> list[tuple[str, ...]]:
    rows = []
    for label in report.labels:
        for env_id in sorted({r.env_id for r in report.runs if r.label == label}):
            group = [r for r in report.runs if r.label == label and r.env_id == env_id]
            metas = [report.meta[r.path] for r in group]
            overrides = sorted({", ".join(f"{k}={json.dumps(v)}" for k, v in sorted((m.get("overrides") or {}).items()))
                                or "none" for m in metas})
            wall = [m.get("wall_time_s") for m in metas if isinstance(m.get("wall_time_s"), (int, float))]
            rows.append((label, report.agents[label], env_id, seed_text(r.seed for r in group),
                         steps_text(r.steps for r in group), "; ".join(sorted({_protocol(m) for m in metas})),
                         f"{np.mean(wall):,.1f} s" if wall else "-",
                         "; ".join(overrides)))
    return rows


def _leaderboard_rows(report: Report) -> list[tuple]:
    table = report.table
    rows = []
    for rank, label in enumerate(report.ranking, start=1):
        est = report.leaderboard[label]
        runs = table.normalized[label].shape[0]
        steps = [r.steps for r in report.runs if r.label == label and r.env_id in table.tasks
                 and r.seed in table.seeds[label]]
        rows.append((rank, label, report.agents[label], est, runs, len(table.tasks), steps_text(steps)))
    return rows


def _decision_word(comp: dict) -> str:
    a, b = comp["agents"]
    return {"larger": f"{a} > {b}", "smaller": f"{a} < {b}", "equal": f"{a} = {b}"}.get(comp["decision"],
                                                                                      "undecided")


def _comparison_header(c: Comparison) -> str:
    s = c.summary
    state = "finished" if s.get("finished") else "not finished"
    return (f"AdaStop on {c.env_id} ({c.path}): n={s.get('n')} runs per agent per interim, at most "
            f"K={s.get('K')} interims, family-wise error alpha={s.get('alpha')}, B={s.get('B'):,} permutations; "
            f"{state} after interim {s.get('interim')}. Score = final evaluation return of each run.")


def _comparison_tables(c: Comparison):
    labels = {a.get("name"): a.get("label") for a in c.settings.get("agents", []) if isinstance(a, dict)}
    agents = [(name, labels.get(name, name), str(info["runs"]),
               "-" if info["mean"] is None else f"{info['mean']:,.2f}",
               "-" if info["std"] is None else f"{info['std']:,.2f}")
              for name, info in c.summary["agents"].items()]
    decisions = [(f"{comp['agents'][0]} vs {comp['agents'][1]}", f"{_decision_word(comp)} ({comp['decision']})",
                  "-" if comp["interim"] is None else str(comp["interim"]),
                  "-" if comp["mean_diff"] is None else f"{comp['mean_diff']:+,.2f}")
                 for comp in c.summary["comparisons"]]
    return agents, decisions


def _left_out(report: Report, runs_dir: Path) -> list[tuple[str, str]]:
    return [(_rel(p.path, runs_dir), p.reason) for p in report.problems + report.notes]


def _summary_line(report: Report) -> str:
    envs = len(report.envs)
    return (f"{len(report.runs)} completed runs of {len(report.labels)} agent(s) on {envs} environment(s)"
            + (f", suite {report.suite}" if report.suite else "")
            + f"; {len(report.problems)} record(s) left out.")


METHOD = ("Normalized score = (return - random) / (target - random) per environment (reference "
          "scores from envs/<suite>.toml: 0 = uniform-random policy, 1 = the suite's target). Score of a "
          "run = its final evaluation (deterministic policy). Intervals: 95% stratified-bootstrap "
          "percentile intervals (Agarwal et al. 2021), {reps:,} replicates, seed {seed}. IQM = mean of "
          "the middle 50% of all runs x environments; optimality gap = 1 - mean of min(score, 1) (lower "
          "is better). Ranks follow the IQM point estimate; where intervals overlap the order is not "
          "established.")

WALL = ("Wall time: mean over the runs of the training time recorded in run.json (wall_time_s); seeds "
        "trained together with --batched share one.")

IMPROVEMENT = ("P(X > Y): the probability that a run of agent X (row) has a higher normalized final score "
               "than a run of agent Y (column) on the same environment, averaged over environments "
               "(ties count one half); 95% bootstrap intervals in brackets. 0.5 = no difference.")

ENV_METRIC = ("Final = mean return of each run's last evaluation; best = each run's highest evaluation "
              "during training (biased upwards: the maximum of noisy evaluations, reported by some "
              "papers). Evaluations use the deterministic policy; each is the mean undiscounted return "
              "over the episodes shown. Cells: mean over seeds [95% bootstrap interval over seeds, "
              "{reps:,} replicates].")


# --- markdown ----------------------------------------------------------------------------------
def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header, rows, right=()) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report, runs_dir: Path) -> str:
    out = ["# drlbench leaderboard", "", _summary_line(report), ""]
    out += ["## Leaderboard", ""]
    if report.table is None:
        out += [f"No leaderboard: {report.leaderboard_error}", ""]
    else:
        out += [f"Environments: {', '.join(report.table.tasks)}. Normalized final score, higher is better "
                "(optimality gap: lower is better).", ""]
        rows = [(rank, label, agent, ci_text(e["iqm"], 3), ci_text(e["mean"], 3), ci_text(e["median"], 3),
                 ci_text(e["optimality_gap"], 3), f"{runs} x {tasks}", steps)
                for rank, label, agent, e, runs, tasks, steps in _leaderboard_rows(report)]
        out += _md_table(("rank", "agent", "algorithm", "IQM [95% CI]", "mean", "median", "optimality gap",
                          "runs x envs", "steps per run"), rows, right=(0, 3, 4, 5, 6, 8))
        out += ["", METHOD.format(reps=report.reps, seed=report.seed), ""]
        out += _md_figure(report, "intervals")
    out += ["## Per-environment results", "", ENV_METRIC.format(reps=report.reps), ""]
    for env_id, rows in report.envs.items():
        header, cells, right, note = _env_table(report, env_id, ci_text, lambda label: label)
        out += [f"### {env_id}", "", note, ""] + _md_table(header, cells, right)
        out += [""] + _md_figure(report, ("curve", env_id))
    if "aggregate_curve" in report.figures:
        out += ["## Sample efficiency and performance profiles", ""]
        out += _md_figure(report, "aggregate_curve") + _md_figure(report, "profiles")
    if report.improvement:
        ranked = report.ranking
        rows = [(x, *("-" if x == y else ci_text(report.improvement[(x, y)], 2) for y in ranked)) for x in ranked]
        out += ["## Probability of improvement", "", IMPROVEMENT, ""]
        out += _md_table(("X \\ Y", *ranked), rows, right=tuple(range(1, len(ranked) + 1))) + [""]
        out += _md_figure(report, "improvement")
    out += ["## AdaStop comparisons", ""]
    if not report.comparisons:
        out += ["None: run `drlbench compare` on these records to add decisions here.", ""]
    for c in report.comparisons:
        agents, decisions = _comparison_tables(c)
        out += [_comparison_header(c), ""]
        out += _md_table(("agent", "label", "runs used", "mean", "std"), agents, right=(2, 3, 4)) + [""]
        out += _md_table(("comparison", "decision", "interim", "mean difference"), decisions, right=(2, 3)) + [""]
    out += ["## Provenance", ""]
    out += _md_table(("", "value"), _provenance(report)) + [""]
    out += _md_table(("agent", "algorithm", "environment", "seeds", "steps", "evaluation", "wall time",
                      "--set overrides"), _runs_rows(report), right=(4, 6)) + ["", WALL, ""]
    left = _left_out(report, runs_dir)
    out += ["## Records left out", ""]
    out += (_md_table(("record", "reason"), left) if left else ["None."]) + [""]
    return "\n".join(out)


def _md_figure(report: Report, key) -> list[str]:
    if key not in report.figures:
        return []
    path, caption = report.figures[key]
    return [f"![{_md_cell(caption)}]({path})", "", f"*{caption}*", ""]


def _env_table(report: Report, env_id: str, estimate, agent):
    """Header, rows, right-aligned columns and the note above the table of one environment;
    the evaluation protocol is a column only where runs of this environment differ in it."""
    rows = report.envs[env_id]
    d = return_digits(rows)
    protocols = sorted({r.protocol for r in rows})
    note = _reference_text(report, env_id)
    if len(protocols) == 1:
        note += f" Evaluation: {protocols[0]}."
        header = ("agent", "seeds", "steps", "final return", "best return")
        cells = [(agent(r.label), seed_text(r.seeds), steps_text(r.steps), estimate(r.final, d),
                  estimate(r.best, d)) for r in rows]
        return header, cells, (2, 3, 4), note
    header = ("agent", "seeds", "steps", "evaluation", "final return", "best return")
    cells = [(agent(r.label), seed_text(r.seeds), steps_text(r.steps), r.protocol, estimate(r.final, d),
              estimate(r.best, d)) for r in rows]
    return header, cells, (2, 4, 5), note


def _reference_text(report: Report, env_id: str) -> str:
    if env_id not in report.references:
        return "No reference scores: not normalized, not in the leaderboard."
    random_score, target, suite = report.references[env_id]
    return f"Reference scores (suite {suite}): random {random_score:,.2f}, target {target:,.2f}."


# --- HTML --------------------------------------------------------------------------------------
class Raw(str):
    """HTML that is already escaped."""


def _h(value) -> str:
    return value if isinstance(value, Raw) else html.escape(str(value))


def _html_table(header, rows, right=(), cls="") -> str:
    head = "".join(f'<th{" class=num" if i in right else ""}>{_h(c)}</th>' for i, c in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in right else ""}>{_h(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return (f'<div class="tw"><table class="{cls}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n'
            "</table></div>\n")


def _figure(report: Report, key, wide=False) -> str:
    if key not in report.figures:
        return ""
    path, caption = report.figures[key]
    return (f'<figure{" class=wide" if wide else ""}><img src="{_h(path)}" alt="{_h(caption)}">'
            f"<figcaption>{_h(caption)}</figcaption></figure>\n")


def _swatch(label: str, styles: dict) -> Raw:
    return Raw(f'<span class="agent"><span class="sw" style="background:{styles[label]["color"]}"></span>'
               f'{_h(label)}</span>')


def _est(e: Estimate, digits: int) -> Raw:
    """Point estimate over its interval, in two lines."""
    return Raw(f"{e.point:,.{digits}f}<br><small>[{e.lower:,.{digits}f}, {e.upper:,.{digits}f}]</small>")


def _interval_cell(e: Estimate, lo: float, hi: float, color: str) -> Raw:
    span = hi - lo
    left, width = 100 * (e.lower - lo) / span, 100 * (e.upper - e.lower) / span
    tick = 100 * (e.point - lo) / span
    return Raw(f'<div class="ci"><b>{e.point:.3f}</b> <small>[{e.lower:.3f}, {e.upper:.3f}]</small>'
               f'<div class="track"><span class="bar" style="left:{left:.2f}%;width:{max(width, 0.5):.2f}%;'
               f'background:{color}"></span><span class="tick" style="left:{tick:.2f}%"></span></div></div>')


def render_html(report: Report, runs_dir: Path) -> str:
    from drlbench.plots import style

    styles = style(report.labels)
    body = [f"<header><h1>drlbench leaderboard</h1><p class=lead>{_h(_summary_line(report))}</p></header>"]
    toc = [("leaderboard", "Leaderboard"), ("environments", "Per-environment results")]
    if "aggregate_curve" in report.figures:
        toc.append(("efficiency", "Sample efficiency"))
    if report.improvement:
        toc.append(("improvement", "Probability of improvement"))
    toc += [("adastop", "AdaStop"), ("provenance", "Provenance"), ("left-out", "Records left out")]
    body.append("<nav>" + " ".join(f'<a href="#{a}">{_h(t)}</a>' for a, t in toc) + "</nav>")

    body.append('<section id="leaderboard"><h2>Leaderboard</h2>')
    if report.table is None:
        body.append(f'<p class="warn">No leaderboard: {_h(report.leaderboard_error)}</p>')
    else:
        rows = _leaderboard_rows(report)
        ends = [v for row in rows for v in (row[3]["iqm"].lower, row[3]["iqm"].upper)]
        lo, hi = min(0.0, *ends), max(1.0, *ends)
        cells = [(rank, _swatch(label, styles), agent, _interval_cell(e["iqm"], lo, hi, styles[label]["color"]),
                  _est(e["mean"], 3), _est(e["median"], 3), _est(e["optimality_gap"], 3),
                  f"{runs} x {tasks}", steps)
                 for rank, label, agent, e, runs, tasks, steps in rows]
        body.append(f"<p>Environments: {_h(', '.join(report.table.tasks))}. Normalized final score, higher is "
                    "better (optimality gap: lower is better).</p>")
        body.append(_html_table(("rank", "agent", "algorithm", "IQM [95% CI]", "mean", "median",
                                 "optimality gap", "runs x envs", "steps per run"), cells,
                                right=(0, 4, 5, 6, 8), cls="leaderboard"))
        body.append(f'<p class="note">{_h(METHOD.format(reps=report.reps, seed=report.seed))}</p>')
        body.append(_figure(report, "intervals", wide=True))
    body.append("</section>")

    body.append('<section id="environments"><h2>Per-environment results</h2>')
    body.append(f'<p class="note">{_h(ENV_METRIC.format(reps=report.reps))}</p>')
    for env_id in report.envs:
        header, cells, right, note = _env_table(report, env_id, _est, lambda label: _swatch(label, styles))
        body.append(f'<div class="env"><div><h3>{_h(env_id)}</h3><p class="note">{_h(note)}</p>'
                    + _html_table(header, cells, right) + "</div>" + _figure(report, ("curve", env_id)) + "</div>")
    body.append("</section>")

    if "aggregate_curve" in report.figures:
        body.append('<section id="efficiency"><h2>Sample efficiency and performance profiles</h2><div class="figs">'
                    + _figure(report, "aggregate_curve") + _figure(report, "profiles") + "</div></section>")
    if report.improvement:
        ranked = report.ranking
        rows = [(_swatch(x, styles), *("-" if x == y else ci_text(report.improvement[(x, y)], 2) for y in ranked))
                for x in ranked]
        body.append('<section id="improvement"><h2>Probability of improvement</h2><div class="figs"><div>'
                    f'<p>{_h(IMPROVEMENT)}</p>'
                    + _html_table(("X \\ Y", *ranked), rows, right=tuple(range(1, len(ranked) + 1)))
                    + "</div>" + _figure(report, "improvement") + "</div></section>")

    body.append('<section id="adastop"><h2>AdaStop comparisons</h2>')
    if not report.comparisons:
        body.append("<p>None: run <code>drlbench compare</code> on these records to add decisions here.</p>")
    for c in report.comparisons:
        agents, decisions = _comparison_tables(c)
        body.append(f"<h3>{_h(c.env_id)}</h3><p class=note>{_h(_comparison_header(c))}</p>")
        body.append('<div class="pair">' + _html_table(("agent", "label", "runs used", "mean", "std"), agents,
                                                       right=(2, 3, 4))
                    + _html_table(("comparison", "decision", "interim", "mean difference"), decisions,
                                  right=(2, 3)) + "</div>")
    body.append("</section>")

    body.append('<section id="provenance"><h2>Provenance</h2>')
    body.append(_html_table(("", "value"), _provenance(report), cls="kv"))
    rows = [(_swatch(row[0], styles), row[1], Raw(f'<span class="agent">{_h(row[2])}</span>'), *row[3:])
            for row in _runs_rows(report)]
    body.append(_html_table(("agent", "algorithm", "environment", "seeds", "steps", "evaluation",
                             "wall time", "--set overrides"), rows, right=(4, 6), cls="small"))
    body.append(f'<p class="note">{_h(WALL)}</p>')
    body.append("</section>")

    left = _left_out(report, runs_dir)
    body.append('<section id="left-out"><h2>Records left out</h2>')
    body.append(_html_table(("record", "reason"), left, cls="problems small") if left else "<p>None.</p>")
    body.append("</section>")
    return PAGE.format(css=CSS, body="\n".join(body), script=SCRIPT)


CSS = """
:root { --ink: #1d2330; --muted: #5b6473; --line: #dde1e7; --zebra: #f6f7f9; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 28px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 36px 0 10px; padding-bottom: 6px;
     border-bottom: 2px solid var(--line); } h3 { font-size: 16px; margin: 18px 0 6px; }
.lead { color: var(--muted); margin: 0 0 12px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 16px; padding: 8px 0; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; font-size: 14px; } nav a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--zebra); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.leaderboard { width: 100%; } table.leaderboard td { vertical-align: middle; }
table.leaderboard th { white-space: normal; vertical-align: bottom; }
table.leaderboard tbody tr:first-child td { font-weight: 600; }
table.small { font-size: 13px; } table.kv td:first-child { font-weight: 600; white-space: nowrap; }
table.problems td:first-child { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.tw { overflow-x: auto; max-width: 100%; }
.agent { white-space: nowrap; } td small { color: var(--muted); font-size: 12px; }
.sw { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 7px;
      vertical-align: baseline; border: 1px solid rgba(0,0,0,.25); }
.ci { min-width: 170px; font-variant-numeric: tabular-nums; } .ci small { color: var(--muted); }
.track { position: relative; height: 8px; background: #e9ecf0; border-radius: 4px; margin-top: 4px; }
.track .bar { position: absolute; top: 0; height: 8px; border-radius: 4px; opacity: .8; }
.track .tick { position: absolute; top: -2px; width: 2px; height: 12px; background: #000; margin-left: -1px; }
.note { color: var(--muted); font-size: 13px; max-width: 980px; } .warn { color: #a3410b; font-weight: 600; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.wide img { max-width: 100%; } figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.env { display: grid; grid-template-columns: minmax(0, 1.15fr) minmax(0, 1fr); gap: 24px; align-items: start;
       border-bottom: 1px solid var(--line); padding-bottom: 8px; }
.figs { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 24px; align-items: start; }
.pair { display: flex; flex-wrap: wrap; gap: 24px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
@media (max-width: 900px) { .env, .figs { grid-template-columns: 1fr; } }
@media print { body { max-width: none; padding: 0; font-size: 11pt; } nav { display: none; }
  section, .env, figure, table { break-inside: avoid; } tbody tr:nth-child(even) { background: none; } }
"""

SCRIPT = """window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
});"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>drlbench leaderboard</title>
<style>{css}</style>
</head>
<body>
{body}
<script>
{script}
</script>
</body>
</html>
"""


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
    report.comparisons, bad = read_comparisons(runs_dir)
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
