"""REINFORCE++: Hu et al. 2025, "REINFORCE++: Stabilizing Critic-Free Policy Optimization with Global
Normalization" (arXiv 2501.03262), eqs. 8-10 (drlbench.llm.group_losses.reinforce_pp):
    r_t = 1[t = last] r - beta KL_t (k1: log pi_old - log pi_ref),  A_t = sum_{s >= t} r_s,
    A whitened over the member's whole batch of tokens (global normalisation),
    L = token mean of -min(rho_t A_t, clip(rho_t, 1 - eps_low, 1 + eps_high) A_t)
No group baseline (the whitening is global). [recon] beta 0.01 is OpenRLHF's example
init_kl_coef, not read in the paper's tables; eps 0.2 (PPO's). Adam at a constant rate on the toy
policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class REINFORCEppConfig(GroupConfig):
    beta: float = hp("[0, inf)")                    # token KL penalty in the reward
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")


class REINFORCEpp(GroupAgent):
    name = "reinforce_pp"
    summary = "REINFORCE++ (Hu et al. 2025): token KL in the reward, globally whitened returns, PPO clip"
    loss = "reinforce_pp"
    Config = REINFORCEppConfig
