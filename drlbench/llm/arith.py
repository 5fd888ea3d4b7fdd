"""Task B of the LLM track, `llm:arith`: verifiable arithmetic for the RLVR / GRPO family
(specs/llm_track.md §3.2 "Task B — Arith-RLVR").

Prompts. "a op b =" for every a, b in [0, m) (m = `modulus`) and each of the first `ops` operations
of (+, *, -); context c = op * m^2 + a * m + b, so C = ops * m^2 prompts. The prompt is read as
tokens (policy.ModelSpec.prompts): the digits of a, zero-padded to the width w of m - 1, the
operation's symbol, the digits of b, "=" (Lp = 2w + 2 tokens). Digits are shared with the answer:
digit d is content token d + 1 (K = 10 content tokens), and +, *, -, = are four input-only symbols.
So the model reads [a, op, b, =, y_1 .. y_{L-1}] and can generalise from prompt to prompt.

Answers. The true answer y*(c) = (a op b) mod m written in decimal without leading zeros (most
significant digit first), then EOS. A response is any string of at most L = `max_len` digits
(policy.py: n < L digits then EOS, or L digits): with m = 10 and L = 2, 111 answers per prompt
(empty, 10 one-digit, 100 two-digit: every two-digit answer is "overlong", since y* has one
digit), all enumerated, so every quantity below is an exact sum.

Reward (verifiable). r(c, y) = 1 if y = y*(c) exactly, else
    partial_credit * matches(y, y*) / max(|y|, |y*|)
with matches = the number of positions i where y_i = y*_i (digits compared left-aligned, most
significant first) and |y| the number of digits: credit per correct digit, an overlong answer pays
for its extra digits, the empty answer gets 0. `partial_credit` (lambda) in [0, 1): lambda = 0 is
the plain 1/0 reward; lambda < 1 keeps the correct answer strictly the best.

Split. A fixed fraction `test_fraction` of the prompts (a permutation drawn from `task_seed`; at
least one on each side) is held out: training samples only `train_contexts`, the demonstrations
cover only them too, and `success_test` / `pass_k_test` measure generalisation to unseen prompts.

Reference pi_ref (reference.py's recipe, `demonstrations` below): SFT on `demos` noisy
demonstrations of training prompts. The demonstrator answers prompt c correctly with probability
alpha_c, else wrongly: with probability `demo_overlong` the right digits followed by one random
digit (when L leaves room), otherwise a uniformly drawn wrong residue. The difficulty knob
`extreme`: a fraction of the training prompts (drawn from `task_seed`) gets alpha_c = 1 (half of
them) or alpha_c = 0 (the other half: there the demonstrator always gives one fixed wrong residue,
a misconception drawn from `task_seed`), so that pi_ref's p(correct) is near 1 or near 0 there (a
group of G samples then has all-equal rewards: GRPO's zero-std groups, DAPO's dynamic sampling);
every other training prompt gets alpha_c = `demo_accuracy`. The evaluation measures the
resulting fraction (`ref_extreme_train`).

Evaluation (exact, per member). With p_c = pi(y*(c) | c) the success probability (pass@1):
    score          = success_train: mean p_c over the training prompts (exact pass@1 there)
    success_test   mean p_c over the held-out prompts (never demonstrated, never sampled in training)
    pass_k_train / pass_k_test   mean of 1 - (1 - p_c)^k, k = `pass_k`: the probability that one of k
                   independent samples is right (Chen et al. 2021's pass@k, exact here: p_c is known,
                   no unbiased estimator from n samples is needed)
    reward         E_pi[r] (partial credit included)             kl       KL(pi || pi_ref)
    entropy        H(pi(. | c)) (sequence entropy, nats)         length   E_pi[number of digits]
    ref_success_train / ref_success_test   the reference's p_c
    extreme_train / ref_extreme_train      fraction of training prompts with p_c < 0.1 or > 0.9
Columns without a _test suffix average over the training prompts (uniformly, as training samples
them). Why the score is not the held-out success: at this scale (0.1M parameters, 80 training
prompts, a few hundred RL steps) the model memorises prompts rather than learning modular
arithmetic, so held-out success stays near its reference value for most seeds
(benchmarks/notes/arith-task.md): a diagnostic of generalisation, too noisy to rank methods by.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import gymnasium as gym
import torch

from drlbench.domains import Domain
from drlbench.llm.policy import EOS, ModelSpec, TinyLM
from drlbench.llm.tasks import MAX_RESPONSES, ContextSpace, Responses

DIGITS = 10                            # content tokens: digit d is token d + 1
OPERATIONS = ("+", "*", "-")           # the first `ops` are used
SYMBOLS = OPERATIONS + ("=",)          # input-only ids K + 1 + i
EXTREME = 0.1                          # p_c below this or above 1 - this counts as "extreme"


@dataclass(frozen=True)
class ArithSpec:
    name: str = "arith"
    modulus: int = 10            # m: operands in [0, m), answers mod m
    ops: int = 1                 # the first `ops` of +, *, -
    max_len: int = 2             # L: answer digits at most
    partial_credit: float = 0.0  # lambda: credit per correct digit of a wrong answer (0: 1/0 reward)
    test_fraction: float = 0.2   # held-out prompts
    pass_k: int = 8              # k of pass@k
    task_seed: int = 0           # the split and the extreme prompts (the task, not the run)
    # the reference policy: SFT on noisy demonstrations of the training prompts
    demo_accuracy: float = 0.25  # demonstrator's accuracy on ordinary prompts
    extreme: float = 0.2         # fraction of training prompts demonstrated always right / always wrong
    demo_overlong: float = 0.3   # a wrong demonstration is the right digits + one more with this probability
    demos: int = 2048
    sft_steps: int = 1000
    sft_lr: float = 3e-3
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4

    @property
    def contexts(self) -> int:
        return self.ops * self.modulus ** 2

    @property
    def content_tokens(self) -> int:
        return DIGITS

    @property
    def width(self) -> int:
        """Digits of the largest residue m - 1 (operands are zero-padded to it)."""
        return len(str(self.modulus - 1))

    @property
    def model(self) -> ModelSpec:
        return ModelSpec(DIGITS, self.contexts, self.max_len, self.d_model, self.n_layers, self.n_heads,
                         prompts=prompt_table(self), prompt_symbols=len(SYMBOLS))


_D = Domain.parse
PARAMETERS = {
    "modulus": _D("[2, 1000]"), "ops": _D("[1, 3]"), "max_len": _D("[1, 4]"), "partial_credit": _D("[0, 1)"),
    "test_fraction": _D("(0, 1)"), "pass_k": _D("[1, 1e6]"), "task_seed": _D("[0, 1e9]"),
    "demo_accuracy": _D("[0, 1]"), "extreme": _D("[0, 1]"), "demo_overlong": _D("[0, 1]"), "demos": _D("[1, 1e6]"),
    "sft_steps": _D("[0, 1e6]"), "sft_lr": _D("(0, 1)"), "d_model": _D("[4, 1024]"), "n_layers": _D("[1, 12]"),
    "n_heads": _D("[1, 16]"),
}
_INTEGER = {"modulus", "ops", "max_len", "pass_k", "task_seed", "demos", "sft_steps", "d_model", "n_layers",
            "n_heads"}


def task_spec(parameters: dict[str, float] | None = None) -> ArithSpec:
    """The spec with `parameters` (from the ID) applied; a one-line UsageError for a bad one."""
    from drlbench.errors import UsageError, unknown

    values = {}
    for key, value in (parameters or {}).items():
        if key not in PARAMETERS:
            raise unknown("task parameter of llm:arith", key, PARAMETERS)
        if not (math.isfinite(value) and PARAMETERS[key].contains(value)):
            raise UsageError(f"llm:arith?{key}={value:g}: {key} must be {PARAMETERS[key].describe(float)}")
        if key in _INTEGER:
            if not float(value).is_integer():
                raise UsageError(f"llm:arith?{key}={value:g}: {key} must be an integer")
            value = int(value)
        values[key] = value
    spec = replace(ArithSpec(), **values)
    if spec.d_model % spec.n_heads:
        raise UsageError(f"llm:arith: d_model={spec.d_model} must be a multiple of n_heads={spec.n_heads}")
    if spec.max_len < spec.width:
        raise UsageError(f"llm:arith: max_len={spec.max_len} cannot hold the answers of modulus={spec.modulus} "
                         f"(up to {spec.width} digits); raise max_len")
    per_context = sum(DIGITS ** n for n in range(spec.max_len + 1))
    if spec.contexts * per_context > MAX_RESPONSES:
        raise UsageError(f"llm:arith: {spec.contexts} prompts x {per_context} answers is too many to enumerate "
                         f"(at most {MAX_RESPONSES:,}); lower modulus, ops or max_len")
    if not 1 <= test_count(spec) < spec.contexts:
        raise UsageError(f"llm:arith?test_fraction={spec.test_fraction:g}: {spec.contexts} prompts leave no "
                         "training or no held-out prompt")
    return spec


def test_count(spec: ArithSpec) -> int:
    return int(round(spec.test_fraction * spec.contexts))


def operands(spec: ArithSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(op, a, b) of every context, each (C,) long."""
    c = torch.arange(spec.contexts)
    m = spec.modulus
    return c // (m * m), (c // m) % m, c % m


def true_answers(spec: ArithSpec) -> torch.Tensor:
    """(a op b) mod m of every context, (C,) long (Python's mod: non-negative for -)."""
    op, a, b = operands(spec)
    value = torch.stack([a + b, a * b, a - b])
    return torch.gather(value, 0, op[None])[0] % spec.modulus


def digit_tokens(value: int, width: int | None = None) -> list[int]:
    """Decimal digits of `value` as content tokens (d -> d + 1), zero-padded to `width` if given."""
    text = str(value) if width is None else str(value).zfill(width)
    return [int(ch) + 1 for ch in text]


def prompt_table(spec: ArithSpec) -> tuple[tuple[int, ...], ...]:
    """The (C, Lp) input ids of every prompt: digits of a, op symbol, digits of b, "="."""
    op, a, b = operands(spec)
    symbol = DIGITS + 1
    return tuple(tuple(digit_tokens(x, spec.width) + [symbol + o] + digit_tokens(y, spec.width)
                       + [symbol + len(OPERATIONS)])
                 for o, x, y in zip(op.tolist(), a.tolist(), b.tolist()))


def content_length(tokens: torch.Tensor) -> torch.Tensor:
    """Digits before the first EOS, (...,) for tokens (..., L)."""
    return (tokens != EOS).long().cumprod(-1).sum(-1)


class ArithTask:
    """Task B: prompts, the verifiable reward, every answer, the split and the exact evaluation."""
    # what `evaluate` returns, per member, written to llm_evaluations.csv (drlbench.llm.evaluation)
    COLUMNS = ("score", "success_train", "success_test", "pass_k_train", "pass_k_test", "reward", "kl", "entropy",
               "length", "ref_success_train", "ref_success_test", "extreme_train", "ref_extreme_train")
    EVALUATION = ("exact, by enumeration of every answer of every prompt; score (return_mean) = pass@1 on the "
                  "training prompts (success_train; held-out: success_test); length_mean = mean answer digits")
    CACHE_KEY = {"demonstrator": 1}   # reference.py: bump when `demonstrations` changes

    def __init__(self, spec: ArithSpec, device: str | torch.device = "cpu"):
        self.spec, self.device = spec, torch.device(device)
        c, length = spec.contexts, spec.max_len
        self.observation_space = ContextSpace(c, spec.model)
        self.action_space = gym.spaces.Discrete(DIGITS + 1)
        # the true answers as (C, L) tokens padded with EOS, and their digit counts
        residues = torch.zeros(spec.modulus, length, dtype=torch.long)          # residue v as answer tokens
        for v in range(spec.modulus):
            residues[v, : len(digit_tokens(v))] = torch.tensor(digit_tokens(v))
        self.residue_tokens = residues.to(self.device)
        self.answer_values = true_answers(spec).to(self.device)                  # (C,)
        self.answers = self.residue_tokens[self.answer_values]                    # (C, L)
        self.answer_lengths = content_length(self.answers)
        # the split and the demonstrator's accuracy per prompt, from task_seed
        g = torch.Generator().manual_seed(spec.task_seed)
        order = torch.randperm(c, generator=g)
        n_test = test_count(spec)
        self.test_contexts = order[:n_test].sort().values.to(self.device)
        self.train_contexts = order[n_test:].sort().values.to(self.device)
        self.is_test = torch.zeros(c, dtype=torch.bool, device=self.device)
        self.is_test[self.test_contexts] = True
        train = self.train_contexts[torch.randperm(len(self.train_contexts), generator=g).to(self.device)]
        n_extreme = int(round(spec.extreme * len(train)))
        accuracy = torch.full((c,), spec.demo_accuracy, device=self.device)
        accuracy[train[: n_extreme // 2]] = 0.0
        accuracy[train[n_extreme // 2: n_extreme]] = 1.0
        accuracy[self.test_contexts] = float("nan")           # never demonstrated
        self.demo_accuracy = accuracy
        # the one wrong residue the demonstrator always gives on its always-wrong prompts (a misconception)
        self.misconception = (true_answers(spec) + torch.randint(1, spec.modulus, (c,), generator=g)) % spec.modulus
        self.misconception = self.misconception.to(self.device)
        # every answer, its reward for every prompt, and the index of the correct one
        self.responses = Responses(DIGITS, length, self.device)
        self.tokens, self.mask, self.lengths = self.responses.tokens, self.responses.mask, self.responses.lengths
        every = torch.arange(c, device=self.device)[:, None].expand(c, self.num_responses)
        self.rewards = self.reward(every, self.tokens.expand(c, -1, -1))                # (C, N)
        self.correct_index = self.correct(every, self.tokens.expand(c, -1, -1)).float().argmax(-1)   # (C,)

    @property
    def num_responses(self) -> int:
        return self.tokens.shape[0]

    def close(self) -> None:
        pass

    # --- ground truth ---------------------------------------------------------------------
    def correct(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Whether each answer (..., L) to `contexts` (...) is exactly y*(c) (bool, shape of contexts)."""
        n, answer = content_length(tokens), self.answers[contexts]
        alive = torch.arange(tokens.shape[-1], device=tokens.device) < n.unsqueeze(-1)
        same = ((tokens == answer) | ~alive).all(-1)
        return same & (n == self.answer_lengths[contexts])

    def reward(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The verifiable reward r(c, y) (module docstring), shape of `contexts`."""
        exact = self.correct(contexts, tokens).float()
        if not self.spec.partial_credit:
            return exact
        n, answer, n_star = content_length(tokens), self.answers[contexts], self.answer_lengths[contexts]
        alive = torch.arange(tokens.shape[-1], device=tokens.device) < n.unsqueeze(-1)
        matches = ((tokens == answer) & alive).sum(-1)             # answer is EOS beyond n_star: no match
        partial = self.spec.partial_credit * matches / torch.maximum(n, n_star)
        return torch.where(exact > 0, exact, partial.float())

    def gold(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The correct answer of each context: tokens and mask (..., L)."""
        index = self.correct_index[contexts]
        return self.tokens[index], self.mask[index]

    def demonstrations(self, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(contexts (n,), tokens (n, L), mask (n, L)) of the noisy demonstrator of run seed `seed`
        (module docstring), on training prompts only; reference.py fine-tunes pi_ref on them."""
        spec, dev = self.spec, self.device
        n, m, length = spec.demos, spec.modulus, spec.max_len
        g = torch.Generator(device=dev).manual_seed(1_000_003 * seed + 29)
        contexts = self.train_contexts[torch.randint(len(self.train_contexts), (n,), generator=g, device=dev)]
        right = torch.rand(n, generator=g, device=dev) < self.demo_accuracy[contexts]
        overlong = torch.rand(n, generator=g, device=dev) < spec.demo_overlong
        slip = torch.randint(1, m, (n,), generator=g, device=dev)                 # wrong residue offset
        extra = torch.randint(DIGITS, (n,), generator=g, device=dev) + 1           # the overlong digit
        answer, n_star = self.answers[contexts], self.answer_lengths[contexts]
        room = overlong & (n_star < length)                                        # an extra digit fits
        longer = torch.where(torch.arange(length, device=dev) == n_star[:, None], extra[:, None], answer)
        residue = self.residue_tokens[(self.answer_values[contexts] + slip) % m]
        wrong = torch.where(room[:, None], longer, residue)
        fixed = self.residue_tokens[self.misconception[contexts]]
        wrong = torch.where((self.demo_accuracy[contexts] == 0)[:, None], fixed, wrong)
        tokens = torch.where(right[:, None], answer, wrong)
        ends = torch.clamp(content_length(tokens) + 1, max=length)
        mask = (torch.arange(length, device=dev) < ends[:, None]).float()
        return contexts, tokens, mask

    # --- exact evaluation -----------------------------------------------------------------
    def leaf_logprobs(self, model: TinyLM) -> torch.Tensor:
        """log pi(y | c) of every answer of every prompt under each member of `model`, (P, C, N)."""
        return self.responses.logprobs(model, self.spec.contexts)

    def success(self, logp: torch.Tensor) -> torch.Tensor:
        """p_c = pi(y*(c) | c) for leaf log-probs (P, C, N) -> (P, C)."""
        index = self.correct_index.view(1, -1, 1).expand(logp.shape[0], -1, 1)
        return torch.gather(logp, -1, index).squeeze(-1).exp()

    @torch.no_grad()
    def evaluate(self, logp: torch.Tensor, ref_logp: torch.Tensor) -> dict[str, torch.Tensor]:
        """Exact metrics (each (P,)) of policies with answer log-probs `logp` (P, C, N) against the
        references `ref_logp` (P, C, N); see the module docstring."""
        logp, ref_logp = logp.double(), ref_logp.double()
        pi = logp.exp()
        p, ref_p = self.success(logp), self.success(ref_logp)                     # (P, C)
        test, train = self.is_test, ~self.is_test
        k = self.spec.pass_k
        pass_k = 1.0 - (1.0 - p) ** k

        def extreme(q):
            return ((q < EXTREME) | (q > 1 - EXTREME))[:, train].double().mean(-1)

        out = {
            "success_train": p[:, train].mean(-1), "success_test": p[:, test].mean(-1),
            "pass_k_train": pass_k[:, train].mean(-1), "pass_k_test": pass_k[:, test].mean(-1),
            "reward": (pi * self.rewards.double()).sum(-1)[:, train].mean(-1),
            "kl": torch.where(pi > 0, pi * (logp - ref_logp), torch.zeros_like(pi)).sum(-1)[:, train].mean(-1),
            "entropy": -torch.where(pi > 0, pi * logp, torch.zeros_like(pi)).sum(-1)[:, train].mean(-1),
            "length": (pi * self.lengths.double()).sum(-1)[:, train].mean(-1),
            "ref_success_train": ref_p[:, train].mean(-1), "ref_success_test": ref_p[:, test].mean(-1),
            "extreme_train": extreme(p), "ref_extreme_train": extreme(ref_p),
        }
        out["score"] = out["success_train"]
        return out

    def describe(self) -> dict:
        spec = self.spec
        return {**asdict(spec), "contexts": spec.contexts, "prompt": f"a op b = with op in "
                f"{' '.join(OPERATIONS[: spec.ops])}, a, b in [0, {spec.modulus})",
                "answers_per_prompt": self.num_responses, "train_prompts": len(self.train_contexts),
                "test_prompts": self.test_contexts.tolist(),
                "score": "pass@1 on the training prompts (exact); held-out: success_test, pass_k_test",
                "reward": "1 if exact, else partial_credit * matching digits / max(|y|, |y*|)"}
