"""The preference-optimisation agent shared by every LLM-track method (one small file per method
names its paper, its loss in drlbench.llm.losses and its hyperparameters).

The agent owns the policy (a drlbench.llm.policy.TinyLM with a population axis, started as a copy of
the reference) and one Adam over it. `update(pairs)` computes the policy's per-token log-probs of
the chosen and rejected responses (and, when the method needs them, the full-vocabulary token KL
to the reference, the gold response's log-probs, the true token rewards), builds a
`losses.PairBatch` over the P*B pairs, calls `LOSSES[loss]` with the Config fields that are
parameters of the loss function, and takes one Adam step on the sum over members of each member's
batch-mean loss (Adam is elementwise, so every member's step is its own).

Deviations shared by all methods (the toy task, not an LLM): Adam at a constant learning rate (no
warm-up, no RMSprop as in the DPO code, no gradient clipping), learning rates rescaled from the
papers' 1e-7..1e-6 (7B-parameter models) to 3e-4 for a 0.1M-parameter model (1e-3 made DPO noisy).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import torch

from drlbench.agents.base import Agent
from drlbench.domains import hp
from drlbench.llm.losses import LOSSES, PairBatch
from drlbench.llm.policy import TinyLM, token_kl


@dataclass(frozen=True)
class PreferenceConfig:
    learning_rate: float = hp("(0, inf)")


class PreferenceAgent(Agent):
    loop = "preference"
    loss: ClassVar[str]                  # key of drlbench.llm.losses.LOSSES
    uses_gold: ClassVar[bool] = False    # the loss reads the gold response's log-probs (TPO): one more forward pass
    Config = PreferenceConfig

    def __init__(self, observation_space, action_space, config, population):
        super().__init__(observation_space, action_space, config, population)
        self.policy = TinyLM(observation_space.model_spec, population.generators, population.device)
        self.optimizers["policy"] = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self._reference: tuple[TinyLM, ...] = ()   # not a submodule: frozen, rebuilt from the cache
        params = list(inspect.signature(LOSSES[self.loss]).parameters.values())[1:]
        self.loss_kwargs = {p.name: getattr(config, p.name) for p in params if hasattr(config, p.name)}
        missing = [p.name for p in params if p.default is p.empty and p.name not in self.loss_kwargs]
        if missing:
            raise TypeError(f"{self.name}: Config lacks {missing} of losses.{self.loss}")

    def attach_reference(self, reference: TinyLM, copy_into_policy: bool) -> None:
        """The loop hands over the stacked reference; a fresh run starts the policy from it."""
        self._reference = (reference,)
        if copy_into_policy:
            with torch.no_grad():
                for mine, ref in zip(self.policy.parameters(), reference.parameters()):
                    mine.copy_(ref)

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError("preference agents are evaluated exactly by the preference loop")

    def update(self, pairs) -> dict[str, torch.Tensor]:
        p, b = pairs.contexts.shape
        flat = lambda x: x.reshape(p * b, *x.shape[2:])   # noqa: E731
        # the full distributions come with the log-probs at no extra cost, so the token KL (TDPO) and the
        # true token rewards (TGDPO's oracle token-reward model) are always in the batch
        # (chosen and rejected in one forward pass)
        tokens = torch.cat([pairs.chosen, pairs.rejected], 1)
        mask = torch.cat([pairs.chosen_mask, pairs.rejected_mask], 1)
        logp, dist = self.policy.token_logprobs(pairs.contexts.repeat(1, 2), tokens, mask, full=True)
        (logp_w, logp_l), (dist_w, dist_l) = logp.split(b, 1), dist.split(b, 1)
        batch = PairBatch(
            flat(logp_w), flat(logp_l), flat(pairs.ref_chosen), flat(pairs.ref_rejected),
            flat(pairs.chosen_mask), flat(pairs.rejected_mask),
            chosen_token_kl=flat(token_kl(pairs.ref_chosen_dist, dist_w, pairs.chosen_mask)),
            rejected_token_kl=flat(token_kl(pairs.ref_rejected_dist, dist_l, pairs.rejected_mask)),
            chosen_token_reward=flat(pairs.chosen_token_reward),
            rejected_token_reward=flat(pairs.rejected_token_reward))
        if self.uses_gold:
            batch.gold_logps = flat(self.policy.token_logprobs(pairs.contexts, pairs.gold, pairs.gold_mask))
            batch.gold_mask = flat(pairs.gold_mask)
        loss, metrics = LOSSES[self.loss](batch, **self.loss_kwargs)
        per_member = loss.view(p, b).mean(1)
        self.optimizers["policy"].zero_grad(set_to_none=True)
        per_member.sum().backward()
        self.optimizers["policy"].step()
        out = {"loss": per_member.detach()}
        for key, value in metrics.items():
            if value.numel() == p * b:
                out[key] = value.detach().float().view(p, b).mean(1)
        if "chosen_reward" in out and "rejected_reward" in out:
            margin = (metrics["chosen_reward"] - metrics["rejected_reward"]).detach().view(p, b)
            out["reward_accuracy"] = (margin > 0).float().mean(1)
        return out
