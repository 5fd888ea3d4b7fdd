"""PMOE on PPO: Ren, Li, Ding, Pan, Dong, "Probabilistic Mixture-of-Experts for Efficient Deep
Reinforcement Learning" (arXiv 2104.09122), PPO variant. No official repository; the reference
is co-author Zihan Ding's quantumiracle/Popular-RL-Algorithms pmoe_ppo.py. specs/algorithms.md §6.

Everything is PPO (drlbench.agents.ppo: clipped surrogate, GAE, minibatch epochs, one Adam, per-
member gradient-norm clipping) except the policy and two added loss terms:
- policy: a mixture of K diagonal Gaussians, means from one tanh MLP (K x |A| outputs), a
  state-independent log sigma per expert and dimension, and gate weights w(s) = softmax(linear(s)):
      pi(a|s) = sum_k w_k(s) N(a; mu_k(s), sigma_k^2),
  whose log-density (logsumexp over experts) enters the PPO ratio. Acting samples k ~ w(s), then
  a ~ N(mu_k, sigma_k^2); the deterministic action is mu_k* of the largest-weight expert.
- gate (frequency) loss: k*(s) = argmax_k Q_phi(s, mu_k(s)), L_gate = mean_{s,k} (w_k(s) - onehot(k*)_k)^2;
- Q loss: an auxiliary ReLU Q network regressed on the rollout's TD(lambda) returns,
  L_Q = mean (Q_phi(s, a) - R)^2.
Per minibatch: L = L^CLIP + c1 L^VF - c2 S + L_gate + L_Q. S, the mixture's entropy (no closed
form), is the upper bound sum_k w_k H(N_k) + H(w); it only matters with ent_coef > 0.
The reference scores the experts with Q at its sampled actions but its code cannot run as written
(shape errors); the experts' means are used here, the mixture's deterministic actions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from drlbench.agents.actor_critic import LOG_SQRT_2PI
from drlbench.agents.pmoe_sac import mixture_log_prob, sample_categorical
from drlbench.agents.ppo import PPO, PPOConfig
from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.nn import PopMLP, orthogonal_
from drlbench.population import Population


@dataclass(frozen=True)
class PMOEPPOConfig(PPOConfig):
    num_experts: int = hp("[1, inf)")  # K
    q_hidden_sizes: tuple[int, ...] = hp("[1, inf)")  # the auxiliary Q network (ReLU)


class GaussianMixture:
    """sum_k w_k N(mu_k, diag sigma_k^2): log_weights (P, N, K), mean (P, N, K, A), log_std broadcastable."""

    def __init__(self, log_weights: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor):
        self.log_weights, self.mean, self.log_std = log_weights, mean, log_std.expand_as(mean)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return mixture_log_prob(self.log_weights, self.mean, self.log_std.exp(), action)

    def entropy(self) -> torch.Tensor:
        """Upper bound sum_k w_k H(N_k) + H(w)."""
        weights = self.log_weights.exp()
        expert_entropy = (0.5 + LOG_SQRT_2PI + self.log_std).sum(-1)
        return (weights * (expert_entropy - self.log_weights)).sum(-1)

    def sample(self, population: Population) -> torch.Tensor:
        p, n, k, a = self.mean.shape
        expert = sample_categorical(population, self.log_weights.exp())
        noise = population.randn(n, a)
        return self._pick(self.mean, expert) + self._pick(self.log_std, expert).exp() * noise

    def mode(self) -> torch.Tensor:
        return self._pick(self.mean, self.log_weights.argmax(-1))

    @staticmethod
    def _pick(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.gather(2, index[..., None, None].expand(*index.shape, 1, x.shape[-1])).squeeze(2)


class PMOEPPO(PPO):
    name = "pmoe_ppo"
    summary = "PMOE on PPO (Ren et al. 2021): Gaussian-mixture policy, Q-chosen gate targets, PPO updates"
    Config = PMOEPPOConfig

    def __init__(self, observation_space, action_space, config: PMOEPPOConfig, population):
        super().__init__(observation_space, action_space, config, population)
        if self.discrete:
            raise UsageError(f"{self.name} needs a continuous (Box) action space, not {action_space}")
        if config.use_sde:
            raise UsageError("use_sde=true: gSDE is not defined for PMOE's mixture policy; choose use_sde=false")
        obs_dim, act_dim, k = observation_space.shape[0], action_space.shape[0], config.num_experts
        self.num_experts, self.act_dim = k, act_dim
        self.actor = PopMLP(population, [obs_dim, *config.hidden_sizes, k * act_dim], activation="tanh")  # replaces PPO's
        if config.ortho_init:
            *hidden_layers, head = self.actor.layers
            for layer in hidden_layers:
                orthogonal_(layer, population, math.sqrt(2))
            orthogonal_(head, population, 0.01)
        self.log_std = nn.Parameter(torch.full((population.size, 1, k, act_dim), float(config.log_std_init),
                                               device=population.device))
        self.gate = PopMLP(population, [obs_dim, k])
        self.q_net = PopMLP(population, [obs_dim + act_dim, *config.q_hidden_sizes, 1])
        self.optimizers = {"policy": self.make_optimizer()}   # over the new networks too

    def policy_parameters(self) -> list[nn.Parameter]:
        return [*self.actor.parameters(), self.log_std, *self.gate.parameters()]

    def distribution(self, obs: torch.Tensor) -> GaussianMixture:
        mean = self.actor(obs).unflatten(-1, (self.num_experts, self.act_dim))
        return GaussianMixture(F.log_softmax(self.gate(obs), -1), mean, self.log_std)

    def extra_losses(self, obs, action, returns) -> dict[str, torch.Tensor]:
        """The gate's frequency loss and the Q network's regression loss, each (P,), added to PPO's policy term."""
        dist = self.distribution(obs)
        p, b, k, _ = dist.mean.shape
        with torch.no_grad():
            obs_k = obs.unsqueeze(2).expand(p, b, k, obs.shape[-1])
            best = self.q_net(torch.cat([obs_k, dist.mean], -1).view(p, b * k, -1)).view(p, b, k).argmax(-1)
        gate_loss = (dist.log_weights.exp() - F.one_hot(best, k).to(obs.dtype)).pow(2).mean((1, 2))
        q_loss = (self.q_net(torch.cat([obs, action], -1)).squeeze(-1) - returns).pow(2).mean(1)
        return {"gate_loss": gate_loss, "q_loss": q_loss}
