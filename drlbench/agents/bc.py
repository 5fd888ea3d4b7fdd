"""Behaviour cloning with a deterministic policy: the "BC" baseline of the offline-RL papers, as
the ablation of Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning"
(NeurIPS, arXiv 2106.06860) writes it (TD3+BC's actor loss without its Q term) and as CORL runs it
(tinkoff-ai/CORL, algorithms/offline/any_percent_bc.py with frac = 1, the "BC" column of §11).

Per population member, one `update` does one Adam step on
    L(phi) = mean over the batch and the action dimensions of (pi_phi(s) - a)^2,
pi_phi(s) = tanh(MLP(s)), the same network as TD3_BC.py's Actor (256-256 ReLU, tanh output;
actions live in [-1, 1], so max_action = 1). States arrive normalised by the offline loop
(`normalize_states`, mean and std + 1e-3 of the dataset, as in both codebases).

Differences from the code: none in the maths. `act` returns pi(s) whether or not `deterministic`
is set (the policy is deterministic; the offline loop only evaluates). The gradient is written out
by hand (`PopMLP.backward`): dL/dpi = 2 (pi - a) / (B |A|), times tanh' = 1 - pi^2, equal to
autograd's to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam


@dataclass(frozen=True)
class BCConfig:
    actor_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")


class BC(Agent):
    name = "bc"
    summary = "Behaviour cloning (deterministic tanh policy, MSE to the dataset actions), the TD3+BC/CORL baseline"
    loop = "offline"
    Config = BCConfig

    def __init__(self, observation_space, action_space, config: BCConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.act_dim = act_dim
        self.actor = PopMLP(population, [obs_dim, *config.hidden_sizes, act_dim])
        self.optimizers = {"actor": adam(self.actor.parameters(), config.actor_lr)}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return torch.tanh(self.actor(obs))

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        p, b = batch.reward.shape
        out, trace = self.actor.trace(batch.obs)
        pi = torch.tanh(out)
        diff = pi - batch.action
        loss = diff.pow(2).mean((1, 2))                                          # (P,)
        grad_pi = diff * (2.0 / (b * self.act_dim))                             # d/dpi of the mean square
        self.actor.backward(trace, grad_pi * (1.0 - pi * pi))                   # tanh' = 1 - tanh^2
        self.optimizers["actor"].step()
        return {"actor_loss": loss}
