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
member's gradients are its own. Gradients are written out by hand (drlbench.nn: the chain rule
of each layer, ReLU and the tanh-Gaussian), equal to autograd's to float rounding; one actor pass
serves both a' (target) and a~ (actor loss), which use the same pre-step actor. `update` draws the
noise, then runs two tensor-only parts, `_critic_grads` and `_actor_grads`, each followed by its
optimizer step; with the off-policy loop's `compile = true` both parts run through torch.compile.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update, tanh_gaussian, tanh_gaussian_backward


def policy_std(raw_scale: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw_scale) + 1e-5      # softlearning gaussian_policy.py


@dataclass(frozen=True)
class SACConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    alpha_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    target_entropy: float | str = hp("(-inf, inf)", choices=("auto",))  # "auto" = -|A|
    initial_alpha: float = hp("(0, inf)")
    reward_scale: float = hp("(0, inf)")
    actor_q: str = hp(choices=("min", "mean"))  # "min" (paper) or "mean" (softlearning HEAD)
    target_update_interval: int = hp("[1, inf)")
    alpha_resample: bool = hp()


class SAC(Agent):
    name = "sac"
    summary = "Soft Actor-Critic (Haarnoja et al. 2018): twin Q, learned temperature, tanh-Gaussian policy"
    loop = "off_policy"
    Config = SACConfig
    graph_cycle = "target_update_interval"   # Polyak when updates % interval == 0
    compiled_parts = ("_critic_grads", "_actor_grads")   # update's tensor-only parts

    def __init__(self, observation_space, action_space, config: SACConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        auto = config.target_entropy == "auto"
        self.target_entropy = -float(act_dim) if auto else float(config.target_entropy)
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
        return mean, policy_std(raw_scale)

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self._policy(obs)
        return tanh_gaussian(mean, std, self.population.randn(obs.shape[1], self.act_dim))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        mean, std = self._policy(obs)
        if deterministic:
            return torch.tanh(mean)
        return torch.tanh(mean + std * self.population.randn(obs.shape[1], self.act_dim))  # tanh_gaussian's action

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One step of every loss; gradients by hand (`PopMLP.backward`, `tanh_gaussian_backward`)."""
        b = batch.reward.shape[1]
        alpha = self.log_alpha.detach().exp()[:, None]                      # (P, 1)
        # noise for a' (target) and a~ (actor loss), drawn in that order
        next_noise, noise = self.population.randn(b, self.act_dim), self.population.randn(b, self.act_dim)
        critic_loss, actor_pass = self._critic_grads(batch.obs, batch.action, batch.reward, batch.next_obs,
                                                     batch.terminated, next_noise, noise, alpha)
        self.optimizers["critic"].step()
        actor_loss, log_prob = self._actor_grads(batch.obs, noise, alpha, *actor_pass)
        self.optimizers["actor"].step()
        if self.config.alpha_resample:
            log_prob = self._sample(batch.obs)[1]
        alpha_loss = self._temperature_step_and_targets(log_prob)
        return {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "alpha_loss": alpha_loss,
            "alpha": alpha.squeeze(1),
            "entropy": -log_prob.mean(-1),
        }

    def _critic_grads(self, obs, action, reward, next_obs, terminated, next_noise, noise, alpha):
        """Critic gradients, eq. (5)-(6), set on the critic; returns its loss (P,) and the actor pass.

        One actor pass over [s', s] with the actor before its step gives a' for the critic target and
        a~ for the actor loss; the actor loss reuses it (`_actor_grads`)."""
        cfg = self.config
        p, b = reward.shape
        out, actor_trace = self.actor.trace(torch.cat([next_obs, obs], 1))
        mean, raw_scale = out.chunk(2, dim=-1)
        std = policy_std(raw_scale)
        sampled, log_probs = tanh_gaussian(mean, std, torch.cat([next_noise, noise], 1))
        next_action, action_pi = sampled.split(b, 1)
        next_log_prob, log_prob = log_probs.split(b, 1)

        next_q, _ = self.critic_target.trace(torch.cat([next_obs, next_action], -1))
        next_q = next_q.view(p, 2, b).min(dim=1).values
        target = cfg.reward_scale * reward + cfg.gamma * (1.0 - terminated) * (next_q - alpha * next_log_prob)
        q, critic_trace = self.critic.trace(torch.cat([obs, action], -1))
        error = q.view(p, 2, b) - target.unsqueeze(1)
        critic_loss = 0.5 * error.pow(2).mean(-1).sum(1)                      # (P,): both critics
        self.critic.backward(critic_trace, error.view(2 * p, b, 1) / b)        # d/dq of 1/2 mean (q - y)^2
        return critic_loss, (action_pi, log_prob, std[:, b:], raw_scale[:, b:], [x[:, b:] for x in actor_trace])

    def _actor_grads(self, obs, noise, alpha, action, log_prob, std, raw_scale, actor_trace):
        """Actor gradients, eq. (7): J = mean(alpha log pi(a~|s) - Q^(s, a~)), through the critics just
        updated, set on the actor; returns J (P,) and log pi(a~|s) (P, B)."""
        p, b = log_prob.shape
        q_pi, q_trace = self.critic.trace(torch.cat([obs, action], -1))
        q_pi = q_pi.view(p, 2, b)
        action_columns = slice(-self.act_dim, None)
        if self.config.actor_q == "min":   # the min's gradient flows through the smaller Q only
            q_hat, chosen = q_pi.min(dim=1)
            grad_action = self.critic.chosen_copy_input_grad(q_trace, chosen, -1.0 / b, action_columns)
        else:
            q_hat = q_pi.mean(dim=1)
            grad_action = self.critic.backward(q_trace, torch.full((2 * p, b, 1), -0.5 / b, device=obs.device),
                                               weight_grads=False, input_columns=action_columns
                                               ).view(p, 2, b, -1).sum(1)
        actor_loss = (alpha * log_prob - q_hat).mean(-1)
        grad_mean, grad_std = tanh_gaussian_backward(action, std, noise, grad_action, (alpha / b).expand(p, b))
        grad_raw_scale = grad_std * torch.sigmoid(raw_scale)                    # softplus' = sigmoid
        self.actor.backward(actor_trace, torch.cat([grad_mean, grad_raw_scale], -1))
        return actor_loss, log_prob

    def _temperature_step_and_targets(self, log_prob: torch.Tensor) -> torch.Tensor:
        """Temperature step, eq. (17)-(18), then the Polyak target update; returns the temperature loss (P,)."""
        alpha_now = self.log_alpha.detach().exp()
        alpha_loss = -(alpha_now[:, None] * (log_prob + self.target_entropy)).mean(-1)
        self.log_alpha.grad = alpha_loss.clone()
        self.optimizers["alpha"].step()
        self.updates += 1
        if self.updates % self.config.target_update_interval == 0:
            polyak_update(self.critic_target, self.critic, self.config.tau)
        return alpha_loss

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
