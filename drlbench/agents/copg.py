"""CoPG: Flet-Berliac et al. 2024, "Contrastive Policy Gradient: Aligning LLMs on sequence-level scores
in a supervised-friendly fashion" (EMNLP, arXiv 2406.19185), [recon] least-squares form over the pairs of
each group (drlbench.llm.group_losses.copg): for every pair i < j of a prompt's completions,
    (1 / (2 beta)) [(r_i - r_j) - beta (h(y_i) - h(y_j))]^2,  h(y) = log pi(y) - log pi_ref(y),
whose gradient is the paper's contrastive policy gradient (R~_i - R~_j)(grad log pi(y_i) - grad log pi(y_j)),
R~ = r - beta h: off-policy, no importance ratio. [recon] beta 0.1 is not checked against the paper.
Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class CoPGConfig(GroupConfig):
    beta: float = hp("(0, inf)")                    # KL regularisation of the regularised reward r - beta h


class CoPG(GroupAgent):
    name = "copg"
    summary = "CoPG (Flet-Berliac et al. 2024): contrastive policy gradient over pairs of a group [recon]"
    loss = "copg"
    Config = CoPGConfig
