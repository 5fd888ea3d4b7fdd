"""Parity of drlbench.llm.losses with TRL's own loss code (extra `llm-trl`: trl 1.16.0, transformers 5.23.0).

What is compared, for each method TRL has (spec §2.2): the batch-mean loss and its gradient with
respect to the per-token inputs, computed once through TRL's code and once through
`drlbench.llm.losses.LOSSES[name](PairBatch(...))[0].mean()`, on the same random batch (4 pairs,
6 response tokens, chosen and rejected lengths from 2 to 6, a prompt token in front).

TRL has no function that takes log-probs for DPO, so TRL's code is called at the lowest level
that does, with stubs for everything that is not the loss:
- DPO family: the trainer method `DPOTrainer._compute_loss(self, model, inputs)` called unbound, with a
  stub `self` (the attributes `DPOTrainer.__init__` copies from `DPOConfig`: beta, loss_type list,
  loss_weights, label_smoothing, f_divergence_type, f_alpha_divergence_coef, ld_alpha, discopop_tau; an
  identity accelerator; a metrics dict) and stub policy / reference models that return what TRL's fused
  LM head returns: per-token log-probs of the shifted labels, 0 where the label is -100. The gradient is
  taken w.r.t. the per-token log-prob tensors themselves (the leaves both paths read).
- SimPO (`CPOTrainer`, loss_type "simpo"), TPO / TPO-L (`TPOTrainer._compute_loss`) and ORPO's odds-ratio
  term (`ORPOTrainer.odds_ratio_loss`) take logits: a 2-symbol vocabulary whose logits are
  (log p, log(1 - p)) gives the per-token log-prob log p exactly; drlbench reads the same logits through
  log_softmax + gather, and the gradient is taken w.r.t. the logits.
Deliberate differences, kept out of the comparison: TRL's `sft` / TPO gold NLL is a token mean over the
whole batch (drlbench: per response, then the caller's batch mean), so those cases use equal lengths;
ORPO's TRL NLL also counts prompt tokens, so only the odds-ratio term is compared. cDPO has no
counterpart in trl 1.16: DPOTrainer's `sigmoid` branch ignores `label_smoothing` (the spec's §1.A
describes older versions); AOT's label smoothing is compared instead.

`python tests/test_llm_trl_parity.py` prints the max abs differences per method.
"""
from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from drlbench.llm import losses as L
from drlbench.llm.losses import PairBatch

trl = pytest.importorskip("trl", reason="TRL parity needs the llm-trl extra: pip install -e '.[llm-trl]'")
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402

B, T = 4, 6
CHOSEN_LENS, REJECTED_LENS = (6, 2, 4, 5), (3, 6, 4, 1)


def _mask(lens, dtype):
    return (torch.arange(T)[None, :] < torch.tensor(lens)[:, None]).to(dtype)


def _logps(gen, dtype, low=-3.0, high=-0.05):
    return (low + (high - low) * torch.rand(B, T, generator=gen, dtype=torch.float64)).to(dtype)


def random_tokens(dtype=torch.float64, seed=0, chosen_lens=CHOSEN_LENS):
    gen = torch.Generator().manual_seed(seed)
    return dict(chosen_logps=_logps(gen, dtype), rejected_logps=_logps(gen, dtype),
                ref_chosen_logps=_logps(gen, dtype), ref_rejected_logps=_logps(gen, dtype),
                chosen_mask=_mask(chosen_lens, dtype), rejected_mask=_mask(REJECTED_LENS, dtype))


# ---------------------------------------------------------------- DPOTrainer._compute_loss
class _FusedHeadStub:
    """Stands in for a model with TRL's fused LM head: returns the given per-token log-probs of the
    shifted labels (0 where the label is -100), as `add_fused_lm_head` documents."""

    training = True
    is_gradient_checkpointing = False

    def __init__(self, per_token_logps):
        self.lp = per_token_logps

    def __call__(self, labels=None, fused_lm_head=False, **_):
        assert fused_lm_head
        lp = torch.where(labels[:, 1:] != -100, self.lp, torch.zeros_like(self.lp))
        zeros = torch.zeros_like(lp).detach()
        return SimpleNamespace(log_probs=lp, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool(),
                               log_sum_sq_probs=None, aux_loss=None)


def _trl_self(beta, loss_type, loss_weights=None, label_smoothing=0.0, f_divergence_type="reverse_kl",
              f_alpha_divergence_coef=0.5, ld_alpha=None, discopop_tau=0.05, ref_model=None):
    identity = lambda x: x  # noqa: E731
    return SimpleNamespace(
        model=SimpleNamespace(training=True, is_gradient_checkpointing=False), ref_model=ref_model,
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather=identity, gather_for_metrics=identity),
        args=SimpleNamespace(discopop_tau=discopop_tau, gradient_checkpointing_kwargs=None),
        beta=beta, loss_types=list(loss_type), loss_weights=loss_weights or [1.0] * len(loss_type),
        label_smoothing=label_smoothing, f_divergence_type=f_divergence_type,
        f_alpha_divergence_coef=f_alpha_divergence_coef, ld_alpha=ld_alpha, use_weighting=False,
        precompute_ref_logps=False, aux_loss_enabled=False, _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0, _tp_size=1)


def trl_dpo_loss(tok, **cfg):
    """TRL's DPO loss on the per-token log-probs in `tok` (layout: [chosen; rejected], a prompt token first)."""
    policy = torch.cat([tok["chosen_logps"], tok["rejected_logps"]])
    ref = torch.cat([tok["ref_chosen_logps"], tok["ref_rejected_logps"]])
    completion = torch.cat([tok["chosen_mask"], tok["rejected_mask"]]).long()
    completion_mask = torch.cat([torch.zeros(2 * B, 1, dtype=torch.long), completion], dim=1)
    inputs = {"input_ids": torch.ones(2 * B, T + 1, dtype=torch.long),
              "attention_mask": torch.ones(2 * B, T + 1, dtype=torch.long), "completion_mask": completion_mask}
    stub = _trl_self(ref_model=_FusedHeadStub(ref), **cfg)
    return DPOTrainer._compute_loss(stub, _FusedHeadStub(policy), inputs, False)


# drlbench name and hyper-parameters  <->  DPOConfig fields
DPO_CASES = {
    "dpo": (dict(beta=0.3), dict(beta=0.3, loss_type=["sigmoid"])),
    "robust_dpo": (dict(beta=0.3, epsilon=0.2), dict(beta=0.3, loss_type=["robust"], label_smoothing=0.2)),
    "ipo_tok": (dict(tau=0.3), dict(beta=0.3, loss_type=["ipo"])),
    "rso": (dict(gamma=0.3), dict(beta=0.3, loss_type=["hinge"])),
    "exo_pair": (dict(beta=0.3, epsilon=1e-3), dict(beta=0.3, loss_type=["exo_pair"], label_smoothing=1e-3)),
    "nca_pair": (dict(beta=0.3), dict(beta=0.3, loss_type=["nca_pair"])),
    "bco_pair": (dict(beta=0.3), dict(beta=0.3, loss_type=["bco_pair"])),
    "sppo_hard": (dict(beta=0.3), dict(beta=0.3, loss_type=["sppo_hard"])),
    "aot": (dict(beta=0.3, epsilon=0.1), dict(beta=0.3, loss_type=["aot"], label_smoothing=0.1)),
    "aot_unpaired": (dict(beta=0.3), dict(beta=0.3, loss_type=["aot_unpaired"])),
    "apo_anchored_zero": (dict(beta=0.3), dict(beta=0.3, loss_type=["apo_zero"])),
    "apo_anchored_down": (dict(beta=0.3), dict(beta=0.3, loss_type=["apo_down"])),
    "discopop": (dict(beta=0.3, tau=0.05), dict(beta=0.3, loss_type=["discopop"], discopop_tau=0.05)),
    "ln_dpo": (dict(beta=0.3), dict(beta=0.3, loss_type=["sigmoid_norm"])),
    "ld_dpo": (dict(beta=0.3, alpha=0.4), dict(beta=0.3, loss_type=["sigmoid"], ld_alpha=0.4)),
    "f_dpo/forward_kl": (dict(beta=0.3, divergence="forward_kl"),
                         dict(beta=0.3, loss_type=["sigmoid"], f_divergence_type="forward_kl")),
    "f_dpo/js": (dict(beta=0.3, divergence="js"),
                 dict(beta=0.3, loss_type=["sigmoid"], f_divergence_type="js_divergence")),
    "f_dpo/alpha=0.5": (dict(beta=0.3, divergence="alpha", alpha=0.5),
                        dict(beta=0.3, loss_type=["sigmoid"], f_divergence_type="alpha_divergence",
                             f_alpha_divergence_coef=0.5)),
    "f_dpo/alpha=1.5": (dict(beta=0.3, divergence="alpha", alpha=1.5),
                        dict(beta=0.3, loss_type=["sigmoid"], f_divergence_type="alpha_divergence",
                             f_alpha_divergence_coef=1.5)),
    "f_dpo/alpha=1": (dict(beta=0.3, divergence="alpha", alpha=1.0),
                      dict(beta=0.3, loss_type=["sigmoid"], f_divergence_type="alpha_divergence",
                           f_alpha_divergence_coef=1.0)),
    # RPO = ["sigmoid", "sft"]; TRL's sft is a batch token mean, so the chosen lengths are equal here
    "rpo": (dict(beta=0.3, alpha=0.7), dict(beta=0.3, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.7])),
}
LEAVES = ("chosen_logps", "rejected_logps")


def dpo_case(case: str) -> tuple[float, float]:
    """(|loss difference|, max |gradient difference|) for one DPO_CASES entry."""
    hp, cfg = DPO_CASES[case]
    # TRL's alpha-divergence clamps through a float16/bfloat16/float32 table: float32 there
    dtype = torch.float32 if cfg.get("f_divergence_type") == "alpha_divergence" else torch.float64
    tok = random_tokens(dtype, chosen_lens=(5,) * B if case == "rpo" else CHOSEN_LENS)
    for k in LEAVES:
        tok[k].requires_grad_(True)
    ours = L.LOSSES[case.split("/")[0]](PairBatch(**tok), **hp)[0].mean()
    theirs = trl_dpo_loss(tok, **cfg)
    g_ours = torch.autograd.grad(ours, [tok[k] for k in LEAVES])
    g_theirs = torch.autograd.grad(theirs, [tok[k] for k in LEAVES])
    return abs(ours.item() - theirs.item()), max((a - b).abs().max().item() for a, b in zip(g_ours, g_theirs))


# ---------------------------------------------------------------- logits-based trainers (CPO/SimPO, TPO, ORPO)
def logits_from_logps(lp: torch.Tensor) -> torch.Tensor:
    """(N, T) per-token log-probs -> (N, T + 1, 2) logits over the vocabulary {0, 1} such that
    log_softmax(logits[:, t])[0] = lp[:, t], i.e. the log-prob of token 0 at position t + 1 (all ids 0).
    The last position predicts nothing (padding)."""
    pair = torch.stack([lp, L.log1mexp(lp)], dim=-1)
    return torch.cat([pair, torch.zeros_like(pair[:, :1])], dim=1)


def token_logps(logits: torch.Tensor) -> torch.Tensor:
    """drlbench's side: per-token log-probs of token 0 from the shifted logits, (N, T)."""
    return F.log_softmax(logits[:, :-1], dim=-1)[..., 0]


def _pair_from_logits(logits, chosen_mask, rejected_mask, gold_mask=None):
    lp = token_logps(logits)
    zeros = torch.zeros_like(chosen_mask)
    out = PairBatch(lp[:B], lp[B:2 * B], zeros, zeros, chosen_mask, rejected_mask)
    if gold_mask is not None:
        out.gold_logps, out.gold_mask = lp[2 * B:], gold_mask
    return out


def _identity_accelerator():
    return SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)


def simpo_case(beta=2.0, gamma=1.1, epsilon=0.1):
    from trl.experimental.cpo.cpo_trainer import CPOTrainer
    tok = random_tokens()
    logits = logits_from_logps(torch.cat([tok["chosen_logps"], tok["rejected_logps"]])).requires_grad_(True)
    masks = torch.cat([tok["chosen_mask"], tok["rejected_mask"]])
    labels = torch.cat([torch.full((2 * B, 1), -100), torch.where(masks > 0, 0, -100)], dim=1)
    avg = CPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)
    stub = SimpleNamespace(alpha=0.0, loss_type="simpo", simpo_gamma=gamma, beta=beta,
                           label_smoothing=epsilon, accelerator=_identity_accelerator())
    theirs = CPOTrainer.cpo_loss(stub, avg[:B], avg[B:])[0].mean()
    ours = L.simpo(_pair_from_logits(logits, tok["chosen_mask"], tok["rejected_mask"]),
                   beta=beta, gamma=gamma, epsilon=epsilon)[0].mean()
    return _compare(ours, theirs, logits)


def orpo_case(lam=0.25):
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer
    tok = random_tokens()
    logits = logits_from_logps(torch.cat([tok["chosen_logps"], tok["rejected_logps"]])).requires_grad_(True)
    masks = torch.cat([tok["chosen_mask"], tok["rejected_mask"]])
    labels = torch.cat([torch.full((2 * B, 1), -100), torch.where(masks > 0, 0, -100)], dim=1)
    avg = ORPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)
    stub = SimpleNamespace(beta=lam, accelerator=_identity_accelerator())
    theirs = -ORPOTrainer.odds_ratio_loss(stub, avg[:B], avg[B:])[0].mean()      # the -lam * L_OR term
    batch = _pair_from_logits(logits, tok["chosen_mask"], tok["rejected_mask"])
    loss, _ = L.orpo(batch, lam=lam)
    ours = (loss - L.nll(batch.chosen_logps, batch.chosen_mask)).mean()
    return _compare(ours, theirs, logits)


def tpo_case(loss_type="sigmoid", beta=0.2, alpha=0.8, gamma=0.5):
    from trl.experimental.tpo.tpo_trainer import TPOTrainer
    tok = random_tokens()
    gen = torch.Generator().manual_seed(1)
    gold = _logps(gen, torch.float64)
    gold_mask = _mask((4,) * B, torch.float64)           # TRL's gold NLL is a batch token mean: equal lengths
    logits = logits_from_logps(torch.cat([tok["chosen_logps"], tok["rejected_logps"], gold])).requires_grad_(True)
    masks = torch.cat([tok["chosen_mask"], tok["rejected_mask"], gold_mask]).long()
    inputs = {"input_ids": torch.zeros(3 * B, T + 1, dtype=torch.long),
              "attention_mask": torch.ones(3 * B, T + 1, dtype=torch.long),
              "completion_mask": torch.cat([torch.zeros(3 * B, 1, dtype=torch.long), masks], dim=1)}
    stub = SimpleNamespace(model=SimpleNamespace(training=True), tpo_alpha=alpha, loss_type=loss_type, beta=beta,
                           label_smoothing=0.0, tpo_l_gamma=gamma, accelerator=_identity_accelerator(),
                           _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1)
    theirs = TPOTrainer._compute_loss(stub, lambda **kw: SimpleNamespace(logits=logits), inputs, False)
    batch = _pair_from_logits(logits, tok["chosen_mask"], tok["rejected_mask"], gold_mask)
    if loss_type == "sigmoid":
        ours = L.tpo(batch, beta=beta, alpha=alpha)[0].mean()
    else:
        # TRL's tpo-l shifts by gamma/beta inside beta * (.): the margin is gamma, as in drlbench
        ours = L.tpo_l(batch, beta=beta, gamma=gamma, alpha=alpha)[0].mean()
    return _compare(ours, theirs, logits)


def _compare(ours, theirs, leaf):
    g_ours, = torch.autograd.grad(ours, leaf)
    g_theirs, = torch.autograd.grad(theirs, leaf)
    return abs(ours.item() - theirs.item()), (g_ours - g_theirs).abs().max().item()


OTHER_CASES = {"simpo (CPOTrainer simpo)": simpo_case, "orpo (odds-ratio term)": orpo_case,
               "tpo (TPOTrainer sigmoid)": lambda: tpo_case("sigmoid"),
               "tpo_l (TPOTrainer tpo-l)": lambda: tpo_case("tpo-l")}


def tolerance(case: str) -> float:
    """1e-12 (float64 both sides) except where TRL computes in float32: the alpha-divergence (its clamp
    table has no float64), ORPO (`.float()`), EXO (epsilon as a float32 tensor: log(1 - eps) to 6e-8)."""
    return 1e-5 if "alpha=" in case or "orpo" in case or "exo" in case else 1e-12


@pytest.mark.parametrize("case", sorted(DPO_CASES))
def test_dpo_trainer_parity(case):
    d_loss, d_grad = dpo_case(case)
    assert d_loss < tolerance(case) and d_grad < tolerance(case), (d_loss, d_grad)


@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_logits_trainers_parity(case):
    d_loss, d_grad = OTHER_CASES[case]()
    assert d_loss < tolerance(case) and d_grad < tolerance(case), (d_loss, d_grad)


def test_the_stub_layout_is_trls():
    """Guard for the stub: DPO through TRL equals -log sigma(beta Delta) written out by hand on pair 0."""
    tok = random_tokens()
    per_pair = []
    for i in range(B):
        one = {k: v[i:i + 1] for k, v in tok.items()}
        h = [float((one[p] - one[r])[0, :int(one[m].sum())].sum())
             for p, r, m in (("chosen_logps", "ref_chosen_logps", "chosen_mask"),
                             ("rejected_logps", "ref_rejected_logps", "rejected_mask"))]
        per_pair.append(math.log1p(math.exp(-0.3 * (h[0] - h[1]))))
    assert trl_dpo_loss(tok, beta=0.3, loss_type=["sigmoid"]).item() == pytest.approx(sum(per_pair) / B, rel=1e-12)


if __name__ == "__main__":
    print(f"trl {trl.__version__}; max abs difference drlbench vs TRL (loss, gradient)")
    for case in DPO_CASES:
        d = dpo_case(case)
        print(f"  {case:24s} DPOTrainer  {d[0]:.1e}  {d[1]:.1e}")
    for case, fn in OTHER_CASES.items():
        d = fn()
        print(f"  {case:36s} {d[0]:.1e}  {d[1]:.1e}")
