"""AsymRE: Arnal et al. 2025, "Asymmetric REINFORCE for off-Policy Reinforcement Learning: Balancing
positive and negative rewards" (arXiv 2506.20520); the REP family of Yao et al. 2025
(drlbench.llm.group_losses.asymre): the baseline lowered by tau,
    L = token mean of -(r_i - mean_G r + tau) log pi(y_t)
(an additive -tau log pi term that favours the positives). tau 0.1 (Trinity-RFT's baseline shift).
Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class AsymREConfig(GroupConfig):
    tau: float = hp("(-inf, inf)")                  # baseline shift: A = r - (mean_G r - tau)


class AsymRE(GroupAgent):
    name = "asymre"
    summary = "AsymRE (Arnal et al. 2025): REINFORCE with a baseline lowered by tau"
    loss = "asymre"
    Config = AsymREConfig
