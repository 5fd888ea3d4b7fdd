"""Running observation and reward normalisation for on-policy agents, per population member, with
the semantics of stable-baselines3's `VecNormalize` (and of stable-baselines 2 / openai baselines'
`VecNormalize`, which the official MDPO code uses): statistics are updated with each batch of new
observations while training and frozen at evaluation.

    RunningMeanStd (Chan et al.'s parallel update; count starts at 1e-4, mean 0, var 1): a batch x
    of B samples with mean m_b and population variance v_b updates
        delta = m_b - m,   n' = n + B,   m' = m + delta B / n',
        v' = (v n + v_b B + delta^2 n B / n') / n'
    observations:  clip((o - m) / sqrt(v + 1e-8), -10, 10)
    rewards:       u <- gamma u + r (u the discounted return so far, per environment), the statistics
                   take u, r / sqrt(v_u + 1e-8) clipped to [-10, 10], then u <- 0 where the episode ended
                   (terminated or truncated).

The stream-x agents use their own per-sample Welford statistics (drlbench.agents._stream), which
differ in their start (variance 1 until two samples) and do not clip.
"""
from __future__ import annotations

import torch
from torch import nn

EPSILON = 1e-8
CLIP = 10.0
INITIAL_COUNT = 1e-4


class RunningMeanStd(nn.Module):
    """Per-member running mean and variance of `dim`-vectors; buffers (P, dim), count (P, 1), in float64
    as stable-baselines3's (float32 counts stop growing at 2^24 samples)."""

    def __init__(self, members: int, dim: int, device: torch.device):
        super().__init__()
        kw = {"device": device, "dtype": torch.float64}
        self.register_buffer("mean", torch.zeros(members, dim, **kw))
        self.register_buffer("var", torch.ones(members, dim, **kw))
        self.register_buffer("count", torch.full((members, 1), INITIAL_COUNT, **kw))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """x (P, B, dim): a batch of B samples per member."""
        batch = x.shape[1]
        x = x.to(torch.float64)
        batch_mean, batch_var = x.mean(1), x.var(1, unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + batch
        self.mean.add_(delta * batch / total)
        self.var.copy_((self.var * self.count + batch_var * batch + delta.pow(2) * self.count * batch / total) / total)
        self.count.copy_(total)


class ObservationNormalizer(nn.Module):
    def __init__(self, members: int, dim: int, device: torch.device):
        super().__init__()
        self.stats = RunningMeanStd(members, dim, device)

    def forward(self, obs: torch.Tensor, update: bool) -> torch.Tensor:
        """obs (P, N, dim) -> clipped standardised observations (after updating with them, if `update`)."""
        if update:
            self.stats.update(obs)
        scale = (self.stats.var + EPSILON).rsqrt().unsqueeze(1)
        return ((obs - self.stats.mean.unsqueeze(1)) * scale).clamp(-CLIP, CLIP).to(obs.dtype)


class RewardNormalizer(nn.Module):
    """Scales rewards by the running standard deviation of each environment's discounted return."""

    def __init__(self, members: int, num_envs: int, gamma: float, device: torch.device):
        super().__init__()
        self.gamma = gamma
        self.stats = RunningMeanStd(members, 1, device)
        self.register_buffer("returns", torch.zeros(members, num_envs, device=device, dtype=torch.float64))

    @torch.no_grad()
    def forward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """reward (P, N), done (P, N) bool -> normalised rewards (P, N)."""
        self.returns.mul_(self.gamma).add_(reward)
        self.stats.update(self.returns.unsqueeze(-1))
        scaled = (reward * (self.stats.var + EPSILON).rsqrt()).clamp(-CLIP, CLIP).to(reward.dtype)
        self.returns.masked_fill_(done, 0.0)
        return scaled
