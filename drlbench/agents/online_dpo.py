"""Online DPO: Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback" (arXiv
2402.04792): DPO on pairs sampled from the CURRENT policy at every step, labelled by an annotator
(here the task's labeller, preference.py `sampling = "online"`).

    L = -log sigma(beta [h(y_w) - h(y_l)]) on (y_1, y_2) ~ pi_theta(.|x), labelled online

(drlbench.llm.losses.dpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class OnlineDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")


class OnlineDPO(PreferenceAgent):
    name = "online_dpo"
    summary = "Online DPO (Guo et al. 2024): DPO on fresh pairs from the current policy every step"
    loss = "dpo"
    Config = OnlineDPOConfig
