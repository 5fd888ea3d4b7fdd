"""DPO: Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward
Model" (NeurIPS, arXiv 2305.18290), eq. 7:
    L = -log sigma(beta [h(y_w) - h(y_l)]),  h(y) = log pi(y|x) - log pi_ref(y|x)
(drlbench.llm.losses.dpo). Paper (App. B): beta = 0.1, batch 64, RMSprop lr 1e-6 with 150 warm-up
steps; here Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class DPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")


class DPO(PreferenceAgent):
    name = "dpo"
    summary = "DPO (Rafailov et al. 2023): logistic loss on the policy/reference log-ratio margin"
    loss = "dpo"
    Config = DPOConfig
