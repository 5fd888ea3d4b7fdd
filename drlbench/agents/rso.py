"""RSO: Liu et al. 2024, "Statistical Rejection Sampling Improves Preference Optimization" (ICLR,
arXiv 2309.06657), the hinge-norm loss. DEVIATION: the pairs come from pi_ref (the offline data), not
from RSO's rejection sampler of pi*.

    L = max(0, 1 - gamma Delta)

(drlbench.llm.losses.rso); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class RSOConfig(PreferenceConfig):
    gamma: float = hp("(0, inf)")
    variant: str = hp(choices=("hinge", "sigmoid"))


class RSO(PreferenceAgent):
    name = "rso"
    summary = "RSO's hinge-norm loss (Liu et al. 2024) on reference samples"
    loss = "rso"
    Config = RSOConfig
