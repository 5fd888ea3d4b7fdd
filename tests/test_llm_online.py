"""LLM track, online and game-theoretic methods (specs/llm_track.md §1.B, task A3): each new loss against a
hand computation; the token-wise mixture sampler against the exact mixture (enumeration + Monte Carlo);
SPPO's win-rate estimates against the exact win rates; DNO's large-margin pairs and APO's extrapolated
reference by hand; the iterates pi_t, pi_{t-1} refreshed at iteration boundaries; exploitability and
the duality gap of the KL-regularised game against brute force (rock-paper-scissors, where the Nash
equilibrium is known); every new agent through the CLI. Small tasks throughout: seconds each."""
import csv
import math

import pytest
import torch

from drlbench.llm import losses as L
from drlbench.llm.data import (PreferenceGroups, groups_from_pairs, large_margin_pairs, make_groups,
                               sample_mixture, win_rates)
from drlbench.llm.losses import GroupBatch, PairBatch
from drlbench.llm.policy import TinyLM
from drlbench.llm.tasks import game_gaps, make

SMALL = "llm:bt-seq-intransitive?contexts=3,max_len=3,sft_steps=30,demos=256"
NEW = ("xpo", "nash_md", "sppo", "inpo", "dno", "apo")


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Every test caches references in one temporary data folder."""
    monkeypatch.setenv("DRLBENCH_DATA", str(tmp_path_factory.getbasetemp() / "llm-data"))


def sig(x):
    return 1 / (1 + math.exp(-x))


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def pair_batch(**extra) -> PairBatch:
    """Two pairs, T = 3: the first pair's chosen answer has 2 tokens (one pad), everything else 3."""
    b = PairBatch(chosen_logps=t([-0.5, -1.0, 9.0], [-0.2, -0.3, -0.1]),
                  rejected_logps=t([-1.0, -0.5, -2.0], [-1.5, -0.5, -0.5]),
                  ref_chosen_logps=t([-0.7, -1.1, 5.0], [-0.4, -0.2, -0.2]),
                  ref_rejected_logps=t([-0.9, -0.6, -1.0], [-1.0, -0.5, -0.6]),
                  chosen_mask=t([1.0, 1.0, 0.0], [1.0, 1.0, 1.0]),
                  rejected_mask=t([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]))
    for key, value in extra.items():
        setattr(b, key, value)
    return b


# sequence sums of pair_batch() (pad excluded): log pi, log pi_ref
LP_W, LP_L = (-1.5, -0.6), (-3.5, -2.5)
REF_W, REF_L = (-1.8, -0.8), (-2.5, -2.1)
H_W = tuple(a - b for a, b in zip(LP_W, REF_W))     # (0.3, 0.2)
H_L = tuple(a - b for a, b in zip(LP_L, REF_L))     # (-1.0, -0.4)


# ---------------------------------------------------------------- losses by hand
def test_xpo_by_hand():
    b = pair_batch(first_won=torch.tensor([True, False]))
    loss, metrics = L.xpo(b, beta=0.5, alpha=0.1)
    # pair 0: the first sample won, so y' (reference sample) is the rejected one; pair 1: the chosen one
    expected = [-math.log(sig(0.5 * (H_W[0] - H_L[0]))) + 0.1 * LP_L[0],
                -math.log(sig(0.5 * (H_W[1] - H_L[1]))) + 0.1 * LP_W[1]]
    assert loss.tolist() == pytest.approx(expected, rel=1e-12)
    assert metrics["exploration"].tolist() == pytest.approx([LP_L[0], LP_W[1]])
    assert L.xpo(b, beta=0.5, alpha=0.0)[0].tolist() == pytest.approx(L.dpo(b, beta=0.5)[0].tolist(), rel=1e-14)


def test_nash_md_value_and_gradient_by_hand():
    b = pair_batch(first_won=torch.tensor([True, False]), preference=t(0.8, 0.7))
    b.chosen_logps.requires_grad_(True)
    b.rejected_logps.requires_grad_(True)
    loss, metrics = L.nash_md(b, beta=0.5)
    # pair 0: y = chosen, p = P(y > y') = 0.8; pair 1: y = rejected (the first sample lost), p = 1 - 0.7
    h0 = [-0.5 + 0.7, -1.0 + 1.1]                      # per-token log-ratios of y in pair 0
    h1 = [-1.5 + 1.0, -0.5 + 0.5, -0.5 + 0.6]
    kl0 = sum(h * lp for h, lp in zip(h0, [-0.5, -1.0]))
    kl1 = sum(h * lp for h, lp in zip(h1, [-1.5, -0.5, -0.5]))
    expected = [0.5 * kl0 - (0.8 - 0.5) * LP_W[0], 0.5 * kl1 - (0.3 - 0.5) * LP_L[1]]
    assert loss.tolist() == pytest.approx(expected, rel=1e-12)
    assert metrics["probability"].tolist() == pytest.approx([0.8, 0.3])
    assert metrics["kl"].tolist() == pytest.approx([sum(h0), sum(h1)])
    loss.sum().backward()
    # d/d log pi(y_t) = beta sg(h_t) - (p - 1/2) on y's tokens, 0 on the other answer and on padding
    assert b.chosen_logps.grad[0].tolist() == pytest.approx([0.5 * h0[0] - 0.3, 0.5 * h0[1] - 0.3, 0.0])
    assert b.rejected_logps.grad[1].tolist() == pytest.approx([0.5 * h + 0.2 for h in h1])
    assert (b.rejected_logps.grad[0] == 0).all() and (b.chosen_logps.grad[1] == 0).all()


def test_inpo_by_hand_in_the_papers_form():
    snap_w, snap_l = t([-0.6, -1.2, 3.0], [-0.3, -0.3, -0.3]), t([-1.1, -0.4, -1.5], [-1.2, -0.6, -0.4])
    b = pair_batch(snapshot_logps_w=snap_w, snapshot_logps_l=snap_l)
    eta, tau = 4.0, 0.1
    loss, _ = L.inpo(b, eta=eta, tau=tau)
    t_w, t_l = (-1.8, -0.9), (-3.0, -2.2)              # sequence sums of the iterate pi_t
    expected = [((LP_W[i] - LP_L[i]) - eta * tau * (REF_W[i] - REF_L[i]) - (1 - eta * tau) * (t_w[i] - t_l[i])
                 - eta / 2) ** 2 for i in range(2)]
    assert loss.tolist() == pytest.approx(expected, rel=1e-12)
    # pi_t = pi_ref (the first iteration): IPO with 1/(2 tau_ipo) = eta/2
    first = pair_batch(snapshot_logps_w=pair_batch().ref_chosen_logps, snapshot_logps_l=pair_batch().ref_rejected_logps)
    assert L.inpo(first, eta=eta, tau=tau)[0].tolist() == pytest.approx(L.ipo(first, tau=1 / eta)[0].tolist())


def test_dno_is_dpo_against_the_iterate():
    snap_w, snap_l = t([-0.6, -1.2, 3.0], [-0.3, -0.3, -0.3]), t([-1.1, -0.4, -1.5], [-1.2, -0.6, -0.4])
    loss, metrics = L.dno(pair_batch(snapshot_logps_w=snap_w, snapshot_logps_l=snap_l), beta=0.5)
    s_w = [LP_W[0] + 1.8, LP_W[1] + 0.9]
    s_l = [LP_L[0] + 3.0, LP_L[1] + 2.2]
    assert loss.tolist() == pytest.approx([-math.log(sig(0.5 * (w - l))) for w, l in zip(s_w, s_l)], rel=1e-12)
    assert metrics["chosen_reward"].tolist() == pytest.approx([0.5 * s for s in s_w])


def test_apo_extrapolated_reference_by_hand():
    snap, prev = t([-1.0, -2.0]), t([-1.5, -1.0])
    assert L.extrapolated_reference(snap, prev, 0.5)[0].tolist() == pytest.approx([-0.75, -2.5])
    assert torch.equal(L.extrapolated_reference(snap, prev, 0.0), snap)
    snap_w, snap_l = t([-0.6, -1.2, 3.0], [-0.3, -0.3, -0.3]), t([-1.1, -0.4, -1.5], [-1.2, -0.6, -0.4])
    prev_w, prev_l = t([-0.8, -1.0, 0.0], [-0.5, -0.1, -0.3]), t([-1.0, -0.6, -1.3], [-1.0, -0.7, -0.5])
    b = pair_batch(snapshot_logps_w=snap_w, snapshot_logps_l=snap_l, previous_logps_w=prev_w, previous_logps_l=prev_l)
    alpha = 0.5
    # sequence sums: pi_t (-1.8, -0.9) / (-3.0, -2.2); pi_{t-1} (-1.8, -0.9) / (-2.9, -2.2)
    ref_w = [1.5 * -1.8 - 0.5 * -1.8, 1.5 * -0.9 - 0.5 * -0.9]
    ref_l = [1.5 * -3.0 - 0.5 * -2.9, 1.5 * -2.2 - 0.5 * -2.2]
    expected = [-math.log(sig(0.1 * ((LP_W[i] - ref_w[i]) - (LP_L[i] - ref_l[i])))) for i in range(2)]
    assert L.apo(b, beta=0.1, alpha=alpha)[0].tolist() == pytest.approx(expected, rel=1e-12)
    # alpha = 0 is DPO against pi_t (DNO's loss)
    assert L.apo(b, beta=0.1, alpha=0.0)[0].tolist() == pytest.approx(L.dno(b, beta=0.1)[0].tolist(), rel=1e-14)


def test_sppo_by_hand():
    logps = torch.tensor([[[-1.0, -0.5], [-2.0, 0.0], [-0.3, -0.3]]], dtype=torch.float64)   # (B=1, K=3, T=2)
    snap = torch.tensor([[[-1.2, -0.5], [-1.0, 0.0], [-0.3, -0.9]]], dtype=torch.float64)
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    win = torch.tensor([[0.7, 0.4, 0.5]], dtype=torch.float64)
    loss, metrics = L.sppo(GroupBatch(logps, snap, mask, win), beta=0.25)
    h = [0.2, -1.0, 0.6]
    target = [(w - 0.5) / 0.25 for w in (0.7, 0.4, 0.5)]
    assert loss.item() == pytest.approx(sum((a - b) ** 2 for a, b in zip(h, target)) / 3, rel=1e-12)
    assert metrics["win_rate_spread"].item() == pytest.approx(0.3)


def test_missing_fields_say_what_is_wrong():
    for fn, kwargs, field in ((L.xpo, dict(beta=0.1, alpha=0.1), "first_won"),
                              (L.nash_md, dict(beta=0.1), "first_won"),
                              (L.inpo, dict(eta=1.0, tau=0.1), "snapshot_logps_w"),
                              (L.apo, dict(beta=0.1, alpha=0.1), "previous_logps_w")):
        with pytest.raises(ValueError, match=field):
            fn(pair_batch(), **kwargs)


# ---------------------------------------------------------------- data
def peaked(task, seed):
    """A one-member TinyLM with a far-from-uniform output head."""
    model = TinyLM(task.spec.model, [torch.Generator().manual_seed(seed)])
    with torch.no_grad():
        model.head.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(100 + seed))   # logits of std ~1.6
    return model


def test_mixture_sampler_matches_the_exact_token_wise_mixture():
    task = make("bt-seq", physics={"contexts": 2, "content_tokens": 2, "max_len": 2})
    pol, ref = peaked(task, 0), peaked(task, 1)
    coef, n = 0.3, 20_000
    # exact: enumerate the 7 answers per context, mix the two next-token log-distributions at every prefix
    tokens, mask = task.tokens[None].repeat(1, 2, 1), task.mask[None].repeat(1, 2, 1)   # (1, 2N, L)
    contexts = torch.arange(2).repeat_interleave(task.num_responses)[None]
    _, d_pol = pol.token_logprobs(contexts, tokens, mask, full=True)
    _, d_ref = ref.token_logprobs(contexts, tokens, mask, full=True)

    def seq_prob(dist):
        logp = torch.gather(dist, -1, tokens[..., None]).squeeze(-1)
        return (logp * mask).sum(-1).exp().view(2, -1).double()
    exact = seq_prob(torch.log_softmax((1 - coef) * d_pol + coef * d_ref, -1))
    torch.testing.assert_close(exact.sum(-1), torch.ones(2, dtype=torch.float64))
    assert (exact - seq_prob(d_pol)).abs().max() > 0.03 and (exact - seq_prob(d_ref)).abs().max() > 0.03
    g = torch.Generator().manual_seed(5)
    ctx = torch.randint(2, (1, n), generator=g)
    drawn, drawn_mask = sample_mixture(pol, ref, ctx, [g], coef)
    index = {(c, tuple(y)): i for c in range(2) for i, y in enumerate(task.tokens.tolist())}
    counts = torch.zeros(2, task.num_responses, dtype=torch.float64)
    for c, y in zip(ctx[0].tolist(), drawn[0].tolist()):
        counts[c, index[(c, tuple(y))]] += 1
    freq = counts / counts.sum(-1, keepdim=True)
    se = (exact * (1 - exact) / counts.sum(-1, keepdim=True)).sqrt()
    assert ((freq - exact).abs() <= 4.5 * se + 1e-3).all(), (freq, exact)
    assert torch.equal(drawn_mask, task.mask[[index[(c, tuple(y))] for c, y in zip(ctx[0].tolist(),
                                                                                    drawn[0].tolist())]][None])
    # the two ends: coefficient 0 draws as the policy's own sampler, 1 as the reference's (same uniforms)
    for c_end, model in ((0.0, pol), (1.0, ref)):
        a, _ = sample_mixture(pol, ref, ctx[:, :500], [torch.Generator().manual_seed(9)], c_end)
        b, _, _ = model.sample(ctx[:, :500], [torch.Generator().manual_seed(9)])
        assert torch.equal(a, b), c_end


def test_sppo_win_rates_estimate_the_exact_win_rates():
    task = make("bt-seq-intransitive", physics={"contexts": 2, "content_tokens": 3, "max_len": 2, "kappa": 2.0})
    pi = peaked(task, 3)
    k, n = 4, 3000
    g = torch.Generator().manual_seed(0)
    contexts = torch.randint(2, (1, n), generator=g)
    groups = make_groups(task, pi, pi, contexts, [g], k)
    assert groups.tokens.shape == (1, n, k, 2) and not groups.gold
    assert (groups.preference.diagonal(dim1=-2, dim2=-1) == 0.5).all()
    torch.testing.assert_close(groups.preference + groups.preference.transpose(-1, -2),
                               torch.ones_like(groups.preference))
    estimate = win_rates(groups.preference)[0].double()                 # (n, K)
    # exact P(y > pi) of every sampled answer, from the matrix and the exact answer probabilities
    probs = task.leaf_logprobs(pi)[0].detach().double().exp()           # (C, N)
    exact_all = torch.stack([task.matrix(c) @ probs[c] for c in range(2)])   # (C, N)
    index = {tuple(y): i for i, y in enumerate(task.tokens.tolist())}
    rows = torch.tensor([[index[tuple(y)] for y in group] for group in groups.tokens[0].tolist()])
    exact = exact_all[contexts[0][:, None], rows]                       # (n, K)
    assert exact.std() > 0.02                                           # win rates differ across answers
    expected = (k - 1) / k * exact + 1 / (2 * k)                        # E[estimate | y]: shrunk to 1/2
    err = (estimate - expected).flatten()
    for stat in (err, err * (expected.flatten() - 0.5)):
        assert abs(stat.mean()) < 4 * stat.std() / stat.numel() ** 0.5 + 1e-9, stat.mean()
    # the row mean of a hand matrix
    hand = torch.tensor([[0.5, 0.9, 0.2], [0.1, 0.5, 0.6], [0.8, 0.4, 0.5]])
    assert win_rates(hand).tolist() == pytest.approx([1.6 / 3, 1.2 / 3, 1.7 / 3])


def test_groups_carry_the_gold_answer_last_and_pairs_become_groups_of_two():
    task = make("bt-seq-intransitive", physics={"contexts": 2, "content_tokens": 3, "max_len": 2})
    pi = peaked(task, 4)
    contexts = torch.tensor([[0, 1, 1]])
    groups = make_groups(task, pi, pi, contexts, [torch.Generator().manual_seed(1)], 3, gold=True)
    gold, gold_mask = task.gold(contexts)
    assert groups.gold and groups.tokens.shape == (1, 3, 4, 2)
    assert torch.equal(groups.tokens[:, :, -1], gold) and torch.equal(groups.mask[:, :, -1], gold_mask)
    logit = task.preference_logit(contexts[0, 1], groups.tokens[0, 1, 0], groups.tokens[0, 1, 3])
    assert groups.preference[0, 1, 0, 3].item() == pytest.approx(torch.sigmoid(logit).item())
    ref = pi.token_logprobs(contexts, groups.tokens[:, :, 2], groups.mask[:, :, 2])
    torch.testing.assert_close(groups.ref_logps[:, :, 2], ref)
    from drlbench.llm.data import online_pairs
    from drlbench.population import Population

    pairs = online_pairs(task, pi, pi, Population([0]), 5)
    assert pairs.preference[0].tolist() == pytest.approx(torch.sigmoid(task.preference_logit(
        pairs.contexts, pairs.chosen, pairs.rejected))[0].tolist())
    two = groups_from_pairs(pairs)
    assert torch.equal(two.tokens[:, :, 0], pairs.chosen) and torch.equal(two.tokens[:, :, 1], pairs.rejected)
    p_wl = pairs.preference[0, 2].item()
    assert two.preference[0, 2].flatten().tolist() == pytest.approx([0.5, p_wl, 1 - p_wl, 0.5])


def test_dno_large_margin_pairs_by_hand():
    # prompt 0: P(0>1) .7, P(0>2) .9, P(1>2) .6 -> win rates against the others .8, .45, .25: pair (0, 2),
    # gap .55; prompt 1: the same matrix with candidates permuted (2, 0, 1) -> pair (2, 1)
    m = torch.tensor([[0.5, 0.7, 0.9], [0.3, 0.5, 0.6], [0.1, 0.4, 0.5]])
    perm = torch.tensor([1, 2, 0])            # candidate i of prompt 1 is candidate perm[i] of prompt 0
    m1 = m[perm][:, perm]
    tokens = torch.tensor([[[[1, 0], [2, 0], [3, 0]], [[1, 1], [2, 2], [3, 3]]]])     # (P=1, B=2, K=3, L=2)
    mask = torch.ones(1, 2, 3, 2)
    ref = torch.arange(12, dtype=torch.float32).view(1, 2, 3, 2)
    groups = PreferenceGroups(torch.tensor([[0, 1]]), tokens, mask, ref, torch.stack([m, m1])[None])
    pairs = large_margin_pairs(groups, margin=0.5)
    assert pairs.chosen.tolist() == [[[1, 0], [3, 3]]] and pairs.rejected.tolist() == [[[3, 0], [2, 2]]]
    assert pairs.weight.tolist() == [[1.0, 1.0]]
    assert pairs.preference[0].tolist() == pytest.approx([0.9, 0.9])
    torch.testing.assert_close(pairs.ref_chosen, ref[:, [0, 1], [0, 2]])
    assert large_margin_pairs(groups, margin=0.6).weight.tolist() == [[0.0, 0.0]]


# ---------------------------------------------------------------- game metrics
def rps(kappa=1.0):
    a = sig(kappa)                            # rock beats scissors, scissors paper, paper rock
    return torch.tensor([[0.5, 1 - a, a], [a, 0.5, 1 - a], [1 - a, a, 0.5]], dtype=torch.float64)


def simplex(n):
    """Every point of the 2-simplex with coordinates in multiples of 1/n, (M, 3)."""
    pts = [(i / n, j / n, (n - i - j) / n) for i in range(n + 1) for j in range(n + 1 - i)]
    return torch.tensor(pts, dtype=torch.float64)


def brute_force(m, pi, ref, beta, grid):
    """max_pi' f(pi', pi) - min_pi' f(pi, pi') on the grid, with f(a, b) = P(a > b) - beta KL(a) + beta KL(b)."""
    def kl(p):
        return torch.where(p > 0, p * (p.log() - ref.log()), torch.zeros_like(p)).sum(-1)
    as_first = grid @ m @ pi - beta * kl(grid) + beta * kl(pi)      # f(pi', pi)
    as_second = pi @ m @ grid.T - beta * kl(pi) + beta * kl(grid)   # f(pi, pi')
    return (grid @ m @ pi).max() - 0.5, as_first.max() - as_second.min()


def test_exploitability_and_duality_gap_against_brute_force_on_rock_paper_scissors():
    m, grid, beta = rps(), simplex(300), 0.1
    uniform = torch.full((3,), 1 / 3, dtype=torch.float64)
    e, d = game_gaps(m, uniform.log(), uniform.log(), beta)
    assert abs(e.item()) < 1e-12 and abs(d.item()) < 1e-12          # uniform is the Nash equilibrium of both games
    ref = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    for pi in (torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.2, 0.5, 0.3]), uniform, ref):
        pi = pi.double()
        e, d = game_gaps(m, pi.log(), ref.log(), beta)
        e_bf, d_bf = brute_force(m, pi, ref, beta, grid)
        assert e.item() == pytest.approx(e_bf.item(), abs=1e-12)   # linear: a vertex is the best response
        assert d_bf.item() - 1e-12 <= d.item() <= d_bf.item() + 2e-3, (d, d_bf)   # the grid can only fall short
    assert game_gaps(m, torch.tensor([0.0, 0.0, 1.0]).double().log(), ref.log(), beta)[0].item() == \
        pytest.approx(sig(1.0) - 0.5)                                # pure scissors: rock beats it
    # the regularised Nash equilibrium of a skewed reference, by damped fixed-point iteration
    # pi = pi_ref exp(M pi / beta) / Z: its gap is 0, and any move away makes it positive
    pi = ref.clone()
    for _ in range(5000):
        pi = 0.9 * pi + 0.1 * torch.softmax(ref.log() + m @ pi / beta, -1)
    torch.testing.assert_close(pi, torch.softmax(ref.log() + m @ pi / beta, -1), rtol=0, atol=1e-12)
    assert abs(game_gaps(m, pi.log(), ref.log(), beta)[1].item()) < 1e-10
    for shift in (torch.tensor([0.01, -0.01, 0.0]), torch.tensor([0.0, 0.02, -0.02])):
        assert game_gaps(m, (pi + shift.double()).log(), ref.log(), beta)[1].item() > 1e-6
    assert game_gaps(m, pi.log(), ref.log(), beta)[0].item() > 0.01   # not the unregularised equilibrium


def test_task_evaluates_exploitability_and_duality_gap_exactly():
    task = make("bt-seq-intransitive", physics={"contexts": 2, "content_tokens": 3, "max_len": 2})
    pi, ref = peaked(task, 5), peaked(task, 6)
    logp, ref_logp = task.leaf_logprobs(pi).double(), task.leaf_logprobs(ref).double()
    out = task.evaluate(logp, ref_logp)
    beta, n = task.spec.beta, task.num_responses
    exploit, gap = [], []
    for c in range(2):
        p, q = logp[0, c].exp(), ref_logp[0, c].exp()
        ctx = torch.full((n,), c)
        beats = [sum(torch.sigmoid(task.preference_logit(ctx[:1], task.tokens[i:i + 1], task.tokens[j:j + 1])).item()
                     * p[j].item() for j in range(n)) for i in range(n)]   # P(y_i > pi), pair by pair
        exploit.append(max(beats) - 0.5)
        kl = (p * (p.log() - q.log())).sum().item()
        best = beta * math.log(sum(q[i].item() * math.exp(beats[i] / beta) for i in range(n)))
        gap.append(2 * (best + beta * kl - 0.5))
    assert out["exploitability"].item() == pytest.approx(sum(exploit) / 2, rel=1e-6)   # float32 logits here
    assert out["duality_gap"].item() == pytest.approx(sum(gap) / 2, rel=1e-6)
    assert out["exploitability"].item() > 0 and out["duality_gap"].item() > 0


# ---------------------------------------------------------------- iterates and the CLI
def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_iterates_refresh_at_iteration_boundaries(run_cli, tmp_path):
    from drlbench.llm.reference import reference

    state = {}
    for steps in (3, 4):
        code, _, err = run_cli("run", "apo", "--env", SMALL, "--steps", steps, "--eval-every", steps, "--quiet",
                               "--set", "iteration_steps=2", "batch_size=8", "--out", tmp_path / str(steps))
        assert code == 0, err
        (run,) = (tmp_path / str(steps)).glob("*/apo-*/seed_0")
        state[steps] = torch.load(run / "agent.pt")
    ref = reference(make("bt-seq-intransitive", physics={"contexts": 3, "max_len": 3, "sft_steps": 30,
                                                         "demos": 256}), 0).state_dict()

    def same(a, b, prefix_a, prefix_b):
        return all(torch.equal(a[f"{prefix_a}.{k}"], b[f"{prefix_b}.{k}"]) for k in ref)

    three, four = state[3], state[4]
    assert same(three, {f"r.{k}": v for k, v in ref.items()}, "previous", "r")         # pi_{t-1} = pi_0 = pi_ref
    assert not same(three, three, "snapshot", "policy")                                 # pi_t = the policy at step 2
    assert same(four, four, "snapshot", "policy")                                        # refreshed at step 4
    assert same(three, four, "snapshot", "previous")                                    # pi_{t-1} <- pi_t at step 4
    assert not same(four, {f"r.{k}": v for k, v in ref.items()}, "previous", "r")


def test_next_iteration_moves_every_iterate():
    from drlbench.agents.apo import APO, APOConfig
    from drlbench.population import Population

    task = make("bt-seq-intransitive", physics={"contexts": 2, "content_tokens": 3, "max_len": 2})
    population = Population([0, 1])
    agent = APO(task.observation_space, task.action_space,
                APOConfig(learning_rate=1e-3, iteration_steps=1, beta=0.1, alpha=0.3), population)
    ref = TinyLM(task.spec.model, [torch.Generator().manual_seed(s) for s in (7, 8)])
    agent.attach_reference(ref, copy_into_policy=True)
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.add_(1.0)
    before = [p.clone() for p in agent.snapshot.parameters()]
    agent.next_iteration()
    assert all(torch.equal(a, b) for a, b in zip(agent.previous.parameters(), before))
    assert all(torch.equal(a, b) for a, b in zip(agent.snapshot.parameters(), agent.policy.parameters()))
    assert not any(p.requires_grad for p in [*agent.snapshot.parameters(), *agent.previous.parameters()])
    assert {"snapshot.tok", "previous.tok"} <= set(agent.checkpoint()["networks"])   # resumed runs keep them


@pytest.mark.parametrize("agent", NEW)
def test_every_new_agent_takes_steps_through_the_cli(agent, run_cli, tmp_path):
    extra = ["iteration_steps=1"] if agent in ("sppo", "inpo", "dno", "apo") else []
    code, _, err = run_cli("run", agent, "--env", SMALL, "--steps", "3", "--eval-every", "3", "--seeds", "0-1",
                           "--batched", "--quiet", "--set", "batch_size=8", *extra, "--out", tmp_path)
    assert code == 0, err
    for seed in (0, 1):
        (run,) = tmp_path.glob(f"*/{agent}*/seed_{seed}")
        rows = read(run / "llm_evaluations.csv")
        assert [int(r["step"]) for r in rows] == [0, 3]
        assert float(rows[0]["kl"]) == 0.0 and float(rows[1]["kl"]) > 0        # started at pi_ref, then moved
        assert float(rows[0]["exploitability"]) > 0 and float(rows[0]["duality_gap"]) > 0


@pytest.mark.parametrize("args, needle", [
    (["run", "sppo", "--env", "llm:bt-seq-intransitive", "--set", "sampling=offline"], "not offline"),
    (["run", "nash_md", "--env", "llm:bt-seq-intransitive", "--set", "sampling=offline"], "second answer"),
    (["run", "online_dpo", "--env", "llm:bt-seq-intransitive", "--set", "sampling=snapshot"], "does not keep"),
    (["run", "nash_md", "--env", "llm:bt-seq", "--set", "mixture_coef=1.5"], "mixture_coef"),
    (["run", "sppo", "--env", "llm:bt-seq", "--set", "group_size=1"], "group_size"),
])
def test_bad_input_is_one_line_exit_2(run_cli, tmp_path, args, needle):
    code, _, err = run_cli(*args, "--out", tmp_path / "out")
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_resume_keeps_the_iterates(run_cli, tmp_path, monkeypatch):
    """Interrupted after the checkpoint at step 4 (pi_t set at step 3, pi_{t-1} at step 3 too), resumed: the
    same records as a run straight through (the iterates travel in the checkpoint)."""
    from drlbench.harness import Session

    args = ["run", "apo", "--env", SMALL, "--steps", "6", "--eval-every", "2", "--seeds", "0-1", "--batched",
            "--quiet", "--set", "iteration_steps=3", "batch_size=8"]
    assert run_cli(*args, "--out", tmp_path / "straight")[0] == 0
    original, calls = Session.save_checkpoint, []

    def interrupt_after_second_checkpoint(self, loop_state):
        original(self, loop_state)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt_after_second_checkpoint)
    assert run_cli(*args, "--out", tmp_path / "resumed")[0] == 130
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*args, "--out", tmp_path / "resumed", "--resume")
    assert code == 0, err
    for seed in (0, 1):
        (a,) = (tmp_path / "straight").glob(f"*/apo*/seed_{seed}")
        (b,) = (tmp_path / "resumed").glob(f"*/apo*/seed_{seed}")
        strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]   # noqa: E731
        assert strip(read(a / "llm_evaluations.csv")) == strip(read(b / "llm_evaluations.csv"))
        assert strip(read(a / "evaluations.csv")) == strip(read(b / "evaluations.csv"))
        assert len(read(a / "llm_evaluations.csv")) == 4
