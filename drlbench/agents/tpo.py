"""TPO: Saeidi et al. 2024, "Triple Preference Optimization" (arXiv 2405.16681), no reference model. The
gold answer is the context's highest-reward response (llm.tasks.Task.gold).

    L = -log sigma(beta [log pi(y_w) - log pi(y_l)]) + alpha NLL(y_gold)   (NLL a token mean)

(drlbench.llm.losses.tpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class TPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, inf)")


class TPO(PreferenceAgent):
    name = "tpo"
    summary = "TPO (Saeidi et al. 2024): preference term plus NLL on a gold answer, no reference"
    loss = "tpo"
    Config = TPOConfig
    uses_gold = True
