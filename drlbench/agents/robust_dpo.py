"""Robust DPO: Chowdhury et al. 2024, "Provably Robust DPO: Aligning Language Models with Noisy
Feedback" (ICML, arXiv 2403.00409); TRL `loss_type="robust"`.

    L = [(1 - eps)(-log sigma(beta Delta)) - eps(-log sigma(-beta Delta))] / (1 - 2 eps)

(drlbench.llm.losses.robust_dpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class RobustDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    epsilon: float = hp("[0, 0.5)")


class RobustDPO(PreferenceAgent):
    name = "robust_dpo"
    summary = "Robust DPO (Chowdhury et al. 2024): the unbiased DPO loss under label-flip rate eps"
    loss = "robust_dpo"
    Config = RobustDPOConfig
