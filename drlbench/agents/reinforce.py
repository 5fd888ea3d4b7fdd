"""REINFORCE with a baseline: Williams 1992, "Simple Statistical Gradient-Following Algorithms for
Connectionist Reinforcement Learning" (Machine Learning 8), the REINFORCE update
Delta w = alpha (r - b) d ln pi / dw with a reinforcement baseline b, in its sequence form (spec §1.C):
    L = -(r_i - b) log pi(y_i),  b = mean reward of the completion's group
(drlbench.llm.group_losses.reinforce), mean over completions, on-policy (no importance ratio). The
paper has no LLM hyperparameters; Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from drlbench.agents._group import GroupAgent, GroupConfig


class REINFORCE(GroupAgent):
    name = "reinforce"
    summary = "REINFORCE (Williams 1992) with the group-mean reward as baseline: -(r - b) log pi(y)"
    loss = "reinforce"
    Config = GroupConfig
