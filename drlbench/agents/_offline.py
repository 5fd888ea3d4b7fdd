"""Autograd pieces of the TD3+BC-family offline agents that differentiate through other networks
(A2PR's actor through its VAE): a switch that freezes networks, Q1 and TD3+BC's lambda.

All tensors carry the population axis P first. Members' losses are summed before `backward`, so each
member's gradients are its own (Adam is element-wise, so one optimiser over the stacked parameters
equals one optimiser per member).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

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


def q1(critic: PopMLP, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The first twin's Q(s, a), (P, B)."""
    return critic(torch.cat([obs, action], -1), first_copy_only=True).squeeze(-1)


def q_normaliser(alpha: float, q: torch.Tensor) -> torch.Tensor:
    """TD3+BC's lambda = alpha / mean|Q(s, pi(s))| per member (P, 1), detached."""
    return alpha / q.detach().abs().mean(-1, keepdim=True)
