"""The preference loop (LLM track): pairs -> agent.update, exact evaluation by enumeration.

`--env llm:TASK` names a task of drlbench.llm.tasks; no environment is stepped. Each member (seed)
gets its reference policy (SFT on noisy demonstrations, cached per task and seed:
drlbench.llm.reference), the agent's policy starts as a copy of it, and
- sampling = "offline": `num_pairs` pairs from the reference, labelled once (drlbench.llm.data);
  each gradient step draws `batch_size` of them with replacement;
- sampling = "online": each gradient step labels `batch_size` fresh pairs sampled from the policy.
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
EVALUATION = ("exact, by enumeration of every response of every context: return_mean = 1 - regret/regret(pi_ref), "
              "regret = J(pi*) - J(pi), J = E[r] - beta KL(pi || pi_ref); length_mean = mean response length")


@dataclass(frozen=True)
class Config:
    batch_size: int = hp("[1, inf)")                       # pairs per gradient step
    num_pairs: int = hp("[1, inf)")                        # offline dataset size per seed
    sampling: str = hp(choices=("offline", "online"))      # online: fresh pairs from the policy every step


def check(cfg) -> None:
    """Refused before anything is written: only `llm:` tasks."""
    if not cfg.env_id.startswith("llm:"):
        raise UsageError(f"{cfg.agent} trains on preference tasks, not {cfg.env_id}: --env llm:bt-seq, "
                         "llm:bt-seq-intransitive or llm:len-bias")
    from drlbench import envs
    from drlbench.llm.tasks import task_spec

    base, parameters = envs.parse_physics(cfg.env_id)
    task_spec(base.partition(":")[2], parameters)   # integers, head counts, enumeration size


def run(session: Session) -> None:
    from drlbench.llm.data import offline_pairs, online_pairs
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
    session.begin()
    while session.step < session.cfg.steps:
        if data is not None:
            batch = data.take(session.population.randint(data.size, cfg.batch_size))
        else:
            batch = online_pairs(task, agent.policy, ref, session.population, cfg.batch_size)
        session.check_finite(agent.update(batch))
        session.step += 1
        session.after_step(lambda: {})
