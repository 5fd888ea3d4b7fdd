"""Input checks shared by the statistics modules; every failure is a one-line StatsError."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class StatsError(ValueError):
    """Bad input to a statistics function (ragged or non-finite scores, missing runs, ...)."""


def as_score_matrix(scores, name: str = "scores") -> np.ndarray:
    """Return `scores` as a finite float64 array of shape (runs, tasks) with runs, tasks >= 1."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise StatsError(f"{name}: not a rectangular numeric (runs, tasks) array ({exc})") from None
    if arr.ndim < 2 and arr.size == 0:  # e.g. an agent given as []
        raise StatsError(f"{name}: has no runs (shape {arr.shape})")
    if arr.ndim != 2:
        raise StatsError(f"{name}: expected a 2-D (runs, tasks) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise StatsError(f"{name}: has no runs (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise StatsError(f"{name}: has no tasks (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        run, task = np.argwhere(bad)[0]
        raise StatsError(f"{name}: non-finite score {arr[run, task]} at run {run}, task {task}")
    return arr


def as_score_dict(score_dict, same_tasks: bool = True) -> dict:
    """Check a {algorithm: (runs, tasks)} mapping; all algorithms must share the task count."""
    if not isinstance(score_dict, Mapping) or len(score_dict) == 0:
        raise StatsError("score_dict: expected a non-empty mapping {algorithm: (runs, tasks) array}")
    out = {key: as_score_matrix(value, name=f"score_dict[{key!r}]") for key, value in score_dict.items()}
    if same_tasks:
        tasks = {key: arr.shape[1] for key, arr in out.items()}
        if len(set(tasks.values())) > 1:
            raise StatsError(f"score_dict: algorithms have different task counts {tasks}")
    return out


def as_score_vector(scores, name: str) -> np.ndarray:
    """Return `scores` as a finite 1-D float64 array."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise StatsError(f"{name}: not a flat numeric sequence ({exc})") from None
    if arr.ndim != 1:
        raise StatsError(f"{name}: expected a 1-D sequence of scores, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StatsError(f"{name}: non-finite score {arr[i]} at position {i}")
    return arr


def check_reps(reps) -> int:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise StatsError(f"reps: expected a positive integer, got {reps!r}")
    return int(reps)


def check_confidence(confidence) -> float:
    try:
        ok = 0.0 < float(confidence) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StatsError(f"confidence: expected a value in (0, 1), got {confidence!r}")
    return float(confidence)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise StatsError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)
