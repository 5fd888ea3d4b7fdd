"""IPO, token-averaged log-ratios: Azar et al. 2024 (arXiv 2310.12036) as TRL implements `loss_type="ipo"`
(its code comment: the authors confirmed the normalised form).

    L = (h(y_w)/|y_w| - h(y_l)/|y_l| - 1/(2 tau))^2

(drlbench.llm.losses.ipo_tok); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class IPOTokConfig(PreferenceConfig):
    tau: float = hp("(0, inf)")


class IPOTok(PreferenceAgent):
    name = "ipo_tok"
    summary = "IPO with token-averaged log-ratios (TRL's `ipo`)"
    loss = "ipo_tok"
    Config = IPOTokConfig
