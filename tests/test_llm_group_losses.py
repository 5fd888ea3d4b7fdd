"""Group / policy-gradient losses (drlbench/llm/group_losses.py) against hand computations on a tiny group.

The example: one member, Q = 2 prompts x G = 3 completions, L = 3 tokens (float64; padding holds nan,
which no loss may read). Completion (q, i), its per-token log-probs under the policy (l), the behaviour
policy (o) and the reference (ref), and its reward:

    q i   l (policy)            o (behaviour)          ref                    reward
    0 0   -0.5  -1.0  -0.2      -0.6  -0.8  -0.2       -0.7  -1.1  -0.4       1
    0 1   -1.2  -0.3            -1.2  -0.7             -1.0  -0.5             0
    0 2   -0.7                  -0.4                   -0.9                   1
    1 0   -0.4  -0.9            -0.4  -0.6             -0.5  -0.8             0
    1 1   -1.1  -0.6  -0.8      -1.3  -0.6  -0.5       -1.0  -0.9  -0.6       1
    1 2   -0.3  -0.5  -1.5      -0.3  -0.9  -1.5       -0.6  -0.4  -1.2       0

so log rho = l - o takes the values 0.1, -0.2, 0, 0.4, -0.3, 0.2: token ratios 1.105, 0.819, 1.492, 0.741,
1.221 fall inside and outside the clip ranges. 14 active tokens. Group means 2/3 and 1/3, both with
Bessel std sqrt(1/3).

Each expected value is computed in this file in plain Python (`math`, lists) from the table, formula by
formula as the docstring of each loss states it; none calls drlbench code.
"""
from __future__ import annotations

import math

import pytest
import torch

from drlbench.llm import group_losses as GL
from drlbench.llm.group_losses import GROUP_LOSSES, GroupBatch

NAN = float("nan")
L_ = [[[-0.5, -1.0, -0.2], [-1.2, -0.3], [-0.7]], [[-0.4, -0.9], [-1.1, -0.6, -0.8], [-0.3, -0.5, -1.5]]]
O_ = [[[-0.6, -0.8, -0.2], [-1.2, -0.7], [-0.4]], [[-0.4, -0.6], [-1.3, -0.6, -0.5], [-0.3, -0.9, -1.5]]]
REF_ = [[[-0.7, -1.1, -0.4], [-1.0, -0.5], [-0.9]], [[-0.5, -0.8], [-1.0, -0.9, -0.6], [-0.6, -0.4, -1.2]]]
R_ = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
ENT_ = [[[0.9, 0.5, 0.1], [1.0, 0.2], [0.6]], [[0.3, 0.4], [0.8, 0.7, 0.2], [0.5, 0.5, 0.5]]]
GREEDY_ = [0.5, 1.0]                       # ReMax: reward of each prompt's greedy answer
Q, G, L = 2, 3, 3
N_SEQ, N_TOK = 6, 14


def _pad(rows, fill=NAN, width=L):
    return torch.tensor([[[*r, *([fill] * (width - len(r)))] for r in group] for group in rows], dtype=torch.float64)


def example(requires_grad: bool = False, width: int = L, fill: float = NAN, entropy: bool = True) -> GroupBatch:
    mask = _pad([[[1.0] * len(r) for r in group] for group in L_], 0.0, width)
    logps = _pad(L_, fill, width).unsqueeze(0)
    if requires_grad:
        logps.requires_grad_(True)
    return GroupBatch(logps=logps, old_logps=_pad(O_, fill, width).unsqueeze(0),
                      ref_logps=_pad(REF_, fill, width).unsqueeze(0), mask=mask.unsqueeze(0),
                      rewards=torch.tensor([R_], dtype=torch.float64), max_len=width,
                      baseline_rewards=torch.tensor([GREEDY_], dtype=torch.float64),
                      entropy=_pad(ENT_, fill, width).unsqueeze(0) if entropy else None)


# ---------------------------------------------------------------- plain-Python helpers
def mean(xs):
    return sum(xs) / len(xs)


def std(xs):
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0


def sig(z):
    return 1 / (1 + math.exp(-z))


def completions():
    """(q, i, l, o, ref, r) for every completion, in order."""
    for q in range(Q):
        for i in range(G):
            yield q, i, L_[q][i], O_[q][i], REF_[q][i], R_[q][i]


def adv_group(q, i, scale=True):
    a = R_[q][i] - mean(R_[q])
    return a / (std(R_[q]) + 1e-4) if scale else a


def k3(lt, rt):
    return math.exp(rt - lt) - (rt - lt) - 1


def clip_loss(rho, a, lo, hi, delta=math.inf):
    return -min(min(rho, delta) * a, min(max(rho, 1 - lo), 1 + hi) * a)


def hand_grpo(beta=0.04, lo=0.2, hi=0.2, delta=math.inf, scale=True, aggregation="grpo"):
    per_seq, total = [], 0.0
    for q, i, lt, ot, rt, _ in completions():
        a = adv_group(q, i, scale)
        tok = [clip_loss(math.exp(x - o), a, lo, hi, delta) + beta * k3(x, r) for x, o, r in zip(lt, ot, rt)]
        per_seq.append(sum(tok) / len(tok))
        total += sum(tok)
    return {"grpo": mean(per_seq), "token": total / N_TOK, "dr_grpo": total / (N_SEQ * L)}[aggregation]


def hand_gspo(lo=3e-4, hi=4e-4):
    out = []
    for q, i, lt, ot, _, _ in completions():
        s = math.exp(mean([x - o for x, o in zip(lt, ot)]))
        out.append(clip_loss(s, adv_group(q, i), lo, hi))
    return mean(out)


def hand_sapo(tau_pos=1.0, tau_neg=1.05):
    out = []
    for q, i, lt, ot, _, _ in completions():
        a = adv_group(q, i)
        tau = tau_pos if a > 0 else tau_neg
        out.append(mean([-sig(tau * (math.exp(x - o) - 1)) * 4 / tau * a for x, o in zip(lt, ot)]))
    return mean(out)


def hand_cispo(eps_high=5.0):
    return sum(-min(math.exp(x - o), eps_high) * adv_group(q, i) * x
               for q, i, lt, ot, _, _ in completions() for x, o in zip(lt, ot)) / N_TOK


def hand_rloo(beta=0.05, lo=0.2, hi=0.2):
    shaped = [[R_[q][i] - beta * sum(o - r for o, r in zip(O_[q][i], REF_[q][i])) for i in range(G)] for q in range(Q)]
    out = []
    for q, i, lt, ot, _, _ in completions():
        a = shaped[q][i] - mean([shaped[q][j] for j in range(G) if j != i])
        w = math.exp(sum(lt) - sum(ot))
        out.append(clip_loss(w, a, lo, hi))
    return mean(out)


def hand_reinforce(baseline):
    return mean([-(r - baseline(q)) * sum(lt) for q, _, lt, _, _, r in completions()])


def _whiten(values):
    m = mean(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return [(v - m) / math.sqrt(var + 1e-8) for v in values]


def hand_reinforce_pp(beta=0.01, baseline=False, lo=0.2, hi=0.2):
    advs, ratios = [], []
    for q, i, lt, ot, rt, r in completions():
        k1 = [o - rr for o, rr in zip(ot, rt)]
        if baseline:   # KL summed into the reward, then the group mean of the shaped rewards
            shaped = [R_[q][j] - beta * sum(o - rr for o, rr in zip(O_[q][j], REF_[q][j])) for j in range(G)]
            advs += [shaped[i] - mean(shaped)] * len(lt)
        else:          # return to go of r_t = 1[last] r - beta k1_t
            advs += [r - beta * sum(k1[t:]) for t in range(len(lt))]
        ratios += [math.exp(x - o) for x, o in zip(lt, ot)]
    return mean([clip_loss(rho, a, lo, hi) for rho, a in zip(ratios, _whiten(advs))])


def beta_pdf(x, a, b):
    return math.exp((a - 1) * math.log(x) + (b - 1) * math.log(1 - x)
                    - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))


# BNPO's Beta fit on this example, by hand: p = (2/3, 1/3), mu = 1/2, s^2 = ((1/6)^2 + (1/6)^2)/1 = 1/18,
# mu (1 - mu)/s^2 - 1 = 4.5 - 1 = 3.5, a = b = 3.5 * 1/2 = 1.75, alpha = beta = 1 + 1.75/3 = 1.58333...
BNPO_ALPHA = 1 + 1.75 / 3
BNPO_P = [2 / 3, 1 / 3]


def hand_bnpo_adv(q, i):
    return (R_[q][i] - BNPO_P[q]) / beta_pdf(BNPO_P[q], BNPO_ALPHA, BNPO_ALPHA)


def hand_bnpo(lo=0.2, hi=0.28, delta=10.0):
    return mean([sum(clip_loss(math.exp(x - o), hand_bnpo_adv(q, i), lo, hi, delta) for x, o in zip(lt, ot))
                 for q, i, lt, ot, _, _ in completions()])


def hand_topr(c=0.0):
    out = []
    for _, _, lt, ot, _, r in completions():
        big_r = r - c
        w = math.exp(sum(lt) - sum(ot))
        out.append(-(1.0 if big_r >= 0 else min(w, 1.0)) * big_r * sum(lt))
    return mean(out)


def hand_disco(delta=1e-4, beta=1e3, tau=10.0, basic=False):
    obj = 0.0
    for q in range(Q):
        s = [mean(L_[q][i]) for i in range(G)]
        pos = [s[i] for i in range(G) if R_[q][i] > 0]
        neg = [s[i] for i in range(G) if R_[q][i] <= 0]
        neg_term = mean(neg) if basic else tau * math.log(mean([math.exp(x / tau) for x in neg]))
        obj += mean(pos) - neg_term
    kl = sum(math.exp(x - o) - (x - o) - 1 for _, _, lt, ot, _, _ in completions() for x, o in zip(lt, ot)) / N_TOK
    return -obj / Q + 0.5 * beta * max(kl - delta, 0.0) ** 2


def hand_rec(variant="one-side", lo=0.2, hi=0.2, lo_p=0.6, hi_p=2.0):
    total = 0.0
    for q, i, lt, ot, _, _ in completions():
        a = adv_group(q, i, scale=False)
        for x, o in zip(lt, ot):
            rho = math.exp(x - o)
            inside = 1 - lo <= rho <= 1 + hi
            keep = {"two-side": inside,
                    "one-side": (rho <= 1 + hi and a >= 0) or (rho >= 1 - lo and a <= 0),
                    "ring": inside or (a >= 0 and rho <= 1 - lo_p) or (a <= 0 and rho >= 1 + hi_p)}[variant]
            total += -a * x * keep
    return total / N_TOK


def hand_opmd(tau=1.0):
    return sum(-adv_group(q, i, False) * x + tau * (x - o) ** 2
               for q, i, lt, ot, _, _ in completions() for x, o in zip(lt, ot)) / N_TOK


def hand_asymre(tau=0.1):
    return sum(-(adv_group(q, i, False) + tau) * x for q, i, lt, _, _, _ in completions() for x in lt) / N_TOK


def hand_copg(beta=0.1):
    pairs = []
    for q in range(Q):
        h = [sum(x - r for x, r in zip(L_[q][i], REF_[q][i])) for i in range(G)]
        for i in range(G):
            for j in range(i + 1, G):
                pairs.append(((R_[q][i] - R_[q][j]) - beta * (h[i] - h[j])) ** 2 / (2 * beta))
    return mean(pairs)


# name -> (hyper-parameters, expected loss computed by hand)
HAND = {
    "reinforce": (dict(), hand_reinforce(lambda q: mean(R_[q]))),
    "remax": (dict(), hand_reinforce(lambda q: GREEDY_[q])),
    "rloo": (dict(), hand_rloo()),
    "reinforce_pp": (dict(), hand_reinforce_pp()),
    "reinforce_pp_baseline": (dict(), hand_reinforce_pp(beta=0.001, baseline=True)),
    "grpo": (dict(), hand_grpo()),
    "dr_grpo": (dict(), hand_grpo(beta=0.0, scale=False, aggregation="dr_grpo")),
    "dapo": (dict(), hand_grpo(beta=0.0, hi=0.28, aggregation="token")),
    "gspo": (dict(), hand_gspo()),
    "sapo": (dict(), hand_sapo()),
    "cispo": (dict(), hand_cispo()),
    "bnpo": (dict(), hand_bnpo()),
    "topr": (dict(c=0.5), hand_topr(c=0.5)),
    "disco": (dict(), hand_disco()),
    "rec": (dict(), hand_rec()),
    "opmd": (dict(), hand_opmd()),
    "asymre": (dict(), hand_asymre()),
    "copg": (dict(), hand_copg()),
}

VARIANTS = [   # (name, hyper-parameters, expected)
    ("grpo", dict(beta=0.1, epsilon_low=0.1, epsilon_high=0.3, delta=1.3), hand_grpo(0.1, 0.1, 0.3, 1.3)),
    ("grpo", dict(aggregation="token", beta=0.0), hand_grpo(beta=0.0, aggregation="token")),
    ("grpo", dict(scale_rewards="none", aggregation="dr_grpo"), hand_grpo(scale=False, aggregation="dr_grpo")),
    ("gspo", dict(epsilon_low=0.2, epsilon_high=0.2), hand_gspo(0.2, 0.2)),
    ("sapo", dict(tau_pos=0.5, tau_neg=2.0), hand_sapo(0.5, 2.0)),
    ("cispo", dict(epsilon_high=1.2), hand_cispo(1.2)),
    ("rloo", dict(beta=0.2, epsilon_high=0.28), hand_rloo(0.2, 0.2, 0.28)),
    ("reinforce_pp", dict(beta=0.5), hand_reinforce_pp(beta=0.5)),
    ("topr", dict(c=0.0), hand_topr(0.0)),
    ("topr", dict(c=0.8), hand_topr(0.8)),
    ("disco", dict(variant="disco_b"), hand_disco(basic=True)),
    ("disco", dict(tau=1.0, delta=0.5), hand_disco(tau=1.0, delta=0.5)),
    ("rec", dict(variant="two-side"), hand_rec("two-side")),
    ("rec", dict(variant="ring", epsilon_low_prime=0.25, epsilon_high_prime=0.3),
     hand_rec("ring", lo_p=0.25, hi_p=0.3)),
    ("rec", dict(variant="none"), sum(-adv_group(q, i, False) * x for q, i, lt, *_ in completions() for x in lt) / 14),
    ("opmd", dict(tau=0.3), hand_opmd(0.3)),
    ("opmd", dict(tau=0.3, form="scaled"), hand_opmd(0.0) / 1.3),
    ("asymre", dict(tau=0.0), hand_opmd(0.0)),
    ("copg", dict(beta=0.5), hand_copg(0.5)),
]


def test_every_registered_loss_has_a_hand_computation():
    assert set(GROUP_LOSSES) == set(HAND)


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computation(name):
    hp, expected = HAND[name]
    loss, metrics = GROUP_LOSSES[name](example(), **hp)
    assert loss.shape == (1,) and loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    for k, v in metrics.items():
        assert v.shape == (1,) and not v.requires_grad and torch.isfinite(v).all(), k


@pytest.mark.parametrize("i", range(len(VARIANTS)))
def test_hand_computation_variants(i):
    name, hp, expected = VARIANTS[i]
    assert GROUP_LOSSES[name](example(), **hp)[0].item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_example_exercises_the_clip():
    rho = [math.exp(x - o) for _, _, lt, ot, _, _ in completions() for x, o in zip(lt, ot)]
    assert min(rho) < 0.8 and max(rho) > 1.28


# ---------------------------------------------------------------- metrics
def test_metrics_by_hand():
    _, m = GL.grpo(example())
    rewards = [r for row in R_ for r in row]
    assert m["reward"].item() == pytest.approx(mean(rewards), rel=1e-12)
    assert m["reward_std"].item() == pytest.approx(std(rewards), rel=1e-12)
    assert m["frac_reward_zero_std"].item() == 0.0
    assert m["completion_length"].item() == pytest.approx(14 / 6, rel=1e-12)
    kl = sum(k3(x, r) for _, _, lt, _, rt, _ in completions() for x, r in zip(lt, rt)) / N_TOK
    assert m["kl"].item() == pytest.approx(kl, rel=1e-12)
    assert m["entropy"].item() == pytest.approx(sum(sum(e) for g in ENT_ for e in g) / N_TOK, rel=1e-12)
    advs = [adv_group(q, i) for q, i, *_ in completions()]
    assert m["advantage_mean"].item() == pytest.approx(0.0, abs=1e-12)
    assert m["advantage_std"].item() == pytest.approx(std(advs), rel=1e-12)
    # clip flags, token means: low = rho < 0.8 with A < 0; high = rho > 1.2 with A > 0
    low = sum(math.exp(x - o) < 0.8 and adv_group(q, i) < 0 for q, i, lt, ot, _, _ in completions()
              for x, o in zip(lt, ot))
    high = sum(math.exp(x - o) > 1.2 and adv_group(q, i) > 0 for q, i, lt, ot, _, _ in completions()
               for x, o in zip(lt, ot))
    assert (m["clip_ratio_low"].item(), m["clip_ratio_high"].item()) == pytest.approx((low / 14, high / 14))
    assert m["clip_ratio_region"].item() == pytest.approx((low + high) / 14)
    assert low > 0 and high > 0
    assert "entropy" not in GL.grpo(example(entropy=False))[1]


def test_frac_reward_zero_std_counts_uniform_groups():
    b = example()
    b.rewards = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    _, m = GL.dapo(b)
    assert m["frac_reward_zero_std"].item() == 0.5
    # a uniform group has zero advantage: its completions contribute nothing (only through the aggregation count)
    assert GL.group_advantages(b.rewards, "group")[0, 0].abs().max().item() == 0.0


def test_cispo_clip_ratio_and_rec_masked_fraction():
    _, m = GL.cispo(example(), epsilon_high=1.2)
    hand = sum(math.exp(x - o) > 1.2 and adv_group(q, i) > 0 for q, i, lt, ot, _, _ in completions()
               for x, o in zip(lt, ot)) / N_TOK
    assert m["cispo_clip_ratio"].item() == pytest.approx(hand) and hand > 0
    _, m = GL.rec(example(), variant="two-side")
    out = sum(not 0.8 <= math.exp(x - o) <= 1.2 for _, _, lt, ot, _, _ in completions() for x, o in zip(lt, ot))
    assert m["clip_ratio_region"].item() == pytest.approx(out / N_TOK) and out > 0


# ---------------------------------------------------------------- advantages and helpers
def test_group_advantages_by_hand():
    r = torch.tensor([R_], dtype=torch.float64)
    s = math.sqrt(1 / 3)
    assert GL.group_advantages(r, "group")[0].flatten().tolist() == pytest.approx(
        [v / (s + 1e-4) for v in (1 / 3, -2 / 3, 1 / 3, -1 / 3, 2 / 3, -1 / 3)], rel=1e-12)
    batch_std = std([1, 0, 1, 0, 1, 0])
    assert GL.group_advantages(r, "batch")[0, 0].tolist() == pytest.approx(
        [(1 / 3) / (batch_std + 1e-4), (-2 / 3) / (batch_std + 1e-4), (1 / 3) / (batch_std + 1e-4)], rel=1e-12)
    # leave-one-out: 1 - (0 + 1)/2, 0 - (1 + 1)/2, ...
    assert GL.group_advantages(r, "rloo")[0, 0].tolist() == pytest.approx([0.5, -1.0, 0.5], rel=1e-12)
    assert GL.group_advantages(r[..., :1], "rloo").abs().max().item() == 0.0      # G = 1: no leave-one-out
    assert GL.group_advantages(r[..., :1], "group").abs().max().item() == 0.0


def test_bnpo_beta_fit_by_hand():
    got = GL.beta_normalized_advantages(torch.tensor([R_], dtype=torch.float64))[0]
    assert got.flatten().tolist() == pytest.approx([hand_bnpo_adv(q, i) for q in range(Q) for i in range(G)],
                                                   rel=1e-12)
    # the weight 1/pdf is not 1 (alpha = beta = 1.583 > 1): a non-trivial fit; at p = 1/2 the pdf is largest
    assert beta_pdf(2 / 3, BNPO_ALPHA, BNPO_ALPHA) > 1.0
    # rewards in {-1, 1} with r_min = -1: the advantage is that of the rescaled rewards, the same
    pm1 = GL.beta_normalized_advantages(2 * torch.tensor([R_], dtype=torch.float64) - 1, r_min=-1.0, r_max=1.0)[0]
    assert torch.allclose(pm1, got, rtol=1e-12, atol=0)
    # uniform groups (p in {0, 1}) get A = 0 although the pdf there is 0 (weight clamped at 1e6)
    r = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    a = GL.beta_normalized_advantages(r)
    assert torch.isfinite(a).all() and a[0, :2].abs().max().item() == 0.0
    # one prompt, or equal p everywhere: alpha = beta = 1 (weight 1): A = r - p
    one = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    assert GL.beta_normalized_advantages(one)[0, 0].tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])
    with pytest.raises(ValueError, match="r_min"):
        GL.beta_normalized_advantages(torch.tensor([[[2.0, 0.0]]], dtype=torch.float64))


def test_overlong_penalty_by_hand():
    """DAPO: 0 up to L_max - L_cache = 6, then (6 - |y|)/4, -1 beyond L_max = 10."""
    got = GL.overlong_penalty(torch.tensor([3, 6, 7, 8, 10, 11]), max_len=10, cache_len=4)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, -1.0, -1.0])
    assert GL.overlong_penalty(torch.tensor([3, 10, 11]), max_len=10, cache_len=0).tolist() == [0.0, 0.0, -1.0]


def test_whiten_by_hand():
    x = torch.tensor([[[[1.0, 2.0, NAN], [4.0, NAN, NAN]]]], dtype=torch.float64)
    m = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]], dtype=torch.float64)
    got = GL.whiten(x, m)[m > 0]
    mu, var = 7 / 3, ((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2
    assert got.tolist() == pytest.approx([(v - mu) / math.sqrt(var + 1e-8) for v in (1.0, 2.0, 4.0)], rel=1e-12)


# ---------------------------------------------------------------- gradients
def grad(name, b=None, **hp):
    b = b or example(requires_grad=True)
    GROUP_LOSSES[name](b, **hp)[0].sum().backward()
    return b.logps.grad[0]


def on_policy():
    b = example(requires_grad=True)
    b.old_logps = b.logps.detach().clone()
    return b


def expected_grad(weight):
    """A (Q, G, L) tensor holding weight(q, i, t, x, o) on active tokens, 0 on padding."""
    out = torch.zeros(Q, G, L, dtype=torch.float64)
    for q, i, lt, ot, _, _ in completions():
        for t, (x, o) in enumerate(zip(lt, ot)):
            out[q, i, t] = weight(q, i, t, x, o)
    return out


def test_grpo_on_policy_gradient_is_reinforce_with_normalised_advantages():
    """On-policy (rho = 1), beta = 0: d loss / d l_t = -A_i / (|y_i| N) (grpo aggregation), the gradient of
    -mean_i A_i mean_t log pi(y_t); the clip is inactive. Dr. GRPO: -A_i / (N L_max), length-free."""
    want = expected_grad(lambda q, i, t, x, o: -adv_group(q, i) / (len(L_[q][i]) * N_SEQ))
    assert torch.allclose(grad("grpo", on_policy(), beta=0.0), want, rtol=1e-12, atol=1e-15)
    want = expected_grad(lambda q, i, t, x, o: -adv_group(q, i, False) / (N_SEQ * L))
    assert torch.allclose(grad("dr_grpo", on_policy()), want, rtol=1e-12, atol=1e-15)
    want = expected_grad(lambda q, i, t, x, o: -adv_group(q, i) / N_TOK)
    assert torch.allclose(grad("dapo", on_policy()), want, rtol=1e-12, atol=1e-15)


def test_sapo_gate_has_slope_one_at_ratio_one():
    for tau in (1.0, 1.05, 0.5, 3.0):
        rho = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
        (torch.sigmoid(tau * (rho - 1)) * 4 / tau).backward()
        assert rho.grad.item() == pytest.approx(1.0, rel=1e-12)
    # so on-policy SAPO's gradient is GRPO's (beta = 0)
    assert torch.allclose(grad("sapo", on_policy()), grad("grpo", on_policy(), beta=0.0), rtol=1e-12, atol=1e-15)
    # off-policy it decays smoothly: |dL/dl| < on-policy value, but never 0 (no hard clip)
    g = grad("sapo")
    assert (g[expected_grad(lambda *a: 1.0) > 0] != 0).all()


def test_cispo_keeps_the_gradient_of_clipped_tokens():
    """-sg(min(rho, eps)) A log pi: d/dl_t = -min(rho_t, eps) A_i / N_tok for every token, clipped or not;
    GRPO drops the tokens whose ratio passed the clip on the side of A."""
    eps = 1.2
    want = expected_grad(lambda q, i, t, x, o: -min(math.exp(x - o), eps) * adv_group(q, i) / N_TOK)
    g = grad("cispo", epsilon_high=eps)
    assert torch.allclose(g, want, rtol=1e-12, atol=1e-15)
    clipped = expected_grad(lambda q, i, t, x, o: float(math.exp(x - o) > 1.2 and adv_group(q, i) > 0)) > 0
    assert clipped.any() and (g[clipped] != 0).all()
    assert (grad("grpo", beta=0.0, epsilon_high=0.2)[clipped] == 0).all()


def test_rec_drops_out_of_region_tokens():
    for variant in ("two-side", "one-side"):
        g = grad("rec", variant=variant)
        for q, i, lt, ot, _, _ in completions():
            a = adv_group(q, i, False)
            for t, (x, o) in enumerate(zip(lt, ot)):
                rho = math.exp(x - o)
                keep = (0.8 <= rho <= 1.2) if variant == "two-side" else \
                    ((rho <= 1.2 and a >= 0) or (rho >= 0.8 and a <= 0))
                assert g[q, i, t].item() == pytest.approx(-a / N_TOK if keep else 0.0, abs=1e-15), (variant, q, i, t)
    dropped = expected_grad(lambda q, i, t, x, o: float(not 0.8 <= math.exp(x - o) <= 1.2)) > 0
    assert dropped.any() and (grad("rec", variant="two-side")[dropped] == 0).all()


def test_topr_tapers_negatives_only():
    """d/dl_t = -weight_i R_i / N: positives weight 1 whatever their ratio, negatives min(w_i, 1)."""
    c = 0.5
    g = grad("topr", c=c)
    seen = set()
    for q, i, lt, ot, _, r in completions():
        w = math.exp(sum(lt) - sum(ot))
        weight = 1.0 if r - c >= 0 else min(w, 1.0)
        seen.add((r - c >= 0, w > 1))
        for t in range(len(lt)):
            assert g[q, i, t].item() == pytest.approx(-weight * (r - c) / N_SEQ, rel=1e-12)
    # the example has positives with w < 1 (weight 1, where importance sampling would give w), negatives with
    # w > 1 (weight 1) and w < 1 (tapered to w)
    assert {(True, False), (False, True), (False, False)} <= seen


def test_reinforce_and_remax_gradients():
    want = expected_grad(lambda q, i, t, x, o: -(R_[q][i] - mean(R_[q])) / N_SEQ)
    assert torch.allclose(grad("reinforce"), want, rtol=1e-12, atol=1e-15)
    want = expected_grad(lambda q, i, t, x, o: -(R_[q][i] - GREEDY_[q]) / N_SEQ)
    assert torch.allclose(grad("remax"), want, rtol=1e-12, atol=1e-15)


def test_copg_gradient_is_the_contrastive_policy_gradient():
    """d/dl_t of (1/2b)[dr - b dh]^2 summed over pairs: -(R~_i - R~_j) for y_i's tokens, + for y_j's;
    R~ = r - beta h."""
    beta = 0.1
    g = grad("copg", beta=beta)
    n_pairs = Q * G * (G - 1) // 2
    for q in range(Q):
        rt = [R_[q][i] - beta * sum(x - r for x, r in zip(L_[q][i], REF_[q][i])) for i in range(G)]
        for i in range(G):
            want = -sum(rt[i] - rt[j] for j in range(G) if j != i) / n_pairs
            assert g[q, i, :len(L_[q][i])].tolist() == pytest.approx([want] * len(L_[q][i]), rel=1e-12)


def test_disco_gradient_directions():
    """DisCO raises the score of positives and lowers the negatives (no trust-region force when KL <= delta)."""
    g = grad("disco", delta=1.0)
    for q, i, lt, *_ in completions():
        assert ((g[q, i, :len(lt)] < 0) if R_[q][i] > 0 else (g[q, i, :len(lt)] > 0)).all()


def test_bnpo_gradient_sign_follows_the_advantage():
    g = grad("bnpo", b=on_policy())
    for q, i, lt, *_ in completions():
        want = -hand_bnpo_adv(q, i) / N_SEQ
        assert g[q, i, :len(lt)].tolist() == pytest.approx([want] * len(lt), rel=1e-12)


def test_opmd_k2_term_acts_off_policy_only():
    assert torch.allclose(grad("opmd", on_policy(), tau=1.0), grad("opmd", on_policy(), tau=0.0), rtol=0, atol=1e-15)
    assert not torch.allclose(grad("opmd", tau=1.0), grad("opmd", tau=0.0))


# ---------------------------------------------------------------- padding and members
@pytest.mark.parametrize("name", sorted(HAND))
def test_padding_changes_nothing(name):
    hp, _ = HAND[name]
    ref_loss, ref_metrics = GROUP_LOSSES[name](example(), **hp)
    ref_grad = grad(name, **hp)
    for junk in (0.0, -1e9, 7.0, float("inf"), -float("inf"), NAN):
        b = example(requires_grad=True, width=L + 2, fill=junk)
        b.max_len = L                   # the padding is storage, not longer answers (Dr. GRPO's constant)
        loss, metrics = GROUP_LOSSES[name](b, **hp)
        assert torch.equal(loss, ref_loss), (name, junk)
        for k in ref_metrics:
            assert torch.equal(metrics[k], ref_metrics[k]), (name, junk, k)
        loss.sum().backward()
        assert torch.isfinite(b.logps.grad).all() and (b.logps.grad[..., L:] == 0).all(), (name, junk)
        assert torch.equal(b.logps.grad[..., :L], ref_grad.unsqueeze(0)), (name, junk)


def two_members(requires_grad=True, seed=0):
    """Member 0 is the example; member 1 is random data of the same shape."""
    b = example()
    gen = torch.Generator().manual_seed(seed)

    def other(x):
        return torch.cat([x, torch.rand(x.shape, generator=gen, dtype=x.dtype).neg_()])
    def positive(x):
        return torch.cat([x, torch.rand(x.shape, generator=gen, dtype=x.dtype)])
    mask = torch.cat([b.mask, torch.ones_like(b.mask)])
    out = GroupBatch(logps=other(b.logps), old_logps=other(b.old_logps), ref_logps=other(b.ref_logps), mask=mask,
                     rewards=torch.cat([b.rewards, (torch.rand(b.rewards.shape, generator=gen) < 0.5).double()]),
                     max_len=L, baseline_rewards=positive(b.baseline_rewards), entropy=positive(b.entropy))
    out.logps.requires_grad_(requires_grad)
    return out


@pytest.mark.parametrize("name", sorted(HAND))
def test_members_are_independent(name):
    hp, expected = HAND[name]
    results = []
    for seed in (0, 1):
        b = two_members(seed=seed)
        loss, metrics = GROUP_LOSSES[name](b, **hp)
        loss.sum().backward()
        results.append((loss.detach(), metrics, b.logps.grad))
    (l0, m0, g0), (l1, m1, g1) = results
    assert l0[0].item() == pytest.approx(expected, rel=1e-12, abs=1e-12)    # member 0 alone = the example
    assert l0[0] == l1[0] and l0[1] != l1[1]
    assert torch.equal(g0[0], g1[0]) and not torch.equal(g0[1], g1[1])
    for k in m0:
        assert m0[k][0] == m1[k][0], k


def test_float32_keeps_its_dtype():
    b = example()
    b32 = GroupBatch(**{k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in vars(b).items()})
    for name, (hp, expected) in HAND.items():
        loss, _ = GROUP_LOSSES[name](b32, **hp)
        assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected, rel=2e-5, abs=1e-5), name


def test_bad_arguments_say_what_is_wrong():
    b = example()
    with pytest.raises(ValueError, match="scale_rewards"):
        GL.grpo(b, scale_rewards="prompt")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        GL.grpo(b, aggregation="mean")
    with pytest.raises(ValueError, match="importance_sampling_level"):
        GL.grpo(b, importance_sampling_level="segment")
    with pytest.raises(ValueError, match="variant must be one of"):
        GL.rec(b, variant="three-side")
    with pytest.raises(ValueError, match="score must be one of"):
        GL.disco(b, score="logp")
    with pytest.raises(ValueError, match="form must be one of"):
        GL.opmd(b, form="k3")
    b.baseline_rewards = None
    with pytest.raises(ValueError, match="baseline_rewards"):
        GL.remax(b)
    one = GroupBatch(**{k: (v[:, :, :1] if k not in ("max_len", "baseline_rewards") else v)
                        for k, v in vars(example()).items()})
    with pytest.raises(ValueError, match="G >= 2"):
        GL.copg(one)


# ---------------------------------------------------------------- learning direction on a bandit
def bandit(name: str) -> float:
    """One-token answers from a tabular softmax policy (2 prompts x 4 answers, answer q is right for prompt q,
    reward 1 else 0), G = 8 samples per prompt, on-policy, 60 Adam steps (lr 0.1) with the loss's
    hyper-parameters of HAND: the final probability of the right answers (mean over prompts; 1/4 at start)."""
    hp, _ = HAND[name]
    gen = torch.Generator().manual_seed(0)
    logits = torch.zeros(1, 2, 4, dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(logits.detach(), -1)
    opt = torch.optim.Adam([logits], lr=0.1)
    right = torch.tensor([0, 1])
    for _ in range(60):
        logp_all = torch.log_softmax(logits, -1)                                    # (1, 2, 4)
        with torch.no_grad():
            answers = torch.multinomial(logp_all[0].exp(), 8, replacement=True, generator=gen).unsqueeze(0)
        logps = torch.gather(logp_all, -1, answers).unsqueeze(-1)                    # (1, 2, 8, 1)
        rewards = (answers == right.view(1, 2, 1)).double()
        greedy = (logp_all.detach().argmax(-1) == right.view(1, 2)).double()
        batch = GroupBatch(logps=logps, old_logps=logps.detach(),
                           ref_logps=torch.gather(ref, -1, answers).unsqueeze(-1), mask=torch.ones_like(logps.detach()),
                           rewards=rewards, max_len=1, baseline_rewards=greedy)
        loss, _ = GROUP_LOSSES[name](batch, **hp)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    return torch.softmax(logits.detach(), -1)[0, [0, 1], [0, 1]].mean().item()


@pytest.mark.parametrize("name", sorted(HAND))
def test_every_loss_learns_a_two_prompt_bandit(name):
    """Every loss raises the right answers' probability from 0.25 to above 0.9 (measured: 0.987 to 0.994)."""
    p_right = bandit(name)
    assert p_right > 0.9, (name, p_right)
