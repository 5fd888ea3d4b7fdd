"""Length-normalised DPO: Lambert et al. 2024, "Tulu 3: Pushing Frontiers in Open Language Model
Post-Training" (arXiv 2411.15124); TRL `loss_type="sigmoid_norm"`.

    L = -log sigma(beta [h(y_w)/|y_w| - h(y_l)/|y_l|])

(drlbench.llm.losses.ln_dpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class LNDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")


class LNDPO(PreferenceAgent):
    name = "ln_dpo"
    summary = "Length-normalised DPO (Tulu 3): DPO on per-token-averaged log-ratios"
    loss = "ln_dpo"
    Config = LNDPOConfig
