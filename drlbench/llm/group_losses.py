"""Group / policy-gradient (RLVR) losses as pure functions of per-token log-probs (specs/llm_track.md §1.C).

Interface shared by every method:
    GROUP_LOSSES[name](batch: GroupBatch, **hyperparameters) -> (loss (P,), metrics {name: (P,) tensor})
`batch` holds, for P population members (seeds) x Q prompts x G completions per prompt x L tokens, the
per-token log-probs of the sampled completions under the current policy (with gradient), the behaviour
policy that sampled them (pi_old) and the reference (pi_ref), the completion mask and one scalar reward
per completion. Every statistic a loss needs (group means and stds, batch whitening, active-token
counts, Beta fits) is taken over ONE member's Q*G completions, so member p's loss never depends on
another member's data; the caller sums the P losses and backpropagates (each member's gradient is its
own). Each loss aggregates over its member's completions as its paper (or TRL) does:
    "grpo"    mean over each completion's tokens, then mean over the Q*G completions (TRL `grpo`, `sapo`);
    "token"   sum over all tokens / number of active tokens (TRL `dapo`, `bnpo`, `cispo` on one batch);
    "dr_grpo" sum over all tokens / (Q*G*max_len) (TRL `dr_grpo`, Dr. GRPO's constant);
    "seq_sum" sum over each completion's tokens, then mean over completions (REINFORCE's log pi(y); verl
              `seq-mean-token-sum`, the BNPO paper's setting).
Every loss reads masked tokens only: per-token inputs are replaced by 0 under a 0 of the mask before any
arithmetic, so padding holding inf or nan never changes a loss or a gradient.

Notation (spec §1.0): rho_t = pi(y_t)/pi_old(y_t) (token ratio), A_i the advantage of completion i,
h(y) = log pi(y) - log pi_ref(y), k3_t = exp(l_ref - l) - (l_ref - l) - 1 (l = log pi(y_t), Schulman's k3
estimator of KL(pi || pi_ref), TRL's `per_token_kl`), sg = stop-gradient. Group statistics: std is the
unbiased (Bessel) standard deviation, as TRL's `nanstd`, with TRL's 1e-4 added before dividing.

Hyper-parameters keep the papers' symbols, defaults the paper's values: beta (KL strength), epsilon_low /
epsilon_high (clip range), delta (two-sided clip of INTELLECT-2 / DisCO's trust region), scale_rewards,
tau_pos / tau_neg (SAPO), tau (DisCO's temperature, OPMD's and AsymRE's coefficients), c (TOPR's
baseline). Methods marked [recon] follow the spec's reconstruction of the paper, not a reference
implementation: check them against the paper before drawing conclusions from them.

Metrics (TRL's logging names, spec §2.4, '/' -> '_'), each (P,), detached: reward, reward_std,
frac_reward_zero_std (groups whose rewards all agree), completion_length, kl (token mean of k3 against
pi_ref, every method), entropy (when the batch has it), advantage_mean / advantage_std (where a method has
advantages), clip_ratio_low / clip_ratio_high / clip_ratio_region (clipping and masking methods),
cispo_clip_ratio (CISPO). Deliberate differences from TRL's logging: frac_reward_zero_std always uses the
group std (TRL uses the batch std under scale_rewards="batch"); `kl` is logged even when beta = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Metrics = dict[str, torch.Tensor]
STD_EPS = 1e-4            # TRL's constant in (r - mean) / (std + 1e-4)
WHITEN_EPS = 1e-8         # verl's masked_whiten: (x - mean) / sqrt(var + 1e-8)
ADVANTAGES = ("group", "batch", "none", "rloo")
AGGREGATIONS = ("grpo", "token", "dr_grpo", "seq_sum")


@dataclass
class GroupBatch:
    """Leading shape (P, Q, G): P population members (seeds), Q prompts, G completions per prompt; L tokens."""
    logps: torch.Tensor        # (P,Q,G,L) per-token log pi_theta(y_t | x, y_<t), WITH grad; 0 where mask is 0
    old_logps: torch.Tensor    # (P,Q,G,L) per-token log-probs under the behaviour policy that sampled the group
    ref_logps: torch.Tensor    # (P,Q,G,L) per-token log-probs under the reference pi_ref (no grad)
    mask: torch.Tensor         # (P,Q,G,L) float, 1 on completion tokens (EOS included)
    rewards: torch.Tensor      # (P,Q,G) scalar reward per completion (already shaped, e.g. overlong penalty)
    max_len: int               # L = max completion length (Dr. GRPO's constant)
    baseline_rewards: torch.Tensor | None = None   # (P,Q) ReMax: reward of the greedy completion of each prompt
    entropy: torch.Tensor | None = None            # (P,Q,G,L) per-token entropy of pi_theta (logging only)


# ---------------------------------------------------------------- shared pieces
@dataclass
class _Tokens:
    """The batch's per-token inputs with 0 under a 0 of the mask (what every loss reads)."""
    logp: torch.Tensor
    old: torch.Tensor
    ref: torch.Tensor
    mask: torch.Tensor
    n: torch.Tensor            # (P,Q,G) completion lengths


def _clean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask != 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _tokens(b: GroupBatch) -> _Tokens:
    m = b.mask
    return _Tokens(_clean(b.logps, m), _clean(b.old_logps, m).detach(), _clean(b.ref_logps, m).detach(), m,
                   m.sum(-1))


def seq_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_t m_t x_t over each completion's tokens, (P,Q,G); entries under a 0 of the mask are dropped."""
    return (_clean(x, mask) * mask).sum(-1)


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over one member's active tokens, (P,)."""
    return seq_sum(x, mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)


def _std(x: torch.Tensor, dim, keepdim: bool = False) -> torch.Tensor:
    """Unbiased (Bessel) standard deviation over `dim`; 0 for a single value (TRL's G = 1 case)."""
    n = x.shape[dim] if isinstance(dim, int) else math.prod(x.shape[d] for d in dim)
    centred = x - x.mean(dim, keepdim=True)
    return (centred.pow(2).sum(dim, keepdim=keepdim) / max(n - 1, 1)).sqrt()


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str, max_len: int) -> torch.Tensor:
    """One member's loss from per-token losses (P,Q,G,L), or (P,Q,G,1) broadcast over the tokens (see the
    module docstring for the four aggregations), (P,)."""
    per_token = per_token.expand(mask.shape)
    s = seq_sum(per_token, mask)                                   # (P,Q,G)
    n = mask.sum(-1)
    if how == "grpo":
        return (s / n.clamp(min=1)).flatten(1).mean(1)
    if how == "token":
        return s.flatten(1).sum(1) / n.flatten(1).sum(1).clamp(min=1)
    if how == "dr_grpo":
        return s.flatten(1).sum(1) / (s[0].numel() * max_len)
    if how == "seq_sum":
        return s.flatten(1).mean(1)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")


def group_advantages(rewards: torch.Tensor, kind: str = "group") -> torch.Tensor:
    """Per-completion advantages from rewards (P,Q,G), each member on its own:
    "group" (GRPO): (r - mean_G r)/(std_G r + 1e-4); "batch": (r - mean_G r)/(std r over the member's Q*G
    completions + 1e-4) (TRL scale_rewards="batch"); "none" (Dr. GRPO): r - mean_G r; "rloo": r minus the
    mean of the other G - 1 rewards of its group (= G/(G-1) (r - mean_G r); 0 when G = 1, as TRL)."""
    centred = rewards - rewards.mean(-1, keepdim=True)
    if kind == "none":
        return centred
    if kind == "group":
        return centred / (_std(rewards, -1, keepdim=True) + STD_EPS)
    if kind == "batch":
        std = _std(rewards.flatten(1), 1)
        return centred / (std.view(-1, *([1] * (rewards.dim() - 1))) + STD_EPS)
    if kind == "rloo":
        g = rewards.shape[-1]
        if g < 2:
            return torch.zeros_like(rewards)
        return rewards - (rewards.sum(-1, keepdim=True) - rewards) / (g - 1)
    raise ValueError(f"advantage kind (scale_rewards) must be one of {ADVANTAGES}, got {kind!r}")


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Global (batch) whitening over one member's active tokens, as verl's masked_whiten:
    (x - mean) / sqrt(var + 1e-8), unbiased var, token-weighted; (P,Q,G,L)."""
    x = _clean(x, mask)
    n = mask.flatten(1).sum(1).clamp(min=1)
    shape = (-1, *([1] * (x.dim() - 1)))
    mean = ((x * mask).flatten(1).sum(1) / n).view(shape)
    var = (((x - mean) ** 2 * mask).flatten(1).sum(1) / (n - 1).clamp(min=1)).view(shape)
    return (x - mean) * torch.rsqrt(var + WHITEN_EPS)


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13) added to the reward of a completion of
    `lengths` tokens: 0 up to max_len - cache_len, then ((max_len - cache_len) - |y|)/cache_len falling
    linearly to -1 at max_len, and -1 beyond max_len. cache_len = 0: only -1 beyond max_len."""
    lengths = torch.as_tensor(lengths).to(torch.get_default_dtype())
    free = max_len - cache_len
    ramp = (free - lengths) / cache_len if cache_len > 0 else torch.zeros_like(lengths)
    return torch.where(lengths <= free, torch.zeros_like(lengths),
                       torch.where(lengths <= max_len, ramp, -torch.ones_like(lengths)))


def k3(t: _Tokens) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref): exp(l_ref - l) - (l_ref - l) - 1 (with the policy's grad)."""
    d = t.ref - t.logp
    return torch.exp(d) - d - 1


def _base_metrics(b: GroupBatch, t: _Tokens) -> Metrics:
    r = b.rewards
    out = {
        "reward": r.flatten(1).mean(1),
        "reward_std": _std(r.flatten(1), 1),
        "frac_reward_zero_std": (_std(r, -1) <= 1e-8).to(r.dtype).flatten(1).mean(1),
        "completion_length": t.n.flatten(1).mean(1),
        "kl": token_mean(k3(t), t.mask),
    }
    if b.entropy is not None:
        out["entropy"] = token_mean(b.entropy, t.mask)
    return out


def _advantage_metrics(adv: torch.Tensor, mask: torch.Tensor) -> Metrics:
    if adv.dim() == mask.dim():      # per-token advantages: token-weighted statistics
        mean = token_mean(adv, mask)
        var = token_mean((adv - mean.view(-1, *([1] * (adv.dim() - 1)))) ** 2, mask)
        return {"advantage_mean": mean, "advantage_std": var.sqrt()}
    return {"advantage_mean": adv.flatten(1).mean(1), "advantage_std": _std(adv.flatten(1), 1)}


def _finish(loss: torch.Tensor, metrics: Metrics) -> tuple[torch.Tensor, Metrics]:
    return loss, {k: v.detach() for k, v in metrics.items()}


def _flag_mean(flag: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens (token-level flags) or of completions (flags (P,Q,G,1)) that are flagged."""
    flag = flag.to(mask.dtype)
    if flag.shape[-1] == 1 and mask.shape[-1] != 1:
        return flag.flatten(1).mean(1)
    return token_mean(flag, mask)


def _check(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


# ---------------------------------------------------------------- the clipped-surrogate family
def _ratio(t: _Tokens, level: str) -> torch.Tensor:
    """Importance ratio: per token (P,Q,G,L); GSPO's length-normalised sequence ratio exp(mean_t log rho_t)
    or RLOO's whole-sequence ratio exp(sum_t log rho_t), both (P,Q,G,1)."""
    log_rho = t.logp - t.old
    if level == "token":
        return torch.exp(log_rho)
    if level == "sequence":
        return torch.exp(seq_sum(log_rho, t.mask) / t.n.clamp(min=1)).unsqueeze(-1)
    if level == "sequence_sum":
        return torch.exp(seq_sum(log_rho, t.mask)).unsqueeze(-1)
    raise ValueError(f"importance_sampling_level must be 'token' or 'sequence', got {level!r}")


def _clipped(ratio: torch.Tensor, adv: torch.Tensor, epsilon_low: float, epsilon_high: float, delta: float):
    """PPO's clipped surrogate -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A), rho first capped at delta
    (INTELLECT-2's two-sided clip; inf = off), and TRL's clip flags."""
    coef2 = ratio.clamp(1 - epsilon_low, 1 + epsilon_high)
    coef1 = ratio.clamp(max=delta) if math.isfinite(delta) else ratio
    loss = -torch.min(coef1 * adv, coef2 * adv)
    low = (coef1 < 1 - epsilon_low) & (adv < 0)
    high = (coef1 > 1 + epsilon_high) & (adv > 0)
    return loss, {"clip_ratio_low": low, "clip_ratio_high": high, "clip_ratio_region": low | high}


def _with_kl(per_token: torch.Tensor, t: _Tokens, ratio: torch.Tensor, beta: float,
             use_bias_correction_kl: bool) -> torch.Tensor:
    """Adds beta k3_t to the per-token loss (TRL); with the DeepSeek-V3.2 correction k3_t is weighted by rho."""
    if beta == 0.0:
        return per_token
    kl = k3(t)
    if use_bias_correction_kl:
        kl = kl * ratio
    return per_token + beta * kl


def _surrogate_loss(b: GroupBatch, adv: torch.Tensor, *, level: str, epsilon_low: float, epsilon_high: float,
                    delta: float, beta: float, aggregation: str, use_bias_correction_kl: bool = False,
                    t: _Tokens | None = None) -> tuple[torch.Tensor, Metrics]:
    """The clipped surrogate of GRPO-family methods for given advantages (P,Q,G) or (P,Q,G,L)."""
    _check("aggregation", aggregation, AGGREGATIONS)
    t = t or _tokens(b)
    ratio = _ratio(t, level)
    a = adv.detach() if adv.dim() == t.mask.dim() else adv.detach().unsqueeze(-1)
    per_token, flags = _clipped(ratio, a, epsilon_low, epsilon_high, delta)
    per_token = _with_kl(per_token, t, ratio, beta, use_bias_correction_kl)
    loss = aggregate(per_token, t.mask, aggregation, b.max_len)
    metrics = {**_base_metrics(b, t), **_advantage_metrics(adv, t.mask)}
    metrics.update({k: _flag_mean(v, t.mask) for k, v in flags.items()})
    return _finish(loss, metrics)


# ---------------------------------------------------------------- REINFORCE, ReMax, RLOO, REINFORCE++
def _reinforce_loss(b: GroupBatch, adv: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """-A_i log pi(y_i) (sequence log-prob), mean over the member's completions."""
    t = _tokens(b)
    loss = -(adv.detach() * seq_sum(t.logp, t.mask)).flatten(1).mean(1)
    return _finish(loss, {**_base_metrics(b, t), **_advantage_metrics(adv, t.mask)})


def reinforce(batch: GroupBatch) -> tuple[torch.Tensor, Metrics]:
    """REINFORCE with a baseline (Williams 1992): -(r_i - b) log pi(y_i), b = the mean reward of the
    completion's group (spec §1.C), mean over completions. On-policy: no importance ratio."""
    return _reinforce_loss(batch, group_advantages(batch.rewards, "none"))


def remax(batch: GroupBatch) -> tuple[torch.Tensor, Metrics]:
    """ReMax (Li et al. 2024, "ReMax: A Simple, Effective, and Efficient Reinforcement Learning Method for
    Aligning Large Language Models", Algorithm 1): -(r(x, y) - r(x, y_greedy)) log pi(y), the baseline
    being the reward of the greedy answer (`baseline_rewards`), mean over completions (verl
    compute_remax_outcome_advantage with an outcome reward)."""
    if batch.baseline_rewards is None:
        raise ValueError("remax needs baseline_rewards (the greedy answer's reward per prompt) in the GroupBatch")
    return _reinforce_loss(batch, batch.rewards - batch.baseline_rewards.unsqueeze(-1))


def rloo(batch: GroupBatch, beta: float = 0.05, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
         normalize_advantages: bool = False) -> tuple[torch.Tensor, Metrics]:
    """RLOO (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
    from Human Feedback in LLMs", eq. 8) as TRL >= 0.22 RLOOTrainer: the KL penalty goes into the reward,
    r_i <- r_i - beta sum_t (log pi_old(y_t) - log pi_ref(y_t)); leave-one-out advantage
    A_i = r_i - mean_{j != i} r_j; with normalize_advantages, A whitened over the member's Q*G completions
    ((A - mean)/(std + 1e-4)); loss: the PPO-clipped surrogate on the whole-sequence ratio
    exp(sum_t log rho_t), mean over completions. TRL defaults: beta 0.05, epsilon 0.2."""
    t = _tokens(batch)
    kl = seq_sum(t.old - t.ref, t.mask)
    adv = group_advantages(batch.rewards - beta * kl, "rloo")
    if normalize_advantages:
        flat = adv.flatten(1)
        adv = (adv - flat.mean(1).view(-1, 1, 1)) / (_std(flat, 1).view(-1, 1, 1) + STD_EPS)
    return _surrogate_loss(batch, adv, level="sequence_sum", epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                           delta=math.inf, beta=0.0, aggregation="grpo", t=t)


def reinforce_pp(batch: GroupBatch, beta: float = 0.01, epsilon_low: float = 0.2,
                 epsilon_high: float = 0.2) -> tuple[torch.Tensor, Metrics]:
    """REINFORCE++ (Hu et al. 2025, "REINFORCE++: Stabilizing Critic-Free Policy Optimization with Global
    Normalization", eqs. 8-10): token rewards r_t = 1[t = last] r - beta KL_t with the k1 estimate
    KL_t = log pi_old(y_t) - log pi_ref(y_t); the advantage is the return to go (gamma = 1),
    A_t = r - beta sum_{s>=t} KL_s, whitened over all of the member's active tokens (global batch
    normalisation); loss: the token-level PPO-clipped surrogate, token-mean aggregation.
    [recon] beta's default 0.01 is OpenRLHF's example init_kl_coef, not read in the paper's tables."""
    t = _tokens(batch)
    to_go = (t.old - t.ref) * t.mask
    to_go = to_go.flip(-1).cumsum(-1).flip(-1)
    adv = whiten((batch.rewards.unsqueeze(-1) - beta * to_go) * t.mask, t.mask)
    return _surrogate_loss(batch, adv, level="token", epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                           delta=math.inf, beta=0.0, aggregation="token", t=t)


def reinforce_pp_baseline(batch: GroupBatch, beta: float = 0.001, epsilon_low: float = 0.2,
                          epsilon_high: float = 0.2) -> tuple[torch.Tensor, Metrics]:
    """REINFORCE++-baseline (Hu et al. 2025, the group-sampling variant; verl
    compute_reinforce_plus_plus_baseline_outcome_advantage): r_i <- r_i - beta sum_t KL_t (k1, KL in the
    reward), minus the group mean, then whitened over the member's active tokens; the token-level
    PPO-clipped surrogate, token mean. [recon] beta's default 0.001 (RLinf's reinpp_kl_beta), not read in
    the paper."""
    t = _tokens(batch)
    r = batch.rewards - beta * seq_sum(t.old - t.ref, t.mask)
    adv = whiten(group_advantages(r, "none").unsqueeze(-1) * t.mask, t.mask)
    return _surrogate_loss(batch, adv, level="token", epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                           delta=math.inf, beta=0.0, aggregation="token", t=t)


# ---------------------------------------------------------------- GRPO and its TRL variants
def grpo(batch: GroupBatch, beta: float = 0.04, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
         delta: float = math.inf, scale_rewards: str = "group", aggregation: str = "grpo",
         importance_sampling_level: str = "token", use_bias_correction_kl: bool = False
         ) -> tuple[torch.Tensor, Metrics]:
    """GRPO (Shao et al. 2024, "DeepSeekMath", eqs. 3 and 4, as TRL's GRPOTrainer._compute_loss):
    A_i = (r_i - mean_G r)/(std_G r + 1e-4) (scale_rewards "group"; "batch": the member's std; "none":
    no std); per token -min(rho_t A_i, clip(rho_t, 1-eps_low, 1+eps_high) A_i) + beta k3_t, with rho_t first
    capped at delta (INTELLECT-2's two-sided clip, inf = off) and, with use_bias_correction_kl, k3_t
    weighted by rho_t (DeepSeek-V3.2); aggregation "grpo" (token mean per completion, then mean).
    importance_sampling_level="sequence" is GSPO's ratio (see `gspo`); aggregation "token" is TRL's
    `dapo`/`bnpo` loss types (one batch), "dr_grpo" TRL's `dr_grpo`. Paper: eps 0.2, beta 0.04."""
    _check("importance_sampling_level", importance_sampling_level, ("token", "sequence"))
    adv = group_advantages(batch.rewards, scale_rewards)
    return _surrogate_loss(batch, adv, level=importance_sampling_level, epsilon_low=epsilon_low,
                           epsilon_high=epsilon_high, delta=delta, beta=beta, aggregation=aggregation,
                           use_bias_correction_kl=use_bias_correction_kl)


def dr_grpo(batch: GroupBatch, beta: float = 0.0, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
            delta: float = math.inf) -> tuple[torch.Tensor, Metrics]:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective", eq. 3):
    GRPO without the std (A_i = r_i - mean_G r) and without the per-completion length normalisation:
    token losses summed and divided by the constant Q*G*max_len. beta = 0 as the paper. TRL:
    loss_type="dr_grpo", scale_rewards="none"."""
    return grpo(batch, beta=beta, epsilon_low=epsilon_low, epsilon_high=epsilon_high, delta=delta,
                scale_rewards="none", aggregation="dr_grpo")


def dapo(batch: GroupBatch, beta: float = 0.0, epsilon_low: float = 0.2, epsilon_high: float = 0.28,
         delta: float = math.inf) -> tuple[torch.Tensor, Metrics]:
    """DAPO's loss (Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
    eq. 8): clip-higher (eps_low 0.2, eps_high 0.28), group-normalised advantages, token-level
    aggregation (sum over every token of the member's completions / their number), no KL (beta = 0).
    Dynamic sampling and the soft overlong punishment live in the group loop (`overlong_penalty`).
    TRL: loss_type="dapo"."""
    return grpo(batch, beta=beta, epsilon_low=epsilon_low, epsilon_high=epsilon_high, delta=delta,
                scale_rewards="group", aggregation="token")


def gspo(batch: GroupBatch, beta: float = 0.0, epsilon_low: float = 3e-4, epsilon_high: float = 4e-4,
         scale_rewards: str = "group") -> tuple[torch.Tensor, Metrics]:
    """GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", eqs. 5-7): the length-normalised
    sequence ratio s_i = exp(mean_t log rho_t) replaces the token ratio; per completion
    -min(s_i A_i, clip(s_i, 1-eps_low, 1+eps_high) A_i), mean over completions, group-normalised A.
    Clip range 3e-4 / 4e-4 (paper §5.1), beta = 0. TRL: importance_sampling_level="sequence",
    loss_type="grpo"."""
    return grpo(batch, beta=beta, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                scale_rewards=scale_rewards, aggregation="grpo", importance_sampling_level="sequence")


def sapo(batch: GroupBatch, tau_pos: float = 1.0, tau_neg: float = 1.05, beta: float = 0.0,
         scale_rewards: str = "group") -> tuple[torch.Tensor, Metrics]:
    """SAPO (Gao et al. 2025, "Soft Adaptive Policy Optimization"): the hard clip becomes a soft gate on
    the token ratio, f(rho) = sigma(tau (rho - 1)) 4/tau, tau = tau_pos if A > 0 else tau_neg; per token
    -f(rho_t) A_i (+ beta k3_t), token mean per completion then mean (TRL loss_type="sapo").
    df/drho = 4 sigma (1 - sigma) = 1 at rho = 1: on-policy SAPO is the plain policy gradient."""
    t = _tokens(batch)
    adv = group_advantages(batch.rewards, scale_rewards)
    a = adv.detach().unsqueeze(-1)
    ratio = _ratio(t, "token")
    tau = torch.where(a > 0, torch.full_like(a, tau_pos), torch.full_like(a, tau_neg))
    per_token = -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * a
    per_token = _with_kl(per_token, t, ratio, beta, False)
    loss = aggregate(per_token, t.mask, "grpo", batch.max_len)
    return _finish(loss, {**_base_metrics(batch, t), **_advantage_metrics(adv, t.mask)})


def cispo(batch: GroupBatch, epsilon_high: float = 5.0, beta: float = 0.0, scale_rewards: str = "group",
          aggregation: str = "token") -> tuple[torch.Tensor, Metrics]:
    """CISPO (MiniMax 2025, "MiniMax-M1", eq. 4; in the form of ScaleRL, Khatri et al. 2025): the ratio is
    clipped as a stop-gradient WEIGHT, per token -sg(min(rho_t, eps_high)) A_i log pi(y_t) (+ beta k3_t),
    so every token keeps its gradient. Choice: only the upper bound, eps_high = 5.0 as ScaleRL (MiniMax-M1
    also has a lower bound, which it leaves loose); TRL loss_type="cispo" (same form; token aggregation).
    Logs cispo_clip_ratio: the fraction of tokens with rho > eps_high and A > 0 (TRL's)."""
    _check("aggregation", aggregation, AGGREGATIONS)
    t = _tokens(batch)
    adv = group_advantages(batch.rewards, scale_rewards)
    a = adv.detach().unsqueeze(-1)
    ratio = _ratio(t, "token")
    per_token = -ratio.clamp(max=epsilon_high).detach() * a * t.logp
    per_token = _with_kl(per_token, t, ratio, beta, False)
    loss = aggregate(per_token, t.mask, aggregation, batch.max_len)
    metrics = {**_base_metrics(batch, t), **_advantage_metrics(adv, t.mask),
               "cispo_clip_ratio": _flag_mean((ratio > epsilon_high) & (a > 0), t.mask)}
    return _finish(loss, metrics)


# ---------------------------------------------------------------- BNPO (the paper's, not TRL's)
def beta_normalized_advantages(rewards: torch.Tensor, r_min: float = 0.0, r_max: float = 1.0) -> torch.Tensor:
    """BNPO's advantage (Xiao et al. 2025, "BNPO: Beta Normalization Policy Optimization"; changyi7231/BNPO
    compute_bnpo_outcome_advantage), per member: rewards rescaled to [0, 1] by (r - r_min)/(r_max - r_min);
    p_q = mean reward of prompt q's group (0 for a single completion, G = 1); across the member's Q
    prompts mu = mean p_q and s^2 = var p_q (unbiased); method of moments
    a = (mu (1-mu)/s^2 - 1) mu, b = (mu (1-mu)/s^2 - 1)(1 - mu); alpha = max(1 + a/3, 1),
    beta = max(1 + b/3, 1); A = (r - p_q) * clamp(1/f_Beta(p_q; alpha, beta), 0, 1e6).
    Deviation: with Q = 1 (the reference code sets s^2 = 1) or s^2 = 0 (the reference code fails) the fit
    is alpha = beta = 1 (uniform, weight 1)."""
    r = (rewards - r_min) / (r_max - r_min)
    if bool(((r < 0) | (r > 1)).any()):
        raise ValueError(f"bnpo needs rewards in [r_min, r_max] = [{r_min}, {r_max}]; set r_min / r_max")
    g = r.shape[-1]
    p = r.mean(-1) if g > 1 else torch.zeros_like(r[..., 0])         # (P,Q)
    q = p.shape[-1]
    mu = p.mean(-1, keepdim=True)
    var = ((p - mu) ** 2).sum(-1, keepdim=True) / max(q - 1, 1)
    fit = (q > 1) & (var > 0)
    k = torch.where(fit, mu * (1 - mu) / torch.where(fit, var, torch.ones_like(var)) - 1, torch.zeros_like(var))
    alpha = (1 + k * mu / 3).clamp(min=1)
    beta = (1 + k * (1 - mu) / 3).clamp(min=1)
    log_pdf = ((alpha - 1) * torch.log(p) + (beta - 1) * torch.log1p(-p)
               - (torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)))
    # x log x -> 0 at the ends: (alpha - 1) log 0 is 0 when alpha = 1, -inf (pdf 0, weight 1e6) otherwise
    log_pdf = torch.where(((p == 0) & (alpha == 1)) | ((p == 1) & (beta == 1)),
                          -(torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)), log_pdf)
    weight = torch.exp(-log_pdf).clamp(0, 1e6)
    return (weight.unsqueeze(-1) * (r - p.unsqueeze(-1))).detach()


def bnpo(batch: GroupBatch, epsilon_low: float = 0.2, epsilon_high: float = 0.28, delta: float = 10.0,
         beta: float = 0.0, r_min: float = 0.0, r_max: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """BNPO (Xiao et al. 2025): the Beta-normalised advantage (`beta_normalized_advantages`) in the
    token-level clipped surrogate, with the paper's run settings (changyi7231/BNPO recipe/bnpo/run.sh):
    clip 0.2 / 0.28, verl's dual clip c = 10 (delta: for A < 0 the same cap), no KL, aggregation
    seq-mean-token-sum ("seq_sum"). Not TRL's loss_type="bnpo" (an aggregation: `grpo(aggregation="token")`)."""
    adv = beta_normalized_advantages(batch.rewards, r_min, r_max)
    return _surrogate_loss(batch, adv, level="token", epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                           delta=delta, beta=beta, aggregation="seq_sum")


# ---------------------------------------------------------------- off-policy REINFORCE variants
def topr(batch: GroupBatch, c: float = 0.0) -> tuple[torch.Tensor, Metrics]:
    """TOPR (Le Roux et al. 2025, "Tapered Off-Policy REINFORCE", eq. 9), sequence level: with
    R = r - c and the sequence ratio w = pi(y)/pi_old(y),
    R >= 0: -R log pi(y) (no importance weight); R < 0: -sg(clip(w, 0, 1)) R log pi(y) (tapered);
    mean over completions. No KL term. The paper's rewards are +-1 with c = 0; with 0/1 rewards c = 0 keeps
    no negatives (SFT on the correct answers) and c = 0.5 is the paper's +-1 scaled by 1/2.
    Logs clip_ratio_low: the fraction of negative completions whose weight was tapered (w < 1)."""
    t = _tokens(batch)
    R = batch.rewards - c
    w = torch.exp(seq_sum(t.logp - t.old, t.mask)).detach()
    weight = torch.where(R >= 0, torch.ones_like(w), w.clamp(0, 1))
    loss = -(weight * R * seq_sum(t.logp, t.mask)).flatten(1).mean(1)
    neg = (R < 0).to(w.dtype)
    tapered = ((w < 1).to(w.dtype) * neg).flatten(1).sum(1) / neg.flatten(1).sum(1).clamp(min=1)
    return _finish(loss, {**_base_metrics(batch, t), **_advantage_metrics(R, t.mask), "clip_ratio_low": tapered})


def disco(batch: GroupBatch, delta: float = 1e-4, beta: float = 1e3, tau: float = 10.0, score: str = "logL",
          variant: str = "disco") -> tuple[torch.Tensor, Metrics]:
    """DisCO (Li et al. 2025, "DisCO: Reinforcing Large Reasoning Models with Discriminative Constrained
    Optimization"; Optimization-AI/DisCO code), binary rewards (positive: r > 0, negative: r <= 0):
    score s(y) = mean_t log pi(y_t) ("logL") or the likelihood ratio pi(y)/pi_old(y) ("Lratio", [recon]).
    Per prompt with at least one positive and one negative completion,
    J_q = mean_pos s(y+) - tau log mean_neg exp(s(y-)/tau)      (variant "disco", DRO over negatives)
    J_q = mean_pos s(y+) - mean_neg s(y-)                        (variant "disco_b", DisCO-b);
    the objective is sum_q J_q / Q (prompts without both kinds count 0, as the reference code). The trust
    region KL(pi_old || pi) <= delta is the squared hinge (beta/2) [KL - delta]_+^2, KL the token mean of
    exp(l - l_old) - (l - l_old) - 1; its gradient equals the reference code's sg(beta [KL - delta]_+) KL.
    Loss = -objective + penalty. Defaults delta 1e-4, beta 1e3, tau 10 (logL; the paper uses tau 1 with
    Lratio). The log-mean-exp is the true value (the reference code's value differs by a constant, its
    gradient is the same). Logs clip_ratio_region: 1 when KL > delta (the code's pg_clipfrac)."""
    _check("score", score, ("logL", "Lratio"))
    _check("variant", variant, ("disco", "disco_b"))
    t = _tokens(batch)
    if score == "logL":
        s = seq_sum(t.logp, t.mask) / t.n.clamp(min=1)
    else:
        s = torch.exp(seq_sum(t.logp - t.old, t.mask))
    pos = batch.rewards > 0
    neg = ~pos
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)                                # (P,Q)
    valid = (n_pos > 0) & (n_neg > 0)
    pos_mean = torch.where(pos, s, torch.zeros_like(s)).sum(-1) / n_pos.clamp(min=1)
    if variant == "disco":
        # a finite fill (not -inf): prompts without negatives keep a finite log-sum-exp and a 0 gradient
        z = torch.where(neg, s / tau, torch.full_like(s, torch.finfo(s.dtype).min))
        lse = torch.logsumexp(z, -1)
        neg_term = tau * (torch.where(valid, lse, torch.zeros_like(lse)) - torch.log(n_neg.clamp(min=1).to(s.dtype)))
    else:
        neg_term = torch.where(neg, s, torch.zeros_like(s)).sum(-1) / n_neg.clamp(min=1)
    objective = torch.where(valid, pos_mean - neg_term, torch.zeros_like(pos_mean)).mean(-1)
    log_rho = t.logp - t.old
    kl = token_mean(torch.exp(log_rho) - log_rho - 1, t.mask)
    penalty = 0.5 * beta * torch.relu(kl - delta) ** 2
    metrics = {**_base_metrics(batch, t), "clip_ratio_region": (kl > delta).to(kl.dtype)}
    return _finish(-objective + penalty, metrics)


REC_VARIANTS = ("two-side", "one-side", "ring", "none")
REC_WEIGHTS = ("none", "importance_sampling", "advantage")


def rec(batch: GroupBatch, epsilon_low: float = 0.2, epsilon_high: float = 0.2, epsilon_low_prime: float = 0.6,
        epsilon_high_prime: float = 2.0, variant: str = "one-side", weight: str = "none",
        temp: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """REC, the regularise-by-clipping family of group-relative REINFORCE (Yao et al. 2025, "Group-relative
    REINFORCE is secretly an off-policy algorithm"; Trinity-RFT rec_policy_loss): per token
    -A_i log pi(y_t) 1[rho_t in the region], A_i = r_i - mean_G r (no std), the ratio used as a MASK only
    (tokens outside get no gradient), token mean. Regions: "two-side" 1-eps_low <= rho <= 1+eps_high;
    "one-side" (default, REC-OneSide-NoIS) rho <= 1+eps_high for A >= 0, rho >= 1-eps_low for A <= 0;
    "ring" two-side plus the far ring rho <= 1-eps'_low (A >= 0) or rho >= 1+eps'_high (A <= 0); "none"
    keeps every token. weight: "none"; "importance_sampling" A sg(rho); "advantage" A exp(A/temp).
    Trinity defaults: eps 0.2 / 0.2, eps' 0.6 / 2. clip_ratio_*: fractions of tokens masked out."""
    _check("variant", variant, REC_VARIANTS)
    _check("weight", weight, REC_WEIGHTS)
    t = _tokens(batch)
    adv = group_advantages(batch.rewards, "none")
    a = adv.detach().unsqueeze(-1)
    rho = _ratio(t, "token").detach()
    inside = (rho >= 1 - epsilon_low) & (rho <= 1 + epsilon_high)
    if variant == "one-side":
        keep = ((rho <= 1 + epsilon_high) & (a >= 0)) | ((rho >= 1 - epsilon_low) & (a <= 0))
    elif variant == "ring":
        keep = inside | ((a >= 0) & (rho <= 1 - epsilon_low_prime)) | ((a <= 0) & (rho >= 1 + epsilon_high_prime))
    elif variant == "two-side":
        keep = inside
    else:
        keep = torch.ones_like(inside)
    if weight == "importance_sampling":
        a = a * rho
    elif weight == "advantage":
        a = a * torch.exp(a / temp)
    loss = token_mean(-a * t.logp * keep.to(t.logp.dtype), t.mask)
    out = ~keep
    metrics = {**_base_metrics(batch, t), **_advantage_metrics(adv, t.mask),
               "clip_ratio_low": _flag_mean(out & (rho < 1), t.mask),
               "clip_ratio_high": _flag_mean(out & (rho > 1), t.mask),
               "clip_ratio_region": _flag_mean(out, t.mask)}
    return _finish(loss, metrics)


def opmd(batch: GroupBatch, tau: float = 1.0, form: str = "k2") -> tuple[torch.Tensor, Metrics]:
    """OPMD, the REP family's mirror-descent member (Yao et al. 2025; Kimi k1.5's OPMD-style update;
    Trinity-RFT opmd_policy_loss and the REC "k2" regulariser): A_i = r_i - mean_G r;
    "k2": per token -A_i log pi(y_t) + tau (log pi(y_t) - log pi_old(y_t))^2, token mean (the 1/2 of the
    squared term absorbed into tau, as Trinity); "scaled": Trinity's plain OPMD, token-mean(-A log pi)/(1+tau).
    Trinity default tau = 1. On-policy the k2 term has zero gradient: it acts only off-policy."""
    _check("form", form, ("k2", "scaled"))
    t = _tokens(batch)
    adv = group_advantages(batch.rewards, "none")
    a = adv.detach().unsqueeze(-1)
    if form == "k2":
        loss = token_mean(-a * t.logp + tau * (t.logp - t.old) ** 2, t.mask)
    else:
        loss = token_mean(-a * t.logp, t.mask) / (1 + tau)
    return _finish(loss, {**_base_metrics(batch, t), **_advantage_metrics(adv, t.mask)})


def asymre(batch: GroupBatch, tau: float = 0.1) -> tuple[torch.Tensor, Metrics]:
    """AsymRE (Arnal et al. 2025, "Asymmetric REINFORCE for off-Policy Reinforcement Learning"; the REP
    family of Yao et al. 2025): the baseline lowered by tau, A_i = r_i - (mean_G r - tau), i.e.
    -A log pi - tau log pi (an additive -tau log pi term); per token -A_i log pi(y_t), token mean.
    tau = 0.1 (Trinity-RFT's baseline_shift -0.1)."""
    t = _tokens(batch)
    adv = group_advantages(batch.rewards, "none") + tau
    loss = token_mean(-adv.detach().unsqueeze(-1) * t.logp, t.mask)
    return _finish(loss, {**_base_metrics(batch, t), **_advantage_metrics(adv, t.mask)})


def copg(batch: GroupBatch, beta: float = 0.1) -> tuple[torch.Tensor, Metrics]:
    """[recon] CoPG (Flet-Berliac et al. 2024, "Contrastive Policy Gradient: Aligning LLMs on sequence-level
    scores in a supervised-friendly fashion"), least-squares form over the pairs of each group: for every
    pair i < j of a prompt's G completions, (1/(2 beta)) [(r_i - r_j) - beta (h(y_i) - h(y_j))]^2 with
    h(y) = log pi(y) - log pi_ref(y) (sequence sums); its gradient is -(R~_i - R~_j)(grad log pi(y_i) -
    grad log pi(y_j)), R~ = r - beta h: the paper's contrastive policy gradient, no importance ratio.
    Mean over the member's Q G (G-1)/2 pairs. beta's default 0.1 is not checked against the paper."""
    g = batch.rewards.shape[-1]
    if g < 2:
        raise ValueError(f"copg contrasts completions of the same prompt: it needs G >= 2, got G = {g}")
    t = _tokens(batch)
    h = seq_sum(t.logp - t.ref, t.mask)
    d_r = batch.rewards.unsqueeze(-1) - batch.rewards.unsqueeze(-2)         # (P,Q,G,G)
    d_h = h.unsqueeze(-1) - h.unsqueeze(-2)
    upper = torch.ones(g, g, dtype=torch.bool, device=h.device).triu(1)
    pair = ((d_r - beta * d_h) ** 2 / (2 * beta))[..., upper]              # (P,Q,G(G-1)/2)
    return _finish(pair.flatten(1).mean(1), _base_metrics(batch, t))


GROUP_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, Metrics]]] = {
    "reinforce": reinforce, "remax": remax, "rloo": rloo,
    "reinforce_pp": reinforce_pp, "reinforce_pp_baseline": reinforce_pp_baseline,
    "grpo": grpo, "dr_grpo": dr_grpo, "dapo": dapo, "gspo": gspo, "sapo": sapo, "cispo": cispo,
    "bnpo": bnpo, "topr": topr, "disco": disco, "rec": rec, "opmd": opmd, "asymre": asymre, "copg": copg,
}
