"""LD-DPO: Liu et al. 2024, "Length Desensitization in Direct Preference Optimization" (arXiv 2409.06411);
TRL `ld_alpha`.

    log pi(y) -> sum_{t <= l_p} log pi(y_t) + alpha sum_{t > l_p} log pi(y_t), l_p = min(|y_w|, |y_l|), then DPO

(drlbench.llm.losses.ld_dpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class LDDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, 1]")


class LDDPO(PreferenceAgent):
    name = "ld_dpo"
    summary = "LD-DPO (Liu et al. 2024): DPO with the longer answer's excess tail down-weighted by alpha"
    loss = "ld_dpo"
    Config = LDDPOConfig
