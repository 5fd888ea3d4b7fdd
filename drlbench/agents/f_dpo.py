"""f-DPO: Wang et al. 2024, "Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse
Divergence Constraints" (ICLR, arXiv 2309.16240).

    L = -log sigma(beta [psi(h(y_w)) - psi(h(y_l))]),  psi = f' (reverse KL: h, forward KL, JS, alpha)

(drlbench.llm.losses.f_dpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class FDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    divergence: str = hp(choices=("reverse_kl", "forward_kl", "js", "alpha"))
    alpha: float = hp("(0, inf)")


class FDPO(PreferenceAgent):
    name = "f_dpo"
    summary = "f-DPO (Wang et al. 2024): DPO with an f-divergence score (JS by default)"
    loss = "f_dpo"
    Config = FDPOConfig
