"""`OfflineDataset`: (s, a, r, s', terminal) transitions as torch tensors, plus episode bookkeeping."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch


@dataclass
class OfflineDataset:
    """Transitions with D4RL `qlearning_dataset` semantics (float32, CPU unless moved with `to`).

    observations (N, obs_dim), actions (N, act_dim), rewards (N,), next_observations (N, obs_dim),
    terminals (N,): 1.0 only for a true termination; a time-limit end (timeout / truncation) is
    never a terminal.

    Episode bookkeeping covers the raw data, not only the kept transitions:
    episode_returns (float64) and episode_lengths (int64) hold one entry per *finished* episode,
    summed over every raw step of it, including the steps `qlearning_dataset` drops (the time-out
    step, the file's last row). A D4RL episode is finished by a row with `terminals` or `timeouts`
    (or the `max_episode_steps` fallback); rows after the last such row (an unfinished episode at
    the end of the file) are left out. Every stored Minari episode counts.
    timeouts_count: time-limit ends in the raw data (D4RL `timeouts` rows, Minari truncations).
    metadata: the file's metadata as plain python values, plus `source`, `format` and, for
    HDF5 files, `sha256`.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    timeouts_count: int = 0
    metadata: dict = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def size(self) -> int:
        """Number of transitions."""
        return int(self.rewards.shape[0])

    def __len__(self) -> int:
        return self.size

    def state_mean_std(self, eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std + eps) of `observations`, each (obs_dim,), as TD3+BC / CORL / PRDC normalise
        states. std is the population std (numpy's default ddof=0); computed in float64,
        returned as float32 on the dataset's device."""
        obs = self.observations.double()
        mean = obs.mean(0)
        std = obs.std(0, correction=0) + eps
        return mean.float(), std.float()

    def to(self, device) -> "OfflineDataset":
        """A copy whose tensors live on `device` (episode arrays and metadata are shared)."""
        return replace(
            self,
            observations=self.observations.to(device),
            actions=self.actions.to(device),
            rewards=self.rewards.to(device),
            next_observations=self.next_observations.to(device),
            terminals=self.terminals.to(device),
        )


def make_dataset(observations, actions, rewards, next_observations, terminals,
                 episode_returns, episode_lengths, timeouts_count, metadata) -> OfflineDataset:
    """Build an OfflineDataset from numpy arrays (copied into float32 CPU tensors)."""
    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return OfflineDataset(
        observations=tensor(observations),
        actions=tensor(actions),
        rewards=tensor(rewards),
        next_observations=tensor(next_observations),
        terminals=tensor(terminals),
        episode_returns=np.asarray(episode_returns, dtype=np.float64),
        episode_lengths=np.asarray(episode_lengths, dtype=np.int64),
        timeouts_count=int(timeouts_count),
        metadata=metadata,
    )


def dataset_info(ds: OfflineDataset) -> dict:
    """Summary: sizes, flag counts and behaviour-policy returns over finished episodes
    (std is the population std; return stats are None when there is no finished episode)."""
    returns = ds.episode_returns
    has = len(returns) > 0
    return {
        "source": ds.metadata.get("source"),
        "format": ds.metadata.get("format"),
        "transitions": ds.size,
        "episodes": int(len(returns)),
        "terminals": int(ds.terminals.sum().item()),
        "timeouts": int(ds.timeouts_count),
        "obs_dim": ds.obs_dim,
        "act_dim": ds.act_dim,
        "return_mean": float(returns.mean()) if has else None,
        "return_std": float(returns.std()) if has else None,
        "return_min": float(returns.min()) if has else None,
        "return_max": float(returns.max()) if has else None,
        "episode_length_mean": float(ds.episode_lengths.mean()) if has else None,
    }
