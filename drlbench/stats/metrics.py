"""Aggregate metrics of Agarwal et al. (2021), "Deep RL at the edge of the statistical precipice".

Scores are a (runs, tasks) array x[n, m] of normalised scores. Definitions follow the paper and
rliable (`rliable/metrics.py`):

- IQM: 25% trimmed mean of all runs x tasks scores pooled (drop floor(NM/4) from each end).
- mean / median: mean / median over tasks of the per-task mean over runs.
- optimality gap: gamma - mean over all (n, m) of min(x[n, m], gamma).

Each metric has a batched kernel `_name(R)` on an array R of shape (reps, runs, tasks) that
returns one value per replicate; the bootstrap calls the kernels on whole blocks of replicates,
and the public functions call the same kernels on a single "replicate" (the data itself).
"""
from __future__ import annotations

import numpy as np

from ._checks import StatsError, as_score_matrix


def _iqm(R: np.ndarray) -> np.ndarray:
    reps = R.shape[0]
    flat = R.reshape(reps, -1)
    total = flat.shape[1]
    cut = int(0.25 * total)
    if cut == 0:
        return flat.mean(axis=1)
    part = np.partition(flat, (cut, total - cut - 1), axis=1)
    return part[:, cut:total - cut].mean(axis=1)


def _mean(R: np.ndarray) -> np.ndarray:
    return R.mean(axis=1).mean(axis=1)


def _median(R: np.ndarray) -> np.ndarray:
    return np.median(R.mean(axis=1), axis=1)


def _optimality_gap(R: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    return gamma - np.minimum(R, gamma).mean(axis=(1, 2))


KERNELS = {
    "iqm": _iqm,
    "mean": _mean,
    "median": _median,
    "optimality_gap": _optimality_gap,
}


def iqm(scores) -> float:
    """Interquartile mean: 25% trimmed mean of all (runs x tasks) scores pooled."""
    return float(_iqm(as_score_matrix(scores)[None])[0])


def mean(scores) -> float:
    """Mean over tasks of the per-task mean score."""
    return float(_mean(as_score_matrix(scores)[None])[0])


def median(scores) -> float:
    """Median over tasks of the per-task mean score."""
    return float(_median(as_score_matrix(scores)[None])[0])


def optimality_gap(scores, gamma: float = 1.0) -> float:
    """gamma minus the mean of all scores clipped from above at gamma (pooled over runs and tasks)."""
    gamma = float(gamma)
    if not np.isfinite(gamma):
        raise StatsError(f"gamma: expected a finite threshold, got {gamma!r}")
    return float(_optimality_gap(as_score_matrix(scores)[None], gamma)[0])
