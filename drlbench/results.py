"""Run records -> scores: what `drlbench stats` and `drlbench compare` read.

Reads only the two documented files of each run directory (README, "Run records"): `run.json`
and `evaluations.csv`; never the harness, checkpoints or networks. A record that cannot be used
(unreadable JSON, missing keys, no evaluations, a run still going or failed, a non-finite
return) is not an error: it becomes a `Problem` with the reason, and reports list them.

Scores of one run: `final` = the last evaluation's `return_mean` (the score the README and the
suites use), `best` = the largest `return_mean` during training (reported by some papers; it is
biased upwards, so it is never the default).

Normalisation (envs/<suite>.toml reference scores):
    normalized = (score - random_score) / (target_score - random_score)
so 0 is a uniform-random policy and 1 the suite's target. `score_table` returns one
(runs, tasks) array per label, the layout rliable and `drlbench.stats` take.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drlbench.config import Suite, load_suites
from drlbench.errors import UsageError

SCORES = ("final", "best")


@dataclass(frozen=True)
class Run:
    """One completed run: what ran (from run.json) and its scores (from evaluations.csv)."""

    path: Path
    agent: str
    label: str
    env_id: str
    suite: str | None
    seed: int
    steps: int
    hyperparameters: dict
    eval_episodes: int | None
    num_envs: int | None
    final: float
    best: float
    last_step: int

    def score(self, kind: str = "final") -> float:
        return self.final if kind == "final" else self.best


@dataclass(frozen=True)
class Problem:
    """A record left out, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class RecordError(Exception):
    """A run directory that cannot be used; the message is the reason (one line)."""


_KEYS = {"agent": str, "label": str, "env_id": str, "seed": int, "steps": int, "status": str,
         "hyperparameters": dict}


def read_run(directory: Path) -> Run:
    """Read one run directory; raise RecordError(reason) if it is not a usable completed run."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError("no run.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"run.json unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise RecordError("run.json is not a JSON object")
    for key, kind in _KEYS.items():
        if key not in meta:
            raise RecordError(f"run.json has no {key!r}")
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RecordError(f"run.json {key!r} is {value!r}, not {kind.__name__}")
    if meta["status"] != "completed":
        detail = f": {meta['error']}" if meta.get("error") else ""
        raise RecordError(f"status {meta['status']!r}, not completed{detail}")
    rows = read_evaluations(directory / "evaluations.csv")
    last_step, final = rows[-1]
    if last_step < meta["steps"]:
        raise RecordError(f"evaluations end at step {last_step} of {meta['steps']}")
    return Run(path=directory, agent=meta["agent"], label=meta["label"], env_id=meta["env_id"],
               suite=meta.get("suite") if isinstance(meta.get("suite"), str) else None,
               seed=meta["seed"], steps=meta["steps"], hyperparameters=meta["hyperparameters"],
               eval_episodes=meta.get("eval_episodes"), num_envs=meta.get("num_envs"),
               final=final, best=max(r for _, r in rows), last_step=last_step)


def read_evaluations(path: Path) -> list[tuple[int, float]]:
    """(step, return_mean) per row of evaluations.csv, checked."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"step", "return_mean"} - set(reader.fieldnames or ())
            if missing:
                raise RecordError(f"evaluations.csv has no {', '.join(sorted(missing))} column")
            rows = []
            for number, row in enumerate(reader, start=2):
                try:
                    step, value = int(float(row["step"])), float(row["return_mean"])
                except (TypeError, ValueError):
                    raise RecordError(f"evaluations.csv line {number}: step {row['step']!r}, "
                                      f"return_mean {row['return_mean']!r} are not numbers") from None
                if not math.isfinite(value):
                    raise RecordError(f"evaluations.csv line {number}: return_mean {value} at "
                                      f"step {step}")
                rows.append((step, value))
    except FileNotFoundError:
        raise RecordError("no evaluations.csv") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordError(f"evaluations.csv unreadable ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise RecordError("evaluations.csv has no evaluation")
    return rows


def scan(root: Path) -> tuple[list[Run], list[Problem]]:
    """Every completed run under `root` (any depth), and the records left out with reasons.

    A directory counts as a run record if it holds run.json or evaluations.csv. Two records of
    the same (env, label, seed) keep the first by path; the other is a problem."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory of run records")
    directories = sorted({p.parent for name in ("run.json", "evaluations.csv")
                          for p in root.rglob(name)})
    runs, problems, seen = [], [], {}
    for directory in directories:
        try:
            run = read_run(directory)
        except RecordError as exc:
            problems.append(Problem(directory, str(exc)))
            continue
        key = (run.env_id, run.label, run.seed)
        if key in seen:
            problems.append(Problem(directory, f"duplicate of {seen[key]} (same env, label and seed)"))
            continue
        seen[key] = directory
        runs.append(run)
    return runs, problems


# --- reference scores and normalisation ------------------------------------------------------
def reference_scores(env_id: str, suite: str | None = None,
                     suites: dict[str, Suite] | None = None) -> tuple[float, float, str]:
    """(random_score, target_score, suite name) for `env_id`, from `suite` or the suite that
    lists the environment. A missing or unusable reference is a one-line UsageError."""
    suites = load_suites() if suites is None else suites
    if suite is None:
        found = next((s for s in suites.values() if env_id in s.envs), None)
        if found is None:
            raise UsageError(f"no reference scores for {env_id}: it is in no suite "
                             f"({', '.join(sorted(suites))}); add it to envs/<suite>.toml or pass --suite")
        suite = found.name
    if suite not in suites:
        raise UsageError(f"unknown suite {suite!r} for {env_id}; choose from: {', '.join(sorted(suites))}")
    entry = suites[suite].envs.get(env_id)
    if entry is None:
        raise UsageError(f"suite {suite!r} has no reference scores for {env_id} "
                         f"(it lists: {', '.join(suites[suite].envs)})")
    values = []
    for key in ("random_score", "target_score"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"suite {suite!r} has no {key} for {env_id} (envs/{suite}.toml)")
        values.append(float(value))
    if values[0] == values[1]:
        raise UsageError(f"suite {suite!r}: random_score equals target_score for {env_id}; "
                         "scores cannot be normalised")
    return values[0], values[1], suite


def normalize(score, random_score: float, target_score: float):
    """(score - random) / (target - random): 0 = random policy, 1 = the suite's target."""
    return (np.asarray(score, dtype=np.float64) - random_score) / (target_score - random_score)


@dataclass
class ScoreTable:
    """Scores of several labels on the same tasks, runs on axis 0: `normalized[label]` and
    `raw[label]` are (runs, tasks) arrays whose row i is seed `seeds[label][i]`."""

    tasks: list[str]
    labels: list[str]
    normalized: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    seeds: dict[str, list[int]]
    references: dict[str, tuple[float, float, str]]
    score: str
    notes: list[Problem] = field(default_factory=list)


def select_suite(runs: list[Run], suite: str | None) -> tuple[list[Run], list[Problem]]:
    """The runs on `suite`'s environments (all of them if None), and a note per environment left out."""
    suites = load_suites()
    if suite is None:
        return runs, []
    if suite not in suites:
        raise UsageError(f"unknown suite {suite!r}; choose from: {', '.join(sorted(suites))}")
    outside = [r for r in runs if r.env_id not in suites[suite].envs]
    notes = [Problem(Path(env_id), f"{sum(r.env_id == env_id for r in outside)} run(s) left out: not in suite {suite!r}")
             for env_id in sorted({r.env_id for r in outside})]
    return [r for r in runs if r.env_id in suites[suite].envs], notes


def no_runs_error(runs_dir: Path, problems: list[Problem], suite: str | None) -> UsageError:
    """'no completed run records', naming the first record left out and why."""
    where = f" on environments of suite {suite!r}" if suite else ""
    first = ""
    if problems:
        path = problems[0].path
        shown = path.relative_to(runs_dir) if path.is_relative_to(runs_dir) else path
        first = f"; first left out: {shown}: {problems[0].reason}"
    return UsageError(f"{runs_dir}: no completed run records{where} ({len(problems)} record(s) left out{first})")


def score_table(runs: list[Run], suite: str | None = None, score: str = "final") -> ScoreTable:
    """Arrange runs as rectangular (runs, tasks) tables per label, normalised per environment.

    Tasks are the environments every label has runs on (restricted to `suite` if given); for a
    label, the runs kept are the seeds it has on every task. Whatever is left out is a note."""
    if score not in SCORES:
        raise UsageError(f"unknown score {score!r}; choose from: {', '.join(SCORES)}")
    suites = load_suites()
    runs, notes = select_suite(runs, suite)
    if not runs:
        where = f" on environments of suite {suite!r}" if suite else ""
        raise UsageError(f"no completed run records{where}")

    by_label: dict[str, dict[str, dict[int, Run]]] = {}
    for run in runs:
        by_label.setdefault(run.label, {}).setdefault(run.env_id, {})[run.seed] = run
    labels = sorted(by_label)
    envs = sorted({r.env_id for r in runs})
    tasks = [e for e in envs if all(e in by_label[label] for label in labels)]
    for env_id in envs:
        if env_id not in tasks:
            lacking = [label for label in labels if env_id not in by_label[label]]
            notes.append(Problem(Path(env_id), f"left out: no runs of {', '.join(lacking)}"))
    if not tasks:
        have = "; ".join(f"{label}: {', '.join(sorted(by_label[label]))}" for label in labels)
        raise UsageError(f"no environment has runs of every label ({have})")

    references = {env_id: reference_scores(env_id, suite or _run_suite(by_label, env_id), suites)
                  for env_id in tasks}
    normalized, raw, seeds = {}, {}, {}
    for label in labels:
        common = sorted(set.intersection(*(set(by_label[label][e]) for e in tasks)))
        for env_id in tasks:
            for seed, run in by_label[label][env_id].items():
                if seed not in common:
                    notes.append(Problem(run.path, "left out: this seed has no run on "
                                         + ", ".join(e for e in tasks if seed not in by_label[label][e])))
        if not common:
            raise UsageError(f"label {label!r} has no seed with runs on every task ({', '.join(tasks)})")
        table = np.array([[by_label[label][e][s].score(score) for e in tasks] for s in common])
        raw[label] = table
        normalized[label] = np.column_stack([normalize(table[:, t], *references[e][:2])
                                             for t, e in enumerate(tasks)])
        seeds[label] = common
    return ScoreTable(tasks, labels, normalized, raw, seeds, references, score, notes)


def _run_suite(by_label, env_id: str) -> str | None:
    """The suite the records of `env_id` name (the first found), else None (look it up)."""
    for envs in by_label.values():
        for run in envs.get(env_id, {}).values():
            if run.suite is not None:
                return run.suite
    return None
