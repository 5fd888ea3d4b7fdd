"""Preference-optimisation losses as pure functions of per-token log-probs (specs/llm_track.md §1.A).

Interface shared by every pairwise method:
    loss_fn(batch: PairBatch, **hyperparameters) -> (loss (B,), metrics {name: (B,) tensor})
`batch` holds per-token log-probs of the chosen (w) and rejected (l) responses under the policy and
the reference, with masks (1 on response tokens, 0 on padding); the loss is per pair, so the caller
chooses the reduction (a mean over the batch). Notation of the spec §1.0: h(y) = sum_t [log pi(y_t)
- log pi_ref(y_t)], Delta = h(y_w) - h(y_l), |y| = number of response tokens, avg(y) = log pi(y)/|y|.
Every loss reads masked tokens only: whatever sits under a 0 of the mask never changes a result.

`LOSSES` maps each method's name (as in its paper, never TRL's clashing names: spec §2.2 and §5.2)
to its function. Hyper-parameters keep the papers' symbols: beta (KL strength), tau (IPO), gamma
(RSO's hinge scale, SimPO's margin), delta and lam (SLiC-HF), alpha (the method's own mixing
coefficient), epsilon (label-noise rate / smoothing). Methods marked [recon] follow the spec's
reconstruction of the paper, not a reference implementation.

`ONLINE_LOSSES` holds the online and game-theoretic losses of §1.B (XPO, Nash-MD, INPO, DNO, APO,
SPPO), which also read the iterate pi_t's log-probs, which sample came first and the oracle
preference (optional PairBatch fields), or, for SPPO, a `GroupBatch`; `ALL_LOSSES` is both.

Metrics: `chosen_reward` and `rejected_reward` are each method's implicit reward as its paper logs
it (beta*h for the DPO family, beta*avg for SimPO, beta*(h + SeqKL) for TDPO, ...); methods with an
extra likelihood term also return it (`nll`, `odds_ratio`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Metrics = dict[str, torch.Tensor]


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
    chosen_token_reward: torch.Tensor | None = None    # (B, T) token reward r_t, no gradient (TGDPO)
    rejected_token_reward: torch.Tensor | None = None
    # online and game-theoretic methods (§1.B):
    snapshot_logps_w: torch.Tensor | None = None         # (B, T) log pi_t, the frozen iterate, no gradient
    snapshot_logps_l: torch.Tensor | None = None
    previous_logps_w: torch.Tensor | None = None         # (B, T) log pi_{t-1}, the iterate before it (APO)
    previous_logps_l: torch.Tensor | None = None
    first_won: torch.Tensor | None = None                # (B,) bool: the first sample won (chosen), the second lost
    preference: torch.Tensor | None = None               # (B,) P(chosen > rejected), the true preference


# ---------------------------------------------------------------- shared pieces
def seq(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence log-prob sum_t m_t log p_t over response tokens (m: the mask, or token weights), (B,).
    Entries under a 0 of the mask are dropped, not multiplied, so padding holding inf or nan is harmless."""
    return (torch.where(mask != 0, logps, 0.0) * mask).sum(-1)


def length(mask: torch.Tensor) -> torch.Tensor:
    """|y|, the number of response tokens (at least 1, so empty responses divide safely), (B,)."""
    return mask.sum(-1).clamp(min=1)


def avg(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Length-normalised log-prob log p(y)/|y|, (B,)."""
    return seq(logps, mask) / length(mask)


def log_ratios(b: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(h(y_w), h(y_l)): sequence log-ratios policy vs reference."""
    return (seq(b.chosen_logps - b.ref_chosen_logps, b.chosen_mask),
            seq(b.rejected_logps - b.ref_rejected_logps, b.rejected_mask))


def nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood of one response, -log p(y)/|y|, (B,)."""
    return -avg(logps, mask)


def logistic(z: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """-(1-eps) log sigma(z) - eps log sigma(-z): the logistic loss, label-smoothed when eps > 0."""
    loss = -F.logsigmoid(z)
    return loss if epsilon == 0.0 else (1 - epsilon) * loss - epsilon * F.logsigmoid(-z)


def _rewards(r_w: torch.Tensor, r_l: torch.Tensor, **extra: torch.Tensor) -> Metrics:
    out = {"chosen_reward": r_w.detach(), "rejected_reward": r_l.detach()}
    out.update({k: v.detach() for k, v in extra.items()})
    return out


# ---------------------------------------------------------------- DPO and label noise
def dpo(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """DPO (Rafailov et al. 2023, eq. 7): -log sigma(beta Delta); implicit rewards beta h(y)."""
    h_w, h_l = log_ratios(batch)
    return logistic(beta * (h_w - h_l)), _rewards(beta * h_w, beta * h_l)


def cdpo(batch: PairBatch, beta: float, epsilon: float) -> tuple[torch.Tensor, Metrics]:
    """Conservative DPO (Mitchell 2023, "A note on DPO with noisy preferences"; label smoothing):
    -(1-eps) log sigma(beta Delta) - eps log sigma(-beta Delta). Older TRL: `sigmoid` with
    `label_smoothing`; in trl 1.16 DPOTrainer's `sigmoid` ignores `label_smoothing` (no counterpart)."""
    h_w, h_l = log_ratios(batch)
    return logistic(beta * (h_w - h_l), epsilon), _rewards(beta * h_w, beta * h_l)


def robust_dpo(batch: PairBatch, beta: float, epsilon: float) -> tuple[torch.Tensor, Metrics]:
    """Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO"): the unbiased loss under label
    flips with rate eps in [0, 0.5): [(1-eps) l(Delta) - eps l(-Delta)] / (1 - 2 eps), l(z) = -log sigma(beta z).
    TRL: `robust`."""
    if not 0.0 <= epsilon < 0.5:
        raise ValueError(f"robust_dpo needs epsilon in [0, 0.5), got {epsilon}")
    h_w, h_l = log_ratios(batch)
    z = beta * (h_w - h_l)
    loss = ((1 - epsilon) * -F.logsigmoid(z) - epsilon * -F.logsigmoid(-z)) / (1 - 2 * epsilon)
    return loss, _rewards(beta * h_w, beta * h_l)


# ---------------------------------------------------------------- squared and hinge losses
def ipo_seq(batch: PairBatch, tau: float) -> tuple[torch.Tensor, Metrics]:
    """IPO (Azar et al. 2024, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", eq. 17) as the equation is written: (Delta - 1/(2 tau))^2, whole-sequence log-ratios."""
    h_w, h_l = log_ratios(batch)
    return (h_w - h_l - 1 / (2 * tau)) ** 2, _rewards(tau * h_w, tau * h_l)


def ipo_tok(batch: PairBatch, tau: float) -> tuple[torch.Tensor, Metrics]:
    """IPO, token-averaged: (h(y_w)/|y_w| - h(y_l)/|y_l| - 1/(2 tau))^2. TRL's `ipo` (its code comment:
    the IPO authors confirmed the paper's results used this normalised form)."""
    h_w, h_l = log_ratios(batch)
    h_w, h_l = h_w / length(batch.chosen_mask), h_l / length(batch.rejected_mask)
    return (h_w - h_l - 1 / (2 * tau)) ** 2, _rewards(tau * h_w, tau * h_l)


ipo = ipo_seq   # `ipo` = the paper's eq. 17 as written (sequence log-ratios); `ipo_tok` is TRL's choice.


def slic(batch: PairBatch, delta: float = 1.0, lam: float = 0.0) -> tuple[torch.Tensor, Metrics]:
    """SLiC-HF (Zhao et al. 2023, the calibration loss with its regulariser), no reference model:
    max(0, delta - log pi(y_w) + log pi(y_l)) - lam log pi(y_ref), where y_ref is the SFT target: the gold
    response when the batch has one, else the chosen response. Sequence (summed) log-probs."""
    lp_w, lp_l = seq(batch.chosen_logps, batch.chosen_mask), seq(batch.rejected_logps, batch.rejected_mask)
    loss = torch.relu(delta - lp_w + lp_l)
    target = seq(batch.gold_logps, batch.gold_mask) if batch.gold_logps is not None else lp_w
    if lam:
        loss = loss - lam * target
    return loss, _rewards(lp_w, lp_l, nll=-target)


def rso(batch: PairBatch, gamma: float, variant: str = "hinge") -> tuple[torch.Tensor, Metrics]:
    """RSO's loss step (Liu et al. 2024, "Statistical Rejection Sampling Improves Preference
    Optimization"): hinge-norm max(0, 1 - gamma Delta) (TRL: `hinge`), or sigmoid-norm
    -log sigma(gamma Delta) (= DPO). The rejection sampler that makes RSO's data lives with the data."""
    h_w, h_l = log_ratios(batch)
    z = gamma * (h_w - h_l)
    if variant not in ("hinge", "sigmoid"):
        raise ValueError(f"rso variant must be 'hinge' or 'sigmoid', got {variant!r}")
    return (torch.relu(1 - z) if variant == "hinge" else logistic(z)), _rewards(gamma * h_w, gamma * h_l)


# ---------------------------------------------------------------- f-divergences
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js", "alpha")


def f_score(h: torch.Tensor, divergence: str, alpha: float = 0.5) -> torch.Tensor:
    """psi(h) = f'(u), u = pi/pi_ref = exp(h), for f-DPO (constants kept as TRL >= 0.29 writes them):
    reverse KL h; forward KL 1 - exp(-h); JS log 2 + log sigma(h); alpha-divergence
    (exp((alpha-1) h) - 1)/(alpha-1), which tends to h as alpha -> 1 (TRL >= 0.29 convention; TRL <= 0.28
    and the paper's (1 - u^-a)/a are the same score with a = 1 - alpha)."""
    if divergence == "reverse_kl" or (divergence == "alpha" and abs(alpha - 1.0) < 1e-6):
        return h
    if divergence == "forward_kl":
        return 1 - torch.exp(-h)
    if divergence == "js":
        return math.log(2) + F.logsigmoid(h)
    if divergence == "alpha":
        return torch.expm1((alpha - 1) * h) / (alpha - 1)
    raise ValueError(f"f-DPO divergence must be one of {F_DIVERGENCES}, got {divergence!r}")


def f_dpo(batch: PairBatch, beta: float, divergence: str = "reverse_kl",
          alpha: float = 0.5) -> tuple[torch.Tensor, Metrics]:
    """f-DPO (Wang et al. 2024, "Beyond Reverse KL: Generalizing Direct Preference Optimization with
    Diverse Divergence Constraints", Table 1 / its DPO-form loss): -log sigma(beta [psi(h_w) - psi(h_l)]), psi = f'
    (see `f_score`). Reverse KL is DPO. TRL: `f_divergence_type` / `f_alpha_divergence_coef`."""
    h_w, h_l = log_ratios(batch)
    s_w, s_l = f_score(h_w, divergence, alpha), f_score(h_l, divergence, alpha)
    return logistic(beta * (s_w - s_l)), _rewards(beta * h_w, beta * h_l)


# ---------------------------------------------------------------- length
def simpo(batch: PairBatch, beta: float, gamma: float, epsilon: float = 0.0) -> tuple[torch.Tensor, Metrics]:
    """SimPO (Meng et al. 2024, eq. 6), no reference: -log sigma(beta [avg(y_w) - avg(y_l)] - gamma),
    label-smoothed when epsilon > 0 (as TRL's CPOTrainer `simpo`). Rewards beta*avg(y)."""
    r_w = beta * avg(batch.chosen_logps, batch.chosen_mask)
    r_l = beta * avg(batch.rejected_logps, batch.rejected_mask)
    return logistic(r_w - r_l - gamma, epsilon), _rewards(r_w, r_l)


def ln_dpo(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """Length-normalised DPO (Tulu 3, Lambert et al. 2024, "length-normalized DPO"):
    -log sigma(beta [h(y_w)/|y_w| - h(y_l)/|y_l|]). TRL: `sigmoid_norm`."""
    h_w, h_l = log_ratios(batch)
    r_w, r_l = beta * h_w / length(batch.chosen_mask), beta * h_l / length(batch.rejected_mask)
    return logistic(r_w - r_l), _rewards(r_w, r_l)


def ld_weights(mask: torch.Tensor, other_mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """LD-DPO token weights: 1 on the first l_p = min(|y_w|, |y_l|) response tokens, alpha on the tail
    of the longer response, 0 on padding. Positions count response tokens (cumsum of the mask), so
    left padding and prompt tokens under a 0 of the mask are fine."""
    l_p = torch.minimum(mask.sum(-1), other_mask.sum(-1)).unsqueeze(-1)
    pos = mask.cumsum(-1)
    return torch.where(pos <= l_p, mask, alpha * mask)


def ld_dpo(batch: PairBatch, beta: float, alpha: float = 0.5) -> tuple[torch.Tensor, Metrics]:
    """LD-DPO (Liu et al. 2024, "Length Desensitization in Direct Preference Optimization"):
    DPO on log-probs whose tokens past l_p = min(|y_w|, |y_l|) count alpha times, for policy and
    reference alike. alpha = 1 is DPO. TRL: `ld_alpha`."""
    m_w = ld_weights(batch.chosen_mask, batch.rejected_mask, alpha)
    m_l = ld_weights(batch.rejected_mask, batch.chosen_mask, alpha)
    h_w = seq(batch.chosen_logps - batch.ref_chosen_logps, m_w)
    h_l = seq(batch.rejected_logps - batch.ref_rejected_logps, m_l)
    return logistic(beta * (h_w - h_l)), _rewards(beta * h_w, beta * h_l)


# ---------------------------------------------------------------- token-level and triple
def tdpo(batch: PairBatch, beta: float, alpha: float = 0.5, variant: int = 2) -> tuple[torch.Tensor, Metrics]:
    """TDPO (Zeng et al. 2024, "Token-level Direct Preference Optimization"), with
    SeqKL(y) = sum_t KL(pi_ref(.|x,y_<t) || pi(.|x,y_<t)) from `*_token_kl` (which must carry the
    policy's gradient):
    TDPO1: -log sigma(beta [Delta + SeqKL(y_w) - SeqKL(y_l)]);
    TDPO2: -log sigma(beta [Delta + alpha (sg(SeqKL(y_w)) - SeqKL(y_l))]) (the paper's default).
    Rewards beta (h + SeqKL) as the reference code logs them."""
    if batch.chosen_token_kl is None or batch.rejected_token_kl is None:
        raise ValueError("tdpo needs chosen_token_kl and rejected_token_kl in the PairBatch")
    h_w, h_l = log_ratios(batch)
    kl_w, kl_l = seq(batch.chosen_token_kl, batch.chosen_mask), seq(batch.rejected_token_kl, batch.rejected_mask)
    if variant == 1:
        z = h_w - h_l + kl_w - kl_l
    elif variant == 2:
        z = h_w - h_l + alpha * (kl_w.detach() - kl_l)
    else:
        raise ValueError(f"tdpo variant must be 1 or 2, got {variant}")
    return logistic(beta * z), _rewards(beta * (h_w + kl_w), beta * (h_l + kl_l))


def tgdpo(batch: PairBatch, beta: float, alpha: float = 0.5) -> tuple[torch.Tensor, Metrics]:
    """TGDPO (Zhu et al. 2025, "TGDPO: Harnessing Token-Level Reward Guidance for Enhancing Direct
    Preference Optimization"): each token's log-ratio gets its own strength,
    -log sigma(sum_t beta (1 + alpha beta r^w_t) h^w_t - sum_t beta (1 - alpha beta r^l_t) h^l_t),
    r_t from `*_token_reward` (no gradient): in the paper r_t = log pi_rm(y_t) - log pi_ref(y_t) of a
    DPO-trained model; on the toy tasks also the true token reward (an oracle ablation)."""
    if batch.chosen_token_reward is None or batch.rejected_token_reward is None:
        raise ValueError("tgdpo needs chosen_token_reward and rejected_token_reward in the PairBatch")
    r_tok_w = torch.where(batch.chosen_mask != 0, batch.chosen_token_reward.detach(), 0.0)
    r_tok_l = torch.where(batch.rejected_mask != 0, batch.rejected_token_reward.detach(), 0.0)
    w_w, w_l = beta * (1 + alpha * beta * r_tok_w), beta * (1 - alpha * beta * r_tok_l)
    r_w = seq(w_w * (batch.chosen_logps - batch.ref_chosen_logps), batch.chosen_mask)
    r_l = seq(w_l * (batch.rejected_logps - batch.ref_rejected_logps), batch.rejected_mask)
    return logistic(r_w - r_l), _rewards(r_w, r_l)


def _gold_nll(batch: PairBatch, name: str) -> torch.Tensor:
    if batch.gold_logps is None or batch.gold_mask is None:
        raise ValueError(f"{name} needs gold_logps and gold_mask in the PairBatch")
    return nll(batch.gold_logps, batch.gold_mask)


def tpo(batch: PairBatch, beta: float, alpha: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """TPO (Saeidi et al. 2024, "Triple Preference Optimization"), no reference model:
    -log sigma(beta [log pi(y_w) - log pi(y_l)]) + alpha NLL(y_gold), NLL a token mean over the gold
    response. alpha = 0 drops the gold term."""
    r_w = beta * seq(batch.chosen_logps, batch.chosen_mask)
    r_l = beta * seq(batch.rejected_logps, batch.rejected_mask)
    gold = _gold_nll(batch, "tpo") if alpha else torch.zeros_like(r_w)
    return logistic(r_w - r_l) + alpha * gold, _rewards(r_w, r_l, nll=gold)


def tpo_l(batch: PairBatch, beta: float, gamma: float, alpha: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """TPO-L (Saeidi et al. 2024, length-normalised TPO): -log sigma(beta [avg(y_w) - avg(y_l)] - gamma)
    + alpha NLL(y_gold). TRL: TPOTrainer `tpo-l` with `tpo_l_gamma`."""
    r_w = beta * avg(batch.chosen_logps, batch.chosen_mask)
    r_l = beta * avg(batch.rejected_logps, batch.rejected_mask)
    gold = _gold_nll(batch, "tpo_l") if alpha else torch.zeros_like(r_w)
    return logistic(r_w - r_l - gamma) + alpha * gold, _rewards(r_w, r_l, nll=gold)


# ---------------------------------------------------------------- likelihood (SFT) terms
def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -log 2."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo(batch: PairBatch, lam: float) -> tuple[torch.Tensor, Metrics]:
    """ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model":
    L_SFT + lam L_OR), no reference: NLL(y_w) - lam log sigma(log odds(y_w) - log odds(y_l)), with
    odds(y) = P/(1-P) and P = exp(avg(y)) (length-normalised likelihood), NLL a token mean.
    TRL: ORPOTrainer `beta` = lam (its NLL is a token mean over the whole batch; equal for equal lengths)."""
    a_w, a_l = avg(batch.chosen_logps, batch.chosen_mask), avg(batch.rejected_logps, batch.rejected_mask)
    log_odds = (a_w - a_l) - (log1mexp(a_w) - log1mexp(a_l))
    odds_ratio = F.logsigmoid(log_odds)
    loss_sft = -a_w
    return loss_sft - lam * odds_ratio, _rewards(lam * a_w, lam * a_l, nll=loss_sft, odds_ratio=odds_ratio)


def rpo(batch: PairBatch, beta: float, alpha: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """RPO / DPO+NLL (Pang et al. 2024, "Iterative Reasoning Preference Optimization"; the
    "SFT-DPO" remedy of Yan et al. 2025, 3D-properties): -log sigma(beta Delta) + alpha NLL(y_w).
    Deviation: the NLL is a token mean over the response (the paper divides by |x| + |y_w|).
    TRL: loss_type ["sigmoid", "sft"], loss_weights [1, alpha] (TRL's sft term is a token mean over the
    whole batch: equal when chosen lengths are equal)."""
    h_w, h_l = log_ratios(batch)
    loss_nll = nll(batch.chosen_logps, batch.chosen_mask)
    return logistic(beta * (h_w - h_l)) + alpha * loss_nll, _rewards(beta * h_w, beta * h_l, nll=loss_nll)


# ---------------------------------------------------------------- other seed methods (TRL's DPO loss list)
def exo_pair(batch: PairBatch, beta: float, epsilon: float = 1e-3) -> tuple[torch.Tensor, Metrics]:
    """EXO, pairwise (Ji et al. 2024, "Towards Efficient Exact Optimization of Language Model
    Alignment", eq. 16): KL(q || p) between q = softmax over {w, l} of beta h, i.e. (sigma(beta Delta),
    sigma(-beta Delta)), and the label distribution p = (1-eps, eps), eps > 0. TRL: `exo_pair`."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"exo_pair needs epsilon in (0, 1), got {epsilon}")
    h_w, h_l = log_ratios(batch)
    z = beta * (h_w - h_l)
    log_q_w, log_q_l = F.logsigmoid(z), F.logsigmoid(-z)
    loss = log_q_w.exp() * (log_q_w - math.log1p(-epsilon)) + log_q_l.exp() * (log_q_l - math.log(epsilon))
    return loss, _rewards(beta * h_w, beta * h_l)


def nca_pair(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """NCA, pairwise (Chen et al. 2024, "Noise Contrastive Alignment of Language Models with Explicit
    Rewards", the pairwise K = 2 case): -log sigma(r_w) - 1/2 log sigma(-r_w) - 1/2 log sigma(-r_l), r = beta h.
    TRL: `nca_pair`."""
    h_w, h_l = log_ratios(batch)
    r_w, r_l = beta * h_w, beta * h_l
    return -F.logsigmoid(r_w) - 0.5 * F.logsigmoid(-r_w) - 0.5 * F.logsigmoid(-r_l), _rewards(r_w, r_l)


def bco_pair(batch: PairBatch, beta: float, delta: float = 0.0) -> tuple[torch.Tensor, Metrics]:
    """BCO on pairs (Jung et al. 2024, "Binary Classifier Optimization for Large Language Model
    Alignment"): -log sigma(r_w - delta) - log sigma(-(r_l - delta)), r = beta h, delta the
    reward shift (the paper: a running mean of the rewards, kept by the caller). TRL `bco_pair` is delta = 0."""
    h_w, h_l = log_ratios(batch)
    r_w, r_l = beta * h_w, beta * h_l
    return -F.logsigmoid(r_w - delta) - F.logsigmoid(-(r_l - delta)), _rewards(r_w, r_l)


def sppo_hard(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """SPPO with hard win probabilities (Wu et al. 2024, "Self-Play Preference Optimization", eq. 4.7
    with P(y_w > others) = 1, P(y_l > others) = 0, eta = 1/beta): (h_w - 1/(2 beta))^2 + (h_l + 1/(2 beta))^2.
    TRL: `sppo_hard`."""
    h_w, h_l = log_ratios(batch)
    return (h_w - 0.5 / beta) ** 2 + (h_l + 0.5 / beta) ** 2, _rewards(beta * h_w, beta * h_l)


def aot(batch: PairBatch, beta: float, epsilon: float = 0.0) -> tuple[torch.Tensor, Metrics]:
    """AOT, paired (Melnyk et al. 2024, "Distributional Preference Alignment of LLMs via Optimal
    Transport"): the logistic loss on sorted[log pi(y_w) - log pi(y_l)] - sorted[same for pi_ref],
    sorted across the batch. Entry i of the loss is the i-th order statistic, not pair i. TRL: `aot`."""
    lr = seq(batch.chosen_logps, batch.chosen_mask) - seq(batch.rejected_logps, batch.rejected_mask)
    ref = seq(batch.ref_chosen_logps, batch.chosen_mask) - seq(batch.ref_rejected_logps, batch.rejected_mask)
    z = beta * (torch.sort(lr, dim=0).values - torch.sort(ref, dim=0).values)
    h_w, h_l = log_ratios(batch)
    return logistic(z, epsilon), _rewards(beta * h_w, beta * h_l)


def aot_unpaired(batch: PairBatch, beta: float, epsilon: float = 0.0) -> tuple[torch.Tensor, Metrics]:
    """AOT, unpaired (Melnyk et al. 2024): the logistic loss on sorted(h_w) - sorted(h_l) across the
    batch (first-order stochastic dominance of chosen over rejected rewards). TRL: `aot_unpaired`."""
    h_w, h_l = log_ratios(batch)
    z = beta * (torch.sort(h_w, dim=0).values - torch.sort(h_l, dim=0).values)
    return logistic(z, epsilon), _rewards(beta * h_w, beta * h_l)


def apo_anchored_zero(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """APO-zero, *Anchored* Preference Optimization (D'Oosterlinck et al. 2024, eq. 7; not Accelerated
    PO): [1 - sigma(beta h_w)] + sigma(beta h_l): raise chosen, lower rejected. TRL: `apo_zero`."""
    h_w, h_l = log_ratios(batch)
    return 1 - torch.sigmoid(beta * h_w) + torch.sigmoid(beta * h_l), _rewards(beta * h_w, beta * h_l)


def apo_anchored_down(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """APO-down, Anchored PO (D'Oosterlinck et al. 2024, eq. 8): sigma(beta h_w) + [1 - sigma(beta Delta)]:
    lower both, rejected more. TRL: `apo_down`."""
    h_w, h_l = log_ratios(batch)
    loss = torch.sigmoid(beta * h_w) + 1 - torch.sigmoid(beta * (h_w - h_l))
    return loss, _rewards(beta * h_w, beta * h_l)


def discopop(batch: PairBatch, beta: float, tau: float = 0.05) -> tuple[torch.Tensor, Metrics]:
    """DiscoPOP / log-ratio modulated loss (Chris Lu et al. 2024, "Discovering Preference Optimization
    Algorithms with and for Large Language Models", eq. 5): with z = beta Delta and gate g = sigma(z/tau),
    (1 - g) (-log sigma(z)) + g exp(-z). TRL: `discopop`, `discopop_tau`."""
    h_w, h_l = log_ratios(batch)
    z = beta * (h_w - h_l)
    g = torch.sigmoid(z / tau)
    return (1 - g) * -F.logsigmoid(z) + g * torch.exp(-z), _rewards(beta * h_w, beta * h_l)


def flex_dpo(batch: PairBatch, beta_chosen: float, beta_rejected: float) -> tuple[torch.Tensor, Metrics]:
    """[recon] Flex-DPO (Yan et al. 2025, "3D-Properties: Identifying Challenges in DPO and Charting a
    Path Forward"), as the spec §1.A reconstructs it: separate KL strengths for chosen and rejected,
    -log sigma(beta_chosen h_w - beta_rejected h_l). Equal betas give DPO. Check against the paper."""
    h_w, h_l = log_ratios(batch)
    r_w, r_l = beta_chosen * h_w, beta_rejected * h_l
    return logistic(r_w - r_l), _rewards(r_w, r_l)


# ---------------------------------------------------------------- online and game-theoretic (§1.B)
def _need(batch, name: str, *fields: str) -> None:
    missing = [f for f in fields if getattr(batch, f) is None]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)} in the {type(batch).__name__}")


def _first_second(batch: PairBatch):
    """(log pi, log pi_ref, mask) per token of the first sample y and the second y', and P(y > y')."""
    first = batch.first_won[:, None]
    pick = lambda a, b: (torch.where(first, a, b), torch.where(first, b, a))   # noqa: E731
    (lp, lp2), (ref, ref2), (m, m2) = (pick(batch.chosen_logps, batch.rejected_logps),
                                       pick(batch.ref_chosen_logps, batch.ref_rejected_logps),
                                       pick(batch.chosen_mask, batch.rejected_mask))
    p_first = None if batch.preference is None else torch.where(batch.first_won, batch.preference,
                                                                 1 - batch.preference)
    return (lp, ref, m), (lp2, ref2, m2), p_first


def xpo(batch: PairBatch, beta: float, alpha: float) -> tuple[torch.Tensor, Metrics]:
    """XPO (Xie et al. 2024, "Exploratory Preference Optimization", Alg. 1): on a pair (y ~ pi_theta,
    y' ~ pi_ref) labelled by the annotator, DPO plus the exploration term alpha log pi_theta(y'):
    -log sigma(beta Delta) + alpha log pi(y'), y' the second (reference) sample (`first_won`).
    Minimising it lowers the likelihood of reference samples (optimism). TRL: XPOTrainer, `alpha`."""
    _need(batch, "xpo", "first_won")
    h_w, h_l = log_ratios(batch)
    (_, _, _), (lp_ref_sample, _, m_ref_sample), _ = _first_second(batch)
    bonus = seq(lp_ref_sample, m_ref_sample)
    return logistic(beta * (h_w - h_l)) + alpha * bonus, _rewards(beta * h_w, beta * h_l, exploration=bonus)


def nash_md(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """Nash-MD, TRL's practical loss (Munos et al. 2024, "Nash Learning from Human Feedback"; TRL
    NashMDTrainer `_compute_losses`): y ~ pi_theta (the first sample), y' ~ the logit mixture of pi_theta
    and pi_ref (the second), p = P(y > y') from the preference model;
    beta sum_t sg(log pi(y_t) - log pi_ref(y_t)) log pi(y_t) - (p - 1/2) log pi(y):
    REINFORCE with 1/2 as control variate, plus the KL(pi || pi_ref) gradient estimated by REINFORCE.
    Metrics: the sample's log-ratio `kl` and `probability` p."""
    _need(batch, "nash_md", "first_won", "preference")
    (lp, ref, m), _, p = _first_second(batch)
    kl_loss = seq((lp - ref).detach() * lp, m)
    score = (p - 0.5) * seq(lp, m)
    return beta * kl_loss - score, {"kl": seq(lp - ref, m).detach(), "probability": p.detach(),
                                    "score": score.detach()}


def inpo(batch: PairBatch, eta: float, tau: float) -> tuple[torch.Tensor, Metrics]:
    """[recon] INPO (Zhang et al. 2024, "Iterative Nash Policy Optimization: Aligning LLMs with General
    Preferences via No-Regret Learning"), the spec's reconstruction: on pairs from pi_t labelled by the
    annotator, (log pi(y_w)/pi(y_l) - eta tau log pi_ref(y_w)/pi_ref(y_l) - (1 - eta tau) log
    pi_t(y_w)/pi_t(y_l) - eta/2)^2, whose minimiser is the mirror-descent step pi_{t+1} ∝
    pi_t^(1-eta tau) pi_ref^(eta tau) exp(eta P(y > pi_t)). Computed from the log-ratios to pi_ref,
    h = log pi/pi_ref and k = log pi_t/pi_ref: ((h_w - h_l) - (1 - eta tau)(k_w - k_l) - eta/2)^2."""
    _need(batch, "inpo", "snapshot_logps_w", "snapshot_logps_l")
    h_w, h_l = log_ratios(batch)
    k_w = seq(batch.snapshot_logps_w - batch.ref_chosen_logps, batch.chosen_mask)
    k_l = seq(batch.snapshot_logps_l - batch.ref_rejected_logps, batch.rejected_mask)
    z = (h_w - h_l) - (1 - eta * tau) * (k_w - k_l)
    return (z - eta / 2) ** 2, _rewards(h_w / eta, h_l / eta)


def dno(batch: PairBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """DNO-Prct's update (Rosset et al. 2024, "Direct Nash Optimization", Alg. 2): DPO with the current
    iterate pi_t as the reference, -log sigma(beta [log pi/pi_t (y_w) - log pi/pi_t (y_l)]) on the
    large-margin pairs (drlbench.llm.data.large_margin_pairs). Rewards beta log pi/pi_t."""
    _need(batch, "dno", "snapshot_logps_w", "snapshot_logps_l")
    s_w = seq(batch.chosen_logps - batch.snapshot_logps_w, batch.chosen_mask)
    s_l = seq(batch.rejected_logps - batch.snapshot_logps_l, batch.rejected_mask)
    return logistic(beta * (s_w - s_l)), _rewards(beta * s_w, beta * s_l)


def extrapolated_reference(snapshot: torch.Tensor, previous: torch.Tensor, alpha: float) -> torch.Tensor:
    """[recon] APO's reference log-probs (per token): log pi_hat_t = (1 + alpha) log pi_t - alpha log pi_{t-1},
    the Nesterov extrapolation pi_t (pi_t / pi_{t-1})^alpha, unnormalised (the normaliser of a sequence
    distribution cancels in the DPO margin)."""
    return (1 + alpha) * snapshot - alpha * previous


def apo(batch: PairBatch, beta: float, alpha: float) -> tuple[torch.Tensor, Metrics]:
    """[recon] APO, *Accelerated* Preference Optimization (He, Yuan, Gu 2024, arXiv 2410.06293; not
    Anchored PO): iterative DPO whose reference is the extrapolated iterate,
    -log sigma(beta [h_hat(y_w) - h_hat(y_l)]), h_hat = log pi - [(1 + alpha) log pi_t - alpha log pi_{t-1}]."""
    _need(batch, "apo", "snapshot_logps_w", "snapshot_logps_l", "previous_logps_w",
          "previous_logps_l")
    ref_w = extrapolated_reference(batch.snapshot_logps_w, batch.previous_logps_w, alpha)
    ref_l = extrapolated_reference(batch.snapshot_logps_l, batch.previous_logps_l, alpha)
    h_w = seq(batch.chosen_logps - ref_w, batch.chosen_mask)
    h_l = seq(batch.rejected_logps - ref_l, batch.rejected_mask)
    return logistic(beta * (h_w - h_l)), _rewards(beta * h_w, beta * h_l)


@dataclass
class GroupBatch:
    """K answers per prompt (SPPO): per-token log-probs (B, K, T) and the estimated win rates (B, K)."""
    logps: torch.Tensor                 # (B, K, T) policy
    snapshot_logps: torch.Tensor        # (B, K, T) pi_t, no gradient
    mask: torch.Tensor                  # (B, K, T)
    win_rate: torch.Tensor              # (B, K) P^(y_k > pi_t)


def sppo(batch: GroupBatch, beta: float) -> tuple[torch.Tensor, Metrics]:
    """SPPO (Wu et al. 2024, "Self-Play Preference Optimization for Language Model Alignment", eq. 4.6
    / Alg. 1), per answer (log pi(y)/pi_t(y) - eta (P^(y > pi_t) - 1/2))^2 with eta = 1/beta, averaged
    over the K answers of a prompt; its minimiser is pi_t exp(eta P(y > pi_t)) (up to the normaliser).
    The paper's code applies it to the best and worst of the K answers only; here to all K."""
    h = seq(batch.logps - batch.snapshot_logps, batch.mask)                       # (B, K)
    target = (batch.win_rate - 0.5) / beta
    return ((h - target) ** 2).mean(-1), {"log_ratio": h.detach().mean(-1),
                                          "win_rate_spread": (batch.win_rate.max(-1).values
                                                              - batch.win_rate.min(-1).values)}


LOSSES: dict[str, Callable[..., tuple[torch.Tensor, Metrics]]] = {
    "dpo": dpo, "cdpo": cdpo, "robust_dpo": robust_dpo,
    "ipo": ipo, "ipo_seq": ipo_seq, "ipo_tok": ipo_tok,
    "slic": slic, "rso": rso, "f_dpo": f_dpo,
    "simpo": simpo, "ln_dpo": ln_dpo, "ld_dpo": ld_dpo,
    "tdpo": tdpo, "tgdpo": tgdpo, "tpo": tpo, "tpo_l": tpo_l,
    "orpo": orpo, "rpo": rpo,
    "exo_pair": exo_pair, "nca_pair": nca_pair, "bco_pair": bco_pair, "sppo_hard": sppo_hard,
    "aot": aot, "aot_unpaired": aot_unpaired,
    "apo_anchored_zero": apo_anchored_zero, "apo_anchored_down": apo_anchored_down,
    "discopop": discopop, "flex_dpo": flex_dpo,
}
# §1.B: the online and game-theoretic losses read batch fields the offline pairs lack (the iterate's
# log-probs, which sample came first, the oracle preference; SPPO a GroupBatch), so they live apart
ONLINE_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, Metrics]]] = {
    "xpo": xpo, "nash_md": nash_md, "inpo": inpo, "dno": dno, "apo": apo, "sppo": sppo,
}
ALL_LOSSES = {**LOSSES, **ONLINE_LOSSES}
