"""TDPO: Zeng et al. 2024, "Token-level Direct Preference Optimization" (ICML, arXiv 2404.11999),
TDPO2 (Vance0124/Token-level-Direct-Preference-Optimization trainers.py tdpo_loss, config/loss/tdpo.yaml).

    L = -log sigma(beta [Delta + alpha (sg(SeqKL(y_w)) - SeqKL(y_l))]),  SeqKL(y) = sum_t KL(pi_ref(.|y_<t) || pi(.|y_<t))

(drlbench.llm.losses.tdpo); Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class TDPOConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, inf)")
    variant: int = hp("[1, 2]")


class TDPO(PreferenceAgent):
    name = "tdpo"
    summary = "TDPO (Zeng et al. 2024): DPO plus the sequential token-level KL to the reference"
    loss = "tdpo"
    Config = TDPOConfig
