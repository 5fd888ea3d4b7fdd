"""The contract between an agent and the harness.

An agent owns its networks, optimisers and losses, and nothing else. It sees batched tensors
with a leading population axis P (one member per seed) and never touches environments,
buffers or files. Continuous actions are exchanged in [-1, 1]; the harness rescales them to the
environment's bounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import nn

from drlbench.errors import UsageError
from drlbench.population import Population


@dataclass
class Batch:
    """A minibatch for P members: every field has leading shape (P, B)."""
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor  # float 0/1: 1 only for true terminal states (no bootstrap)


class Agent(nn.Module):
    name: ClassVar[str]
    summary: ClassVar[str]
    loop: ClassVar[str]           # which harness loop trains it: "off_policy", ...
    Config: ClassVar[type]        # frozen dataclass of the agent's hyperparameters
    # CUDA-graph capture (drlbench.cuda_graph): the config field k of `update`'s only Python-side
    # branches (`updates % k == 0`), one graph per phase; None where `update` is not written to be
    # captured (host syncs, other Python state).
    graph_cycle: ClassVar[str | None] = None
    # The off-policy loop's `compile`: the names of `update`'s tensor-only methods (no generator draws,
    # optimizer steps or Python-side state; called inside `update`'s torch.no_grad), each wrapped in
    # torch.compile by `compile_parts`.
    compiled_parts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Any, population: Population):
        super().__init__()
        self.config = config
        self.population = population
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # --- what the harness calls -------------------------------------------------------
    def compile_parts(self) -> None:
        """Wrap each method named in `compiled_parts` in torch.compile (Inductor, static shapes, one graph)."""
        for name in self.compiled_parts:
            setattr(self, name, torch.compile(getattr(self, name), dynamic=False, fullgraph=True))

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """obs (P, N, *obs_shape) -> actions (P, N, *action_shape)."""
        raise NotImplementedError

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step for every member; returns metrics, each of shape (P,)."""
        raise NotImplementedError

    def checkpoint(self) -> dict[str, Any]:
        return {
            "networks": self.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "extra": self.extra_checkpoint(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["networks"])
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        self.restore_extra(state["extra"])

    def attach_dataset(self, observations: torch.Tensor, actions: torch.Tensor, total_updates: int) -> None:
        """Offline loop only, once before the first update (and again on resume): the whole dataset,
        (N, obs_dim) and (N, act_dim), in the units of the minibatches (normalised states, actions in
        [-1, 1]), and the run's number of gradient steps. Default: unused."""

    def extra_checkpoint(self) -> dict[str, Any]:
        """Non-tensor state (counters) an agent needs to resume exactly."""
        return {}

    def restore_extra(self, state: dict[str, Any]) -> None:
        pass

    @classmethod
    def wrap_env(cls, env: Any, config: Any) -> Any:
        """The environment as this agent observes it (training and evaluation alike); the harness calls
        this before building the agent. Default: unchanged. (stream-x: appends a time feature.)"""
        return env

    # --- helpers ----------------------------------------------------------------------
    @classmethod
    def continuous_dims(cls, observation_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
        """(obs_dim, action_dim) for agents that need a flat Box observation and Box actions."""
        if not isinstance(action_space, gym.spaces.Box):
            raise UsageError(f"{cls.name} needs a continuous (Box) action space, not {action_space}")
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise UsageError(f"{cls.name} needs a flat Box observation space, not {observation_space}")
        return observation_space.shape[0], action_space.shape[0]
