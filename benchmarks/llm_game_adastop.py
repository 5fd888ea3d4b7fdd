"""AdaStop on the exact game metrics of llm:bt-seq-intransitive runs (lower exploitability / duality gap is
better), which `drlbench compare` cannot test (it tests the score). Reads each run's final row of
llm_evaluations.csv; one interim (n = number of seeds, K = 1), family-wise error 0.05.

    python benchmarks/llm_game_adastop.py [RESULTS_DIR]        (default results/llm-nash, as benchmarks/llm_nash.sh)
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from drlbench.stats import AdaStop

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "results/llm-nash") / "llm:bt-seq-intransitive"


def final(agent: str, key: str) -> np.ndarray:
    """Minus each seed's final value (AdaStop calls the larger mean better)."""
    runs = [list(csv.DictReader(open(p))) for p in sorted((ROOT / agent).glob("seed_*/llm_evaluations.csv"))]
    return -np.array([float(rows[-1][key]) for rows in runs])


def decide(data: dict[str, np.ndarray]) -> dict:
    return AdaStop(n=min(map(len, data.values())), K=1, alpha=0.05).decide(data)


def word(decision: str) -> str:   # in terms of the metric itself (the data are negated)
    return {"larger": "lower", "smaller": "higher", "equal": "equal"}[decision]


if __name__ == "__main__":
    print("exploitability, two agents per test against offline DPO:")
    for agent in ("online_dpo", "xpo", "sppo", "nash_md", "inpo", "apo", "dno"):
        ((_, decision),) = decide({agent: final(agent, "exploitability"), "dpo": final("dpo", "exploitability")}).items()
        print(f"  {agent}: {word(decision)}" + (" to dpo" if decision == "equal" else " than dpo"))
    print("duality gap, one family (dpo, online_dpo, nash_md, sppo, inpo):")
    family = ("dpo", "online_dpo", "nash_md", "sppo", "inpo")
    for (a, b), decision in decide({a: final(a, "duality_gap") for a in family}).items():
        print(f"  {a} vs {b}: {a} {word(decision)}")
