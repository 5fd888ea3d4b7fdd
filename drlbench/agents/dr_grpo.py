"""Dr. GRPO: Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective" (arXiv
2503.20783), eq. 3 (drlbench.llm.group_losses.dr_grpo): GRPO without its two biases,
    A_i = r_i - mean_G r (no std: no question-difficulty bias),
    L = sum_i sum_t -min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i) / (Q G max_len)
        (a constant instead of 1/|y_i|: no length bias)
Paper (TRL's paper index, the repository's training section): beta 0, 8 samples per prompt; eps 0.2.
Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class DrGRPOConfig(GroupConfig):
    beta: float = hp("[0, inf)")
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")


class DrGRPO(GroupAgent):
    name = "dr_grpo"
    summary = "Dr. GRPO (Liu et al. 2025): GRPO without the std and the 1/|y| normalisation"
    loss = "dr_grpo"
    Config = DrGRPOConfig
