"""TOPR: Le Roux et al. 2025, "Tapered Off-Policy REINFORCE: Stable and efficient reinforcement learning
for LLMs" (arXiv 2503.14286), eq. 9 (drlbench.llm.group_losses.topr), sequence level, with R = r - c and
w = pi(y) / mu(y) (mu the behaviour policy):
    R >= 0: -R log pi(y)  (no importance weight);  R < 0: -sg(clip(w, 0, 1)) R log pi(y)  (tapered)
No KL term, no group baseline: valid for any behaviour policy (the `lag` knob). The paper's rewards are
+-1 with c = 0; with the 0/1 reward of llm:arith, c = 0.5 is that reward scaled by 1/2. Adam at a
constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class TOPRConfig(GroupConfig):
    c: float = hp("(-inf, inf)")                    # the REINFORCE baseline: R = r - c


class TOPR(GroupAgent):
    name = "topr"
    summary = "TOPR (Le Roux et al. 2025): SFT-like on positives, truncated-IS REINFORCE on negatives"
    loss = "topr"
    Config = TOPRConfig
