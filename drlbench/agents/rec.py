"""REC: Yao et al. 2025, "Group-relative REINFORCE is secretly an off-policy algorithm: demystifying some
myths about GRPO and its friends" (arXiv 2509.24203), the regularise-by-clipping family
(drlbench.llm.group_losses.rec; Trinity-RFT rec_policy_loss):
    L = token mean of -A_i log pi(y_t) 1[rho_t in the region],  A_i = r_i - mean_G r (no std),
the ratio used only as a MASK. Default REC-OneSide-NoIS: rho <= 1 + eps_high for A >= 0, rho >= 1 - eps_low
for A <= 0. Trinity-RFT's defaults: eps 0.2 / 0.2, the ring's eps' 0.6 / 2. Adam at a constant rate on the
toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class RECConfig(GroupConfig):
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")
    epsilon_low_prime: float = hp("[0, 1]")         # the ring's far bound below 1
    epsilon_high_prime: float = hp("[0, inf)")      # the ring's far bound above 1
    variant: str = hp(choices=("two-side", "one-side", "ring", "none"))
    weight: str = hp(choices=("none", "importance_sampling", "advantage"))


class REC(GroupAgent):
    name = "rec"
    summary = "REC (Yao et al. 2025): group-relative REINFORCE, tokens outside a ratio region masked out"
    loss = "rec"
    Config = RECConfig
