"""Stratified-bootstrap interval estimates, performance profiles and probability of improvement.

Method (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice", Sec. 4; the
same resampling scheme as rliable's `StratifiedBootstrap`): the strata are the tasks. One
bootstrap replicate draws, for every task independently, `runs` run indices with replacement
and evaluates the metric on the resampled (runs, tasks) matrix. With `task_bootstrap=True` the
task columns are also resampled with replacement (one draw of tasks per replicate).

Intervals:
- "percentile": the (1 - c)/2 and (1 + c)/2 percentiles of the replicates (numpy's linear
  interpolation, as arch/rliable).
- "bca": Efron's bias-corrected and accelerated interval. Bias z0 = Phi^-1(share of replicates
  below the point estimate); acceleration a = sum(u^3) / (6 sum(u^2)^1.5) with u the deviations
  of leave-one-run-out jackknife estimates from their mean (a run is left out of every task);
  the percentile levels become Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = Phi^-1 of the two
  nominal levels.

All replicates are computed with numpy on blocks of replicates (no Python loop per replicate);
blocks hold at most `_BLOCK_ELEMENTS` resampled scores, so memory stays bounded. Randomness: a
`numpy.random.Generator` per algorithm, seeded by (seed, crc32 of the algorithm name), so a
given (seed, name, data) always gives the same interval, whatever else is in the dict.

Deviation from rliable: rliable ignores its `random_state` (it draws with the global
`np.random`); here `seed` fully determines the result. rliable's BCa on a multi-output function
takes the jackknife mean over all outputs at once (arch); here each metric gets its own.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist

import numpy as np

from ._checks import (
    StatsError,
    as_score_dict,
    as_score_matrix,
    check_confidence,
    check_reps,
    check_seed,
)
from .metrics import KERNELS

_BLOCK_ELEMENTS = 1 << 22  # resampled values per block (32 MiB of float64)
_METHODS = ("percentile", "bca")
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval [lower, upper]."""

    point: float
    lower: float
    upper: float


@dataclass(frozen=True, eq=False)
class Profile:
    """A performance profile: point[i] = fraction of run scores > taus[i], with its interval."""

    taus: np.ndarray
    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _algorithm_rng(seed: int, key) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(str(key).encode("utf-8"))])


def _resampled_blocks(scores: np.ndarray, reps: int, rng: np.random.Generator,
                      task_bootstrap: bool = False, width: int = 1):
    """Yield (start, R) with R of shape (r, runs, tasks): stratified bootstrap replicates."""
    runs, tasks = scores.shape
    flat = scores.ravel()
    block = max(1, _BLOCK_ELEMENTS // (runs * tasks * width))
    columns = np.arange(tasks)
    start = 0
    while start < reps:
        r = min(block, reps - start)
        run_idx = rng.integers(0, runs, size=(r, runs, tasks))
        if task_bootstrap:
            cols = rng.integers(0, tasks, size=(r, 1, tasks))
        else:
            cols = columns
        yield start, np.take(flat, run_idx * tasks + cols)
        start += r


def _replicates(scores: np.ndarray, kernels, reps: int, rng: np.random.Generator,
                task_bootstrap: bool = False) -> np.ndarray:
    """Bootstrap distribution, shape (len(kernels), reps), of each batched metric kernel."""
    out = np.empty((len(kernels), reps))
    for start, R in _resampled_blocks(scores, reps, rng, task_bootstrap):
        for j, kernel in enumerate(kernels):
            out[j, start:start + R.shape[0]] = kernel(R)
    return out


def _jackknife(scores: np.ndarray, kernel) -> np.ndarray:
    runs = scores.shape[0]
    keep = ~np.eye(runs, dtype=bool)
    loo = np.stack([scores[keep[i]] for i in range(runs)])  # (runs, runs - 1, tasks)
    return kernel(loo)


def _interval(stats: np.ndarray, point: float, confidence: float, method: str,
              jackknife=None, label: str = "metric") -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    if method == "percentile":
        levels = (tail, 1.0 - tail)
    else:
        below = float(np.mean(stats < point))
        if below <= 0.0 or below >= 1.0:
            raise StatsError(f"bca: {label} has {below:.0%} of replicates below the point "
                             "estimate; the bias correction is undefined")
        z0 = _NORMAL.inv_cdf(below)
        jk = jackknife()
        u = jk.mean() - jk
        num = float(np.sum(u ** 3))
        den = 6.0 * float(np.sum(u ** 2)) ** 1.5
        if den <= abs(num) * np.finfo(np.float64).eps or den == 0.0:
            raise StatsError(f"bca: {label} has a zero jackknife variance; the acceleration is "
                             "undefined")
        a = num / den
        levels = []
        for z in (_NORMAL.inv_cdf(tail), _NORMAL.inv_cdf(1.0 - tail)):
            levels.append(_NORMAL.cdf(z0 + (z0 + z) / (1.0 - a * (z0 + z))))
    lower, upper = np.percentile(stats, [100.0 * q for q in levels])
    return float(lower), float(upper)


def _metric_kernels(metrics, gamma: float):
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise StatsError("metrics: expected at least one metric name")
    kernels = []
    for name in metrics:
        if name not in KERNELS:
            raise StatsError(f"metrics: unknown metric {name!r} (known: {', '.join(KERNELS)})")
        kernel = KERNELS[name]
        kernels.append(partial(kernel, gamma=gamma) if name == "optimality_gap" else kernel)
    return metrics, kernels


def interval_estimates(score_dict, metrics=("iqm", "mean", "median", "optimality_gap"),
                       reps: int = 50_000, confidence: float = 0.95, method: str = "percentile",
                       task_bootstrap: bool = False, seed: int = 0, gamma: float = 1.0):
    """Point estimates and stratified-bootstrap intervals of aggregate metrics.

    score_dict: {algorithm: (runs, tasks) array}; all algorithms must have the same task count.
    Returns {algorithm: {metric: Estimate(point, lower, upper)}}. All metrics of one algorithm
    are evaluated on the same replicates (as rliable does with a multi-output function).
    """
    data = as_score_dict(score_dict)
    metrics, kernels = _metric_kernels(metrics, float(gamma))
    reps, confidence, seed = check_reps(reps), check_confidence(confidence), check_seed(seed)
    if method not in _METHODS:
        raise StatsError(f"method: expected one of {_METHODS}, got {method!r}")
    results = {}
    for key, scores in data.items():
        if method == "bca" and scores.shape[0] < 2:
            raise StatsError(f"bca: score_dict[{key!r}] needs at least 2 runs for the jackknife")
        stats = _replicates(scores, kernels, reps, _algorithm_rng(seed, key), task_bootstrap)
        per_metric = {}
        for j, (name, kernel) in enumerate(zip(metrics, kernels)):
            point = float(kernel(scores[None])[0])
            lower, upper = _interval(stats[j], point, confidence, method,
                                     partial(_jackknife, scores, kernel), f"{key}/{name}")
            per_metric[name] = Estimate(point, lower, upper)
        results[key] = per_metric
    return results


def _check_taus(taus) -> np.ndarray:
    try:
        arr = np.asarray(taus, dtype=np.float64).ravel()
    except (ValueError, TypeError) as exc:
        raise StatsError(f"taus: not a numeric sequence ({exc})") from None
    if arr.size == 0 or not np.isfinite(arr).all():
        raise StatsError(f"taus: expected a non-empty sequence of finite thresholds, got {taus!r}")
    return arr


def _profile_kernel(R: np.ndarray, taus: np.ndarray) -> np.ndarray:
    flat = R.reshape(R.shape[0], -1)
    return (flat[:, :, None] > taus).mean(axis=1)


def _profile_replicates(scores: np.ndarray, taus: np.ndarray, reps: int,
                        rng: np.random.Generator) -> np.ndarray:
    stats = np.empty((reps, taus.size))
    for start, R in _resampled_blocks(scores, reps, rng, width=taus.size):
        stats[start:start + R.shape[0]] = _profile_kernel(R, taus)
    return stats


def performance_profile(score_dict, taus, reps: int = 2000, seed: int = 0,
                        confidence: float = 0.95):
    """Run-score distribution (fraction of all run scores > tau) with percentile intervals.

    As rliable's `create_performance_profile` with `use_score_distribution=True`: with equal
    runs per task the fraction over all runs x tasks is the mean over tasks of the per-task
    fraction. Returns {algorithm: Profile(taus, point, lower, upper)}.
    """
    data = as_score_dict(score_dict)
    taus = _check_taus(taus)
    reps, confidence, seed = check_reps(reps), check_confidence(confidence), check_seed(seed)
    tail = (1.0 - confidence) / 2.0
    results = {}
    for key, scores in data.items():
        stats = _profile_replicates(scores, taus, reps, _algorithm_rng(seed, key))
        point = _profile_kernel(scores[None], taus)[0]
        lower, upper = np.percentile(stats, [100.0 * tail, 100.0 * (1.0 - tail)], axis=0)
        results[key] = Profile(taus.copy(), point, lower, upper)
    return results


def _improvement(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Batched P(X > Y): X (r, nx, tasks), Y (r, ny, tasks) -> (r,) averaged over tasks."""
    x = X[:, :, None, :]
    y = Y[:, None, :, :]
    wins = (x > y).sum(axis=(1, 2)) + 0.5 * (x == y).sum(axis=(1, 2))
    return (wins / (X.shape[1] * Y.shape[1])).mean(axis=1)


def _improvement_replicates(x: np.ndarray, y: np.ndarray, reps: int,
                            rng: np.random.Generator) -> np.ndarray:
    (nx, tasks), ny = x.shape, y.shape[0]
    block = max(1, _BLOCK_ELEMENTS // (nx * ny * tasks))
    stats = np.empty(reps)
    xflat, yflat, columns = x.ravel(), y.ravel(), np.arange(tasks)
    for start in range(0, reps, block):
        r = min(block, reps - start)
        X = np.take(xflat, rng.integers(0, nx, size=(r, nx, tasks)) * tasks + columns)
        Y = np.take(yflat, rng.integers(0, ny, size=(r, ny, tasks)) * tasks + columns)
        stats[start:start + r] = _improvement(X, Y)
    return stats


def probability_of_improvement(x, y, reps: int = 2000, seed: int = 0,
                               confidence: float = 0.95) -> Estimate:
    """Average over tasks of P(X > Y), the Mann-Whitney U of task m divided by runs_x * runs_y.

    x: (runs_x, tasks), y: (runs_y, tasks); run counts may differ. Ties count 1/2 (so two
    identical task columns give exactly 1/2, as rliable sets them). The interval resamples x and
    y independently, each stratified by task (rliable's StratifiedIndependentBootstrap).
    """
    x = as_score_matrix(x, "x")
    y = as_score_matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise StatsError(f"x and y have different task counts ({x.shape[1]} vs {y.shape[1]})")
    reps, confidence, seed = check_reps(reps), check_confidence(confidence), check_seed(seed)
    stats = _improvement_replicates(x, y, reps, np.random.default_rng(seed))
    point = float(_improvement(x[None], y[None])[0])
    lower, upper = _interval(stats, point, confidence, "percentile")
    return Estimate(point, lower, upper)
