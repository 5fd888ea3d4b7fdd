"""TPO-L: Saeidi et al. 2024 (arXiv 2405.16681), length-normalised TPO with a margin, no reference model.

    L = -log sigma(beta [avg(y_w) - avg(y_l)] - gamma) + alpha NLL(y_gold)

(drlbench.llm.losses.tpo_l); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class TPOLConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    gamma: float = hp("[0, inf)")
    alpha: float = hp("[0, inf)")


class TPOL(PreferenceAgent):
    name = "tpo_l"
    summary = "TPO-L (Saeidi et al. 2024): length-normalised TPO with a margin"
    loss = "tpo_l"
    Config = TPOLConfig
    uses_gold = True
