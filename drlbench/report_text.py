"""Text shared by the report's renderers (`drlbench.report_html`, `drlbench.report_markdown`):
numbers and seed/step ranges as text, the rows of the leaderboard, per-environment, provenance,
AdaStop and left-out tables, and the prose that explains them."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drlbench.stats import Estimate

if TYPE_CHECKING:
    from drlbench.report import Comparison, Report

VERSION_KEYS = ("drlbench", "torch", "gymnasium", "mujoco", "python")


# --- numbers and ranges ------------------------------------------------------------------------
def ci_text(e: Estimate, digits: int) -> str:
    """'point [lower, upper]'."""
    return f"{e.point:,.{digits}f} [{e.lower:,.{digits}f}, {e.upper:,.{digits}f}]"


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


def protocol(meta: dict) -> str:
    if meta.get("imported_from"):
        return f"imported ({meta['imported_from'].get('format')})"
    episodes, every = meta.get("eval_episodes"), meta.get("eval_every_steps")
    text = f"{episodes} episode{'' if episodes == 1 else 's'}" if episodes is not None else "? episodes"
    return text + (f" every {every:,} steps" if isinstance(every, int) else "")


def return_digits(rows) -> int:
    """Decimals that show returns of this size: 1 from 100 up, 2 from 1 up, else 3."""
    scale = max(abs(v) for r in rows for e in (r.final, r.best) for v in (e.point, e.lower, e.upper))
    return 1 if scale >= 100 else 2 if scale >= 1 else 3


def rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


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


def provenance(report: Report) -> list[tuple[str, str]]:
    total = len(report.meta)
    rows = _versions(report)
    rows.append(("hardware", _counted(Counter(_hardware(m) for m in report.meta.values()), total)))
    rows.append(("commit", _counted(Counter(str(m.get("git_commit") or "unknown") for m in report.meta.values()),
                                    total)))
    return rows


def runs_rows(report: Report) -> list[tuple[str, ...]]:
    rows = []
    for label in report.labels:
        for env_id in sorted({r.env_id for r in report.runs if r.label == label}):
            group = [r for r in report.runs if r.label == label and r.env_id == env_id]
            metas = [report.meta[r.path] for r in group]
            overrides = sorted({", ".join(f"{k}={json.dumps(v)}" for k, v in sorted((m.get("overrides") or {}).items()))
                                or "none" for m in metas})
            wall = [m.get("wall_time_s") for m in metas if isinstance(m.get("wall_time_s"), (int, float))]
            rows.append((label, report.agents[label], env_id, seed_text(r.seed for r in group),
                         steps_text(r.steps for r in group), "; ".join(sorted({protocol(m) for m in metas})),
                         f"{np.mean(wall):,.1f} s" if wall else "-",
                         "; ".join(overrides)))
    return rows


def leaderboard_rows(report: Report) -> list[tuple]:
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


def comparison_header(c: Comparison) -> str:
    s = c.summary
    state = "finished" if s.get("finished") else "not finished"
    return (f"AdaStop on {c.env_id} ({c.path}): n={s.get('n')} runs per agent per interim, at most "
            f"K={s.get('K')} interims, family-wise error alpha={s.get('alpha')}, B={s.get('B'):,} permutations; "
            f"{state} after interim {s.get('interim')}. Score = final evaluation return of each run.")


def comparison_tables(c: Comparison):
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


def left_out(report: Report, runs_dir: Path) -> list[tuple[str, str]]:
    return [(rel(p.path, runs_dir), p.reason) for p in report.problems + report.notes]


def summary_line(report: Report) -> str:
    envs = len(report.envs)
    return (f"{len(report.runs)} completed runs of {len(report.labels)} agent(s) on {envs} environment(s)"
            + (f", suite {report.suite}" if report.suite else "")
            + f"; {len(report.problems)} record(s) left out.")


def env_table(report: Report, env_id: str, estimate, agent):
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


METHOD = ("Normalized score = (return - random) / (target - random) per environment (reference "
          "scores from envs/<suite>.toml, each with its source: 0 = the suite's random reference (a uniform-random "
          "policy for control suites, the reference policy pi_ref in the LLM suite), 1 = its target). Score of a "
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
