"""Preference tasks with exact ground truth: the `llm:` environments (specs/llm_track.md §3.2).

    llm:bt-seq                 A: Bradley-Terry preferences from a dense token reward
    llm:bt-seq-intransitive    A3: the same plus a rock-paper-scissors term (for Nash methods)
    llm:len-bias               C: a length-independent true reward; labels favour the longer answer
                                  in a fraction q of the pairs

A prompt is one of C contexts (uniform). A response is up to L tokens from K content tokens,
ended by EOS (policy.py). With the defaults (C = 8, K = 4, L = 5) each context has
sum_{n<5} 4^n + 4^5 = 1365 responses, so every quantity below is an exact sum over them.

True reward. w_c[v] = reward_scale * N(0, 1), drawn once per task from `task_seed` (the same task
for every run seed). Task A: r(c, y) = sum_t w_c[y_t] (dense: the per-token ground truth for
token-level methods). Task C: r(c, y) = mean_t w_c[y_t] (0 for the empty answer): length does not
pay. Labels: P(y > y') = sigmoid(r(y) - r(y') [+ kappa * cyc(s(y), s(y'))]) where, in the
intransitive task, s(y) = (y_1 - 1) mod 3 is the answer's "style" (rock-paper-scissors: cyc = +1
when s(y) beats s(y'), -1 when it loses, 0 otherwise or for the empty answer). In task C a fraction
`q` of the pairs (those whose answers differ in length) is labelled "the longer one wins"
instead. Every label is then flipped with probability `label_noise`.

Evaluation (exact, per member, averaged over the contexts). With beta the task's KL strength and
pi*(y|c) = pi_ref(y|c) exp(r(c, y)/beta) / Z_c the KL-regularised optimum:
    reward   E_pi[r]                          kl      KL(pi || pi_ref)
    J(pi)  = E_pi[r] - beta KL(pi || pi_ref),  J* = J(pi*) = beta log Z_c
    regret = J* - J(pi) = beta KL(pi || pi*)  (>= 0, 0 only at pi*)
    score  = 1 - regret(pi) / regret(pi_ref)  (the reference 0, the optimum 1: the number the
             statistics use, written as `return_mean` in evaluations.csv)
    win_rate P(y > y'), y ~ pi, y' ~ pi_ref, under the true preference (ties 1/2)
    length   E_pi[number of content tokens]
In the intransitive task, r is the transitive part g; the win rate includes the cycle.

Game metrics (every task; they matter on the intransitive one, where no reward explains the
preference). With M_c[i, j] = P(y_i > y_j | c) the true preference matrix (`matrix`) and
P(y > pi) = (M_c pi)_y:
    exploitability = max_y P(y > pi) - 1/2
        (>= 0 since P(pi > pi) = 1/2; 0 only at a von Neumann winner, the Nash equilibrium of the
        unregularised preference game: no response beats pi more often than not)
    duality_gap    = max_pi' f(pi', pi) - min_pi' f(pi, pi')  of the KL-regularised game (Munos et al.
        2024, NLHF) f(pi, pi') = P(pi > pi') - beta KL(pi || pi_ref) + beta KL(pi' || pi_ref), beta the
        task's KL strength. f(pi', pi) = 1 - f(pi, pi'), so the gap is 2 (max_pi' f(pi', pi) - 1/2), and
        max_pi' [<pi', s> - beta KL(pi' || pi_ref)] = beta log sum_y pi_ref(y) exp(s(y)/beta) (the
        maximiser is pi_ref exp(s/beta) / Z), so, with s = M_c pi,
        duality_gap = 2 (beta log sum_y pi_ref(y) exp(P(y > pi)/beta) + beta KL(pi || pi_ref) - 1/2)
        (>= 0; 0 only at the regularised Nash equilibrium pi = pi_ref exp(M pi / beta) / Z).
Both are exact sums over the responses (`game_gaps`), averaged over the contexts.

Task parameters are given in the ID, `llm:len-bias?q=0.9,label_noise=0.1` (see `PARAMETERS`).
The reference policy (pi_ref) of each run seed is the tiny transformer after supervised
fine-tuning on noisy demonstrations (`reference.py`), the same for every method.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, replace

import gymnasium as gym
import torch

from drlbench.domains import Domain
from drlbench.llm.policy import EOS, ModelSpec, TinyLM

ENV_IDS = ("bt-seq", "bt-seq-intransitive", "len-bias", "arith")   # arith: drlbench.llm.arith (task B)
EXTRA = None
PARAMETER_KIND = "task parameter"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    contexts: int = 8            # C prompts
    content_tokens: int = 4      # K
    max_len: int = 5             # L content tokens at most
    beta: float = 0.1            # KL strength of the evaluation objective (DPO's paper beta)
    reward_scale: float = 0.25   # std of the per-token rewards w_c[v]
    label_noise: float = 0.0     # probability that a label is flipped
    q: float = 0.0               # len-bias: fraction of pairs labelled "longer wins"
    kappa: float = 0.0           # intransitive: weight of the rock-paper-scissors term
    task_seed: int = 0           # draws w_c (the task itself, not the run)
    # the reference policy: SFT on noisy demonstrations
    demo_alignment: float = 1.0  # demonstrator logits = alignment * w_c / reward_scale + noise * N(0, 1)
    demo_noise: float = 1.0
    demo_eos: float = 0.2        # demonstrator's EOS probability at each position
    demos: int = 1024            # demonstrations per run seed
    sft_steps: int = 300
    sft_lr: float = 3e-3
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4

    @property
    def model(self) -> ModelSpec:
        return ModelSpec(self.content_tokens, self.contexts, self.max_len, self.d_model, self.n_layers, self.n_heads)

    @property
    def intransitive(self) -> bool:
        return self.name == "bt-seq-intransitive"

    @property
    def length_bias(self) -> bool:
        return self.name == "len-bias"


DEFAULTS = {
    "bt-seq": TaskSpec("bt-seq"),
    "bt-seq-intransitive": TaskSpec("bt-seq-intransitive", kappa=1.0),
    "len-bias": TaskSpec("len-bias", reward_scale=0.5, q=0.7, demo_eos=0.3),
}

_D = Domain.parse
PARAMETERS = {
    "contexts": _D("[1, 64]"), "content_tokens": _D("[2, 8]"), "max_len": _D("[1, 6]"),
    "beta": _D("(0, inf)"), "reward_scale": _D("(0, inf)"), "label_noise": _D("[0, 0.5)"), "q": _D("[0, 1]"),
    "kappa": _D("[0, inf)"), "task_seed": _D("[0, 1e9]"), "demo_alignment": _D("[0, inf)"),
    "demo_noise": _D("[0, inf)"), "demo_eos": _D("(0, 1)"), "demos": _D("[1, 1e6]"), "sft_steps": _D("[0, 1e6]"),
    "sft_lr": _D("(0, 1)"), "d_model": _D("[4, 1024]"), "n_layers": _D("[1, 12]"), "n_heads": _D("[1, 16]"),
}
_INTEGER = {"contexts", "content_tokens", "max_len", "task_seed", "demos", "sft_steps", "d_model", "n_layers",
            "n_heads"}
MAX_RESPONSES = 200_000   # C * responses per context: the enumeration's limit


def physics_parameters(name: str) -> dict[str, Domain]:
    """The task parameters an ID may set (`llm:bt-seq?label_noise=0.1`), for drlbench.envs."""
    if name == "arith":
        from drlbench.llm import arith

        return arith.PARAMETERS
    return PARAMETERS


def task_spec(name: str, parameters: dict[str, float] | None = None) -> TaskSpec:
    """The task's spec with `parameters` applied; a UsageError for a bad one."""
    from drlbench.errors import UsageError, unknown

    if name == "arith":
        from drlbench.llm import arith

        return arith.task_spec(parameters)
    if name not in DEFAULTS:
        raise unknown("llm task", name, DEFAULTS)
    values = {}
    for key, value in (parameters or {}).items():
        if key not in PARAMETERS:
            raise unknown(f"task parameter of llm:{name}", key, PARAMETERS)
        if not (math.isfinite(value) and PARAMETERS[key].contains(value)):
            raise UsageError(f"llm:{name}?{key}={value:g}: {key} must be {PARAMETERS[key].describe(float)}")
        if key in _INTEGER:
            if not float(value).is_integer():
                raise UsageError(f"llm:{name}?{key}={value:g}: {key} must be an integer")
            value = int(value)
        values[key] = value
    spec = replace(DEFAULTS[name], **values)
    if spec.d_model % spec.n_heads:
        raise UsageError(f"llm:{name}: d_model={spec.d_model} must be a multiple of n_heads={spec.n_heads}")
    per_context = sum(spec.content_tokens ** n for n in range(spec.max_len + 1))
    if spec.contexts * per_context > MAX_RESPONSES:
        raise UsageError(f"llm:{name}: {spec.contexts} contexts x {per_context} responses is too many to "
                         f"enumerate (at most {MAX_RESPONSES:,}); lower contexts, content_tokens or max_len")
    return spec


def make(name: str, num_envs: int = 1, device: str | torch.device = "cpu", physics: dict | None = None) -> "Task":
    """The drlbench.envs backend entry point: the task (it has no environment steps)."""
    if name == "arith":
        from drlbench.llm import arith

        return arith.ArithTask(arith.task_spec(physics), device)
    return Task(task_spec(name, physics), device)


class ContextSpace(gym.spaces.Discrete):
    """The observation space of an `llm:` task: a context id, plus the response model it is answered
    with (vocabulary, length, transformer size), which the agent builds its policy from."""

    def __init__(self, n: int, model_spec: ModelSpec):
        super().__init__(n)
        self.model_spec = model_spec


class Responses:
    """Every response of at most L content tokens from K (n < L tokens then EOS, or n = L), in a
    fixed order, and the exact log-probability of each under a model, from one forward pass per
    context over the K^(L-1) longest prefixes (every shorter prefix is a prefix of one of them)."""

    def __init__(self, content_tokens: int, max_len: int, device: str | torch.device = "cpu"):
        k, length, self.max_len = content_tokens, max_len, max_len
        device = torch.device(device)
        rows, masks = [], []
        for n in range(length + 1):
            for content in itertools.product(range(1, k + 1), repeat=n):
                rows.append(list(content) + [EOS] * (length - n))
                masks.append([1.0] * min(n + 1, length) + [0.0] * (length - min(n + 1, length)))
        self.tokens = torch.tensor(rows, device=device)                 # (N, L)
        self.mask = torch.tensor(masks, device=device)                  # (N, L)
        self.lengths = (self.tokens != EOS).sum(-1).float()             # (N,) content tokens
        # response -> the enumeration row [y_1..y_{L-1}] (EOS/padding replaced by token 1) that holds its prefix
        filled = torch.where(self.tokens == EOS, torch.ones_like(self.tokens), self.tokens)[:, : length - 1]
        powers = k ** torch.arange(length - 2, -1, -1, device=device)
        self.row_of = ((filled - 1) * powers).sum(-1) if length > 1 else torch.zeros(len(rows), dtype=torch.long)
        grid = list(itertools.product(range(1, k + 1), repeat=length - 1))
        self.rows = torch.tensor(grid, device=device).view(-1, length - 1) if length > 1 else \
            torch.zeros(1, 0, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def logprobs(self, model: TinyLM, contexts: int) -> torch.Tensor:
        """log pi(y | c) of every response to contexts 0..C-1 under each member of `model`, (P, C, N)."""
        p, rows, device = model.members, self.rows.shape[0], self.tokens.device
        ctx = torch.arange(contexts, device=device).repeat_interleave(rows)
        body = self.rows.repeat(contexts, 1)                             # (C*R, L-1)
        tokens = torch.cat([body, torch.zeros_like(body[:, :1])], -1)    # last position is never an input
        logp = model.log_softmax(ctx.expand(p, -1), tokens.expand(p, -1, -1))          # (P, C*R, L, K+1)
        logp = logp.view(p, contexts, rows, self.max_len, -1)[:, :, self.row_of]       # (P, C, N, L, K+1)
        token = torch.gather(logp, -1, self.tokens[None, None, :, :, None].expand(p, contexts, -1, -1, 1)).squeeze(-1)
        return (token * self.mask).sum(-1)


class Task:
    """One task: its true reward and preference, every response, and the exact evaluation."""
    # what `evaluate` returns, per member, written to llm_evaluations.csv (drlbench.llm.evaluation)
    COLUMNS = ("score", "reward", "kl", "regret", "regret_ref", "win_rate", "length", "ref_length", "kl_star",
               "exploitability", "duality_gap")

    def __init__(self, spec: TaskSpec, device: str | torch.device = "cpu"):
        self.spec, self.device = spec, torch.device(device)
        k, length, c = spec.content_tokens, spec.max_len, spec.contexts
        # gymnasium spaces, so the harness can build an agent: observation = context id, action = token
        self.observation_space = ContextSpace(c, spec.model)
        self.action_space = gym.spaces.Discrete(k + 1)
        g = torch.Generator().manual_seed(spec.task_seed)
        w = torch.zeros(c, k + 1)
        w[:, 1:] = spec.reward_scale * torch.randn(c, k, generator=g)
        self.w = w.to(self.device)                          # (C, K+1), EOS column 0
        self.responses = Responses(k, length, self.device)
        self.tokens, self.mask, self.lengths = self.responses.tokens, self.responses.mask, self.responses.lengths
        every = torch.arange(c, device=self.device)[:, None].expand(c, self.num_responses)
        self.rewards = self.reward(every, self.tokens.expand(c, -1, -1))                # (C, N)
        self.style = torch.where(self.lengths > 0, (self.tokens[:, 0] - 1) % 3, torch.full_like(self.tokens[:, 0], -1))
        gold = self.rewards + 1e-6 * torch.arange(self.num_responses, 0, -1, device=self.device)   # ties: the shorter
        self.gold_index = gold.argmax(-1)                                # (C,)

    @property
    def num_responses(self) -> int:
        return self.tokens.shape[0]

    def close(self) -> None:
        pass

    # --- ground truth ---------------------------------------------------------------------
    def token_rewards(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token true rewards (..., L) that sum to r(c, y): w_c[y_t] (task C: w_c[y_t] / n); 0 on EOS."""
        per_token = torch.gather(self.w[contexts], -1, tokens)           # EOS/padding -> 0
        if self.spec.length_bias:
            return per_token / (tokens != EOS).sum(-1, keepdim=True).clamp_min(1)
        return per_token

    def reward(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """True reward r(c, y) of responses (..., L) with contexts (...)."""
        return self.token_rewards(contexts, tokens).sum(-1)

    def _style(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.where(tokens[..., 0] != EOS, (tokens[..., 0] - 1) % 3, torch.full_like(tokens[..., 0], -1))

    @staticmethod
    def _cycle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = (a - b) % 3
        cyc = torch.where(diff == 1, 1.0, torch.where(diff == 2, -1.0, 0.0))
        return torch.where((a < 0) | (b < 0), 0.0, cyc)

    def preference_logit(self, contexts: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """logit P(first > second) under the true preference (no length bias, no label noise)."""
        logit = self.reward(contexts, first) - self.reward(contexts, second)
        if self.spec.kappa and self.spec.intransitive:
            logit = logit + self.spec.kappa * self._cycle(self._style(first), self._style(second))
        return logit

    def label(self, contexts: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
              uniforms: torch.Tensor) -> torch.Tensor:
        """Whether `first` is chosen over `second` (bool, shape of contexts). `uniforms`: (3, *shape) in
        [0, 1): the Bradley-Terry draw, the length-bias draw and the noise flip."""
        first_wins = uniforms[0] < torch.sigmoid(self.preference_logit(contexts, first, second))
        if self.spec.length_bias and self.spec.q > 0:
            n1, n2 = (first != EOS).sum(-1), (second != EOS).sum(-1)
            biased = (uniforms[1] < self.spec.q) & (n1 != n2)
            first_wins = torch.where(biased, n1 > n2, first_wins)
        return first_wins ^ (uniforms[2] < self.spec.label_noise)

    def gold(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The highest-reward response of each context (TPO's gold answer): tokens and mask."""
        index = self.gold_index[contexts]
        return self.tokens[index], self.mask[index]

    # --- exact evaluation -----------------------------------------------------------------
    def leaf_logprobs(self, model: TinyLM) -> torch.Tensor:
        """log pi(y | c) of every response under each member of `model`, (P, C, N)."""
        return self.responses.logprobs(model, self.spec.contexts)

    def matrix(self, context: int) -> torch.Tensor:
        """P(y_i > y_j | c) for every pair of responses of one context, (N, N), float64."""
        r = self.rewards[context].double()
        logit = r[:, None] - r[None, :]
        if self.spec.kappa and self.spec.intransitive:
            logit = logit + self.spec.kappa * self._cycle(self.style[:, None], self.style[None, :])
        return torch.sigmoid(logit)

    def optimum(self, ref_logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi*(y|c), J*_c = beta log Z_c) for reference log-probs (P, C, N)."""
        tilted = ref_logp + self.rewards / self.spec.beta
        log_z = torch.logsumexp(tilted, -1, keepdim=True)
        return tilted - log_z, self.spec.beta * log_z.squeeze(-1)

    @torch.no_grad()
    def evaluate(self, logp: torch.Tensor, ref_logp: torch.Tensor) -> dict[str, torch.Tensor]:
        """Exact metrics (each (P,)) of policies with response log-probs `logp` (P, C, N) against
        references `ref_logp` (P, C, N); see the module docstring."""
        logp, ref_logp = logp.double(), ref_logp.double()
        beta, r = self.spec.beta, self.rewards.double()
        pi, ref = logp.exp(), ref_logp.exp()
        reward = (pi * r).sum(-1)                                        # (P, C)
        kl = (pi * (logp - ref_logp)).sum(-1)
        log_star, j_star = self.optimum(ref_logp)
        kl_star = (log_star.exp() * (log_star - ref_logp)).sum(-1)      # KL(pi* || pi_ref): where pi* sits
        regret = j_star - (reward - beta * kl)
        regret_ref = j_star - (ref * r).sum(-1)
        win, exploit, gap = [], [], []
        for c in range(r.shape[0]):
            m = self.matrix(c)
            win.append(((pi[:, c] @ m) * ref[:, c]).sum(-1))
            e, d = game_gaps(m, logp[:, c], ref_logp[:, c], beta)
            exploit.append(e)
            gap.append(d)
        win, exploit, gap = torch.stack(win, -1), torch.stack(exploit, -1), torch.stack(gap, -1)
        mean = {k: v.mean(-1) for k, v in dict(reward=reward, kl=kl, regret=regret, regret_ref=regret_ref,
                                                  win_rate=win, length=(pi * self.lengths.double()).sum(-1),
                                                  ref_length=(ref * self.lengths.double()).sum(-1),
                                                  kl_star=kl_star, mass=pi.sum(-1), exploitability=exploit,
                                                  duality_gap=gap).items()}
        mean["score"] = 1.0 - mean["regret"] / mean["regret_ref"]
        return mean

    def describe(self) -> dict:
        return asdict(self.spec)


def game_gaps(matrix: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
              beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(exploitability, duality gap) of policies over N responses (module docstring, "Game metrics").
    matrix (N, N): P(y_i > y_j); logp, ref_logp (..., N): log pi and log pi_ref (-inf allowed where the
    probability is 0); beta: the KL strength of the regularised game. Returns two (...,) tensors."""
    pi = logp.exp()
    beats = pi @ matrix.T                                              # P(y > pi), (..., N)
    exploitability = beats.max(-1).values - 0.5
    kl = torch.where(pi > 0, pi * (logp - ref_logp), torch.zeros_like(pi)).sum(-1)
    best = beta * torch.logsumexp(ref_logp + beats / beta, -1)         # max_pi' P(pi' > pi) - beta KL(pi' || pi_ref)
    return exploitability, 2 * (best + beta * kl - 0.5)
