"""SimPO: Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward"
(NeurIPS, arXiv 2405.14734), eq. 6, no reference model.

    L = -log sigma(beta [log pi(y_w)/|y_w| - log pi(y_l)/|y_l|] - gamma)

(drlbench.llm.losses.simpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class SimPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    gamma: float = hp("[0, inf)")
    epsilon: float = hp("[0, 0.5)")


class SimPO(PreferenceAgent):
    name = "simpo"
    summary = "SimPO (Meng et al. 2024): length-normalised likelihood margin with a target margin, no reference"
    loss = "simpo"
    Config = SimPOConfig
