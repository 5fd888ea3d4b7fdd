"""Replay buffer with a population axis: one ring buffer per member, in one tensor.

Each transition is one row [obs | action | reward | next_obs | terminated] of a float32 table
of shape (P, capacity, width), so a minibatch for every member is a single `index_select`.

`sample` draws indices with `randint(size)`, `size` a Python int. `sample_device_size` (for CUDA
graph capture, drlbench.cuda_graph) reads the size from a device tensor instead, so one captured
graph serves every step while the buffer fills (other indices than `sample`'s: see its docstring).
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
        self._size_tensor: torch.Tensor | None = None   # `size` on the device, kept once `size_tensor` is asked for

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
        if self._size_tensor is not None:
            self._size_tensor.fill_(self.size)   # a kernel with a scalar argument: no host sync

    @property
    def size_tensor(self) -> torch.Tensor:
        """`size` as a 0-dim int64 tensor on the buffer's device, updated in place by `add` and
        `load_state_dict` from the first time it is asked for (before that, `add` does no extra work)."""
        if self._size_tensor is None:
            self._size_tensor = torch.full((), self.size, dtype=torch.int64, device=self.table.device)
        return self._size_tensor

    def sample(self, batch_size: int) -> Batch:
        """Uniform minibatch per member, indices drawn from each member's own generator."""
        return self._gather(self.population.randint(self.size, batch_size), batch_size)

    def sample_device_size(self, batch_size: int) -> Batch:
        """Uniform minibatch per member like `sample`, with the size read from `size_tensor` instead
        of a Python int: no host value enters, so a CUDA graph captured once replays correctly at
        every later size.

        Index = r % size with r = `randint(2**62)` (one 64-bit draw: two 32-bit words on CUDA's
        Philox, `random64` on CPU), so the modulo bias is below size / 2**62. These are not
        `sample`'s indices: torch's `randint(size)` reduces a 32-bit draw for sizes below 2**28
        and a 64-bit one above (on CPU and CUDA), and no draw with a fixed bound reproduces
        `r % size` for every size. A run with CUDA graphs is therefore deterministic per seed but
        draws other minibatches than the same run without graphs.
        """
        draws = self.population.randint(2**62, batch_size)
        return self._gather(draws.remainder(self.size_tensor), batch_size)

    def _gather(self, member_index: torch.Tensor, batch_size: int) -> Batch:
        """The rows `member_index` (P, B) of each member's ring, as a Batch."""
        index = member_index + self._member_offsets
        rows = self.table.view(-1, self.width).index_select(0, index.view(-1))
        rows = rows.view(self.population.size, batch_size, self.width)
        o, a = self.obs_dim, self.action_dim
        obs, action, reward, next_obs, terminated = rows.split([o, a, 1, o, 1], dim=-1)
        return Batch(obs, action, reward.squeeze(-1), next_obs, terminated.squeeze(-1))

    def state_dict(self) -> dict:
        return {"table": self.table[:, : self.size].clone(), "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.position = state["size"], state["position"]
        if self._size_tensor is not None:
            self._size_tensor.fill_(self.size)
        self.table[:, : self.size] = state["table"].to(self.table.device)
