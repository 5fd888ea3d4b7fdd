"""Preference-optimisation losses as pure functions of per-token log-probs (specs/llm_track.md §1.A).

Interface shared by every pairwise method:
    loss_fn(batch: PairBatch, **hyperparameters) -> (loss (B,), metrics {name: (B,) tensor})
`batch` holds per-token log-probs of the chosen (w) and rejected (l) responses under the policy and
the reference, with masks (1 on response tokens, 0 on padding); the loss is per pair, so the caller
chooses the reduction (a mean over the batch). Notation of the spec §1.0: h(y) = sum_t [log pi(y_t)
- log pi_ref(y_t)], Delta = h(y_w) - h(y_l).
`LOSSES` maps each method's name (as in its paper, never TRL's clashing names) to its function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass
class PairBatch:
    chosen_logps: torch.Tensor            # (B, T) policy log pi(y_w,t | x, y_w,<t)
    rejected_logps: torch.Tensor          # (B, T)
    ref_chosen_logps: torch.Tensor        # (B, T) reference, no gradient
    ref_rejected_logps: torch.Tensor      # (B, T)
    chosen_mask: torch.Tensor             # (B, T) float, 1 on response tokens
    rejected_mask: torch.Tensor           # (B, T)
    # optional, for the methods that need them (None otherwise):
    chosen_token_kl: torch.Tensor | None = None     # (B, T) KL(pi_ref(.|prefix) || pi(.|prefix)) per token (TDPO)
    rejected_token_kl: torch.Tensor | None = None
    gold_logps: torch.Tensor | None = None          # (B, T) policy log-probs of a gold response (TPO)
    gold_mask: torch.Tensor | None = None


def seq(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence log-prob sum_t log p_t over response tokens, (B,)."""
    return (logps * mask).sum(-1)


def dpo(batch: PairBatch, beta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO (Rafailov et al. 2023, eq. 7): -log sigma(beta Delta); implicit rewards beta h(y)."""
    h_w = seq(batch.chosen_logps, batch.chosen_mask) - seq(batch.ref_chosen_logps, batch.chosen_mask)
    h_l = seq(batch.rejected_logps, batch.rejected_mask) - seq(batch.ref_rejected_logps, batch.rejected_mask)
    loss = -F.logsigmoid(beta * (h_w - h_l))
    return loss, {"chosen_reward": (beta * h_w).detach(), "rejected_reward": (beta * h_l).detach()}


LOSSES: dict[str, Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]] = {"dpo": dpo}
