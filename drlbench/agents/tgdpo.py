"""TGDPO: Zhu et al. 2025, "TGDPO: Harnessing Token-Level Reward Guidance for Enhancing Direct
Preference Optimization" (ICML, arXiv 2506.14574). DEVIATION: the token rewards r_t are the task's TRUE
per-token rewards (an oracle token-reward model), not a DPO-trained model's.

    L = -log sigma(sum_t beta (1 + alpha beta r^w_t) h^w_t - sum_t beta (1 - alpha beta r^l_t) h^l_t)

(drlbench.llm.losses.tgdpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class TGDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, inf)")


class TGDPO(PreferenceAgent):
    name = "tgdpo"
    summary = "TGDPO (Zhu et al. 2025) with the task's true token rewards as the token-reward model"
    loss = "tgdpo"
    Config = TGDPOConfig
