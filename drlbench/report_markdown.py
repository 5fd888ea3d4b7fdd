"""The report as Markdown (`leaderboard.md`): the same sections as the HTML page, figures linked
as images, intervals as 'point [lower, upper]'."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from drlbench.report_text import (
    ENV_METRIC,
    IMPROVEMENT,
    METHOD,
    WALL,
    ci_text,
    comparison_header,
    comparison_tables,
    env_table,
    leaderboard_rows,
    left_out,
    provenance,
    runs_rows,
    summary_line,
)

if TYPE_CHECKING:
    from drlbench.report import Report


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header, rows, right=()) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report, runs_dir: Path) -> str:
    out = ["# drlbench leaderboard", "", summary_line(report), ""]
    out += ["## Leaderboard", ""]
    if report.table is None:
        out += [f"No leaderboard: {report.leaderboard_error}", ""]
    else:
        out += [f"Environments: {', '.join(report.table.tasks)}. Normalized final score, higher is better "
                "(optimality gap: lower is better).", ""]
        rows = [(rank, label, agent, ci_text(e["iqm"], 3), ci_text(e["mean"], 3), ci_text(e["median"], 3),
                 ci_text(e["optimality_gap"], 3), f"{runs} x {tasks}", steps)
                for rank, label, agent, e, runs, tasks, steps in leaderboard_rows(report)]
        out += _md_table(("rank", "agent", "algorithm", "IQM [95% CI]", "mean", "median", "optimality gap",
                          "runs x envs", "steps per run"), rows, right=(0, 3, 4, 5, 6, 8))
        out += ["", METHOD.format(reps=report.reps, seed=report.seed), ""]
        out += _md_figure(report, "intervals")
    out += ["## Per-environment results", "", ENV_METRIC.format(reps=report.reps), ""]
    for env_id, rows in report.envs.items():
        header, cells, right, note = env_table(report, env_id, ci_text, lambda label: label)
        out += [f"### {env_id}", "", note, ""] + _md_table(header, cells, right)
        out += [""] + _md_figure(report, ("curve", env_id))
    from drlbench.report_llm import llm_markdown

    out += llm_markdown(report, _md_table, _md_figure)
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
        agents, decisions = comparison_tables(c)
        out += [comparison_header(c), ""]
        out += _md_table(("agent", "label", "runs used", "mean", "std"), agents, right=(2, 3, 4)) + [""]
        out += _md_table(("comparison", "decision", "interim", "mean difference"), decisions, right=(2, 3)) + [""]
    out += ["## Provenance", ""]
    out += _md_table(("", "value"), provenance(report)) + [""]
    out += _md_table(("agent", "algorithm", "environment", "seeds", "steps", "evaluation", "wall time",
                      "--set overrides"), runs_rows(report), right=(4, 6)) + ["", WALL, ""]
    left = left_out(report, runs_dir)
    out += ["## Records left out", ""]
    out += (_md_table(("record", "reason"), left) if left else ["None."]) + [""]
    return "\n".join(out)


def _md_figure(report: Report, key) -> list[str]:
    if key not in report.figures:
        return []
    path, caption = report.figures[key]
    return [f"![{_md_cell(caption)}]({path})", "", f"*{caption}*", ""]
