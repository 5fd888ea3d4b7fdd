"""The group / policy-gradient agent shared by every RLVR method of the LLM track (one small file per
method names its paper, its loss in drlbench.llm.group_losses and its hyperparameters).

The agent owns the policy (a drlbench.llm.policy.TinyLM with a population axis, started as a copy of
the reference) and one Adam over it. `update(groups)` (drlbench.loops.group.Groups: Q prompts x G
completions per member, sampled by the behaviour policy) recomputes the per-token log-probs and
entropies of the completions under the CURRENT policy at the sampling temperature, builds a
`group_losses.GroupBatch`, calls `GROUP_LOSSES[loss]` with the Config fields that are parameters of
the loss function, and takes one Adam step on the sum over members of each member's loss (Adam is
elementwise, so every member's step is its own). It returns the loss's metrics (TRL's names:
reward, reward_std, frac_reward_zero_std, kl, entropy, clip ratios, completion_length, ...) with the
loss and the gradient norm, each (P,).

Deviations shared by all methods (the toy task, not an LLM): Adam at a constant learning rate (no
warm-up, no decay, no gradient clipping, no weight decay), rescaled from the papers' 1e-6
(billion-parameter models) to about 1e-3 for a 0.1M-parameter model; one gradient step per sampled
batch per iteration (no minibatch split): off-policy-ness comes from `num_iterations` and `lag`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import torch

from drlbench.agents.base import Agent
from drlbench.domains import hp
from drlbench.llm.policy import TinyLM


@dataclass(frozen=True)
class GroupConfig:
    learning_rate: float = hp("(0, inf)")


class GroupAgent(Agent):
    loop = "group"
    loss: ClassVar[str]                          # key of drlbench.llm.group_losses.GROUP_LOSSES
    needs_greedy_baseline: ClassVar[bool] = False   # the loss reads baseline_rewards (ReMax)
    Config = GroupConfig

    def __init__(self, observation_space, action_space, config, population):
        from drlbench.llm.group_losses import GROUP_LOSSES

        super().__init__(observation_space, action_space, config, population)
        self.policy = TinyLM(observation_space.model_spec, population.generators, population.device)
        self.optimizers["policy"] = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self._reference: tuple[TinyLM, ...] = ()   # not a submodule: frozen, rebuilt from the cache
        self.loss_fn = GROUP_LOSSES[self.loss]
        params = list(inspect.signature(self.loss_fn).parameters.values())[1:]
        self.loss_kwargs = {p.name: getattr(config, p.name) for p in params if hasattr(config, p.name)}
        missing = [p.name for p in params if p.default is p.empty and p.name not in self.loss_kwargs]
        if missing:
            raise TypeError(f"{self.name}: Config lacks {missing} of group_losses.{self.loss}")

    def attach_reference(self, reference: TinyLM, copy_into_policy: bool) -> None:
        """The loop hands over the stacked reference; a fresh run starts the policy from it."""
        self._reference = (reference,)
        if copy_into_policy:
            with torch.no_grad():
                for mine, ref in zip(self.policy.parameters(), reference.parameters()):
                    mine.copy_(ref)

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError("group agents are evaluated exactly by the group loop")

    def update(self, groups) -> dict[str, torch.Tensor]:
        from drlbench.llm.group_losses import GroupBatch
        from drlbench.loops.group import token_logprobs

        logps, entropy = token_logprobs(self.policy, groups.contexts, groups.tokens, groups.mask, groups.temperature,
                                        entropy=True)
        batch = GroupBatch(logps=logps, old_logps=groups.old_logps, ref_logps=groups.ref_logps, mask=groups.mask,
                           rewards=groups.rewards, max_len=groups.tokens.shape[-1],
                           baseline_rewards=groups.baseline_rewards, entropy=entropy.detach())
        loss, metrics = self.loss_fn(batch, **self.loss_kwargs)
        self.optimizers["policy"].zero_grad(set_to_none=True)
        loss.sum().backward()
        grad_norm = torch.zeros(loss.shape[0], device=loss.device)
        for p in self.policy.parameters():   # every parameter has the member axis first
            if p.grad is not None:
                grad_norm += p.grad.pow(2).flatten(1).sum(1)
        self.optimizers["policy"].step()
        out = {"loss": loss.detach(), "grad_norm": grad_norm.sqrt()}
        out.update({k: v.detach().float() for k, v in metrics.items()})
        return out
