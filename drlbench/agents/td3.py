"""Twin Delayed DDPG: Fujimoto, van Hoof, Meger 2018, "Addressing Function Approximation Error
in Actor-Critic Methods" (ICML, arXiv 1802.09477), as in the authors' code (sfujim/TD3, TD3.py).

Per population member, one `update` does:
- target policy smoothing, eq. (14): a~' = clip(mu'(s') + clip(eps, -c, c), -1, 1),
  eps ~ N(0, policy_noise^2), c = noise_clip (actions live in [-1, 1], so max_action = 1);
- clipped double Q, eq. (10): y = r + gamma (1 - d) min_{i=1,2} Qbar_i(s', a~'), d = 1 only for
  true terminations;
- critic loss MSE(Q1, y) + MSE(Q2, y), one optimiser for both;
- every `policy_delay` critic updates (Algorithm 1): actor loss -E[Q1(s, mu(s))] (deterministic
  policy gradient, eq. (1)), then Polyak updates of both targets with `tau`.
Exploration (harness-facing `act`): clip(mu(s) + N(0, exploration_noise^2), -1, 1).
Networks: 256-256 ReLU, actor output tanh (the repo's current defaults; the paper's 400-300 and
lr 1e-3 are the older configuration, see agents/td3.toml).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update


@dataclass(frozen=True)
class TD3Config:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    policy_noise: float = hp("[0, inf)")
    noise_clip: float = hp("[0, inf)")
    policy_delay: int = hp("[1, inf)")
    exploration_noise: float = hp("[0, inf)")


class TD3(Agent):
    name = "td3"
    summary = "TD3 (Fujimoto et al. 2018): clipped double Q, target policy smoothing, delayed actor"
    loop = "off_policy"
    Config = TD3Config
    graph_cycle = "policy_delay"   # actor step and Polyak when updates % delay == 0
    compiled_parts = ("_critic_grads", "_actor_grads")   # update's tensor-only parts

    def __init__(self, observation_space, action_space, config: TD3Config, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.act_dim = act_dim
        actor_hidden, critic_hidden = self.hidden_sizes(config)
        self.actor = PopMLP(population, [obs_dim, *actor_hidden, act_dim])
        self.critic = PopMLP(population, [obs_dim + act_dim, *critic_hidden, 1], copies=2)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), config.actor_lr),
            "critic": adam(self.critic.parameters(), config.critic_lr),
        }
        self.updates = 0
        self.last_actor = {k: torch.zeros(population.size, device=population.device) for k in self.ACTOR_METRICS}

    ACTOR_METRICS = ("actor_loss",)   # what `_actor_step` returns (logged between delayed actor steps too)

    @staticmethod
    def hidden_sizes(config) -> tuple[list[int], list[int]]:
        """(actor, critic) hidden layer widths."""
        return list(config.hidden_sizes), list(config.hidden_sizes)

    def _mu(self, actor, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(actor(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        action = self._mu(self.actor, obs)
        if deterministic:
            return action
        noise = self.population.randn(obs.shape[1], self.act_dim) * self.config.exploration_noise
        return (action + noise).clamp(-1.0, 1.0)

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Gradients written out by hand (`PopMLP.backward`), as in SAC: autograd's values without its graph."""
        critic_loss, _, _ = self._critic_step(batch)
        self.updates += 1
        if self.updates % self.config.policy_delay == 0:
            self.last_actor = self._actor_step(batch)
            polyak_update(self.critic_target, self.critic, self.config.tau)
            polyak_update(self.actor_target, self.actor, self.config.tau)
        return {"critic_loss": critic_loss, **self.last_actor}

    def _critic_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clipped double-Q target with target policy smoothing; both critics on mean (q - y)^2.
        Returns the loss per member (P,), the next-state critic input [s', a~'] (P, B, obs+act) and y (P, B)."""
        noise = self.population.randn(batch.reward.shape[1], self.act_dim)
        result = self._critic_grads(batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated, noise)
        self.optimizers["critic"].step()
        return result

    def _critic_grads(self, obs, action, reward, next_obs, terminated, noise):
        """`_critic_step`'s gradients, set on the critic, given standard normal noise (P, B, |A|)."""
        cfg = self.config
        p, b = reward.shape
        noise = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
        next_action = (self._mu(self.actor_target, next_obs) + noise).clamp(-1.0, 1.0)
        next_input = torch.cat([next_obs, next_action], -1)
        next_q, _ = self.critic_target.trace(next_input)
        target = reward + cfg.gamma * (1.0 - terminated) * next_q.view(p, 2, b).min(1).values
        q, critic_trace = self.critic.trace(torch.cat([obs, action], -1))
        error = q.view(p, 2, b) - target.unsqueeze(1)
        self.critic.backward(critic_trace, error.view(2 * p, b, 1) * (2.0 / b))     # d/dq of mean (q - y)^2
        return error.pow(2).mean(-1).sum(1), next_input, target                     # loss (P,)

    def _actor_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Deterministic policy gradient: maximise Q1(s, pi(s))."""
        actor_loss = self._actor_grads(batch.obs)
        self.optimizers["actor"].step()
        return {"actor_loss": actor_loss}

    def _actor_grads(self, obs):
        """`_actor_step`'s gradients, set on the actor; returns the loss (P,)."""
        b = obs.shape[1]
        out, actor_trace = self.actor.trace(obs)
        action = torch.tanh(out)
        q1, q1_trace = self.critic.trace(torch.cat([obs, action], -1), first_copy_only=True)
        grad_action = self.critic.backward(q1_trace, torch.full_like(q1, -1.0 / b), weight_grads=False,
                                           input_columns=slice(-self.act_dim, None), first_copy_only=True)
        self.actor.backward(actor_trace, grad_action * (1.0 - action * action))     # tanh' = 1 - tanh^2
        return -q1.squeeze(-1).mean(-1)

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates, "last_actor": self.last_actor}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
        self.last_actor = state["last_actor"] if "last_actor" in state else {"actor_loss": state["last_actor_loss"]}
