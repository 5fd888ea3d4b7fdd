"""The hybrid loop: a fixed real dataset AND online interaction with a simulator (H2O, Niu et al. 2022).

Per epoch (t6-thu/H2O sim2real_sac_main.py): `sim_steps_per_epoch` transitions per member from the
simulator (`--sim-env`, e.g. "Pendulum-v1?g=15") with the current stochastic policy, appended to that
member's FIFO sim buffer of `sim_buffer_ratio` x the dataset's size (mixed_replay_buffer.py: the real
part fixed, the sim part overwritten oldest first); then `updates_per_epoch` gradient steps. Each step
hands the agent a `drlbench.loops.MixedBatch`: batch_size * (1 - sim_ratio) real and batch_size *
sim_ratio sim transitions for the value and policy losses, and, drawn separately as the code's
`train_discriminator` does, `discriminator_batch_size` of each for the dynamics discriminators.

`steps` counts gradient steps (as in the offline loop); evaluation plays the deterministic policy in the
REAL environment (`--env`'s dataset environment) every `eval_every_steps` gradient steps. The data
conventions are the offline loop's (`DatasetSampler`: actions mapped to [-1, 1] with the real env's
bounds, states standardised by the dataset's statistics if `normalize_states`, applied to the sim
transitions too); sim transitions store `terminated` only (a time limit bootstraps, as the code's
sampler, which steps the unwrapped env, never marks it done). A checkpoint holds the sim buffer, the
simulator's state and the position within the epoch, so --resume continues the same run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from drlbench.buffer import ReplayBuffer
from drlbench.domains import hp
from drlbench.harness import Session
from drlbench.loops import MixedBatch
from drlbench.loops.offline import STATE_STD_EPS, DatasetSampler, NormalizedObservations  # noqa: F401

NEEDS_DATASET = True      # config.resolve finds and checks the real dataset before anything is written
NEEDS_SIM_ENV = True      # ... and requires --sim-env
USES_TRAINING_ENV = True  # the harness builds the training environment from --sim-env


@dataclass(frozen=True)
class Config:
    batch_size: int = hp("[2, inf)")                   # real + sim samples per gradient step
    sim_ratio: float = hp("(0, 1)")                    # fraction of the batch from the sim buffer (batch_ratio)
    discriminator_batch_size: int = hp("[1, inf)")     # real and sim samples each for the discriminators
    sim_buffer_ratio: float = hp("(0, inf)")           # sim FIFO capacity / dataset size (replaybuffer_ratio)
    sim_steps_per_epoch: int = hp("[1, inf)")          # simulator transitions per member per epoch
    updates_per_epoch: int = hp("[1, inf)")            # gradient steps per epoch
    normalize_states: bool = hp()                      # dataset mean / (std + 1e-3), real and sim alike


def _split(cfg: Config) -> tuple[int, int]:
    """(real, sim) samples per batch, as the code rounds them, int(B (1 - ratio)) and int(B ratio) (128 and 128
    for its 256 and 0.5), but at least one of each."""
    return max(1, int(cfg.batch_size * (1.0 - cfg.sim_ratio))), max(1, int(cfg.batch_size * cfg.sim_ratio))


def run(session: Session) -> None:
    cfg: Config = session.cfg.loop
    agent, env, pop = session.agent, session.env, session.population
    members, n = session.members, session.cfg.num_envs
    data = DatasetSampler(session, SimpleNamespace(normalize_states=cfg.normalize_states, normalize_rewards="none"))
    session.evaluator.env = NormalizedObservations(session.evaluator.env, data.mean, data.std)
    agent.attach_dataset(data.obs, data.action, session.cfg.steps)
    obs_dim, act_dim = data.obs.shape[1], data.action.shape[1]
    sim = ReplayBuffer(pop, max(1, math.ceil(cfg.sim_buffer_ratio * data.size)), obs_dim, act_dim)
    real_size, sim_size = _split(cfg)
    normalize = lambda x: (x - data.mean) / data.std
    state = session.loop_state
    if state is None:
        obs, in_epoch = normalize(env.reset(session.train_seeds)), 0
    else:
        sim.load_state_dict(state["buffer"])
        obs, in_epoch = state["obs"], state["in_epoch"]
    session.begin()

    while session.step < session.cfg.steps:
        if in_epoch == 0:   # simulator rollouts with the current stochastic policy
            for _ in range(math.ceil(cfg.sim_steps_per_epoch / n)):
                member_obs = obs.view(members, n, obs_dim)
                action = agent.act(member_obs, deterministic=False)
                step = env.step(session.adapter(action.reshape(members * n, act_dim)))
                sim.add(member_obs, action, step.reward.view(members, n),
                        normalize(step.final_obs).view(members, n, obs_dim), step.terminated.view(members, n))
                obs = normalize(step.obs)
        batch = MixedBatch(real=data.sample(real_size), sim=sim.sample(sim_size),
                           discriminator_real=data.sample(cfg.discriminator_batch_size),
                           discriminator_sim=sim.sample(cfg.discriminator_batch_size))
        session.check_finite(agent.update(batch))
        session.step += 1
        in_epoch = (in_epoch + 1) % cfg.updates_per_epoch
        session.after_step(lambda: {"buffer": sim.state_dict(), "obs": obs, "in_epoch": in_epoch})
