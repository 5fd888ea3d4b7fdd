"""AdaStop (n = 5, K = 1, alpha = 0.05: what `drlbench compare --n 5 --K 1` runs) between run records at
an equal number of gradient steps, read from every record's evaluations.csv: the evaluation at STEP
(the same 10-episode deterministic-protocol evaluation the loop writes every 1,000 steps). This lets a
shorter OFQL run be compared with the published 20k-step baselines at the same step without training
them again; with STEP = a run's last step it is that run's final score, as `drlbench compare` uses.

Usage: python benchmarks/ofql_adastop_at_step.py ENV STEP LABEL_A LABEL_B [...] [--out results/offline]
       (each LABEL_A vs each other label, one two-agent test per pair, like separate compare calls;
        LABEL:STEP uses that label's evaluation at another step)
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from drlbench.stats.adastop import AdaStop


def scores(out: Path, env: str, label: str, step: int) -> list[float]:
    found = []
    for seed_dir in sorted((out / env / label).glob("seed_*")):
        with open(seed_dir / "evaluations.csv") as f:
            rows = {int(float(r["step"])): float(r["return_mean"]) for r in csv.DictReader(f)}
        if step in rows:
            found.append(rows[step])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env")
    parser.add_argument("step", type=int)
    parser.add_argument("first")
    parser.add_argument("others", nargs="+")
    parser.add_argument("--out", default="results/offline")
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()

    def read(spec: str) -> tuple[str, list[float]]:
        label, _, step = spec.partition(":")
        return spec, scores(Path(args.out), args.env, label, int(step) if step else args.step)

    name_a, a = read(args.first)
    print(f"{args.env}, evaluation at gradient step {args.step} (return, 10 episodes per run)")
    for spec in args.others:
        name_b, b = read(spec)
        line = f"  {name_a}: {np.mean(a):8.1f} +- {np.std(a):6.1f} (n={len(a)})   " \
               f"{name_b}: {np.mean(b):8.1f} +- {np.std(b):6.1f} (n={len(b)})"
        if min(len(a), len(b)) < args.n:
            print(line + f"   AdaStop: not run (fewer than {args.n} runs)")
            continue
        test = AdaStop(n=args.n, K=1, alpha=0.05, seed=0)
        decision = test.decide({name_a: a[:args.n], name_b: b[:args.n]})
        print(line + f"   AdaStop: {name_a} {decision[(name_a, name_b)]} than/as {name_b}")


if __name__ == "__main__":
    main()
