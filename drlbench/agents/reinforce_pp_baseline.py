"""REINFORCE++-baseline: Hu et al. 2025, "REINFORCE++: Stabilizing Critic-Free Policy Optimization with
Global Normalization" (arXiv 2501.03262), the group-sampling variant (verl
compute_reinforce_plus_plus_baseline_outcome_advantage; drlbench.llm.group_losses.reinforce_pp_baseline):
    r_i <- r_i - beta sum_t KL_t (k1),  A_i = r_i - mean_G r, whitened over the member's tokens,
    L = token mean of -min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i)
[recon] beta 0.001 (RLinf's reinpp_kl_beta), not read in the paper; eps 0.2. Adam at a constant rate on
the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class REINFORCEppBaselineConfig(GroupConfig):
    beta: float = hp("[0, inf)")                    # KL penalty folded into the reward
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")


class REINFORCEppBaseline(GroupAgent):
    name = "reinforce_pp_baseline"
    summary = "REINFORCE++-baseline (Hu et al. 2025): group-mean baseline, then global whitening, PPO clip"
    loss = "reinforce_pp_baseline"
    Config = REINFORCEppBaselineConfig
