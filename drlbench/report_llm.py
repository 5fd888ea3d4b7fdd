"""The report's LLM section: for every `llm:` task, a frontier plot of each method and a table of the
exact end-of-run quantities. Reads run records only: `llm_evaluations.csv` beside each run's
`evaluations.csv` (written by drlbench.llm.evaluation for the preference and group loops).

Preference tasks (llm:bt-seq, ...): x = KL(pi || pi_ref), y = regret to the KL-regularised optimum
(both exact). Each method's line joins its evaluations (mean over seeds at each step, from the
reference at (0, regret(pi_ref)) onwards); dots are the seeds' final policies; the star marks pi*
(KL(pi* || pi_ref), regret 0). Lower is better; a method far to the right of the star over-optimises.
Where the records have them, the exact exploitability and duality gap of the preference game join
the table (the intransitive task's Nash methods).
Verifiable tasks (llm:arith): x = KL(pi || pi_ref), y = pass@1 on the training prompts (exact); higher
is better; the table adds held-out pass@1, pass@k on both prompt sets, entropy and answer length.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from drlbench.report import Report

CAPTION = ("{env}: regret to the KL-regularised optimum against KL(pi || pi_ref), both exact (enumeration). "
           "Lines: mean over seeds at each evaluation, starting at the reference; dots: each seed's final "
           "policy; star: the optimum pi*. Lower is better.")
VERIFIABLE_CAPTION = ("{env}: pass@1 on the training prompts against KL(pi || pi_ref), both exact (enumeration). "
                      "Lines: mean over seeds at each evaluation, starting at the reference; dots: each seed's "
                      "final policy. Higher is better.")
VERIFIABLE_NOTE = ("Exact end-of-run quantities, mean ± std over seeds: pass@1 on the training prompts (the score "
                   "the leaderboard uses) and on the held-out prompts training never samples, pass@k (k of the "
                   "task) on both, KL(pi || pi_ref), entropy of the answer distribution, mean answer length; "
                   "the reference's pass@1 in the last column.")
NOTE = ("Exact end-of-run quantities, mean ± std over seeds: score = 1 - regret/regret(pi_ref) (the number the "
        "leaderboard uses: reference 0, optimum 1), regret = J(pi*) - J(pi) with J = E[r] - beta KL, true reward "
        "E[r], KL(pi || pi_ref), win rate against the reference under the true preference, mean response length "
        "(the reference's in the last column).")


GAME_NOTE = (" Exploitability = max over answers y of P(y beats pi) - 1/2 under the true preference (0 at a Nash "
             "equilibrium of the unregularised game); duality gap = that of the KL-regularised preference game "
             "(drlbench.llm.tasks.Task.evaluate), both exact and averaged over prompts.")


def _rows(run) -> list[dict[str, float]]:
    path = Path(run.path) / "llm_evaluations.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def llm_tables(report: "Report") -> dict[str, dict[str, list[list[dict]]]]:
    """env -> label -> [rows of each seed's llm_evaluations.csv]."""
    found: dict[str, dict[str, list[list[dict]]]] = {}
    for run in sorted(report.runs, key=lambda r: (r.env_id, r.label, r.seed)):
        if run.env_id.startswith("llm:"):
            rows = _rows(run)
            if rows:
                found.setdefault(run.env_id, {}).setdefault(run.label, []).append(rows)
    return found


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _verifiable(by_label: dict) -> bool:
    """Records of a verifiable-reward task (llm:arith: pass@1 columns, no regret)."""
    return any("success_train" in seeds[0][-1] for seeds in by_label.values())


def draw_llm_figures(report: "Report", add) -> None:
    """Add a frontier figure per llm: task through the report's `add(key, name, caption, draw)`."""
    from drlbench import plots

    styles = plots.style(report.labels)
    for env_id, by_label in llm_tables(report).items():
        caption = (VERIFIABLE_CAPTION if _verifiable(by_label) else CAPTION).format(env=env_id)
        add(("llm", env_id), f"llm-frontier-{_slug(env_id)}.png", caption,
            lambda p, e=env_id, b=by_label: _frontier(p, e, b, styles))


def _frontier(path: Path, env_id: str, by_label: dict, styles: dict) -> None:
    from drlbench.plots import _save, plt

    y_key = "success_train" if _verifiable(by_label) else "regret"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    stars = []
    for label, seeds in sorted(by_label.items()):
        seeds = [rows for rows in seeds if y_key in rows[-1]]
        if not seeds:
            continue
        n = min(len(rows) for rows in seeds)
        kl = np.array([[r["kl"] for r in rows[:n]] for rows in seeds]).mean(0)
        y = np.array([[r[y_key] for r in rows[:n]] for rows in seeds]).mean(0)
        color = styles.get(label, {}).get("color")
        ax.plot(kl, y, "-", color=color, lw=1.6, label=label, alpha=0.9)
        ax.scatter([rows[-1]["kl"] for rows in seeds], [rows[-1][y_key] for rows in seeds], s=14, color=color,
                   alpha=0.7, zorder=3)
        stars += [rows[-1]["kl_star"] for rows in seeds if "kl_star" in rows[-1]]
    if stars:
        ax.scatter([float(np.mean(stars))], [0.0], marker="*", s=160, color="black", zorder=4, label="optimum pi*")
    ax.set_xlabel("KL(pi || pi_ref)  (nats, exact)")
    ax.set_ylabel("pass@1, training prompts  (exact)" if y_key == "success_train" else "regret J(pi*) - J(pi)  (exact)")
    ax.set_title(env_id)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    _save(fig, path)


def _ms(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    spread = f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{np.mean(values):.{digits}f}{spread}"


PREFERENCE_COLUMNS = (("score", "score", 3), ("regret", "regret", 3), ("true reward", "reward", 3),
                      ("KL to ref", "kl", 3), ("win rate vs ref", "win_rate", 3),
                      ("exploitability", "exploitability", 3), ("duality gap", "duality_gap", 3),
                      ("length", "length", 2), ("ref length", "ref_length", 2))
VERIFIABLE_COLUMNS = (("pass@1 train", "success_train", 3), ("pass@1 held-out", "success_test", 3),
                      ("pass@k train", "pass_k_train", 3), ("pass@k held-out", "pass_k_test", 3),
                      ("KL to ref", "kl", 3), ("entropy", "entropy", 3), ("length", "length", 2),
                      ("ref pass@1 train", "ref_success_train", 3))
OPTIONAL = {"exploitability", "duality_gap"}   # shown only where some record has them


def llm_section(report: "Report") -> list[tuple[str, tuple, list[tuple], tuple]]:
    """Per llm: task: (env_id, header, rows, right-aligned columns), methods ranked by mean score."""
    out = []
    for env_id, by_label in llm_tables(report).items():
        finals = {label: [rows_[-1] for rows_ in seeds] for label, seeds in by_label.items()}
        columns = [c for c in (VERIFIABLE_COLUMNS if _verifiable(by_label) else PREFERENCE_COLUMNS)
                   if c[1] not in OPTIONAL or any(c[1] in r for final in finals.values() for r in final)]
        rows = []
        for label, final in finals.items():
            col = lambda key: [r[key] for r in final if key in r]   # noqa: E731
            rows.append((np.mean(col("score")), (label, len(final),
                                                 *(_ms(col(key), digits) for _, key, digits in columns))))
        rows.sort(key=lambda item: -item[0])
        header = ("agent", "seeds", *(name for name, _, _ in columns))
        out.append((env_id, header, [r for _, r in rows], tuple(range(1, len(header)))))
    return out


def _note(header: tuple) -> str:
    if "pass@1 train" in header:
        return VERIFIABLE_NOTE
    if "exploitability" in header:
        return NOTE + GAME_NOTE
    return NOTE


def llm_markdown(report: "Report", table, figure) -> list[str]:
    """The section as Markdown lines (`table`, `figure`: report_markdown's helpers)."""
    sections = llm_section(report)
    if not sections:
        return []
    out = ["## LLM track: exact metrics", ""]
    for env_id, header, rows, right in sections:
        out += [f"### {env_id}", "", _note(header), ""] + table(header, rows, right) + [""] \
            + figure(report, ("llm", env_id))
    return out


def llm_html(report: "Report", table, figure) -> str:
    """The section as HTML (`table`, `figure`: report_html's helpers)."""
    from html import escape

    sections = llm_section(report)
    if not sections:
        return ""
    body = ['<section id="llm"><h2>LLM track: exact metrics</h2>']
    for env_id, header, rows, right in sections:
        body.append(f'<div class="env"><div><h3>{escape(env_id)}</h3><p class="note">{escape(_note(header))}</p>'
                    + table(header, rows, right) + "</div>"
                    + figure(report, ("llm", env_id)) + "</div>")
    body.append("</section>")
    return "".join(body)
