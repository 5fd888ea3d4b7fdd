"""The on-policy loop: rollout of n_steps x num_envs per member -> GAE(lambda) -> agent.learn (PPO,
on-policy MDPO, ...).

The agent is an `ActorCritic` (drlbench.agents.actor_critic, which documents the contract):
`observe(obs)` for network inputs, `explore(x, t)` -> (action, log_prob, value) for step t, `value(x)`
for bootstrapping, and `learn(rollout)` for all the updates of one iteration (its epochs and
minibatches, or full-batch steps, are the agent's business).

Advantages (Schulman et al. 2016, GAE), per member and sub-environment, with s'_t the true next
state of step t (`Step.final_obs`, so a step that ended an episode does not see the next episode):
    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},     done_t = terminated_t or truncated_t
    R_t     = A_t + V(s_t)                                           (TD(lambda) value targets)
V(s'_t) is V(s_{t+1}) within an episode, V(final_obs_t) at a truncation (time limit: the state is
not terminal, so it bootstraps, as stable-baselines3 does by adding gamma V(final_obs) to the reward)
and the value of the observation after the last step at the rollout's end. With
`bootstrap_truncation = false`, truncations count as terminations (what codes that predate the
terminated/truncated split do, e.g. the official MDPO code).

Observations reach the networks through `agent.observe` (the agent's running normalisation, if it
has one: the buffer stores the network inputs, as stable-baselines3's buffer stores VecNormalize's
output); with `normalize_rewards`, rewards are divided by the running standard deviation of the
discounted return (drlbench.normalize) before GAE, the loop's state holding those statistics.

Steps: `session.step` counts environment steps per member (n per loop iteration). The run stops at
the step budget; a rollout cut short by the budget is not learned from (the final evaluation
follows right away). Checkpoints (at evaluations) store the partly filled rollout, so a resumed
run continues bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from drlbench.agents.actor_critic import ActorCritic, Rollout
from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.harness import Session
from drlbench.normalize import RewardNormalizer


@dataclass(frozen=True)
class Config:
    n_steps: int = hp("[1, inf)")  # steps per sub-environment per rollout (rollout = n_steps * num_envs per member)
    gamma: float = hp("(0, 1]")   # discount
    gae_lambda: float = hp("[0, 1]")  # GAE lambda
    bootstrap_truncation: bool = hp()  # time-limit truncations bootstrap from V(final obs); false: treated as terminal
    normalize_rewards: bool = hp()  # VecNormalize's reward scaling (drlbench.normalize.RewardNormalizer)


def gae(reward: torch.Tensor, value: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
        done: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """GAE(lambda) advantages over the time axis 1 of (P, T, N) tensors (see the module docstring).

    next_value[:, t] is V(s'_t), the value of step t's true next state; terminated/done are 0/1 floats."""
    advantage = torch.zeros_like(reward)
    running = torch.zeros_like(reward[:, 0])
    for t in reversed(range(reward.shape[1])):
        delta = reward[:, t] + gamma * (1.0 - terminated[:, t]) * next_value[:, t] - value[:, t]
        running = delta + gamma * lam * (1.0 - done[:, t]) * running
        advantage[:, t] = running
    return advantage


def check(run_config) -> None:
    """Refuse settings this loop cannot honour, before any run record is written."""
    rollout = run_config.loop.n_steps * run_config.num_envs
    if rollout < 2:
        raise UsageError(f"n_steps={run_config.loop.n_steps} x num_envs={run_config.num_envs}: "
                         f"a rollout needs at least 2 steps")
    if rollout > run_config.steps:
        raise UsageError(f"n_steps={run_config.loop.n_steps} x num_envs={run_config.num_envs} = {rollout}: "
                         f"the rollout must be at most steps={run_config.steps}, or nothing would train")


def run(session: Session) -> None:
    cfg: Config = session.cfg.loop
    agent, env = session.agent, session.env
    if not isinstance(agent, ActorCritic):
        raise UsageError(f"the on-policy loop needs an actor-critic agent, not {type(agent).__name__}")
    members, n, t_max = session.members, session.cfg.num_envs, cfg.n_steps
    obs_shape = env.observation_space.shape
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    act_shape = () if discrete else env.action_space.shape
    dev = session.population.device
    on_accelerator = dev.type != "cpu"

    def zeros(*shape, dtype=torch.float32):
        return torch.zeros(members, t_max, n, *shape, dtype=dtype, device=dev)

    buf = {
        "obs": zeros(*obs_shape), "action": zeros(*act_shape, dtype=torch.int64 if discrete else torch.float32),
        "log_prob": zeros(), "value": zeros(), "reward": zeros(), "terminated": zeros(), "done": zeros(),
        "next_value": zeros(),   # V(s'_t) where the episode ended at t (0 at terminations), else filled later
    }
    reward_normalizer = RewardNormalizer(members, n, cfg.gamma, dev) if cfg.normalize_rewards else None
    state = session.loop_state
    if state is None:
        x, t = agent.observe(env.reset(session.train_seeds).view(members, n, *obs_shape)), 0
    else:
        x, t = state["inputs"], state["t"]
        for key, value in state["buffer"].items():
            buf[key][:, :t] = value
        if reward_normalizer is not None:
            reward_normalizer.load_state_dict(state["reward_normalizer"])

    def loop_state():
        return {"inputs": x, "t": t, "buffer": {k: v[:, :t].clone() for k, v in buf.items()},
                "reward_normalizer": None if reward_normalizer is None else reward_normalizer.state_dict()}

    session.begin()
    while session.step < session.cfg.steps:
        action, log_prob, value = agent.explore(x, t)
        env_action = action if discrete else action.clamp(-1.0, 1.0)
        step = env.step(session.adapter(env_action.reshape(members * n, *act_shape)))
        terminated = step.terminated.view(members, n)
        truncated = step.truncated.view(members, n)
        if not cfg.bootstrap_truncation:
            terminated = terminated | truncated
        done = terminated | truncated
        next_x = agent.observe(step.obs.view(members, n, *obs_shape))
        cut = done & ~terminated   # episodes that ended by truncation: bootstrap from the final observation
        buf["next_value"][:, t] = 0.0
        if on_accelerator or bool(cut.any()):   # on a GPU, one more forward pass is cheaper than a host sync
            final_value = agent.value(agent.features(step.final_obs.view(members, n, *obs_shape)))
            buf["next_value"][:, t] = torch.where(cut, final_value, 0.0)
        reward = step.reward.view(members, n)
        if reward_normalizer is not None:
            reward = reward_normalizer(reward, done)
        for key, item in (("obs", x), ("action", action), ("log_prob", log_prob), ("value", value),
                          ("reward", reward), ("terminated", terminated), ("done", done)):
            buf[key][:, t] = item
        x = next_x
        t += 1
        session.step += n
        if t == t_max:
            session.check_finite(agent.learn(rollout(buf, agent.value(x), cfg, session.step, session.cfg.steps)))
            t = 0
        session.after_step(loop_state)


def rollout(buf: dict[str, torch.Tensor], last_value: torch.Tensor, cfg: Config, steps_done: int,
            total_steps: int) -> Rollout:
    """Advantages and returns for a full buffer; flattened to (P, n_steps * num_envs, ...)."""
    done = buf["done"]
    # V(s'_t): the next step's value inside an episode, the stored bootstrap value where one ended
    following = torch.cat([buf["value"][:, 1:], last_value.unsqueeze(1)], 1)
    next_value = torch.where(done.bool(), buf["next_value"], following)
    advantage = gae(buf["reward"], buf["value"], next_value, buf["terminated"], done, cfg.gamma, cfg.gae_lambda)
    members = done.shape[0]

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(members, -1, *x.shape[3:])

    return Rollout(obs=flat(buf["obs"]), action=flat(buf["action"]), log_prob=flat(buf["log_prob"]),
                   value=flat(buf["value"]), advantage=flat(advantage), returns=flat(advantage + buf["value"]),
                   steps_done=steps_done, total_steps=total_steps)
