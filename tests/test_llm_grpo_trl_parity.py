"""Parity of drlbench.llm.group_losses with TRL's GRPO and RLOO loss code (extra `llm-trl`: trl 1.16.0).

What is compared: the loss and its gradient with respect to the per-token log-probs of the current
policy, once through TRL's `GRPOTrainer._compute_loss` / `RLOOTrainer._compute_loss` and once through
`GROUP_LOSSES[name](GroupBatch(...))`, on the same random batch (Q = 3 prompts x G = 4 completions,
L = 6 tokens, lengths 1..6, an off-policy behaviour policy so that ratios leave the clip range). Both
methods are called unbound with a stub `self` holding the attributes `__init__` copies from the config
(beta, epsilon_low / epsilon_high, loss_type, importance_sampling_level, max_completion_length, the
`args` fields the loss reads), an identity accelerator, and a `_get_per_token_logps_and_entropies` that
returns the test's per-token log-probs (the leaf both sides differentiate).

TRL computes advantages in `_generate_and_score_completions`, which also generates and scores
completions, so it cannot be called on a given batch: TRL's loss gets drlbench's advantages
(`group_advantages`, RLOO's leave-one-out with the KL in the reward), and the advantage formulas are
checked separately below against TRL's, written out from grpo_trainer.py / rloo_trainer.py (mean and
Bessel std per group, 1e-4 added to the std).

Cases: every GRPO loss_type that is an aggregation (grpo, bnpo = token, dr_grpo, dapo), sapo, cispo,
importance_sampling_level="sequence" (GSPO), beta > 0 (k3 KL, also with use_bias_correction_kl),
epsilon_high != epsilon_low, the two-sided clip delta, scale_rewards batch / none; RLOO with beta and
normalize_advantages. Members: drlbench is called on P = 2 members at once and member p is compared with
TRL on member p's data alone. Deliberate differences (not compared): TRL's logged metrics; TRL's
`dapo`/`cispo` normaliser counts the tokens of the whole generation batch across gradient-accumulation
steps and processes (here one batch, one process, where it is the member's active-token count);
BNPO-paper is not TRL's `bnpo` (that one is an aggregation, compared as `grpo(aggregation="token")`).

`python tests/test_llm_grpo_trl_parity.py` prints the max abs differences per case.
"""
from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from drlbench.llm import group_losses as GL
from drlbench.llm.group_losses import GROUP_LOSSES, GroupBatch

trl = pytest.importorskip("trl", reason="TRL parity needs the llm-trl extra: pip install -e '.[llm-trl]'")
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402
from trl.trainer.rloo_trainer import RLOOTrainer  # noqa: E402

P, Q, G, L = 2, 3, 4, 6
F32_105 = float(torch.tensor(1.05, dtype=torch.float32))
LENGTHS = torch.tensor([[[6, 2, 4, 5], [3, 6, 1, 4], [2, 2, 6, 3]],
                        [[1, 5, 6, 2], [4, 4, 3, 6], [6, 1, 2, 5]]])


def random_batch(seed: int = 0, spread: float = 0.4) -> dict[str, torch.Tensor]:
    """Per-token inputs (float64, padding 0 as TRL expects), binary rewards with mixed and uniform groups."""
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.arange(L) < LENGTHS.unsqueeze(-1)).double()
    logps = -3 * torch.rand(P, Q, G, L, generator=gen, dtype=torch.float64) - 0.05
    old = logps + spread * torch.randn(P, Q, G, L, generator=gen, dtype=torch.float64)
    ref = logps + spread * torch.randn(P, Q, G, L, generator=gen, dtype=torch.float64)
    rewards = torch.tensor([[[1., 0., 1., 0.], [1., 1., 1., 1.], [0., 0., 1., 0.]],
                            [[0., 1., 1., 1.], [0., 0., 0., 0.], [1., 0., 0., 0.5]]], dtype=torch.float64)
    return dict(logps=logps * mask, old_logps=old * mask, ref_logps=ref * mask, mask=mask, rewards=rewards)


def _accelerator():
    identity = lambda x, **_: x  # noqa: E731
    return SimpleNamespace(num_processes=1, gather=identity, gather_for_metrics=identity, reduce=identity)


def _trl_self(lp, **cfg):
    """A stub GRPOTrainer / RLOOTrainer: the attributes `_compute_loss` reads, and the per-token log-probs."""
    args = SimpleNamespace(delta=cfg.pop("delta", None),
                           use_bias_correction_kl=cfg.pop("use_bias_correction_kl", False),
                           sapo_temperature_pos=cfg.pop("tau_pos", 1.0), sapo_temperature_neg=cfg.pop("tau_neg", 1.05),
                           steps_per_generation=1)
    return SimpleNamespace(
        args=args, model=SimpleNamespace(training=True), accelerator=_accelerator(),
        _get_per_token_logps_and_entropies=lambda *a, **k: (lp, torch.zeros_like(lp).detach(), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, use_vllm=False,
        vllm_importance_sampling_correction=False, current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False, aux_loss_enabled=False, _metrics=defaultdict(lambda: defaultdict(list)),
        importance_sampling_level=cfg.pop("importance_sampling_level", "token"), max_completion_length=L, **cfg)


def _inputs(mask, advantages, **extra):
    n = mask.shape[0]
    return {"prompt_ids": torch.ones(n, 1, dtype=torch.long), "prompt_mask": torch.ones(n, 1, dtype=torch.long),
            "completion_ids": torch.ones(n, L, dtype=torch.long), "completion_mask": mask.long(),
            "advantages": advantages, "num_items_in_batch": mask.sum(), **extra}


# drlbench name and keyword arguments  <->  GRPOTrainer attributes (loss_type, beta, epsilons, args fields)
GRPO_CASES = {
    "grpo (paper beta 0.04)": ("grpo", dict(), dict(loss_type="grpo", beta=0.04)),
    "grpo aggregation=token (TRL bnpo)": ("grpo", dict(beta=0.0, aggregation="token"),
                                          dict(loss_type="bnpo", beta=0.0)),
    "grpo aggregation=token (TRL dapo)": ("grpo", dict(beta=0.0, aggregation="token"),
                                          dict(loss_type="dapo", beta=0.0)),
    "grpo aggregation=dr_grpo": ("grpo", dict(beta=0.0, aggregation="dr_grpo"), dict(loss_type="dr_grpo", beta=0.0)),
    "grpo beta + bias-corrected KL": ("grpo", dict(beta=0.1, use_bias_correction_kl=True),
                                      dict(loss_type="grpo", beta=0.1, use_bias_correction_kl=True)),
    "grpo delta=1.5, eps 0.1/0.3": ("grpo", dict(beta=0.0, delta=1.5, epsilon_low=0.1, epsilon_high=0.3),
                                    dict(loss_type="grpo", beta=0.0, delta=1.5, epsilon_low=0.1, epsilon_high=0.3)),
    "grpo scale_rewards=batch": ("grpo", dict(scale_rewards="batch"), dict(loss_type="grpo", beta=0.04)),
    "dr_grpo": ("dr_grpo", dict(), dict(loss_type="dr_grpo", beta=0.0)),
    "dr_grpo beta=0.05": ("dr_grpo", dict(beta=0.05), dict(loss_type="dr_grpo", beta=0.05)),
    "dapo": ("dapo", dict(), dict(loss_type="dapo", beta=0.0, epsilon_high=0.28)),
    "dapo delta=2": ("dapo", dict(delta=2.0), dict(loss_type="dapo", beta=0.0, epsilon_high=0.28, delta=2.0)),
    "gspo": ("gspo", dict(), dict(loss_type="grpo", beta=0.0, epsilon_low=3e-4, epsilon_high=4e-4,
                                  importance_sampling_level="sequence")),
    "gspo beta=0.1, eps 0.2": ("gspo", dict(beta=0.1, epsilon_low=0.2, epsilon_high=0.2),
                               dict(loss_type="grpo", beta=0.1, importance_sampling_level="sequence")),
    "grpo sequence-level, dapo aggregation": ("grpo", dict(beta=0.0, aggregation="token",
                                                           importance_sampling_level="sequence"),
                                              dict(loss_type="dapo", beta=0.0, importance_sampling_level="sequence")),
    "sapo": ("sapo", dict(), dict(loss_type="sapo", beta=0.0)),
    # TRL builds the temperatures with torch.where on Python floats, a float32 tensor: its 1.05 is 1.0499999523
    "sapo tau_neg=float32(1.05)": ("sapo", dict(tau_neg=F32_105), dict(loss_type="sapo", beta=0.0)),
    "sapo tau 0.5/2, beta 0.1": ("sapo", dict(tau_pos=0.5, tau_neg=2.0, beta=0.1),
                                 dict(loss_type="sapo", beta=0.1, tau_pos=0.5, tau_neg=2.0)),
    "cispo": ("cispo", dict(), dict(loss_type="cispo", beta=0.0, epsilon_high=5.0)),
    "cispo eps_high=1.1, beta=0.1": ("cispo", dict(epsilon_high=1.1, beta=0.1),
                                     dict(loss_type="cispo", beta=0.1, epsilon_high=1.1)),
}


def _epsilons(cfg):
    cfg.setdefault("epsilon_low", 0.2)
    cfg.setdefault("epsilon_high", cfg["epsilon_low"])
    return cfg


def grpo_case(case: str, seed: int = 0) -> tuple[float, float]:
    """(max |loss difference|, max |gradient difference|) over the members for one GRPO_CASES entry."""
    name, ours_kw, trl_cfg = GRPO_CASES[case]
    data = random_batch(seed)
    lp = data["logps"].clone().requires_grad_(True)
    batch = GroupBatch(logps=lp, old_logps=data["old_logps"], ref_logps=data["ref_logps"], mask=data["mask"],
                       rewards=data["rewards"], max_len=L)
    ours, _ = GROUP_LOSSES[name](batch, **ours_kw)
    g_ours, = torch.autograd.grad(ours.sum(), lp)
    scale = {"dr_grpo": "none", "dapo": "group"}.get(name, ours_kw.get("scale_rewards", "group"))
    adv = GL.group_advantages(data["rewards"], scale)
    d_loss = d_grad = 0.0
    for p in range(P):
        flat = {k: v[p].reshape(Q * G, *v.shape[3:]) for k, v in data.items()}
        leaf = flat["logps"].clone().requires_grad_(True)
        inputs = _inputs(flat["mask"], adv[p].reshape(-1), old_per_token_logps=flat["old_logps"],
                         ref_per_token_logps=flat["ref_logps"])
        theirs = GRPOTrainer._compute_loss(_trl_self(leaf, **_epsilons(dict(trl_cfg))), None, inputs)
        g_theirs, = torch.autograd.grad(theirs, leaf)
        d_loss = max(d_loss, abs(ours[p].item() - theirs.item()))
        d_grad = max(d_grad, (g_ours[p].reshape(Q * G, L) - g_theirs).abs().max().item())
    return d_loss, d_grad


def rloo_case(beta: float = 0.05, normalize_advantages: bool = False, epsilon_high: float = 0.2, seed: int = 0):
    data = random_batch(seed, spread=0.15)     # sequence ratios of 6 tokens: keep some inside the clip range
    lp = data["logps"].clone().requires_grad_(True)
    batch = GroupBatch(logps=lp, old_logps=data["old_logps"], ref_logps=data["ref_logps"], mask=data["mask"],
                       rewards=data["rewards"], max_len=L)
    ours, metrics = GL.rloo(batch, beta=beta, normalize_advantages=normalize_advantages, epsilon_high=epsilon_high)
    g_ours, = torch.autograd.grad(ours.sum(), lp)
    d_loss = d_grad = d_adv = 0.0
    for p in range(P):
        flat = {k: v[p].reshape(Q * G, *v.shape[3:]) for k, v in data.items()}
        # TRL's RLOO advantages (rloo_trainer.py), written out: KL (first order, old - ref, sequence sum) in the
        # reward, leave-one-out baseline, optionally whitened with (std + 1e-4)
        r = flat["rewards"] - beta * ((flat["old_logps"] - flat["ref_logps"]) * flat["mask"]).sum(-1)
        grouped = r.view(Q, G)
        adv = (grouped - (grouped.sum(1, keepdim=True) - grouped) / (G - 1)).reshape(-1)
        if normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-4)
        ours_adv = GL.group_advantages(data["rewards"][p:p + 1] - beta * GL.seq_sum(
            data["old_logps"][p:p + 1] - data["ref_logps"][p:p + 1], data["mask"][p:p + 1]), "rloo").reshape(-1)
        if normalize_advantages:
            ours_adv = (ours_adv - ours_adv.mean()) / (ours_adv.std() + 1e-4)
        d_adv = max(d_adv, (adv - ours_adv).abs().max().item())
        leaf = flat["logps"].clone().requires_grad_(True)
        stub = _trl_self(leaf, beta=beta, epsilon_low=0.2, epsilon_high=epsilon_high)
        inputs = _inputs(flat["mask"], adv, old_logps=(flat["old_logps"] * flat["mask"]).sum(-1))
        theirs = RLOOTrainer._compute_loss(stub, None, inputs)
        g_theirs, = torch.autograd.grad(theirs, leaf)
        d_loss = max(d_loss, abs(ours[p].item() - theirs.item()))
        d_grad = max(d_grad, (g_ours[p].reshape(Q * G, L) - g_theirs).abs().max().item())
    return d_loss, d_grad, d_adv, metrics


TOL = 1e-12


def tolerance(case: str) -> float:
    """1e-12 (float64 both sides) except SAPO at TRL's default tau_neg = 1.05, which TRL rounds to float32
    (the case "sapo tau_neg=float32(1.05)" shows the whole difference is that rounding)."""
    return 1e-7 if case == "sapo" else TOL


@pytest.mark.parametrize("case", sorted(GRPO_CASES))
def test_grpo_trainer_parity(case):
    for seed in (0, 1):
        d_loss, d_grad = grpo_case(case, seed)
        assert d_loss < tolerance(case) and d_grad < tolerance(case), (case, seed, d_loss, d_grad)


@pytest.mark.parametrize("beta, normalize, eps_high", [(0.05, False, 0.2), (0.0, False, 0.28), (0.1, True, 0.2)])
def test_rloo_trainer_parity(beta, normalize, eps_high):
    d_loss, d_grad, d_adv, metrics = rloo_case(beta, normalize, eps_high)
    assert d_loss < TOL and d_grad < TOL and d_adv < TOL, (d_loss, d_grad, d_adv)
    # the batch exercises the clip (otherwise the comparison would not see it)
    assert (metrics["clip_ratio_region"] > 0).all() and (metrics["clip_ratio_region"] < 1).all()


def test_the_batch_exercises_the_clip_and_the_delta_cap():
    """Guard for the comparison: ratios leave [1 - eps, 1 + eps] on both sides and exceed delta."""
    data = random_batch(0)
    rho = torch.exp(data["logps"] - data["old_logps"])[data["mask"] > 0]
    assert (rho < 0.8).any() and (rho > 1.2).any() and (rho > 1.5).any() and (rho > 2.0).any()
    batch = GroupBatch(max_len=L, **data)
    _, m = GL.grpo(batch)
    assert ((m["clip_ratio_low"] > 0) & (m["clip_ratio_high"] > 0)).all()
    _, m = GL.cispo(batch, epsilon_high=1.1)      # the case "cispo eps_high=1.1" (no ratio reaches 5)
    assert (m["cispo_clip_ratio"] > 0).all()


def test_grpo_advantages_are_trls():
    """TRL's GRPO advantages (grpo_trainer.py, sum_then_normalize), written out: group mean, Bessel std per
    group (scale_rewards group) or over the batch (batch), (r - mean)/(std + 1e-4); none: r - mean."""
    r = random_batch()["rewards"]
    for p in range(P):
        flat = r[p].reshape(-1)
        grouped = flat.view(Q, G)
        mean = grouped.mean(1, keepdim=True)
        expected = {"group": (grouped - mean) / (grouped.std(1, keepdim=True) + 1e-4),
                    "batch": (grouped - mean) / (flat.std() + 1e-4), "none": grouped - mean}
        for kind, want in expected.items():
            got = GL.group_advantages(r, kind)[p]
            assert (got - want).abs().max().item() < TOL, kind


def test_trl_bnpo_and_dapo_aggregations_agree_on_one_batch():
    """TRL's `bnpo` and `dapo` differ only across gradient-accumulation steps; on one batch both are
    drlbench's aggregation "token" (checked above); the two TRL paths give the same number here."""
    data = random_batch()
    flat = {k: v[0].reshape(Q * G, *v.shape[3:]) for k, v in data.items()}
    adv = GL.group_advantages(data["rewards"], "group")[0].reshape(-1)
    inputs = _inputs(flat["mask"], adv, old_per_token_logps=flat["old_logps"], ref_per_token_logps=flat["ref_logps"])
    values = [GRPOTrainer._compute_loss(_trl_self(flat["logps"], **_epsilons(dict(loss_type=t, beta=0.0))), None,
                                        inputs).item() for t in ("bnpo", "dapo")]
    assert values[0] == pytest.approx(values[1], rel=1e-12)


if __name__ == "__main__":
    print(f"trl {trl.__version__}; max abs difference drlbench vs TRL (loss, gradient w.r.t. per-token log-probs)")
    for case in GRPO_CASES:
        d = max(grpo_case(case, s)[0] for s in (0, 1)), max(grpo_case(case, s)[1] for s in (0, 1))
        print(f"  {case:40s} GRPOTrainer  {d[0]:.1e}  {d[1]:.1e}")
    for args in [(0.05, False, 0.2), (0.0, False, 0.28), (0.1, True, 0.2)]:
        d = rloo_case(*args)
        print(f"  rloo beta={args[0]} normalize={args[1]} eps_high={args[2]:<5}       RLOOTrainer  {d[0]:.1e}  "
              f"{d[1]:.1e}  (advantages {d[2]:.1e})")

