"""RLOO: Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
Human Feedback in LLMs" (ACL, arXiv 2402.14740), eq. 8 (the leave-one-out baseline), as TRL >= 0.22's
RLOOTrainer (drlbench.llm.group_losses.rloo):
    r_i <- r_i - beta sum_t (log pi_old(y_t) - log pi_ref(y_t)),  A_i = r_i - mean_{j != i} r_j,
    L = -min(w_i A_i, clip(w_i, 1 - eps_low, 1 + eps_high) A_i),  w_i = pi(y_i) / pi_old(y_i) (whole sequence)
Paper (App. C, as TRL's paper index reads it): k = 2 or 4 samples per prompt, beta 0.03, lr 1e-6, batch
512; eps 0.2 is TRL's default. Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class RLOOConfig(GroupConfig):
    beta: float = hp("[0, inf)")                    # KL penalty folded into the reward
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")
    normalize_advantages: bool = hp()               # whiten A over the member's batch (TRL's option)


class RLOO(GroupAgent):
    name = "rloo"
    summary = "RLOO (Ahmadian et al. 2024): leave-one-out baseline, KL in the reward, sequence-ratio clip"
    loss = "rloo"
    Config = RLOOConfig
