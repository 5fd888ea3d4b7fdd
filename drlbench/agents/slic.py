"""SLiC-HF: Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
(arXiv 2305.10425), the rank-calibration loss with its regulariser, no reference model.

    L = max(0, delta - log pi(y_w) + log pi(y_l)) - lam log pi(y_w)   (the chosen answer stands for the SFT target)

(drlbench.llm.losses.slic); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class SLiCConfig(PreferenceConfig):
    delta: float = hp("(0, inf)")
    lam: float = hp("[0, inf)")


class SLiC(PreferenceAgent):
    name = "slic"
    summary = "SLiC-HF (Zhao et al. 2023): hinge on the sequence likelihood margin, no reference"
    loss = "slic"
    Config = SLiCConfig
