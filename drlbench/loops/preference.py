"""The preference loop (LLM track): pairs -> agent.update, exact evaluation by enumeration.

`--env llm:TASK` names a task of drlbench.llm.tasks; no environment is stepped. Each member (seed)
gets its reference policy (SFT on noisy demonstrations, cached per task and seed:
drlbench.llm.reference), the agent's policy starts as a copy of it, and
- sampling = "offline": `num_pairs` pairs from the reference, labelled once (drlbench.llm.data);
  each gradient step draws `batch_size` of them with replacement;
- sampling = "online": each gradient step labels `batch_size` fresh pairs sampled from the policy;
- sampling = "snapshot": the same from the agent's frozen iterate pi_t instead (iterative methods).
What else a method needs it declares (`agent.needs(config)`, drlbench.llm.data.DataNeeds; the loop
names no method): groups of K answers per prompt with their exact preference matrix instead of
labelled pairs (plus the gold answer as a candidate), the second answer of each pair from the
token-wise logit mixture of the sampler and pi_ref, and an iteration length: after every
`iteration_steps` gradient steps the loop calls `agent.next_iteration()` (pi_t <- pi_theta).
`steps` counts gradient steps. Every `eval_every_steps` the policy is evaluated exactly (every
response of every context enumerated, drlbench.llm.tasks.Task.evaluate): `evaluations.csv` gets the
normalised score (reference 0, KL-regularised optimum 1) as `return_mean` and the mean response
length as `length_mean`, so stats/compare/report read LLM runs like any other; the other exact
quantities (true reward, KL to the reference, regret, win rate against the reference) go to
`llm_evaluations.csv` beside it, and the last row to run.json (`llm_final`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.harness import Session

USES_TRAINING_ENV = False    # the harness builds no training environment for this loop
LLM_TASKS = True             # trains on `llm:` tasks (drlbench.config lets its agents run there)
EVALUATION = ("exact, by enumeration of every response of every context: return_mean = 1 - regret/regret(pi_ref), "
              "regret = J(pi*) - J(pi), J = E[r] - beta KL(pi || pi_ref); length_mean = mean response length")


@dataclass(frozen=True)
class Config:
    batch_size: int = hp("[1, inf)")                       # pairs per gradient step
    num_pairs: int = hp("[1, inf)")                        # offline dataset size per seed
    sampling: str = hp(choices=("offline", "online", "snapshot"))   # online: fresh pairs from the policy every
    # step; snapshot: from the iterate pi_t


def check(cfg) -> None:
    """Refused before anything is written: only `llm:` tasks."""
    if not cfg.env_id.startswith("llm:"):
        raise UsageError(f"{cfg.agent} trains on preference tasks, not {cfg.env_id}: --env llm:bt-seq, "
                         "llm:bt-seq-intransitive or llm:len-bias")
    from drlbench import envs
    from drlbench.llm.tasks import task_spec

    base, parameters = envs.parse_physics(cfg.env_id)
    name = base.partition(":")[2]
    task_spec(name, parameters)   # integers, head counts, enumeration size
    if name == "arith":
        raise UsageError(f"{cfg.agent} learns from preference pairs; llm:arith has a verifiable reward, not "
                         "preferences: train a group method on it (grpo, rloo, reinforce_pp, ...; "
                         "`drlbench list agents`)")
    from drlbench.agents import get_agent

    needs, sampling = get_agent(cfg.agent).needs(cfg.hyperparameters), cfg.loop.sampling
    if sampling == "offline" and (needs.group_size or needs.mixture_coef is not None):
        what = "groups of answers" if needs.group_size else "the second answer of each pair"
        raise UsageError(f"{cfg.agent} samples {what} while it trains: sampling=online or sampling=snapshot, "
                         "not offline")
    if sampling == "snapshot" and not needs.iteration_steps:
        raise UsageError(f"sampling=snapshot draws from the iterate pi_t, which {cfg.agent} does not keep: "
                         "sampling=online or offline")


def run(session: Session) -> None:
    from drlbench.llm.data import mixture_pairs, offline_pairs, online_groups, online_pairs
    from drlbench.llm.evaluation import ExactEvaluator
    from drlbench.llm.policy import stack
    from drlbench.llm.reference import reference

    cfg: Config = session.cfg.loop
    agent, task, seeds = session.agent, session.evaluator.env, session.cfg.seeds
    ref = stack([reference(task, s) for s in seeds])
    for p in ref.parameters():
        p.requires_grad_(False)
    agent.attach_reference(ref, copy_into_policy=session.resume_state is None)
    ref_leaf = task.leaf_logprobs(ref)
    session.evaluator = ExactEvaluator(session, task, ref_leaf)
    for record in session.records:
        record.meta.update(steps_unit="gradient steps", evaluation=EVALUATION, eval_episodes=1,
                           llm_task=task.describe())
    data = offline_pairs(task, ref, seeds, cfg.num_pairs) if cfg.sampling == "offline" else None
    needs, population = agent.needs(agent.config), session.population
    session.begin()
    while session.step < session.cfg.steps:
        sampler = agent.snapshot if cfg.sampling == "snapshot" else agent.policy
        if data is not None:
            batch = data.take(population.randint(data.size, cfg.batch_size))
        elif needs.group_size:
            batch = online_groups(task, sampler, ref, population, cfg.batch_size, needs.group_size, needs.gold)
        elif needs.mixture_coef is not None:
            batch = mixture_pairs(task, sampler, ref, population, cfg.batch_size, needs.mixture_coef)
        else:
            batch = online_pairs(task, sampler, ref, population, cfg.batch_size)
        session.check_finite(agent.update(batch))
        session.step += 1
        if needs.iteration_steps and session.step % needs.iteration_steps == 0:
            agent.next_iteration()
        session.after_step(lambda: {})
