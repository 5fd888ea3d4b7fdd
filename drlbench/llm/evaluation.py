"""Exact evaluation of LLM-track runs, shared by the preference and group loops.

Replaces the harness's episode evaluator: every `eval_every_steps` the task evaluates each member's
policy exactly (`task.evaluate(leaf log-probs, reference leaf log-probs)`, a dict of (P,) tensors
with at least `score` and `length`). `score` goes to evaluations.csv as `return_mean` (and `length`
as `length_mean`), so stats/compare/report read LLM runs like any other; every column the task
names in `task.COLUMNS` goes to `llm_evaluations.csv` beside it, and the last row to run.json
(`llm_final`). On resume, the rows up to the checkpoint's step are kept.
"""
from __future__ import annotations

import csv
import io

import torch

from drlbench.records import atomic_write


class ExactEvaluator:
    def __init__(self, session, task, ref_leaf: torch.Tensor):
        self.session, self.env, self.ref_leaf = session, task, ref_leaf
        self.columns = ["step", *task.COLUMNS]
        self.rows: list[list[dict]] = []
        for path in session.paths:
            rows = read_rows(path / "llm_evaluations.csv") if session.resume_state is not None else []
            self.rows.append([r for r in rows if r["step"] <= session.step])

    @torch.no_grad()
    def __call__(self, agent) -> tuple[torch.Tensor, torch.Tensor]:
        metrics = self.env.evaluate(self.env.leaf_logprobs(agent.policy), self.ref_leaf)
        for member, (path, record) in enumerate(zip(self.session.paths, self.session.records)):
            row = {"step": self.session.step, **{k: round(metrics[k][member].item(), 8) for k in self.columns[1:]}}
            self.rows[member].append(row)
            record.meta["llm_final"] = row
            text = io.StringIO()
            writer = csv.DictWriter(text, self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows[member])
            atomic_write(path / "llm_evaluations.csv", text.getvalue().encode())
        return metrics["score"].float()[:, None], metrics["length"].float()[:, None]


def read_rows(path) -> list[dict]:
    """The rows of an llm_evaluations.csv ([] if there is none)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]
