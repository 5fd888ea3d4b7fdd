"""GRPO: Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models" (arXiv 2402.03300), eq. 3 with the outcome-supervision advantage of §4.1.2 and the k3 KL of
eq. 4, as TRL's GRPOTrainer (drlbench.llm.group_losses.grpo):
    A_i = (r_i - mean_G r) / (std_G r + 1e-4),
    L = mean_i 1/|y_i| sum_t [-min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i) + beta k3_t]
Paper §4.2: lr 1e-6, beta 0.04, G = 64 samples per question, batch 1024, one policy update per
exploration stage (mu = 1); eps 0.2 (PPO's; TRL's default). Adam at a constant rate on the toy policy
(agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class GRPOConfig(GroupConfig):
    beta: float = hp("[0, inf)")                    # k3 KL to pi_ref in the loss
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")
    scale_rewards: str = hp(choices=("group", "batch", "none"))   # the advantage's std


class GRPO(GroupAgent):
    name = "grpo"
    summary = "GRPO (Shao et al. 2024): group-normalised advantages, token-clipped surrogate, k3 KL"
    loss = "grpo"
    Config = GRPOConfig
