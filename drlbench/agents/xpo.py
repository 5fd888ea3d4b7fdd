"""XPO: Xie et al. 2024, "Exploratory Preference Optimization: Harnessing Implicit Q*-Approximation for
Sample-Efficient RLHF" (arXiv 2405.21046), Alg. 1 with pi_samp = pi_ref, as TRL's XPOTrainer runs it:
each step samples y ~ pi_theta and y' ~ pi_ref per prompt (the loop's mixture sampler at coefficient
1), labels the pair with the annotator (the task's labeller), and minimises

    L = -log sigma(beta [h(y_w) - h(y_l)]) + alpha log pi_theta(y')

(drlbench.llm.losses.xpo): online DPO plus an exploration term that lowers the likelihood of the
reference's answers. Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp
from drlbench.llm.data import DataNeeds


@dataclass(frozen=True)
class XPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, inf)")


class XPO(PreferenceAgent):
    name = "xpo"
    summary = "XPO (Xie et al. 2024): online DPO on (policy, reference) pairs plus alpha log pi(y_ref)"
    loss = "xpo"
    Config = XPOConfig

    @classmethod
    def needs(cls, config) -> DataNeeds:
        return DataNeeds(mixture_coef=1.0)   # the second answer from pi_ref
