"""OPMD: Yao et al. 2025, "Group-relative REINFORCE is secretly an off-policy algorithm" (arXiv
2509.24203), the regularise-by-penalty (REP) family's mirror-descent member (Trinity-RFT
opmd_policy_loss; drlbench.llm.group_losses.opmd):
    "k2":     token mean of -A_i log pi(y_t) + tau (log pi(y_t) - log pi_old(y_t))^2,  A_i = r_i - mean_G r
    "scaled": token mean of -A_i log pi(y_t) / (1 + tau)  (Trinity's plain OPMD)
Trinity-RFT's default tau = 1. On-policy the k2 term has no gradient: it acts only off-policy (`lag`,
`num_iterations`). Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class OPMDConfig(GroupConfig):
    tau: float = hp("[0, inf)")                     # weight of the squared log-ratio to pi_old
    form: str = hp(choices=("k2", "scaled"))


class OPMD(GroupAgent):
    name = "opmd"
    summary = "OPMD (Yao et al. 2025): group-relative REINFORCE plus a squared log-ratio to the behaviour policy"
    loss = "opmd"
    Config = OPMDConfig
