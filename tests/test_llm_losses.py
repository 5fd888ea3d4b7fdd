"""Preference losses (drlbench/llm/losses.py) against hand computations on a 4-token example.

The example (float64, one pair; padding holds nan, which no loss may read):

    token                      1      2      3      4
    chosen   log pi          -1.0   -2.0   -0.5   (pad)     log pi(y_w)     = -3.5, |y_w| = 3
    chosen   log pi_ref      -1.2   -1.8   -1.0   (pad)     log pi_ref(y_w) = -4.0  -> h_w =  0.5
    rejected log pi          -1.5   -1.0   -2.0   -0.5      log pi(y_l)     = -5.0, |y_l| = 4
    rejected log pi_ref      -1.0   -1.2   -1.5   -0.8      log pi_ref(y_l) = -4.5  -> h_l = -0.5
                                                            Delta = 1.0
    chosen   token KL         0.1    0.2    0.05  (pad)     SeqKL_w = 0.35   (TDPO)
    rejected token KL         0.3    0.1    0.2    0.1      SeqKL_l = 0.7
    chosen   token reward     1.0    0.0   -1.0   (pad)     (TGDPO)
    rejected token reward     0.5    0.5   -0.5    0.0
    gold     log pi          -0.2   -0.4   (pad)  (pad)     NLL(y_gold) = 0.3  (TPO)

`sp(z) = log(1 + e^z)`, so -log sigma(z) = sp(-z). Each expected value below is written out in plain
`math` from these numbers (checkable on a calculator).
"""
from __future__ import annotations

import math

import pytest
import torch

from drlbench.llm import losses as L
from drlbench.llm.losses import LOSSES, PairBatch

NAN = float("nan")


def sp(z: float) -> float:
    return math.log1p(math.exp(z))


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def example(requires_grad: bool = False) -> PairBatch:
    b = PairBatch(
        chosen_logps=t([-1.0, -2.0, -0.5, NAN]),
        rejected_logps=t([-1.5, -1.0, -2.0, -0.5]),
        ref_chosen_logps=t([-1.2, -1.8, -1.0, NAN]),
        ref_rejected_logps=t([-1.0, -1.2, -1.5, -0.8]),
        chosen_mask=t([1.0, 1.0, 1.0, 0.0]),
        rejected_mask=t([1.0, 1.0, 1.0, 1.0]),
        chosen_token_kl=t([0.1, 0.2, 0.05, NAN]),
        rejected_token_kl=t([0.3, 0.1, 0.2, 0.1]),
        gold_logps=t([-0.2, -0.4, NAN, NAN]),
        gold_mask=t([1.0, 1.0, 0.0, 0.0]),
        chosen_token_reward=t([1.0, 0.0, -1.0, NAN]),
        rejected_token_reward=t([0.5, 0.5, -0.5, 0.0]),
    )
    if requires_grad:
        for f in ("chosen_logps", "rejected_logps", "chosen_token_kl", "rejected_token_kl", "gold_logps"):
            getattr(b, f).requires_grad_(True)
    return b


H_W, H_L, DELTA = 0.5, -0.5, 1.0
LP_W, LP_L, N_W, N_L = -3.5, -5.0, 3, 4
A_W, A_L = LP_W / N_W, LP_L / N_L            # length-normalised log-probs
GOLD_NLL = 0.3


def _log_odds(a: float) -> float:
    return a - math.log(1 - math.exp(a))


# name -> (hyper-parameters, expected loss by hand)
HAND = {
    "dpo": (dict(beta=0.5), sp(-0.5 * DELTA)),
    "cdpo": (dict(beta=0.5, epsilon=0.1), 0.9 * sp(-0.5) + 0.1 * sp(0.5)),
    "robust_dpo": (dict(beta=0.5, epsilon=0.1), (0.9 * sp(-0.5) - 0.1 * sp(0.5)) / 0.8),
    "ipo_seq": (dict(tau=0.25), (1.0 - 2.0) ** 2),
    "ipo": (dict(tau=0.25), (1.0 - 2.0) ** 2),                       # = ipo_seq, the paper's eq. 17
    "ipo_tok": (dict(tau=0.25), (0.5 / 3 - (-0.5 / 4) - 2.0) ** 2),
    "slic": (dict(delta=2.0, lam=0.1), max(0.0, 2.0 - (-3.5) + (-5.0)) + 0.1 * 0.6),   # y_ref = gold, log pi = -0.6
    "rso": (dict(gamma=0.5), max(0.0, 1 - 0.5 * DELTA)),
    "f_dpo": (dict(beta=0.5, divergence="forward_kl"), sp(-0.5 * ((1 - math.exp(-0.5)) - (1 - math.exp(0.5))))),
    "simpo": (dict(beta=2.0, gamma=0.5), sp(-(2.0 * (A_W - A_L) - 0.5))),
    "ln_dpo": (dict(beta=0.5), sp(-0.5 * (0.5 / 3 - (-0.5) / 4))),
    # l_p = 3: the rejected 4th token counts 0.5 times: pi -4.5 - 0.25 = -4.75, ref -3.7 - 0.4 = -4.1, h_l = -0.65
    "ld_dpo": (dict(beta=0.5, alpha=0.5), sp(-0.5 * (0.5 - (-0.65)))),
    "tdpo": (dict(beta=0.5, alpha=0.5), sp(-0.5 * (1.0 + 0.5 * (0.35 - 0.7)))),             # TDPO2
    # per-token h_w = (0.2, -0.2, 0.5), h_l = (-0.5, 0.2, -0.5, 0.3); alpha*beta = 0.25
    "tgdpo": (dict(beta=0.5, alpha=0.5),
              sp(-(0.5 * (1.25 * 0.2 + 1.0 * -0.2 + 0.75 * 0.5)
                   - 0.5 * (0.875 * -0.5 + 0.875 * 0.2 + 1.125 * -0.5 + 1.0 * 0.3)))),
    "tpo": (dict(beta=0.5, alpha=1.0), sp(-0.5 * (LP_W - LP_L)) + GOLD_NLL),
    "tpo_l": (dict(beta=2.0, gamma=0.5, alpha=1.0), sp(-(2.0 * (A_W - A_L) - 0.5)) + GOLD_NLL),
    "orpo": (dict(lam=0.1), -A_W - 0.1 * -sp(-(_log_odds(A_W) - _log_odds(A_L)))),
    "rpo": (dict(beta=0.5, alpha=1.0), sp(-0.5) + 3.5 / 3),
    "exo_pair": (dict(beta=0.5, epsilon=1e-3),
                 sig(0.5) * (math.log(sig(0.5)) - math.log(1 - 1e-3))
                 + sig(-0.5) * (math.log(sig(-0.5)) - math.log(1e-3))),
    "nca_pair": (dict(beta=0.5), sp(-0.25) + 0.5 * sp(0.25) + 0.5 * sp(-0.25)),
    "bco_pair": (dict(beta=0.5), sp(-0.25) + sp(-0.25)),
    "sppo_hard": (dict(beta=0.5), (0.5 - 1.0) ** 2 + (-0.5 + 1.0) ** 2),
    "aot": (dict(beta=0.5), sp(-0.5 * ((LP_W - LP_L) - (-4.0 - -4.5)))),   # one pair: sorting is the identity
    "aot_unpaired": (dict(beta=0.5), sp(-0.5)),
    "apo_anchored_zero": (dict(beta=0.5), 1 - sig(0.25) + sig(-0.25)),
    "apo_anchored_down": (dict(beta=0.5), sig(0.25) + 1 - sig(0.5)),
    "discopop": (dict(beta=0.5, tau=0.05), (1 - sig(10.0)) * sp(-0.5) + sig(10.0) * math.exp(-0.5)),
    # [recon] Flex-DPO, the spec's equation: -log sigma(beta_chosen h_w - beta_rejected h_l)
    "flex_dpo": (dict(beta_chosen=0.5, beta_rejected=1.0), sp(-(0.5 * 0.5 - 1.0 * -0.5))),
}

# losses whose descent direction lowers the chosen log-probs too, by design (APO-down: lower both)
LOWERS_CHOSEN = {"apo_anchored_down"}


def test_every_registered_loss_has_a_hand_computation():
    assert set(LOSSES) == set(HAND)


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computation(name):
    hp, expected = HAND[name]
    loss, metrics = LOSSES[name](example(), **hp)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    for k, v in metrics.items():
        assert v.shape == (1,) and not v.requires_grad and torch.isfinite(v).all(), k


def test_hand_f_divergences():
    b = example()
    for div, s_w, s_l in [
        ("reverse_kl", 0.5, -0.5),
        ("js", math.log(2) - sp(-0.5), math.log(2) - sp(0.5)),
        ("alpha", (math.exp(-0.25) - 1) / -0.5, (math.exp(0.25) - 1) / -0.5),        # alpha = 0.5
    ]:
        loss, _ = L.f_dpo(b, beta=0.5, divergence=div, alpha=0.5)
        assert loss.item() == pytest.approx(sp(-0.5 * (s_w - s_l)), rel=1e-12), div


def test_hand_variants():
    b = example()
    assert L.tdpo(b, beta=0.5, variant=1)[0].item() == pytest.approx(sp(-0.5 * (1.0 + 0.35 - 0.7)), rel=1e-12)
    assert L.rso(b, gamma=0.5, variant="sigmoid")[0].item() == pytest.approx(sp(-0.5), rel=1e-12)
    # SLiC without a gold response regularises on the chosen one; without lam it is the bare hinge
    b.gold_logps = b.gold_mask = None
    assert L.slic(b, delta=2.0, lam=0.1)[0].item() == pytest.approx(0.5 + 0.1 * 3.5, rel=1e-12)
    assert L.slic(b, delta=2.0)[0].item() == pytest.approx(0.5, rel=1e-12)
    assert L.simpo(example(), beta=2.0, gamma=0.5, epsilon=0.1)[0].item() == pytest.approx(
        0.9 * sp(-(2 * (A_W - A_L) - 0.5)) + 0.1 * sp(2 * (A_W - A_L) - 0.5), rel=1e-12)


def test_metrics_are_the_papers_implicit_rewards():
    _, m = L.dpo(example(), beta=0.5)
    assert (m["chosen_reward"].item(), m["rejected_reward"].item()) == pytest.approx((0.25, -0.25))
    _, m = L.simpo(example(), beta=2.0, gamma=0.5)
    assert m["chosen_reward"].item() == pytest.approx(2 * A_W)
    _, m = L.tdpo(example(), beta=0.5)
    assert m["chosen_reward"].item() == pytest.approx(0.5 * (0.5 + 0.35))


def two_pairs() -> PairBatch:
    """Two pairs where sorting matters for AOT: pair 2 is the example, pair 1 differs."""
    b = example()
    other = PairBatch(t([-0.1, -0.1, 0.0, 0.0]), t([-3.0, -1.0, 0.0, 0.0]), t([-0.5, -0.5, 0.0, 0.0]),
                      t([-1.0, -1.0, 0.0, 0.0]), t([1.0, 1.0, 0.0, 0.0]), t([1.0, 1.0, 0.0, 0.0]))
    # pair 1: log pi(w) - log pi(l) = -0.2 + 4 = 3.8; ref: -1 + 2 = 1.0; h_w = 0.8, h_l = -2.0
    fields = ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps", "chosen_mask",
              "rejected_mask")
    return PairBatch(*(torch.cat([getattr(other, f), getattr(b, f)]) for f in fields))


def test_aot_sorts_across_the_batch():
    b = two_pairs()
    # policy differences (3.8, 1.5) sort to (1.5, 3.8); reference (1.0, 0.5) to (0.5, 1.0)
    loss, _ = L.aot(b, beta=0.5)
    assert loss.tolist() == pytest.approx([sp(-0.5 * (1.5 - 0.5)), sp(-0.5 * (3.8 - 1.0))], rel=1e-12)
    # h_w (0.8, 0.5) -> (0.5, 0.8); h_l (-2.0, -0.5) -> (-2.0, -0.5)
    loss, _ = L.aot_unpaired(b, beta=0.5)
    assert loss.tolist() == pytest.approx([sp(-0.5 * (0.5 + 2.0)), sp(-0.5 * (0.8 + 0.5))], rel=1e-12)


# ---------------------------------------------------------------- reductions to DPO (as the papers say)
def _dpo(b=None):
    return L.dpo(b or example(), beta=0.5)[0]


@pytest.mark.parametrize("fn, hp", [
    (L.f_dpo, dict(beta=0.5, divergence="reverse_kl")),
    (L.f_dpo, dict(beta=0.5, divergence="alpha", alpha=1.0)),
    (L.cdpo, dict(beta=0.5, epsilon=0.0)),
    (L.robust_dpo, dict(beta=0.5, epsilon=0.0)),
    (L.ld_dpo, dict(beta=0.5, alpha=1.0)),
    (L.rso, dict(gamma=0.5, variant="sigmoid")),
    (L.rpo, dict(beta=0.5, alpha=0.0)),
    (L.flex_dpo, dict(beta_chosen=0.5, beta_rejected=0.5)),
])
def test_reduces_to_dpo(fn, hp):
    assert torch.equal(fn(example(), **hp)[0], _dpo())


def test_alpha_divergence_tends_to_reverse_kl_and_matches_the_old_convention():
    for eps in (1e-3, 1e-4, 1e-5):
        got = L.f_dpo(example(), beta=0.5, divergence="alpha", alpha=1 - eps)[0]
        assert abs(got.item() - _dpo().item()) < 2 * eps
    # TRL <= 0.28 / the paper: psi = (1 - u^-a)/a; the same loss with a = 1 - alpha
    a = 0.3
    old = lambda h: (1 - math.exp(-a * h)) / a  # noqa: E731
    got = L.f_dpo(example(), beta=0.5, divergence="alpha", alpha=1 - a)[0].item()
    assert got == pytest.approx(sp(-0.5 * (old(H_W) - old(H_L))), rel=1e-12)


def test_token_level_methods_reduce_to_dpo_without_their_signal():
    b = example()
    b.chosen_token_kl = torch.zeros_like(b.chosen_logps)
    b.rejected_token_kl = torch.zeros_like(b.rejected_logps)
    for variant in (1, 2):
        assert torch.equal(L.tdpo(b, beta=0.5, variant=variant)[0], _dpo())
    b.chosen_token_reward = torch.zeros_like(b.chosen_logps)
    b.rejected_token_reward = torch.zeros_like(b.rejected_logps)
    assert L.tgdpo(b, beta=0.5)[0].item() == pytest.approx(_dpo().item(), rel=1e-14)


def test_ld_dpo_alpha_zero_drops_the_tail_and_equal_lengths_are_dpo():
    b = example()
    # alpha = 0: the rejected response counts its first 3 tokens only: h_l = -4.5 + 3.7 = -0.8
    assert L.ld_dpo(b, beta=0.5, alpha=0.0)[0].item() == pytest.approx(sp(-0.5 * 1.3), rel=1e-12)
    b.rejected_mask = t([1.0, 1.0, 1.0, 0.0])
    assert torch.equal(L.ld_dpo(b, beta=0.5, alpha=0.3)[0], L.dpo(b, beta=0.5)[0])


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", sorted(HAND))
def test_gradient_signs_and_padding(name):
    """Gradient descent raises chosen log-probs and lowers rejected ones (APO-down lowers both, by design);
    padding tokens get exactly zero gradient."""
    hp, _ = HAND[name]
    b = example(requires_grad=True)
    loss, _ = LOSSES[name](b, **hp)
    loss.sum().backward()
    g_w, g_l = b.chosen_logps.grad, b.rejected_logps.grad
    assert torch.isfinite(g_w).all() and torch.isfinite(g_l).all()
    assert g_w[0, 3] == 0
    if name in LOWERS_CHOSEN:
        assert (g_w[0, :3] > 0).all()
    else:
        assert (g_w[0, :3] < 0).all(), g_w
    assert (g_l >= 0).all() and g_l.sum() > 0, g_l


def test_tdpo2_detaches_the_chosen_kl():
    for variant, chosen_kl_has_grad in ((1, True), (2, False)):
        b = example(requires_grad=True)
        L.tdpo(b, beta=0.5, variant=variant)[0].sum().backward()
        g = b.chosen_token_kl.grad
        assert (g is not None and bool((g[0, :3] != 0).all())) == chosen_kl_has_grad
        assert (b.rejected_token_kl.grad > 0).all()   # raising the rejected KL raises the loss


def test_gold_term_gradient():
    b = example(requires_grad=True)
    L.tpo(b, beta=0.5, alpha=1.0)[0].sum().backward()
    assert b.gold_logps.grad[0, :2].tolist() == pytest.approx([-0.5, -0.5]) and (b.gold_logps.grad[0, 2:] == 0).all()


# ---------------------------------------------------------------- masks
def _padded(b: PairBatch, junk: float) -> PairBatch:
    """The same pairs with two more padding columns holding `junk` (masks 0 there)."""
    out = {}
    for f, v in vars(b).items():
        if v is None:
            out[f] = None
            continue
        fill = 0.0 if f.endswith("mask") else junk
        out[f] = torch.cat([v, torch.full((v.shape[0], 2), fill, dtype=v.dtype)], dim=1)
    return PairBatch(**out)


@pytest.mark.parametrize("name", sorted(HAND))
def test_padding_changes_nothing(name):
    hp, _ = HAND[name]
    ref, _ = LOSSES[name](example(), **hp)
    for junk in (0.0, -1e9, 7.0, float("inf"), NAN):
        got, _ = LOSSES[name](_padded(example(), junk), **hp)
        assert torch.equal(got, ref), (name, junk)


def test_left_padding_is_the_same_as_right_padding():
    """LD-DPO counts response positions through the mask, so where the padding sits does not matter."""
    b = example()
    # the chosen response (3 tokens + 1 pad) moves its pad to the front; the rejected one has no padding
    flip = PairBatch(**{f: (torch.roll(v, 1, dims=1) if "chosen" in f else v) for f, v in vars(b).items()})
    for name in ("ld_dpo", "dpo", "tdpo", "ln_dpo"):
        hp, _ = HAND[name]
        assert LOSSES[name](flip, **hp)[0].item() == pytest.approx(LOSSES[name](b, **hp)[0].item(), rel=1e-14)


def test_float32_batch_keeps_its_dtype():
    b = example()
    b32 = PairBatch(**{f: (None if v is None else v.float()) for f, v in vars(b).items()})
    for name, (hp, expected) in HAND.items():
        loss, _ = LOSSES[name](b32, **hp)
        assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6), name


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="epsilon in"):
        L.robust_dpo(example(), beta=0.1, epsilon=0.5)
    with pytest.raises(ValueError, match="divergence must be one of"):
        L.f_dpo(example(), beta=0.1, divergence="hellinger")
    b = example()
    b.chosen_token_kl = None
    with pytest.raises(ValueError, match="chosen_token_kl"):
        L.tdpo(b, beta=0.1)
    b.gold_logps = None
    with pytest.raises(ValueError, match="gold_logps"):
        L.tpo(b, beta=0.1)
