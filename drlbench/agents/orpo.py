"""ORPO: Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model" (EMNLP,
arXiv 2403.07691), no reference model.

    L = NLL(y_w) - lam log sigma(log odds(y_w) - log odds(y_l)),  odds(y) = P/(1-P), P = exp(avg log pi(y))

(drlbench.llm.losses.orpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class ORPOConfig(PreferenceConfig):
    lam: float = hp("[0, inf)")


class ORPO(PreferenceAgent):
    name = "orpo"
    summary = "ORPO (Hong et al. 2024): SFT on the chosen answer plus an odds-ratio term, no reference"
    loss = "orpo"
    Config = ORPOConfig
