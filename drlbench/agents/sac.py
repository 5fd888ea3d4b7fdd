"""Soft Actor-Critic: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"
(arXiv 1812.05905), as in the authors' code (rail-berkeley/softlearning, sac.py).

Per population member, one `update` does, in this order:
- critic, eq. (5)-(6): J_Q(theta_i) = 1/2 E[(Q_i(s, a) - y)^2] for i = 1, 2, with
  y = reward_scale * r + gamma (1 - d) [min_j Qbar_j(s', a') - alpha log pi(a'|s')],
  a' ~ pi(.|s') freshly sampled; d = 1 only for true terminations (time limits bootstrap).
- actor, eq. (7) and (10): J_pi = E[alpha log pi(a~|s) - Q^(s, a~)], a~ = tanh(mu + sigma eps)
  reparameterised; Q^ = min_j Q_j as the paper writes it (`actor_q = "min"`), or the mean of
  the two as softlearning's final code does (`actor_q = "mean"`).
- temperature, eq. (17)-(18): J(alpha) = E[-alpha (log pi(a~|s) + Hbar)], Hbar = -|A| ("auto"),
  differentiated through alpha = exp(log alpha) as softlearning does, on actions re-sampled
  after the actor step (`alpha_resample`).
- targets: Qbar <- tau Q + (1 - tau) Qbar every `target_update_interval` updates.
Policy: tanh-squashed Gaussian, sigma = softplus(raw) + 1e-5 (softlearning gaussian_policy.py);
the deterministic (evaluation) action is tanh(mu).
Implementation notes (same maths): both critics run as one batched network and share one Adam
(Adam is element-wise, so this equals two optimisers); members' losses are summed, so each
member's gradients are its own.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from drlbench.agents.base import Agent, Batch
from drlbench.errors import UsageError
from drlbench.nn import PopMLP, adam, optimizer_step, polyak_update, set_requires_grad, tanh_gaussian


@dataclass(frozen=True)
class SACConfig:
    gamma: float
    tau: float
    actor_lr: float
    critic_lr: float
    alpha_lr: float
    hidden_sizes: tuple[int, ...]
    target_entropy: float | str      # "auto" = -|A|
    initial_alpha: float
    reward_scale: float
    actor_q: str                     # "min" (paper) or "mean" (softlearning HEAD)
    target_update_interval: int
    alpha_resample: bool


class SAC(Agent):
    name = "sac"
    summary = "Soft Actor-Critic (Haarnoja et al. 2018): twin Q, learned temperature, tanh-Gaussian policy"
    loop = "off_policy"
    Config = SACConfig

    def __init__(self, observation_space, action_space, config: SACConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        if config.actor_q not in ("min", "mean"):
            raise UsageError(f"actor_q={config.actor_q!r}; choose from: min, mean")
        if config.target_entropy == "auto":
            self.target_entropy = -float(act_dim)
        elif isinstance(config.target_entropy, (int, float)):
            self.target_entropy = float(config.target_entropy)
        else:
            raise UsageError(f"target_entropy={config.target_entropy!r}; use a number or 'auto'")
        self.act_dim = act_dim
        hidden = list(config.hidden_sizes)
        self.actor = PopMLP(population, [obs_dim, *hidden, 2 * act_dim])
        self.critic = PopMLP(population, [obs_dim + act_dim, *hidden, 1], copies=2)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(
            torch.full((population.size,), math.log(config.initial_alpha), device=population.device))
        self.optimizers = {
            "actor": adam(self.actor.parameters(), config.actor_lr),
            "critic": adam(self.critic.parameters(), config.critic_lr),
            "alpha": adam([self.log_alpha], config.alpha_lr),
        }
        self.updates = 0

    def _policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_scale = self.actor(obs).chunk(2, dim=-1)
        return mean, F.softplus(raw_scale) + 1e-5

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self._policy(obs)
        return tanh_gaussian(mean, std, self.population.randn(obs.shape[1], self.act_dim))

    def _q(self, critic, obs, action) -> torch.Tensor:
        return critic(torch.cat([obs, action], dim=-1)).squeeze(-1)  # (P, 2, B)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self._policy(obs)[0])
        return self._sample(obs)[0]

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        alpha = self.log_alpha.detach().exp()[:, None]                      # (P, 1)

        with torch.no_grad():
            next_action, next_log_prob = self._sample(batch.next_obs)
            next_q = self._q(self.critic_target, batch.next_obs, next_action).min(dim=1).values
            target = cfg.reward_scale * batch.reward + cfg.gamma * (1.0 - batch.terminated) * (
                next_q - alpha * next_log_prob)
        q = self._q(self.critic, batch.obs, batch.action)
        critic_loss = 0.5 * (q - target.unsqueeze(1)).pow(2).mean(-1).sum(1)  # (P,): both critics
        optimizer_step(self.optimizers["critic"], critic_loss.sum())

        action, log_prob = self._sample(batch.obs)
        set_requires_grad(self.critic, False)   # the actor's loss must not build critic weight grads
        q_pi = self._q(self.critic, batch.obs, action)
        set_requires_grad(self.critic, True)
        q_hat = q_pi.min(dim=1).values if cfg.actor_q == "min" else q_pi.mean(dim=1)
        actor_loss = (alpha * log_prob - q_hat).mean(-1)
        optimizer_step(self.optimizers["actor"], actor_loss.sum())

        if cfg.alpha_resample:
            with torch.no_grad():
                log_prob = self._sample(batch.obs)[1]
        alpha_loss = -(self.log_alpha.exp()[:, None] * (log_prob.detach() + self.target_entropy)).mean(-1)
        optimizer_step(self.optimizers["alpha"], alpha_loss.sum())

        self.updates += 1
        if self.updates % cfg.target_update_interval == 0:
            polyak_update(self.critic_target, self.critic, cfg.tau)
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(),
            "alpha": alpha.squeeze(1),
            "entropy": -log_prob.detach().mean(-1),
        }

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
