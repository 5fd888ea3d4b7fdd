"""The report as one HTML page (`index.html`) that opens from disk: inline CSS, no external
resources, figures as PNG files beside it, agents marked by their plot colours."""
from __future__ import annotations

import html
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
from drlbench.stats import Estimate

if TYPE_CHECKING:
    from drlbench.report import Report


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
    body = [f"<header><h1>drlbench leaderboard</h1><p class=lead>{_h(summary_line(report))}</p></header>"]
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
        rows = leaderboard_rows(report)
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
        header, cells, right, note = env_table(report, env_id, _est, lambda label: _swatch(label, styles))
        body.append(f'<div class="env"><div><h3>{_h(env_id)}</h3><p class="note">{_h(note)}</p>'
                    + _html_table(header, cells, right) + "</div>" + _figure(report, ("curve", env_id)) + "</div>")
    body.append("</section>")
    from drlbench.report_llm import llm_html

    body.append(llm_html(report, _html_table, _figure))

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
        agents, decisions = comparison_tables(c)
        body.append(f"<h3>{_h(c.env_id)}</h3><p class=note>{_h(comparison_header(c))}</p>")
        body.append('<div class="pair">' + _html_table(("agent", "label", "runs used", "mean", "std"), agents,
                                                       right=(2, 3, 4))
                    + _html_table(("comparison", "decision", "interim", "mean difference"), decisions,
                                  right=(2, 3)) + "</div>")
    body.append("</section>")

    body.append('<section id="provenance"><h2>Provenance</h2>')
    body.append(_html_table(("", "value"), provenance(report), cls="kv"))
    rows = [(_swatch(row[0], styles), row[1], Raw(f'<span class="agent">{_h(row[2])}</span>'), *row[3:])
            for row in runs_rows(report)]
    body.append(_html_table(("agent", "algorithm", "environment", "seeds", "steps", "evaluation",
                             "wall time", "--set overrides"), rows, right=(4, 6), cls="small"))
    body.append(f'<p class="note">{_h(WALL)}</p>')
    body.append("</section>")

    left = left_out(report, runs_dir)
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
