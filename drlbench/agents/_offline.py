"""Pieces shared by the TD3+BC-family offline agents (PRDC, A2PR): the TD3 critic step and a switch
that freezes networks while another loss differentiates through them.

All tensors carry the population axis P first. Members' losses are summed before `backward`, so each
member's gradients are its own (Adam is element-wise, so one optimiser over the stacked parameters
equals one optimiser per member).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from drlbench.agents.base import Batch
from drlbench.nn import PopMLP, set_requires_grad


@contextmanager
def frozen(*modules: torch.nn.Module):
    """No parameter gradients for `modules` inside the block (input gradients still flow through them)."""
    for module in modules:
        set_requires_grad(module, False)
    try:
        yield
    finally:
        for module in modules:
            set_requires_grad(module, True)


def td3_critic_step(critic: PopMLP, critic_target: PopMLP, actor_target: PopMLP, optimizer: torch.optim.Optimizer,
                    batch: Batch, reward: torch.Tensor, noise: torch.Tensor, gamma: float,
                    noise_clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One TD3 critic step (Fujimoto et al. 2018, eqs. (10) and (14)), actions in [-1, 1]:
        a~' = clip(tanh(mu'(s')) + clip(noise, -c, c), -1, 1),  y = r + gamma (1 - d) min_i Qbar_i(s', a~'),
        loss = MSE(Q1(s, a), y) + MSE(Q2(s, a), y)  (each a mean over the batch).
    `noise` (P, B, act_dim) is already scaled by policy_noise. Returns the loss per member (P,), the
    next-state critic input [s', a~'] (P, B, obs+act) and y (P, B)."""
    with torch.no_grad():
        next_action = torch.tanh(actor_target(batch.next_obs)) + noise.clamp(-noise_clip, noise_clip)
        next_action = next_action.clamp(-1.0, 1.0)
        next_input = torch.cat([batch.next_obs, next_action], -1)
        target = reward + gamma * (1.0 - batch.terminated) * critic_target(next_input).squeeze(-1).min(1).values
    q = critic(torch.cat([batch.obs, batch.action], -1)).squeeze(-1)           # (P, 2, B)
    loss = (q - target.unsqueeze(1)).pow(2).mean(-1).sum(1)                     # (P,)
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
    optimizer.step()
    return loss.detach(), next_input, target


def q1(critic: PopMLP, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The first twin's Q(s, a), (P, B)."""
    return critic(torch.cat([obs, action], -1), first_copy_only=True).squeeze(-1)


def q_normaliser(alpha: float, q: torch.Tensor) -> torch.Tensor:
    """TD3+BC's lambda = alpha / mean|Q(s, pi(s))| per member (P, 1), detached."""
    return alpha / q.detach().abs().mean(-1, keepdim=True)
