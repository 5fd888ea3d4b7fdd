"""DAPO: Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale" (arXiv
2503.14476), eq. 8 (drlbench.llm.group_losses.dapo) with its sampling and shaping in the group loop:
    clip-higher: -min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i), eps_low 0.2, eps_high 0.28;
    token-level loss: the sum over every token of the batch / their number; group-normalised A; no KL;
    dynamic sampling: groups whose rewards are all equal are dropped and more prompts drawn
    (`dynamic_sampling`, `max_sampling_rounds`);
    soft overlong punishment (eq. 13) added to the reward (`overlong_cache`).
Paper §4.1: lr 1e-6, 512 prompts x 16 samples, max length 20480 with a 4096-token cache (1/5 of it).
Adam at a constant rate on the toy policy (agents/_group.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._group import GroupAgent, GroupConfig
from drlbench.domains import hp


@dataclass(frozen=True)
class DAPOConfig(GroupConfig):
    beta: float = hp("[0, inf)")
    epsilon_low: float = hp("[0, 1]")
    epsilon_high: float = hp("[0, inf)")


class DAPO(GroupAgent):
    name = "dapo"
    summary = "DAPO (Yu et al. 2025): clip-higher, token-level loss, dynamic sampling, overlong shaping"
    loss = "dapo"
    Config = DAPOConfig
