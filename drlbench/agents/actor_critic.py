"""What on-policy actor-critic agents share (PPO, on-policy MDPO, and later PPO-PMOE): the contract
with the on-policy loop (`drlbench.loops.on_policy`), the `Rollout` it hands over, the policy
distributions (diagonal Gaussian for Box actions, categorical for Discrete), and population-safe
helpers (minibatch permutations from each member's generator, per-member gradient-norm clipping).

The contract. An `ActorCritic` agent implements, besides `Agent.act` (evaluation: Box -> the
Gaussian mean clipped to [-1, 1], Discrete -> the most probable action):
- `observe(obs)` -> network inputs (P, N, obs_dim) of new training observations: with
  `normalize_observations`, the running statistics (drlbench.normalize, stable-baselines3's
  VecNormalize semantics) take them in and the inputs are the clipped standardised observations;
  otherwise the observations themselves. `features(obs)` is the same with the statistics frozen
  (evaluation, and the final observations of truncated episodes).
- `explore(x, t)` -> (action, log_prob, value) for network inputs x at step t of the rollout, shapes
  (P, N, *A), (P, N), (P, N): one rollout step.
  Box actions are the raw Gaussian sample; the loop clips them to [-1, 1] for the environment and
  stores the raw one, whose log-probability this is (stable-baselines3's convention).
- `value(x)` -> V(s), (P, N): the loop bootstraps truncated episodes and the rollout's end with it.
- `learn(rollout)` -> metrics, each (P,): every update of one iteration (epochs, minibatches, old-
  policy copies...) from one `Rollout`. The loop computes advantages and returns; the agent decides
  how to use them. Members' losses are summed before `backward`, so each member's gradients are its
  own; gradient-norm clipping is per member (`clip_grad_norm_per_member_`).

gSDE (Raffin, Kober, Stulp 2022, "Smooth Exploration for Robotic Reinforcement Learning";
stable-baselines3's StateDependentNoiseDistribution with its ActorCriticPolicy settings: full_std,
exp, no squashing, features not learned), for Box actions with `use_sde`: with h(s) the policy's
last hidden activations (no gradient), the policy is N(mu(s), sigma^2(s)) with
sigma_j^2(s) = sum_i h_i(s)^2 exp(log_std_ij)^2 + 1e-6 (log_std an (h, A) matrix per member);
exploration draws a matrix E_n ~ N(0, exp(log_std)^2) per sub-environment at the rollout's start
and every `sde_sample_freq` steps (never within a rollout if <= 0) and acts a = mu(s) + h(s) E_n.

The networks (stable-baselines3's `ActorCriticPolicy` defaults, which are stable-baselines 2's
`MlpPolicy` too): separate policy and value MLPs with tanh hidden layers, a state-independent
log-std parameter (Box), orthogonal initialisation with gains sqrt(2) (hidden), 0.01 (policy
head), 1 (value head) and zero biases (`ortho_init`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from drlbench.agents.base import Agent
from drlbench.errors import UsageError
from drlbench.nn import PopMLP, orthogonal_
from drlbench.normalize import ObservationNormalizer
from drlbench.population import Population

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
SDE_EPS = 1e-6     # stable-baselines3's StateDependentNoiseDistribution epsilon


@dataclass
class Rollout:
    """One iteration's experience for P members; leading shape (P, B), B = n_steps * num_envs."""
    obs: torch.Tensor          # (P, B, obs_dim)
    action: torch.Tensor       # (P, B, A) float (Box, unclipped) or (P, B) int64 (Discrete)
    log_prob: torch.Tensor     # (P, B): log pi_old(a|s), the policy that acted
    value: torch.Tensor        # (P, B): V_old(s) when acting
    advantage: torch.Tensor    # (P, B): GAE(lambda), not normalised
    returns: torch.Tensor      # (P, B): advantage + value, the TD(lambda) value targets
    steps_done: int            # environment steps per member so far, this rollout included
    total_steps: int           # the run's budget per member


class Gaussian:
    """Diagonal Gaussian; `log_std` broadcasts against `mean` (state-independent: (P, 1, A))."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean, self.log_std = mean, log_std.expand_as(mean)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z * z - self.log_std - LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 + LOG_SQRT_2PI + self.log_std).sum(-1)

    def kl(self, other: "Gaussian") -> torch.Tensor:
        """KL(self || other), closed form, summed over action dimensions."""
        var_ratio = torch.exp(2 * (self.log_std - other.log_std))
        mean_term = ((self.mean - other.mean) * torch.exp(-other.log_std)).pow(2)
        return (0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std)).sum(-1)

    def sample(self, population: Population) -> torch.Tensor:
        p, n, a = self.mean.shape
        return self.mean + self.log_std.exp() * population.randn(n, a)

    def mode(self) -> torch.Tensor:
        return self.mean

    def detach(self) -> "Gaussian":
        """A frozen copy (log_std may be a view of the parameter, which later steps change in place)."""
        return Gaussian(self.mean.detach().clone(), self.log_std.detach().clone())


class Categorical:
    def __init__(self, logits: torch.Tensor):
        self.log_p = F.log_softmax(logits, dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.log_p.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_p.exp() * self.log_p).sum(-1)

    def kl(self, other: "Categorical") -> torch.Tensor:
        """KL(self || other) = sum_a p(a) (log p(a) - log q(a))."""
        return (self.log_p.exp() * (self.log_p - other.log_p)).sum(-1)

    def sample(self, population: Population) -> torch.Tensor:
        """Inverse-CDF draw with one uniform per (member, env) from the member's generator."""
        p, n, k = self.log_p.shape
        cdf = self.log_p.exp().cumsum(-1)
        u = population.rand(n).unsqueeze(-1)
        return torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True).squeeze(-1).clamp_(max=k - 1)

    def mode(self) -> torch.Tensor:
        return self.log_p.argmax(-1)

    def detach(self) -> "Categorical":
        out = Categorical.__new__(Categorical)
        out.log_p = self.log_p.detach().clone()
        return out


def minibatches(population: Population, size: int, batch_size: int, drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index tensors (P, b) over a fresh random permutation of range(size) per member (from its own
    generator); the last, shorter minibatch is kept unless `drop_last`."""
    order = population.rand(size).argsort(-1)
    stop = size - size % batch_size if drop_last else size
    for start in range(0, stop, batch_size):
        yield order[:, start:start + batch_size]


def take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[p, index[p]] for every member p: (P, B, ...) -> (P, b, ...)."""
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return x[rows, index]


def clip_grad_norm_per_member_(params: list[nn.Parameter], max_norm: float, members: int) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ for each member on its own: the global L2 norm of member p's
    gradients (the p-th slice of every parameter's leading axis) is scaled down to `max_norm` if
    larger. Returns the pre-clipping norms (P,)."""
    grads = [p.grad.view(members, -1) for p in params if p.grad is not None]   # member-major leading axis
    norm = torch.stack([g.pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0).unsqueeze(1)
    for g in grads:
        g.mul_(coef)
    return norm


class ActorCritic(Agent):
    """Policy and value networks for flat Box observations and Box or Discrete actions.

    The subclass' Config must have `hidden_sizes`, `log_std_init`, `ortho_init` and `normalize_observations`;
    `use_sde` and `sde_sample_freq` where it offers gSDE (PPO), absent meaning no gSDE."""
    loop = "on_policy"

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config, population: Population):
        super().__init__(observation_space, action_space, config, population)
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise UsageError(f"{self.name} needs a flat Box observation space, not {observation_space}")
        obs_dim = observation_space.shape[0]
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.sde = bool(getattr(config, "use_sde", False))
        if self.discrete:
            out = int(action_space.n)
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            out = action_space.shape[0]
            features = config.hidden_sizes[-1] if config.hidden_sizes else obs_dim
            rows = features if self.sde else 1      # gSDE: one log-std per (feature, action)
            self.log_std = nn.Parameter(torch.full((population.size, rows, out), float(config.log_std_init),
                                                   device=population.device))
        else:
            raise UsageError(f"{self.name} needs a Discrete or flat Box action space, not {action_space}")
        if self.sde and self.discrete:
            raise UsageError(f"use_sde=true needs a Box action space, not {action_space}")
        self.exploration: torch.Tensor | None = None    # gSDE: (P, N, h, A) exploration matrices
        self.obs_normalizer = (ObservationNormalizer(population.size, obs_dim, population.device)
                               if config.normalize_observations else None)
        hidden = list(config.hidden_sizes)
        self.actor = PopMLP(population, [obs_dim, *hidden, out], activation="tanh")
        self.critic = PopMLP(population, [obs_dim, *hidden, 1], activation="tanh")
        if config.ortho_init:
            for net, head_gain in ((self.actor, 0.01), (self.critic, 1.0)):
                *hidden_layers, head = net.layers
                for layer in hidden_layers:
                    orthogonal_(layer, population, math.sqrt(2))
                orthogonal_(head, population, head_gain)

    def policy_parameters(self) -> list[nn.Parameter]:
        return list(self.actor.parameters()) + ([] if self.discrete else [self.log_std])

    def distribution(self, obs: torch.Tensor) -> Gaussian | Categorical:
        if self.sde:
            return self._sde_distribution(obs)[0]
        out = self.actor(obs)
        return Categorical(out) if self.discrete else Gaussian(out, self.log_std)

    def _sde_distribution(self, obs: torch.Tensor) -> tuple[Gaussian, torch.Tensor]:
        """gSDE's N(mu(s), sigma^2(s)) and the features h(s) (no gradient)."""
        features = self.actor.hidden(obs)
        mean = self.actor.layers[-1](features)
        features = features.detach()
        variance = features.pow(2) @ torch.exp(2 * self.log_std)
        return Gaussian(mean, 0.5 * torch.log(variance + SDE_EPS)), features

    @torch.no_grad()
    def resample_exploration(self, num_envs: int) -> None:
        """gSDE: a fresh exploration matrix E_n ~ N(0, exp(log_std)^2) per member and sub-environment."""
        p, h, a = self.log_std.shape
        noise = self.population.randn(num_envs, h * a).view(p, num_envs, h, a)
        self.exploration = noise * self.log_std.exp().unsqueeze(1)

    def features(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """Raw observations (P, N, obs_dim) -> network inputs (see the module docstring)."""
        return obs if self.obs_normalizer is None else self.obs_normalizer(obs, update)

    def observe(self, obs: torch.Tensor) -> torch.Tensor:
        """Training: take in new observations; returns their network inputs."""
        return self.features(obs, update=True)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Evaluation: raw observations, statistics frozen."""
        dist = self.distribution(self.features(obs))
        action = dist.mode() if deterministic else dist.sample(self.population)
        return action if self.discrete else action.clamp(-1.0, 1.0)

    @torch.no_grad()
    def explore(self, x: torch.Tensor, t: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.sde:
            freq = self.config.sde_sample_freq
            if self.exploration is None or t == 0 or (freq > 0 and t % freq == 0):
                self.resample_exploration(x.shape[1])
            dist, features = self._sde_distribution(x)
            action = dist.mean + (features.unsqueeze(-2) @ self.exploration).squeeze(-2)
        else:
            dist = self.distribution(x)
            action = dist.sample(self.population)
        return action, dist.log_prob(action), self.critic(x).squeeze(-1)

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def learn(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def extra_checkpoint(self) -> dict:
        return {"exploration": self.exploration} if self.sde else {}

    def restore_extra(self, state: dict) -> None:
        if self.sde:
            self.exploration = state["exploration"]
