"""ReMax: Li et al. 2024, "ReMax: A Simple, Effective, and Efficient Reinforcement Learning Method for
Aligning Large Language Models" (ICML, arXiv 2310.10505), Algorithm 1:
    L = -(r(x, y) - r(x, y_greedy)) log pi(y | x),  y ~ pi,  y_greedy = the greedy answer
(drlbench.llm.group_losses.remax): the greedy decoding of the same (behaviour) policy is the baseline (the
group loop's `greedy_baseline`). On-policy, no clipping. Paper: one sample per prompt;
here the group loop's groups (group_size >= 2 samples per prompt, each against the prompt's greedy answer:
the same estimator over more samples). Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from drlbench.agents._group import GroupAgent, GroupConfig


class ReMax(GroupAgent):
    name = "remax"
    summary = "ReMax (Li et al. 2024): REINFORCE with the greedy answer's reward as baseline"
    loss = "remax"
    needs_greedy_baseline = True
    Config = GroupConfig
