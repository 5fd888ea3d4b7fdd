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

Online and game-theoretic methods (specs/llm_track.md §1.B) need more than that; each agent declares
what (`DataNeeds`, from the agent's hyperparameters) and the loop (drlbench/loops/preference.py)
supplies it:
- the second response of a pair from the token-wise logit mixture of the sampler and pi_ref
  (`sample_mixture`: Nash-MD with `mixture_coef`; XPO with coefficient 1, i.e. y' ~ pi_ref);
- groups of K responses per prompt with their exact preference matrix (`PreferenceGroups`: SPPO,
  DNO; DNO's gold response as one more candidate), from which `win_rates` estimates P(y > pi_t)
  as SPPO does and `large_margin_pairs` picks DNO-Prct's pairs;
- the iterate pi_t (`iteration_steps`): the loop sets pi_t <- pi_theta every `iteration_steps`
  gradient steps, and `sampling = "snapshot"` draws the responses from pi_t.
Every pair also carries `first_won` (the first sample is the chosen one; the second is the
mixture's) and `preference` = P(chosen > rejected) under the task's TRUE preference (the oracle
that plays PairRM / the reward model: no length bias, no label noise).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from drlbench.llm.policy import EOS, TinyLM
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
    ref_chosen_dist: torch.Tensor | None = None   # (P, B, L, K+1) reference log-distributions
    ref_rejected_dist: torch.Tensor | None = None
    gold: torch.Tensor | None = None              # (P, B, L) the context's highest-reward response (TPO)
    gold_mask: torch.Tensor | None = None
    chosen_token_reward: torch.Tensor | None = None     # (P, B, L) the task's true per-token reward (TGDPO)
    rejected_token_reward: torch.Tensor | None = None
    first_won: torch.Tensor | None = None         # (P, B) bool: the chosen response is the first sample
    preference: torch.Tensor | None = None        # (P, B) P(chosen > rejected), the true preference
    weight: torch.Tensor | None = None            # (P, B) per-pair loss weight (DNO's filter); None: all 1

    def take(self, index: torch.Tensor) -> "Pairs":
        """Rows `index` (P, B') of every member."""
        def pick(x):
            if x is None:
                return None
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
    return label_pairs(task, reference, contexts, first, first_mask, second, second_mask, generators)


@torch.no_grad()
def label_pairs(task: Task, reference: TinyLM, contexts: torch.Tensor, first: torch.Tensor, first_mask: torch.Tensor,
                second: torch.Tensor, second_mask: torch.Tensor, generators: list[torch.Generator]) -> Pairs:
    """Label (first, second) answers (P, B, L) to `contexts` (P, B) with the task's labeller (three
    uniforms per pair from the members' generators) and store them as (chosen, rejected)."""
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
    first_better = torch.sigmoid(task.preference_logit(contexts, first, second))
    return Pairs(contexts, chosen, chosen_mask, rejected, rejected_mask, ref_chosen, ref_rejected,
                 ref_chosen_dist, ref_rejected_dist, gold, gold_mask,
                 task.token_rewards(contexts, chosen), task.token_rewards(contexts, rejected),
                 first_won=first_wins, preference=torch.where(first_wins, first_better, 1 - first_better))


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


# ---------------------------------------------------------------- online and game-theoretic methods
@dataclass(frozen=True)
class DataNeeds:
    """What a preference agent needs from the loop beyond labelled pairs of the sampler
    (`PreferenceAgent.needs(config)`; the defaults are plain pairs)."""
    group_size: int = 0              # K >= 2: groups of K answers per prompt with their preference matrix
    gold: bool = False               # groups: the context's gold response as one more candidate (DNO)
    mixture_coef: float | None = None   # pairs: the second answer from sample_mixture(coef) (1: y' ~ pi_ref)
    iteration_steps: int = 0         # pi_t <- pi_theta every this many gradient steps (0: no iterate)


@torch.no_grad()
def sample_mixture(policy: TinyLM, reference: TinyLM, contexts: torch.Tensor, generators: list[torch.Generator],
                   coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One answer per context (P, B) from the token-wise logit mixture of `policy` and `reference`:
    at each position y_t ~ softmax((1 - coef) log pi(.|c, y_<t) + coef log pi_ref(.|c, y_<t)) (TRL's
    GeometricMixtureWrapper for Nash-MD mixes the raw logits; the per-position normalisers of the
    log-softmaxes only shift all logits by one constant, so the distribution is the same). coef = 0
    is `policy`, coef = 1 is `reference`. Drawn as TinyLM.sample draws (Gumbel-max, one uniform per
    vocabulary entry per position from each member's generator). Returns (tokens, mask), (P, B, L)."""
    p, b = contexts.shape
    length, k1, device = policy.spec.max_len, policy.spec.vocab_out, contexts.device
    tokens = torch.zeros(p, b, length, dtype=torch.long, device=device)
    mask = torch.zeros(p, b, length, device=device)
    alive = torch.ones(p, b, dtype=torch.bool, device=device)
    for t in range(length):
        # position t of the full pass sees [c, y_1..y_t] only (causal), so the zeros after t are never read
        mixed = 0.0
        if coef < 1:
            mixed = (1 - coef) * policy.log_softmax(contexts, tokens)[:, :, t]
        if coef > 0:
            mixed = mixed + coef * reference.log_softmax(contexts, tokens)[:, :, t]
        logp = torch.log_softmax(mixed, -1)
        u = torch.stack([torch.rand(b, k1, generator=g, device=device) for g in generators])
        gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        choice = torch.where(alive, torch.argmax(logp + gumbel, -1), torch.zeros(p, b, dtype=torch.long, device=device))
        tokens[..., t] = choice
        mask[..., t] = alive.float()
        alive = alive & (choice != EOS)
    return tokens, mask


@torch.no_grad()
def mixture_pairs(task: Task, sampler: TinyLM, reference: TinyLM, population, batch_size: int,
                  coef: float) -> Pairs:
    """`batch_size` labelled pairs per member: y ~ `sampler`, y' ~ sample_mixture(sampler, reference, coef)."""
    contexts = population.randint(task.spec.contexts, batch_size)
    first, first_mask, _ = sampler.sample(contexts, population.generators)
    second, second_mask = sample_mixture(sampler, reference, contexts, population.generators, coef)
    return label_pairs(task, reference, contexts, first, first_mask, second, second_mask, population.generators)


@dataclass
class PreferenceGroups:
    """K candidate answers per prompt and their exact pairwise preferences (SPPO, DNO). Leading shape (P, B)."""
    contexts: torch.Tensor          # (P, B) long
    tokens: torch.Tensor            # (P, B, K, L) long
    mask: torch.Tensor              # (P, B, K, L) float
    ref_logps: torch.Tensor         # (P, B, K, L) per-token reference log-probs
    preference: torch.Tensor        # (P, B, K, K) P(y_i > y_j) under the true preference (1/2 on the diagonal)
    gold: bool = False              # the last candidate is the context's gold response, not a sample

    @property
    def size(self) -> int:
        return self.contexts.shape[1]


@torch.no_grad()
def make_groups(task: Task, sampler: TinyLM, reference: TinyLM, contexts: torch.Tensor,
                generators: list[torch.Generator], group_size: int, gold: bool = False) -> PreferenceGroups:
    """`group_size` samples of `sampler` per context (P, B) (plus the gold response when `gold`),
    their reference log-probs and their true preference matrix."""
    p, b = contexts.shape
    k, length = group_size, task.spec.max_len
    tokens, mask, _ = sampler.sample(contexts.repeat(1, k), generators)            # (P, K*B, L), sample-major
    tokens = tokens.view(p, k, b, length).transpose(1, 2)
    mask = mask.view(p, k, b, length).transpose(1, 2)
    if gold:
        gold_tokens, gold_mask = task.gold(contexts)
        tokens, mask = torch.cat([tokens, gold_tokens[:, :, None]], 2), torch.cat([mask, gold_mask[:, :, None]], 2)
        k += 1
    tokens, mask = tokens.contiguous(), mask.contiguous()
    flat_ctx = contexts.repeat_interleave(k, 1)
    ref_logps = reference.token_logprobs(flat_ctx, tokens.view(p, b * k, length), mask.view(p, b * k, length))
    pair_ctx = contexts[:, :, None, None].expand(p, b, k, k)
    first = tokens[:, :, :, None].expand(p, b, k, k, length)
    second = tokens[:, :, None, :].expand(p, b, k, k, length)
    preference = torch.sigmoid(task.preference_logit(pair_ctx, first, second))
    return PreferenceGroups(contexts, tokens, mask, ref_logps.view(p, b, k, length), preference, gold)


def online_groups(task: Task, sampler: TinyLM, reference: TinyLM, population, batch_size: int, group_size: int,
                  gold: bool = False) -> PreferenceGroups:
    """A fresh batch of `batch_size` prompts per member, `group_size` answers each from `sampler`."""
    contexts = population.randint(task.spec.contexts, batch_size)
    return make_groups(task, sampler, reference, contexts, population.generators, group_size, gold)


def groups_from_pairs(pairs: Pairs) -> PreferenceGroups:
    """A pair as a group of two candidates (chosen, rejected) with its preference matrix."""
    p_wl = pairs.preference
    half = torch.full_like(p_wl, 0.5)
    preference = torch.stack([torch.stack([half, p_wl], -1), torch.stack([1 - p_wl, half], -1)], -2)
    return PreferenceGroups(pairs.contexts, torch.stack([pairs.chosen, pairs.rejected], 2),
                            torch.stack([pairs.chosen_mask, pairs.rejected_mask], 2),
                            torch.stack([pairs.ref_chosen, pairs.ref_rejected], 2), preference)


def win_rates(preference: torch.Tensor) -> torch.Tensor:
    """SPPO's estimate of P(y_i > pi_t) from K samples of pi_t: (1/K) sum_k P(y_i > y_k), the row mean
    of the preference matrix (..., K, K) -> (..., K), the diagonal (1/2) included, as the SPPO code
    does (uclaml/SPPO scripts/compute_prob.py: row sum / K). Its expectation given y_i is
    ((K-1)/K) P(y_i > pi_t) + 1/(2K): shrunk towards 1/2."""
    return preference.mean(-1)


def large_margin_pairs(groups: PreferenceGroups, margin: float) -> Pairs:
    """DNO-Prct's pair per prompt (Rosset et al. 2024, Alg. 2): rank the candidates by their win rate
    against the other candidates, s_i = mean_{j != i} P(y_i > y_j); chosen = the best, rejected = the
    worst (first index on ties); the pair counts (weight 1) only when s_best - s_worst >= margin, else
    weight 0."""
    pref = groups.preference
    k = pref.shape[-1]
    score = (pref.sum(-1) - pref.diagonal(dim1=-2, dim2=-1)) / (k - 1)             # (P, B, K)
    best, worst = score.argmax(-1), score.argmin(-1)                                 # (P, B)
    gap = score.gather(-1, best[..., None]).squeeze(-1) - score.gather(-1, worst[..., None]).squeeze(-1)

    def pick(x, index):
        idx = index.view(*index.shape, 1, *([1] * (x.dim() - 3))).expand(*index.shape, 1, *x.shape[3:])
        return torch.gather(x, 2, idx).squeeze(2)

    p_wl = pref.gather(-1, worst[..., None, None].expand(*pref.shape[:-1], 1)).squeeze(-1)   # P(y_i > y_worst)
    return Pairs(groups.contexts, pick(groups.tokens, best), pick(groups.mask, best),
                 pick(groups.tokens, worst), pick(groups.mask, worst),
                 pick(groups.ref_logps, best), pick(groups.ref_logps, worst),
                 preference=p_wl.gather(-1, best[..., None]).squeeze(-1),
                 weight=(gap >= margin).float())
