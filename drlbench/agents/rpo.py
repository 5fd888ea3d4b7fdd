"""RPO / DPO+NLL: Pang et al. 2024, "Iterative Reasoning Preference Optimization" (arXiv 2404.19733).

    L = -log sigma(beta Delta) + alpha NLL(y_w)

(drlbench.llm.losses.rpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class RPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, inf)")


class RPO(PreferenceAgent):
    name = "rpo"
    summary = "RPO (Pang et al. 2024): DPO plus NLL on the chosen answer"
    loss = "rpo"
    Config = RPOConfig
