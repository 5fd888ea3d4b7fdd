"""IPO: Azar et al. 2024, "A General Theoretical Paradigm to Understand Learning from Human
Preferences" (AISTATS, arXiv 2310.12036), eq. 17 as written (sequence log-ratios; `ipo_tok` is the
token-averaged form TRL uses).

    L = (h(y_w) - h(y_l) - 1/(2 tau))^2

(drlbench.llm.losses.ipo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class IPOConfig(PreferenceConfig):
    tau: float = hp("(0, inf)")


class IPO(PreferenceAgent):
    name = "ipo"
    summary = "IPO (Azar et al. 2024), eq. 17: squared loss on the sequence log-ratio margin"
    loss = "ipo"
    Config = IPOConfig
