"""A tiny causal transformer over a small vocabulary, with a population axis (one member per seed).

Tokens. Output vocabulary: 0 = EOS, 1..K = content tokens. Input vocabulary: the same, plus one
token per context (prompt) c, id K + 1 + c. A response is y_1..y_n followed by EOS when n < L
(L = `max_len` content tokens; a response that reaches L tokens ends there, without EOS). Its
tokens are stored as (..., L) with 0 after the end, and a mask (1 on the tokens that count,
EOS included) marks them. The model reads [c, y_1, ..., y_{L-1}] and its output at position t is
the next-token distribution pi(. | c, y_<=t).

Multi-token prompts (`ModelSpec.prompts`, task B llm:arith). Context c is then the prompt
x_c = (x_1..x_Lp), a row of the (C, Lp) table of input ids: content tokens 1..K (shared with the
answer, so a digit read in the prompt and a digit written in the answer have one embedding) and
`prompt_symbols` input-only ids K+1..K+S (operators, "="). The model reads
[x_1..x_Lp, y_1..y_{L-1}] (Lp + L - 1 positions) and its outputs at the last L positions are
pi(. | x_c, y_<t), t = 1..L. Without a table (Lp = 1, x_c = the one id K + 1 + c) this is exactly
the model above: same parameter shapes, same initial draws, same outputs. Every method below takes
context ids, so callers never see the prompt tokens.

Population axis. Every parameter carries a leading axis P; member p is initialised from its own
torch.Generator and trained by the same Adam (Adam is elementwise, so a stacked Adam is P
independent ones). Attention uses `scaled_dot_product_attention(is_causal=True)`; right padding
never reaches earlier positions, so no attention mask is needed.

Architecture (GPT-2 style, pre-LayerNorm): token + learned position embeddings, `n_layers` blocks
of multi-head causal self-attention and a 4x GELU MLP, final LayerNorm, linear head (no bias).
With d_model 64, 2 layers, 4 heads: about 0.1M parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EOS = 0


@dataclass(frozen=True)
class ModelSpec:
    content_tokens: int   # K
    contexts: int         # C
    max_len: int          # L, content tokens at most
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    # multi-token prompts: the (C, Lp) input ids of each context's prompt (None: one token K + 1 + c)
    prompts: tuple[tuple[int, ...], ...] | None = None
    prompt_symbols: int = 0   # input-only ids K+1 .. K+S the prompts may use besides content tokens

    def __post_init__(self):
        if self.prompts is not None:
            if len(self.prompts) != self.contexts or len({len(row) for row in self.prompts}) != 1:
                raise ValueError(f"prompts must be a ({self.contexts}, Lp) table")
            if not all(1 <= i < self.vocab_in for row in self.prompts for i in row):
                raise ValueError(f"prompt ids must lie in [1, {self.vocab_in})")

    @property
    def vocab_out(self) -> int:
        return self.content_tokens + 1

    @property
    def vocab_in(self) -> int:
        extra = self.contexts if self.prompts is None else self.prompt_symbols
        return self.content_tokens + 1 + extra

    @property
    def prompt_len(self) -> int:
        """Lp: input positions before the first answer token (1 without a prompt table)."""
        return 1 if self.prompts is None else len(self.prompts[0])


def _normal(generators: list[torch.Generator], shape: tuple[int, ...], std: float, device) -> torch.Tensor:
    return torch.stack([torch.randn(*shape, generator=g, device=device) * std for g in generators])


class TinyLM(nn.Module):
    """P stacked causal transformers. `generators`: one per member (its initial weights)."""

    def __init__(self, spec: ModelSpec, generators: list[torch.Generator], device: str | torch.device = "cpu"):
        super().__init__()
        self.spec = spec
        d, p = spec.d_model, len(generators)
        if d % spec.n_heads:
            raise ValueError(f"d_model {d} is not a multiple of n_heads {spec.n_heads}")
        std, proj_std = 0.02, 0.02 / math.sqrt(2 * spec.n_layers)   # GPT-2's initialisation

        def param(*shape, scale=std):
            return nn.Parameter(_normal(generators, shape, scale, device))

        def const(value, *shape):
            return nn.Parameter(torch.full((p, *shape), value, device=device))

        self.tok = param(spec.vocab_in, d)
        self.pos = param(spec.prompt_len + spec.max_len - 1, d, scale=0.01)
        self.blocks = nn.ModuleList()
        for _ in range(spec.n_layers):
            block = nn.Module()
            block.ln1_g, block.ln1_b = const(1.0, 1, d), const(0.0, 1, d)
            block.qkv, block.qkv_b = param(d, 3 * d), const(0.0, 1, 3 * d)
            block.proj, block.proj_b = param(d, d, scale=proj_std), const(0.0, 1, d)
            block.ln2_g, block.ln2_b = const(1.0, 1, d), const(0.0, 1, d)
            block.fc, block.fc_b = param(d, 4 * d), const(0.0, 1, 4 * d)
            block.out, block.out_b = param(4 * d, d, scale=proj_std), const(0.0, 1, d)
            self.blocks.append(block)
        self.lnf_g, self.lnf_b = const(1.0, 1, d), const(0.0, 1, d)
        self.head = param(d, spec.vocab_out)
        if spec.prompts is not None:   # not a parameter, not in the state dict: rebuilt from the spec
            self.register_buffer("prompt_table", torch.tensor(spec.prompts, device=device), persistent=False)

    @property
    def members(self) -> int:
        return self.tok.shape[0]

    @staticmethod
    def _ln(x, g, b):
        return F.layer_norm(x, x.shape[-1:]) * g + b

    @staticmethod
    def _lin(x, w, b=None):
        """x (P, N, in) @ w (P, in, out) + b (P, 1, out)."""
        return torch.baddbmm(b, x, w) if b is not None else torch.bmm(x, w)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (P, B, T) input-vocabulary ids -> next-token logits (P, B, T, K+1)."""
        p, b, t = inputs.shape
        d, h = self.spec.d_model, self.spec.n_heads
        index = inputs.reshape(p, b * t, 1).expand(p, b * t, d)
        x = torch.gather(self.tok, 1, index).view(p, b, t, d) + self.pos[:, None, :t]
        x = x.reshape(p, b * t, d)
        for blk in self.blocks:
            qkv = self._lin(self._ln(x, blk.ln1_g, blk.ln1_b), blk.qkv, blk.qkv_b)
            q, k, v = qkv.view(p, b, t, 3, h, d // h).permute(3, 0, 1, 4, 2, 5).unbind(0)   # (P, B, H, T, dh)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            att = att.permute(0, 1, 3, 2, 4).reshape(p, b * t, d)
            x = x + self._lin(att, blk.proj, blk.proj_b)
            x = x + self._lin(F.gelu(self._lin(self._ln(x, blk.ln2_g, blk.ln2_b), blk.fc, blk.fc_b)),
                              blk.out, blk.out_b)
        out = self._lin(self._ln(x, self.lnf_g, self.lnf_b), self.head)
        return out.view(p, b, t, -1)

    # --- sequences -----------------------------------------------------------------------
    def inputs(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(P, B) contexts, (P, B, L) responses -> (P, B, Lp + L - 1) model inputs
        [x_c, y_1..y_{L-1}] (x_c = the one token K + 1 + c without a prompt table)."""
        if self.spec.prompts is None:
            prompt = (contexts + self.spec.content_tokens + 1).unsqueeze(-1)
        else:
            prompt = self.prompt_table[contexts]
        return torch.cat([prompt, tokens[..., :-1]], -1)

    def log_softmax(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Full next-token log-distributions at every response position, (P, B, L, K+1)."""
        logits = self.logits(self.inputs(contexts, tokens))[:, :, self.spec.prompt_len - 1:]
        return torch.log_softmax(logits.float(), -1)

    def token_logprobs(self, contexts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                       full: bool = False):
        """Per-token log pi(y_t | c, y_<t), (P, B, L), zero where `mask` is 0; with `full`, also the
        full log-distributions (P, B, L, K+1)."""
        logp = self.log_softmax(contexts, tokens)
        token = torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1) * mask
        return (token, logp) if full else token

    @torch.no_grad()
    def sample(self, contexts: torch.Tensor, generators: list[torch.Generator], temperature: float = 1.0):
        """Sample one response per context: contexts (P, B) -> (tokens (P, B, L), mask (P, B, L),
        token log-probs (P, B, L)). Member p draws from `generators[p]` (Gumbel-max, one uniform
        per vocabulary entry per position), so its samples do not depend on the other members."""
        p, b = contexts.shape
        length, k1, lp = self.spec.max_len, self.spec.vocab_out, self.spec.prompt_len
        tokens = torch.zeros(p, b, length, dtype=torch.long, device=contexts.device)
        mask = torch.zeros(p, b, length, device=contexts.device)
        logps = torch.zeros(p, b, length, device=contexts.device)
        alive = torch.ones(p, b, dtype=torch.bool, device=contexts.device)
        for t in range(length):
            logits = self.logits(self.inputs(contexts, tokens)[..., : lp + t])[:, :, lp + t - 1].float() / temperature
            logp = torch.log_softmax(logits, -1)
            u = torch.stack([torch.rand(b, k1, generator=g, device=contexts.device) for g in generators])
            gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
            choice = torch.argmax(logp + gumbel, -1)
            choice = torch.where(alive, choice, torch.zeros_like(choice))
            tokens[..., t] = choice
            mask[..., t] = alive.float()
            logps[..., t] = torch.gather(logp, -1, choice.unsqueeze(-1)).squeeze(-1) * alive
            alive = alive & (choice != EOS)
        return tokens, mask, logps


def token_kl(ref_logp: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(pi_ref(.|prefix) || pi(.|prefix)) over the vocabulary at every position, (..., L) (TDPO)."""
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1) * mask


def stack(models: list[TinyLM]) -> TinyLM:
    """One population model whose members are the (single-member) `models`, in order."""
    device = models[0].tok.device
    out = TinyLM(models[0].spec, [torch.Generator(device=device) for _ in models], device)
    out.load_state_dict({k: torch.cat([m.state_dict()[k] for m in models]) for k in out.state_dict()})
    return out
