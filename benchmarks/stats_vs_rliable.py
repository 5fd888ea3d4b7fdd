"""Time drlbench.stats against rliable on the same data, in one process, and print a markdown table.

Workloads (rliable README defaults): aggregate-metric intervals (IQM, mean, median, optimality
gap; 50,000 stratified-bootstrap replicates), performance profile (81 thresholds, 2,000
replicates) and probability of improvement (2,000 replicates), for 2 algorithms x 10 runs x 5
tasks. Both libraries get the same arrays and the same replicate counts; rliable is seeded via
the global numpy stream (it ignores its random_state). The table also reports the largest gap
between the two libraries' point estimates and interval endpoints (endpoints differ by Monte-Carlo
noise only). Run pinned to one core for stable numbers, e.g.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/stats_vs_rliable.py
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from drlbench import stats

METRICS = ("iqm", "mean", "median", "optimality_gap")


def _timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50_000, help="replicates for aggregate metrics")
    parser.add_argument("--profile-reps", type=int, default=2_000)
    parser.add_argument("--poi-reps", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="drlbench timings: best of this many")
    args = parser.parse_args()

    try:
        from rliable import library as rly
        from rliable import metrics as rm
    except Exception as exc:  # rliable is optional (and fragile to install, see the specs)
        rly = rm = None
        print(f"rliable not importable ({exc}); timing drlbench only")

    rng = np.random.default_rng(args.seed)
    data = {
        "algo_a": rng.normal(1.0, 0.5, size=(args.runs, args.tasks)),
        "algo_b": rng.gamma(2.0, 0.5, size=(args.runs, args.tasks)),
    }
    taus = np.linspace(0.0, 3.0, 81)
    rows = []

    t_ours, ours = _timed(lambda: stats.interval_estimates(data, METRICS, reps=args.reps,
                                                           seed=args.seed), args.repeat)
    row = [f"interval estimates, 4 metrics, {args.reps:,} reps", None, t_ours, None, None]
    if rly is not None:
        funcs = [rm.aggregate_iqm, rm.aggregate_mean, rm.aggregate_median,
                 rm.aggregate_optimality_gap]
        np.random.seed(args.seed)
        t_rly, (points, cis) = _timed(lambda: rly.get_interval_estimates(
            data, lambda s: np.array([f(s) for f in funcs]), reps=args.reps))
        row[1] = t_rly
        row[3] = max(abs(ours[k][m].point - points[k][j]) for k in data for j, m in enumerate(METRICS))
        row[4] = max(max(abs(ours[k][m].lower - cis[k][0, j]), abs(ours[k][m].upper - cis[k][1, j]))
                     for k in data for j, m in enumerate(METRICS))
    rows.append(row)

    t_ours, prof = _timed(lambda: stats.performance_profile(data, taus, reps=args.profile_reps,
                                                            seed=args.seed), args.repeat)
    row = [f"performance profile, {taus.size} taus, {args.profile_reps:,} reps", None, t_ours,
           None, None]
    if rly is not None:
        np.random.seed(args.seed)
        t_rly, (profiles, pcis) = _timed(lambda: rly.create_performance_profile(
            data, taus, reps=args.profile_reps))
        row[1] = t_rly
        row[3] = max(np.max(np.abs(prof[k].point - profiles[k])) for k in data)
        row[4] = max(max(np.max(np.abs(prof[k].lower - pcis[k][0])),
                         np.max(np.abs(prof[k].upper - pcis[k][1]))) for k in data)
    rows.append(row)

    x, y = data["algo_a"], data["algo_b"]
    t_ours, poi = _timed(lambda: stats.probability_of_improvement(x, y, reps=args.poi_reps,
                                                                  seed=args.seed), args.repeat)
    row = [f"probability of improvement, {args.poi_reps:,} reps", None, t_ours, None, None]
    if rly is not None:
        np.random.seed(args.seed)
        t_rly, (ppoint, pci) = _timed(lambda: rly.get_interval_estimates(
            {"a,b": (x, y)}, rm.probability_of_improvement, reps=args.poi_reps))
        row[1] = t_rly
        row[3] = abs(poi.point - float(ppoint["a,b"]))
        row[4] = max(abs(poi.lower - float(np.squeeze(pci["a,b"][0]))),
                     abs(poi.upper - float(np.squeeze(pci["a,b"][1]))))
    rows.append(row)

    print()
    print(f"Data: 2 algorithms x {args.runs} runs x {args.tasks} tasks, seed {args.seed}. "
          f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"CPU affinity {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}; "
          f"drlbench time = best of {args.repeat}.")
    print()
    print("| workload | rliable (s) | drlbench (s) | speed-up | max point gap | max endpoint gap |")
    print("|---|---|---|---|---|---|")
    for name, t_rly, t_ours, gap_point, gap_ci in rows:
        fmt = (lambda v, spec: "—" if v is None else format(v, spec))
        ratio = None if t_rly is None else t_rly / t_ours
        print(f"| {name} | {fmt(t_rly, '.2f')} | {fmt(t_ours, '.3f')} | "
              f"{fmt(ratio, '.0f')}{'' if ratio is None else '×'} | {fmt(gap_point, '.1e')} | "
              f"{fmt(gap_ci, '.4f')} |")


if __name__ == "__main__":
    main()
