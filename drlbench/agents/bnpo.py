"""BNPO: Xiao et al. 2025, "BNPO: Beta Normalization Policy Optimization" (arXiv 2506.02864), the
Beta-normalised advantage (drlbench.llm.group_losses.bnpo; changyi7231/BNPO
compute_bnpo_outcome_advantage): rewards in [0, 1], p_q = the group's mean reward, a Beta(alpha, beta)
fitted by moments to the batch's p_q (alpha = max(1 + a/3, 1), beta = max(1 + b/3, 1)),
    A = (r - p_q) / f_Beta(p_q; alpha, beta),
in the token-clipped surrogate with the paper's run settings (recipe/bnpo/run.sh): clip 0.2 / 0.28,
dual clip 10, no KL, sequence-sum aggregation. Not TRL's loss_type="bnpo" (an aggregation). Adam at a
constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class BNPOConfig(GroupConfig):
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")
    delta: float = hp("(1, inf)")                   # dual clip: the ratio's cap for A < 0
    beta: float = hp("[0, inf)")
    r_min: float = hp("(-inf, inf)", below="r_max")   # rewards are rescaled from [r_min, r_max] to [0, 1]
    r_max: float = hp("(-inf, inf)")


class BNPO(GroupAgent):
    name = "bnpo"
    summary = "BNPO (Xiao et al. 2025): advantages normalised by a Beta fit of the group success rates"
    loss = "bnpo"
    Config = BNPOConfig
