"""Replay buffer with a population axis: one ring buffer per member, in one tensor.

Each transition is one row [obs | action | reward | next_obs | terminated] of a float32 table
of shape (P, capacity, width), so a minibatch for every member is a single `index_select`.
"""
from __future__ import annotations

import torch

from drlbench.agents.base import Batch
from drlbench.population import Population


class ReplayBuffer:
    def __init__(self, population: Population, capacity: int, obs_dim: int, action_dim: int):
        self.population = population
        self.capacity = capacity
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.width = 2 * obs_dim + action_dim + 2
        self.table = torch.zeros(population.size, capacity, self.width, device=population.device)
        self.position = 0   # next row to write (same for every member: they step in lockstep)
        self.size = 0
        self._member_offsets = torch.arange(population.size, device=population.device)[:, None] * capacity

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Each argument has leading shape (P, N): N transitions per member."""
        rows = torch.cat(
            [obs, action, reward.unsqueeze(-1), next_obs, terminated.to(obs.dtype).unsqueeze(-1)], dim=-1)
        n = rows.shape[1]
        if self.position + n <= self.capacity:
            self.table[:, self.position:self.position + n] = rows
        else:
            index = (self.position + torch.arange(n, device=rows.device)) % self.capacity
            self.table[:, index] = rows
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """Uniform minibatch per member, indices drawn from each member's own generator."""
        index = self.population.randint(self.size, batch_size) + self._member_offsets
        rows = self.table.view(-1, self.width).index_select(0, index.view(-1))
        rows = rows.view(self.population.size, batch_size, self.width)
        o, a = self.obs_dim, self.action_dim
        obs, action, reward, next_obs, terminated = rows.split([o, a, 1, o, 1], dim=-1)
        return Batch(obs, action, reward.squeeze(-1), next_obs, terminated.squeeze(-1))

    def state_dict(self) -> dict:
        return {"table": self.table[:, : self.size].clone(), "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.position = state["size"], state["position"]
        self.table[:, : self.size] = state["table"].to(self.table.device)
