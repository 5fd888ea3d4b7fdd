"""CISPO: MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention"
(arXiv 2506.13585), eq. 4, in the form of ScaleRL (Khatri et al. 2025, "The Art of Scaling
Reinforcement Learning Compute for LLMs", arXiv 2510.13786) (drlbench.llm.group_losses.cispo):
    L = token mean of -sg(min(rho_t, eps_high)) A_i log pi(y_t)
(the ratio clipped as a stop-gradient weight: no token loses its gradient). ScaleRL (TRL's paper
index): eps_high 5.0, 16 samples per prompt, scale_rewards "batch". Adam at a constant rate on the toy
policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class CISPOConfig(GroupConfig):
    epsilon_high: float = hp("(0, inf)")            # cap of the importance weight
    beta: float = hp("[0, inf)")
    scale_rewards: str = hp(choices=("group", "batch", "none"))


class CISPO(GroupAgent):
    name = "cispo"
    summary = "CISPO (MiniMax-M1 / ScaleRL): REINFORCE weighted by the clipped, detached token ratio"
    loss = "cispo"
    Config = CISPOConfig
