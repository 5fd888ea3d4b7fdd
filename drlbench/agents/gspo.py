"""GSPO: Zheng et al. 2025, "Group Sequence Policy Optimization" (arXiv 2507.18071), eqs. 5-7
(drlbench.llm.group_losses.gspo): the length-normalised sequence ratio
    s_i = (pi(y_i) / pi_old(y_i))^(1/|y_i|),  L = mean_i -min(s_i A_i, clip(s_i, 1 - eps_low, 1 + eps_high) A_i),
group-normalised A, no KL. Paper §5.1 (v2): eps_low 3e-4, eps_high 4e-4, each rollout batch split into 4
minibatches (slightly off-policy: here `num_iterations` / `lag` make it so; on-policy with one update
GSPO equals GRPO). Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class GSPOConfig(GroupConfig):
    beta: float = hp("[0, inf)")
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")
    scale_rewards: str = hp(choices=("group", "batch", "none"))


class GSPO(GroupAgent):
    name = "gspo"
    summary = "GSPO (Zheng et al. 2025): clipped surrogate on the length-normalised sequence ratio"
    loss = "gspo"
    Config = GSPOConfig
