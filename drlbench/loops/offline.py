"""The offline loop: a fixed dataset -> minibatch per member -> agent.update (BC, TD3+BC, IQL, ...).

`steps` counts gradient steps (run.json says so); evaluation plays the deterministic policy in
the real environment every `eval_every_steps` gradient steps. The dataset is held once, on the
run's device, whatever the number of members; each member draws its own minibatch indices from
its own generator.

Conventions of the offline codebases (PRDC, A2PR, CORL), applied here so agents never see raw data:
- actions are mapped to the agents' [-1, 1] box with the evaluation environment's bounds;
- with `normalize_states`, observations (s and s', and at evaluation) are standardised with the
  dataset's mean and std + 1e-3;
- with `normalize_rewards = "return_range"` (IQL's locomotion setting), rewards are multiplied by
  1000 / (max return - min return) over the dataset's trajectories, split as the official IQL code
  splits the transitions it keeps: after a terminal, or where s' is not the next row's s.
Agents that need the whole dataset (PRDC's nearest-neighbour search) get it once through
`Agent.attach_dataset(observations, actions, total_updates)`, in the same normalised units.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents.base import Batch
from drlbench.domains import hp
from drlbench.harness import Session

STATE_STD_EPS = 1e-3
USES_TRAINING_ENV = False   # the harness builds no training environment for this loop
NEEDS_DATASET = True        # config.resolve finds and checks the dataset before anything is written


@dataclass(frozen=True)
class Config:
    batch_size: int = hp("[1, inf)")
    normalize_states: bool = hp()                                  # dataset mean / (std + 1e-3)
    normalize_rewards: str = hp(choices=("none", "return_range"))  # return_range: IQL's 1000 / (max - min return)


class NormalizedObservations:
    """An evaluation environment whose observations are standardised like the dataset's."""

    def __init__(self, env, mean: torch.Tensor, std: torch.Tensor):
        self.env, self.mean, self.std = env, mean, std

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, seeds):
        return (self.env.reset(seeds) - self.mean) / self.std

    def step(self, action):
        step = self.env.step(action)
        step.obs = (step.obs - self.mean) / self.std
        step.final_obs = (step.final_obs - self.mean) / self.std
        return step


def return_range(dataset) -> float:
    """max - min trajectory return over the kept transitions (IQL's `split_into_trajectories`)."""
    obs, next_obs = dataset.observations, dataset.next_observations
    ends = torch.ones(dataset.size, dtype=torch.bool)
    ends[:-1] = (dataset.terminals[:-1] > 0) | (next_obs[:-1] != obs[1:]).any(-1)
    starts = torch.cat([torch.zeros(1, dtype=torch.long), torch.nonzero(ends[:-1]).flatten() + 1])
    returns = torch.tensor([float(s.sum()) for s in torch.tensor_split(dataset.rewards.double(), starts[1:].tolist())])
    return float(returns.max() - returns.min())


class DatasetSampler:
    """The dataset in one tensor per field (on the run's device), minibatches per member."""

    def __init__(self, session: Session, cfg: Config):
        from drlbench.datasets import load

        dataset = load(session.cfg.dataset, session.evaluator.env.observation_space,
                       session.evaluator.env.action_space)
        device = session.population.device
        obs, next_obs = dataset.observations.to(device), dataset.next_observations.to(device)
        self.mean = torch.zeros(dataset.obs_dim, device=device)
        self.std = torch.ones(dataset.obs_dim, device=device)
        if cfg.normalize_states:
            mean, std = dataset.state_mean_std(STATE_STD_EPS)
            self.mean, self.std = mean.to(device), std.to(device)
            obs, next_obs = (obs - self.mean) / self.std, (next_obs - self.mean) / self.std
        adapter = session.adapter
        action = dataset.actions.to(device)
        if adapter.box and adapter.scale is not None:
            action = ((action - adapter.center) / adapter.scale).clamp(-1.0, 1.0)
        reward = dataset.rewards.to(device)
        if cfg.normalize_rewards == "return_range":
            reward = reward * (1000.0 / max(return_range(dataset), 1e-8))
        self.obs, self.action, self.reward, self.next_obs = obs, action, reward, next_obs
        self.terminal = dataset.terminals.to(device)
        self.size = dataset.size
        self.population = session.population

    def sample(self, batch_size: int) -> Batch:
        index = self.population.randint(self.size, batch_size)   # (P, B)
        return Batch(self.obs[index], self.action[index], self.reward[index], self.next_obs[index],
                     self.terminal[index])


def run(session: Session) -> None:
    cfg: Config = session.cfg.loop
    agent = session.agent
    data = DatasetSampler(session, cfg)
    session.evaluator.env = NormalizedObservations(session.evaluator.env, data.mean, data.std)
    agent.attach_dataset(data.obs, data.action, session.cfg.steps)
    session.begin()
    while session.step < session.cfg.steps:
        session.check_finite(agent.update(data.sample(cfg.batch_size)))
        session.step += 1
        session.after_step(lambda: {})
