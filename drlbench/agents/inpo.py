"""INPO: Zhang et al. 2024, "Iterative Nash Policy Optimization: Aligning LLMs with General Preferences
via No-Regret Learning" (ICLR 2025, arXiv 2407.00617). [recon] (specs/llm_track.md §1.B: the loss is
the spec's reconstruction, not checked against a reference implementation.) Online mirror descent on
the KL-regularised preference game, pi_{t+1} ∝ pi_t^(1 - eta tau) pi_ref^(eta tau) exp(eta P(y > pi_t)),
fitted without win-rate estimates by an IPO-like loss on pairs from pi_t labelled by the annotator:

    L = (log pi(y_w)/pi(y_l) - eta tau log pi_ref(y_w)/pi_ref(y_l) - (1 - eta tau) log pi_t(y_w)/pi_t(y_l) - eta/2)^2

(drlbench.llm.losses.inpo). Its fixed point is the regularised Nash equilibrium with KL strength tau
(pi ∝ pi_ref exp(P(y > pi)/tau)). pi_t <- pi_theta every `iteration_steps` gradient steps, pairs from
pi_t (sampling = "snapshot").
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import IterativeConfig, PreferenceAgent
from drlbench.domains import hp


@dataclass(frozen=True)
class INPOConfig(IterativeConfig):
    eta: float = hp("(0, inf)")    # mirror-descent step size
    tau: float = hp("(0, inf)")    # KL strength to pi_ref (eta tau <= 1 for a step between pi_t and pi_ref)


class INPO(PreferenceAgent):
    name = "inpo"
    summary = "INPO (Zhang et al. 2024) [recon]: IPO-like no-regret self-play against pi_t and pi_ref"
    loss = "inpo"
    Config = INPOConfig
    snapshots = 1
