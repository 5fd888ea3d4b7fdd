"""Conservative DPO: Mitchell 2023, "A note on DPO with noisy preferences and relationship to IPO"
(ericmitchell.ai/cdpo.pdf); TRL `loss_type="sigmoid"` with `label_smoothing`.

    L = -(1 - eps) log sigma(beta Delta) - eps log sigma(-beta Delta)

(drlbench.llm.losses.cdpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class CDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    epsilon: float = hp("[0, 0.5)")


class CDPO(PreferenceAgent):
    name = "cdpo"
    summary = "cDPO: DPO with label smoothing eps (assumed label-flip rate)"
    loss = "cdpo"
    Config = CDPOConfig
