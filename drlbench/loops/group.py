"""The group loop (LLM track, RLVR / policy-gradient family): sampled groups -> agent.update.

`--env llm:TASK` names a task (llm:arith, or any task whose `task.reward(contexts, tokens)` is the
true reward, e.g. llm:bt-seq as RLHF with a known reward model); no environment is stepped. Each
member (seed) gets its reference policy (drlbench.llm.reference), the agent's policy starts as a
copy of it, and every cycle
1. each member draws `prompts_per_step` (Q) prompts from the task's training prompts
   (`task.train_contexts`, every context when the task has none) and samples `group_size` (G)
   completions per prompt from the BEHAVIOUR policy at `temperature`: the policy as it was `lag`
   (k) updates ago (k = 0: on-policy; the loop keeps the last k policies);
2. scores them with `task.reward` (plus DAPO's soft overlong punishment when `overlong_cache` > 0),
   with `dynamic_sampling` (DAPO) drops the groups whose rewards are all equal and draws Q more
   prompts, at most `max_sampling_rounds` draws in all (then the dropped groups fill the batch, in
   the order drawn), with `greedy_baseline` (ReMax) also decodes each prompt greedily with the
   behaviour policy and scores that answer (`Groups.baseline_rewards`);
3. computes the reference's per-token log-probs, and takes `num_iterations` (mu, TRL's name)
   gradient steps on that one batch (`agent.update(groups)`), each counting as one step.
`steps` counts gradient steps. Log-probs (behaviour, reference, current policy) are all taken of the
temperature-scaled distribution softmax(logits / temperature), as TRL does.

Evaluation: exact, every `eval_every_steps` (drlbench.llm.evaluation.ExactEvaluator, as in the
preference loop): `return_mean` in evaluations.csv is the task's score, the other exact columns go to
llm_evaluations.csv. The update metrics (TRL's names: reward, reward_std, frac_reward_zero_std, kl,
entropy, clip ratios, completion_length, ..., plus `loss`, `grad_norm` and `groups_drawn`), averaged
over the steps since the previous evaluation, go to `group_metrics.csv` beside them.

Randomness and populations: each cycle, member p draws one integer from its own generator; round r
of that cycle's sampling uses a generator seeded from it. So a member's samples never depend on how
many rounds the OTHER members of a population needed, and `--batched` gives each seed the run it
has alone.
"""
from __future__ import annotations

import csv
import io
from collections import deque
from dataclasses import dataclass, fields

import torch

from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.harness import Session

USES_TRAINING_ENV = False    # the harness builds no training environment for this loop
LLM_TASKS = True             # trains on `llm:` tasks (drlbench.config lets its agents run there)
EVALUATION = ("exact, by enumeration of every response of every context (the task's score: "
              "return_mean; length_mean = mean response length)")
_ROUND_STRIDE = 1_000_003    # round r of a cycle: generator seed = cycle seed + r * stride


@dataclass(frozen=True)
class Config:
    prompts_per_step: int = hp("[1, inf)")            # Q prompts per member per sampled batch
    group_size: int = hp("[2, inf)")                  # G completions per prompt (a group: at least 2)
    num_iterations: int = hp("[1, inf)")              # mu: gradient steps on each sampled batch
    lag: int = hp("[0, inf)")                         # k: the behaviour policy is k updates old (0: on-policy)
    temperature: float = hp("(0, inf)")               # sampling temperature (log-probs taken at it too)
    dynamic_sampling: bool = hp()                     # DAPO: drop zero-std groups and draw more prompts
    max_sampling_rounds: int = hp("[1, inf)")         # dynamic sampling: at most this many draws of Q prompts
    overlong_cache: int = hp("[0, inf)")              # DAPO's soft overlong punishment: buffer (tokens), 0 = off
    greedy_baseline: bool = hp()                      # ReMax: reward of the greedy answer per prompt


@dataclass
class Groups:
    """What `agent.update` gets: Q prompts x G completions per member, leading shape (P, Q[, G])."""
    contexts: torch.Tensor          # (P, Q) long
    tokens: torch.Tensor            # (P, Q, G, L) long
    mask: torch.Tensor              # (P, Q, G, L) float, 1 on completion tokens (EOS included)
    old_logps: torch.Tensor         # (P, Q, G, L) behaviour policy's per-token log-probs (at `temperature`)
    ref_logps: torch.Tensor         # (P, Q, G, L) reference's
    rewards: torch.Tensor           # (P, Q, G) shaped (overlong punishment applied)
    temperature: float
    baseline_rewards: torch.Tensor | None = None   # (P, Q) ReMax: shaped reward of the greedy answer

    def state(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check(cfg) -> None:
    """Refused before anything is written: only `llm:` tasks, and settings the method can use."""
    from drlbench import envs
    from drlbench.agents import get_agent
    from drlbench.llm.tasks import task_spec

    agent = get_agent(cfg.agent)
    if not cfg.env_id.startswith("llm:"):
        raise UsageError(f"{cfg.agent} trains on sampled groups of an LLM-track task, not {cfg.env_id}: "
                         "--env llm:arith (or llm:bt-seq, llm:len-bias)")
    base, parameters = envs.parse_physics(cfg.env_id)
    spec = task_spec(base.partition(":")[2], parameters)   # integers, head counts, enumeration size
    loop: Config = cfg.loop
    if agent.needs_greedy_baseline and not loop.greedy_baseline:
        raise UsageError(f"greedy_baseline=false: {cfg.agent}'s baseline is the greedy answer's reward; "
                         "set greedy_baseline=true")
    if loop.overlong_cache > spec.max_len:
        raise UsageError(f"overlong_cache={loop.overlong_cache}: overlong_cache must be at most the task's "
                         f"max_len={spec.max_len} (answer tokens)")


# ------------------------------------------------------------------------ log-probs, decoding
def token_logprobs(model, contexts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, temperature: float,
                   entropy: bool = False):
    """Per-token log-probs (P, Q, G, L) of completions `tokens` (P, Q, G, L) of `contexts` (P, Q) under
    softmax(logits / temperature), 0 where `mask` is 0; with `entropy`, also the per-token entropy of
    that distribution. log_softmax(log_softmax(z) / T) = log_softmax(z / T)."""
    p, q, g, length = tokens.shape
    flat = tokens.reshape(p, q * g, length)
    logp = model.log_softmax(contexts.repeat_interleave(g, 1), flat)
    if temperature != 1.0:
        logp = torch.log_softmax(logp / temperature, -1)
    token = (torch.gather(logp, -1, flat.unsqueeze(-1)).squeeze(-1) * mask.reshape(p, q * g, length))
    token = token.view(p, q, g, length)
    if not entropy:
        return token
    ent = -(logp.exp() * logp).sum(-1).view(p, q, g, length) * mask
    return token, ent


@torch.no_grad()
def greedy(model, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The greedy (argmax) answer to each context (P, B): tokens and mask (P, B, L)."""
    from drlbench.llm.policy import EOS

    p, b = contexts.shape
    length = model.spec.max_len
    tokens = torch.zeros(p, b, length, dtype=torch.long, device=contexts.device)
    mask = torch.zeros(p, b, length, device=contexts.device)
    alive = torch.ones(p, b, dtype=torch.bool, device=contexts.device)
    for t in range(length):   # causal: position t reads tokens < t only
        choice = model.log_softmax(contexts, tokens)[:, :, t].argmax(-1)
        choice = torch.where(alive, choice, torch.zeros_like(choice))
        tokens[..., t] = choice
        mask[..., t] = alive.float()
        alive = alive & (choice != EOS)
    return tokens, mask


def content_length(tokens: torch.Tensor) -> torch.Tensor:
    """Number of content tokens of each answer (the task's length; EOS and padding are 0)."""
    from drlbench.llm.policy import EOS

    return (tokens != EOS).sum(-1)


# ------------------------------------------------------------------------ sampling
class Sampler:
    """Draws group batches from the behaviour policy (the policy `lag` updates ago)."""

    def __init__(self, task, reference, population, cfg: Config, policy):
        self.task, self.reference, self.population, self.cfg = task, reference, population, cfg
        prompts = getattr(task, "train_contexts", None)
        self.prompts = (torch.arange(task.spec.contexts, device=population.device) if prompts is None
                        else torch.as_tensor(prompts, device=population.device).long())
        self.snapshots: deque = deque(maxlen=cfg.lag + 1)   # policy states, oldest first; the last is current
        self.behaviour = None
        if cfg.lag:
            from drlbench.llm.policy import TinyLM

            self.behaviour = TinyLM(policy.spec, [torch.Generator(device=population.device)
                                                  for _ in population.seeds], population.device)
            for p in self.behaviour.parameters():
                p.requires_grad_(False)
            self.record(policy)

    def record(self, policy) -> None:
        """Call after every update (and once at the start): keep the last lag + 1 policies."""
        if self.cfg.lag:
            self.snapshots.append({k: v.detach().clone() for k, v in policy.state_dict().items()})

    def state(self) -> list:
        return list(self.snapshots)

    def load(self, snapshots: list) -> None:
        self.snapshots.clear()
        self.snapshots.extend(snapshots)

    def behaviour_policy(self, policy):
        if not self.cfg.lag:
            return policy
        self.behaviour.load_state_dict(self.snapshots[0])
        return self.behaviour

    def shaped(self, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """task.reward plus DAPO's soft overlong punishment (when overlong_cache > 0)."""
        rewards = self.task.reward(contexts, tokens).float()
        if self.cfg.overlong_cache:
            from drlbench.llm.group_losses import overlong_penalty

            rewards = rewards + overlong_penalty(content_length(tokens), self.task.spec.max_len,
                                                 self.cfg.overlong_cache).to(rewards)
        return rewards

    @torch.no_grad()
    def draw(self, policy) -> tuple[Groups, dict[str, torch.Tensor]]:
        """One batch of Q groups per member, and the loop's own metrics ((P,) `groups_drawn`)."""
        cfg, pop = self.cfg, self.population
        q, g, device = cfg.prompts_per_step, cfg.group_size, pop.device
        behaviour = self.behaviour_policy(policy)
        cycle = pop.randint(2**62, 1)[:, 0].tolist()   # one draw per member per cycle, whatever the rounds
        rounds = cfg.max_sampling_rounds if cfg.dynamic_sampling else 1
        drawn: list[tuple[torch.Tensor, ...]] = []
        for r in range(rounds):
            gens = [torch.Generator(device=device).manual_seed((s + r * _ROUND_STRIDE) % 2**63) for s in cycle]
            pick = torch.stack([torch.randint(len(self.prompts), (q,), generator=gen, device=device) for gen in gens])
            contexts = self.prompts[pick]                                          # (P, Q)
            tokens, mask, logps = behaviour.sample(contexts.repeat_interleave(g, 1), gens, cfg.temperature)
            rewards = self.shaped(contexts.repeat_interleave(g, 1), tokens).view(-1, q, g)
            shape = (-1, q, g, tokens.shape[-1])
            drawn.append((contexts, tokens.view(shape), mask.view(shape), logps.view(shape), rewards))
            if not cfg.dynamic_sampling:
                break
            kept = torch.cat([d[4] for d in drawn], 1)
            kept = (kept.amax(-1) > kept.amin(-1)).sum(1)                           # (P,) informative groups
            if bool((kept >= q).all()):
                break
        contexts, tokens, mask, logps, rewards = (torch.cat(x, 1) for x in zip(*drawn))
        n = contexts.shape[1]
        informative = rewards.amax(-1) > rewards.amin(-1)                            # (P, n)
        if cfg.dynamic_sampling:
            # informative groups first, then the others, each in the order drawn; the first Q of each member
            order = torch.argsort((~informative).long() * n + torch.arange(n, device=device), 1)[:, :q]
            # groups member p drew before it had Q informative ones (all of them if it never had)
            enough = informative.long().cumsum(1) >= q
            first = torch.where(enough.any(1), enough.float().argmax(1), torch.full_like(enough[:, 0], n - 1,
                                                                                           dtype=torch.long))
            groups_drawn = ((first // q) + 1) * q
        else:
            order = torch.arange(q, device=device).expand(contexts.shape[0], q)
            groups_drawn = torch.full((contexts.shape[0],), q, device=device)

        def take(x):
            return torch.gather(x, 1, order.view(*order.shape, *([1] * (x.dim() - 2))).expand(*order.shape,
                                                                                              *x.shape[2:]))
        contexts, tokens, mask, logps, rewards = map(take, (contexts, tokens, mask, logps, rewards))
        ref_logps = token_logprobs(self.reference, contexts, tokens, mask, cfg.temperature)
        baseline = None
        if cfg.greedy_baseline:
            best, _ = greedy(behaviour, contexts)
            baseline = self.shaped(contexts, best)
        groups = Groups(contexts, tokens, mask, logps, ref_logps, rewards, cfg.temperature, baseline)
        extra = {"groups_drawn": groups_drawn.float()}
        if cfg.dynamic_sampling:   # the fraction of the drawn groups that were kept as informative
            extra["frac_informative_drawn"] = informative.float().mean(1)
        return groups, extra


# ------------------------------------------------------------------------ update metrics
class MetricLog:
    """Update metrics averaged over the steps between evaluations -> group_metrics.csv per seed."""

    def __init__(self, session: Session, state: dict | None):
        self.session = session
        self.rows: list[list[dict]] = state["rows"] if state else [[] for _ in session.paths]
        self.sums: dict[str, torch.Tensor] = state["sums"] if state else {}
        self.count: int = state["count"] if state else 0

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            value = value.detach().double()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1

    def flush(self) -> None:
        if not self.count:
            return
        keys = sorted(self.sums)
        for member, path in enumerate(self.session.paths):
            row = {"step": self.session.step, **{k: round((self.sums[k][member] / self.count).item(), 8) for k in keys}}
            self.rows[member].append(row)
            text = io.StringIO()
            writer = csv.DictWriter(text, ["step", *keys], lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows[member])
            from drlbench.records import atomic_write

            atomic_write(path / "group_metrics.csv", text.getvalue().encode())
        self.sums, self.count = {}, 0

    def state(self) -> dict:
        return {"rows": self.rows, "sums": self.sums, "count": self.count}


# ------------------------------------------------------------------------ the loop
def run(session: Session) -> None:
    from drlbench.llm.evaluation import ExactEvaluator
    from drlbench.llm.policy import stack
    from drlbench.llm.reference import reference

    cfg: Config = session.cfg.loop
    agent, task, seeds = session.agent, session.evaluator.env, session.cfg.seeds
    ref = stack([reference(task, s) for s in seeds])
    for p in ref.parameters():
        p.requires_grad_(False)
    agent.attach_reference(ref, copy_into_policy=session.resume_state is None)
    session.evaluator = ExactEvaluator(session, task, task.leaf_logprobs(ref))
    for record in session.records:
        record.meta.update(steps_unit="gradient steps", evaluation=getattr(task, "EVALUATION", EVALUATION),
                           eval_episodes=1, llm_task=task.describe())
    sampler = Sampler(task, ref, session.population, cfg, agent.policy)
    state = session.loop_state
    log = MetricLog(session, state["metrics"] if state else None)
    batch, extra, iteration = None, None, cfg.num_iterations
    if state:
        sampler.load(state["snapshots"])
        if state["batch"] is not None:
            batch, extra, iteration = Groups(**state["batch"]), state["extra"], state["iteration"]

    def loop_state() -> dict:
        return {"snapshots": sampler.state(), "batch": batch.state() if batch is not None else None,
                "extra": extra, "iteration": iteration, "metrics": log.state()}

    session.begin()
    while session.step < session.cfg.steps:
        if iteration >= cfg.num_iterations:
            batch, extra = sampler.draw(agent.policy)
            iteration = 0
        metrics = {**agent.update(batch), **extra}
        iteration += 1
        session.check_finite(metrics)
        session.step += 1
        sampler.record(agent.policy)
        log.add(metrics)
        if session.step >= session.next_eval:
            log.flush()
        session.after_step(loop_state)
    log.flush()
