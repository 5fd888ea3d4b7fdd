"""Preference pairs: offline (sampled once from pi_ref) or online (sampled from the current policy).

A pair is two responses to the same context, sampled independently, labelled by the task
(`Task.label`: Bradley-Terry on the true reward, plus the task's length bias and label noise),
and stored as (chosen, rejected). Reference log-probs are computed once, when a pair is made:
per token, and the full next-token distributions (TDPO's sequential KL needs them).

Offline: `num_pairs` pairs per member from that member's reference, drawn from a generator of
its own seed (10**6 + seed), so a seed's dataset is the same whatever the method and whatever
other seeds share the population. Minibatches are drawn with replacement by the population's
generators. Online (online DPO, Guo et al. 2024 "Direct Language Model Alignment from Online AI
Feedback", with the task's labeller as the annotator): every gradient step labels a fresh batch
of pairs sampled from the current policy.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from drlbench.llm.policy import TinyLM
from drlbench.llm.tasks import Task


@dataclass
class Pairs:
    """Every field has leading shape (P, B)."""
    contexts: torch.Tensor          # (P, B) long
    chosen: torch.Tensor            # (P, B, L) long
    chosen_mask: torch.Tensor       # (P, B, L) float
    rejected: torch.Tensor
    rejected_mask: torch.Tensor
    ref_chosen: torch.Tensor        # (P, B, L) per-token reference log-probs
    ref_rejected: torch.Tensor
    ref_chosen_dist: torch.Tensor   # (P, B, L, K+1) reference log-distributions
    ref_rejected_dist: torch.Tensor
    gold: torch.Tensor              # (P, B, L) the context's highest-reward response (TPO)
    gold_mask: torch.Tensor
    chosen_token_reward: torch.Tensor     # (P, B, L) the task's true per-token reward (TGDPO's oracle)
    rejected_token_reward: torch.Tensor

    def take(self, index: torch.Tensor) -> "Pairs":
        """Rows `index` (P, B') of every member."""
        def pick(x):
            idx = index.view(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:])
            return torch.gather(x, 1, idx)
        return Pairs(**{f.name: pick(getattr(self, f.name)) for f in fields(self)})

    @property
    def size(self) -> int:
        return self.contexts.shape[1]


@torch.no_grad()
def make_pairs(task: Task, sampler: TinyLM, reference: TinyLM, contexts: torch.Tensor,
               generators: list[torch.Generator]) -> Pairs:
    """Label two samples of `sampler` per context (P, B), with reference log-probs from `reference`."""
    b = contexts.shape[1]
    both, both_mask, _ = sampler.sample(contexts.repeat(1, 2), generators)   # two answers per context
    (first, second), (first_mask, second_mask) = both.split(b, 1), both_mask.split(b, 1)
    uniforms = torch.stack([torch.rand(3, *contexts.shape[1:], generator=g, device=contexts.device)
                            for g in generators], 1)                       # (3, P, B)
    first_wins = task.label(contexts, first, second, uniforms)
    pick = first_wins.unsqueeze(-1)
    chosen, rejected = torch.where(pick, first, second), torch.where(pick, second, first)
    chosen_mask = torch.where(pick, first_mask, second_mask)
    rejected_mask = torch.where(pick, second_mask, first_mask)
    ref_chosen, ref_chosen_dist = reference.token_logprobs(contexts, chosen, chosen_mask, full=True)
    ref_rejected, ref_rejected_dist = reference.token_logprobs(contexts, rejected, rejected_mask, full=True)
    gold, gold_mask = task.gold(contexts)
    return Pairs(contexts, chosen, chosen_mask, rejected, rejected_mask, ref_chosen, ref_rejected,
                 ref_chosen_dist, ref_rejected_dist, gold, gold_mask,
                 task.token_rewards(contexts, chosen), task.token_rewards(contexts, rejected))


def offline_pairs(task: Task, reference: TinyLM, seeds: tuple[int, ...], num_pairs: int) -> Pairs:
    """`num_pairs` pairs per member from its own reference (member p: seed seeds[p])."""
    generators = [torch.Generator(device=task.device).manual_seed(10**6 + s) for s in seeds]
    contexts = torch.stack([torch.randint(task.spec.contexts, (num_pairs,), generator=g, device=task.device)
                            for g in generators])
    return make_pairs(task, reference, reference, contexts, generators)


def online_pairs(task: Task, policy: TinyLM, reference: TinyLM, population, batch_size: int) -> Pairs:
    """A fresh batch of `batch_size` pairs per member sampled from the current `policy`."""
    contexts = population.randint(task.spec.contexts, batch_size)
    return make_pairs(task, policy, reference, contexts, population.generators)
