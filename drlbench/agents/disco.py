"""DisCO: Li et al. 2025, "DisCO: Reinforcing Large Reasoning Models with Discriminative Constrained
Optimization" (NeurIPS, arXiv 2505.12366) (drlbench.llm.group_losses.disco; Optimization-AI/DisCO code):
binary rewards, score s(y) = mean_t log pi(y_t) ("logL"); per prompt with both kinds of answers
    J_q = mean_pos s(y+) - tau log mean_neg exp(s(y-) / tau)   (DRO over the negatives; "disco_b": plain means)
and the trust region KL(pi_old || pi) <= delta as the squared hinge (beta / 2) [KL - delta]_+^2.
No clipping, no group std. Paper / verl docs/algo/disco.md: delta 1e-4, beta 1e3, tau 10 for logL
(tau 1 for Lratio). Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class DisCOConfig(GroupConfig):
    delta: float = hp("[0, inf)")                   # trust region: KL(pi_old || pi) <= delta
    beta: float = hp("[0, inf)")                    # weight of the squared-hinge penalty
    tau: float = hp("(0, inf)")                     # temperature of the log-mean-exp over negatives
    score: str = hp(choices=("logL", "Lratio"))
    variant: str = hp(choices=("disco", "disco_b"))


class DisCO(GroupAgent):
    name = "disco"
    summary = "DisCO (Li et al. 2025): discriminative score objective with a KL trust-region penalty"
    loss = "disco"
    Config = DisCOConfig
