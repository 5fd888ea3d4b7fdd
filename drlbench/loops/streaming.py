"""The streaming loop (stream-x: Elsayed, Vasan, Mahmood 2024): one environment step, then one update
from that transition alone. No replay buffer, no minibatch, no target network; one stream per member.

The agent contract (beyond `drlbench.agents.base.Agent`; `drlbench.agents._stream.StreamAgent` implements
the shared part). All tensors carry the population axis P and a stream axis of length 1:
- `observe(obs, mask=None) -> features`: take in observations (P, 1, obs_dim), updating the agent's running
  statistics (only where `mask` (P, 1) is true), and return the network inputs.
- `sample(features, step, total_steps) -> action`: the behaviour action (P, 1) int64 or (P, 1, act_dim)
  float, for training step `step` (0-based) of `total_steps` (for schedules such as epsilon-greedy).
  Continuous actions may leave [-1, 1]: the environment receives them clipped (gymnasium's ClipAction),
  the agent learns from the action it sampled.
- `scale_reward(reward, done) -> reward`: the reward (P, 1) as the agent learns from it.
- `learn(features, action, reward, next_features, terminal, reset) -> metrics`: one update per member.
  `terminal` (float 0/1) removes the bootstrap; `reset` (bool) clears the eligibility traces afterwards.
- `act(obs, deterministic)` on raw observations, statistics frozen: the harness's evaluation.

Time limits: a truncated transition bootstraps from its true final observation (`Step.final_obs`);
only `terminated` removes the bootstrap. Both end the episode, so both reset the traces. The official
code treats truncation as terminal; `truncation_is_terminal = true` reproduces that.

Observations: s' (the final observation) is taken in before the update; when an episode ended, the
first observation of the next one is taken in afterwards, as the official wrappers see them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.harness import Session


@dataclass(frozen=True)
class Config:
    truncation_is_terminal: bool = hp()  # true: the official code's `done = terminated or truncated` bootstrap mask


def check(run_config) -> None:
    """Refuse settings this loop cannot honour, before any run record is written."""
    if run_config.num_envs != 1:
        raise UsageError(f"--num-envs {run_config.num_envs}: the streaming loop learns from one stream per seed; "
                         f"use --num-envs 1 (batch several seeds with --seeds ... --batched)")


def run(session: Session) -> None:
    cfg: Config = session.cfg.loop
    check(session.cfg)
    agent, env, members = session.agent, session.env, session.members
    total = session.cfg.steps
    box = not agent.discrete
    state = session.loop_state
    if state is None:
        features = agent.observe(env.reset(session.train_seeds).view(members, 1, -1))
    else:
        features = state["features"]
    session.begin()

    while session.step < total:
        action = agent.sample(features, session.step, total)
        env_action = session.adapter(action.clamp(-1.0, 1.0).view(members, -1)) if box else action.view(members)
        step = env.step(env_action)
        terminated, truncated = step.terminated.view(members, 1), step.truncated.view(members, 1)
        done = terminated | truncated
        reward = agent.scale_reward(step.reward.view(members, 1), done)
        next_features = agent.observe(step.final_obs.view(members, 1, -1))
        terminal = (done if cfg.truncation_is_terminal else terminated).float()
        session.check_finite(agent.learn(features, action, reward, next_features, terminal, done))
        if bool(done.any()):
            fresh = agent.observe(step.obs.view(members, 1, -1), mask=done)
            features = torch.where(done.unsqueeze(-1), fresh, next_features)
        else:
            features = next_features
        session.step += 1
        session.after_step(lambda: {"features": features})
