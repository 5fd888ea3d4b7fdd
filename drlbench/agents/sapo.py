"""SAPO: Gao et al. 2025, "Soft Adaptive Policy Optimization" (arXiv 2511.20347), the soft gate
(drlbench.llm.group_losses.sapo): per token -f(rho_t) A_i with
    f(rho) = sigma(tau (rho - 1)) 4 / tau,  tau = tau_pos if A_i > 0 else tau_neg,
token mean per completion, then mean; group-normalised A. Paper (TRL's defaults, its paper index):
tau_pos 1.0, tau_neg 1.05, no KL. Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class SAPOConfig(GroupConfig):
    tau_pos: float = hp("(0, inf)")                 # gate temperature for A > 0
    tau_neg: float = hp("(0, inf)")                 # gate temperature for A <= 0
    beta: float = hp("[0, inf)")


class SAPO(GroupAgent):
    name = "sapo"
    summary = "SAPO (Gao et al. 2025): a soft sigmoid gate on the token ratio instead of a hard clip"
    loss = "sapo"
    Config = SAPOConfig
