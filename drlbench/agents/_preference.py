"""The preference-optimisation agent shared by every LLM-track method (one small file per method
names its paper, its loss in drlbench.llm.losses and its hyperparameters).

The agent owns the policy (a drlbench.llm.policy.TinyLM with a population axis, started as a copy of
the reference) and one Adam over it. `update(pairs)` computes the policy's per-token log-probs of
the chosen and rejected responses (and, when the method needs them, the full-vocabulary token KL
to the reference, the gold response's log-probs, the true token rewards), builds a
`losses.PairBatch` over the P*B pairs, calls `ALL_LOSSES[loss]` with the Config fields that are
parameters of the loss function, and takes one Adam step on the sum over members of each member's
batch-mean loss (Adam is elementwise, so every member's step is its own).

Online and game-theoretic methods (specs/llm_track.md §1.B) declare what they need from the loop in
`needs(config)` (a drlbench.llm.data.DataNeeds: groups of K answers, a mixture sampler for the second
answer, the gold candidate, an iteration length), and how many past iterates their loss reads
(`snapshots`: 1 = pi_t, 2 = pi_t and pi_{t-1}). The iterates are frozen copies of the policy owned by
the agent (so checkpoints carry them), started as pi_ref (pi_0 = pi_{-1} = pi_ref); the loop calls
`next_iteration()` every `iteration_steps` gradient steps: pi_{t-1} <- pi_t, pi_t <- pi_theta. The
papers' "iteration" (generate a dataset from pi_t, train on it to convergence, pi_{t+1} <- the result)
becomes `iteration_steps` gradient steps on fresh samples of pi_t (sampling = "snapshot").
`update` takes labelled pairs (drlbench.llm.data.Pairs) or groups (PreferenceGroups): a group
method turns pairs into groups of two, DNO turns groups into its large-margin pairs.

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
from drlbench.llm.data import DataNeeds, Pairs, PreferenceGroups
from drlbench.llm.losses import ALL_LOSSES, GroupBatch, PairBatch
from drlbench.llm.policy import TinyLM, token_kl


@dataclass(frozen=True)
class PreferenceConfig:
    learning_rate: float = hp("(0, inf)")


@dataclass(frozen=True)
class IterativeConfig(PreferenceConfig):
    iteration_steps: int = hp("[1, inf)", at_most="steps", soft=True)   # gradient steps per iteration of pi_t


class PreferenceAgent(Agent):
    loop = "preference"
    loss: ClassVar[str]                  # key of drlbench.llm.losses.ALL_LOSSES
    uses_gold: ClassVar[bool] = False    # the loss reads the gold response's log-probs (TPO): one more forward pass
    snapshots: ClassVar[int] = 0         # past iterates the loss reads: 1 = pi_t, 2 = pi_t and pi_{t-1}
    Config = PreferenceConfig

    def __init__(self, observation_space, action_space, config, population):
        super().__init__(observation_space, action_space, config, population)
        self.policy = TinyLM(observation_space.model_spec, population.generators, population.device)
        self.optimizers["policy"] = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self._reference: tuple[TinyLM, ...] = ()   # not a submodule: frozen, rebuilt from the cache
        if self.snapshots:   # frozen iterates, submodules so that checkpoints carry them; fresh generators
            spec, device = observation_space.model_spec, population.device
            fresh = [torch.Generator(device=device) for _ in population.generators]
            self.snapshot = TinyLM(spec, fresh, device).requires_grad_(False)
            if self.snapshots > 1:
                self.previous = TinyLM(spec, fresh, device).requires_grad_(False)
        params = list(inspect.signature(ALL_LOSSES[self.loss]).parameters.values())[1:]
        self.loss_kwargs = {p.name: getattr(config, p.name) for p in params if hasattr(config, p.name)}
        missing = [p.name for p in params if p.default is p.empty and p.name not in self.loss_kwargs]
        if missing:
            raise TypeError(f"{self.name}: Config lacks {missing} of losses.{self.loss}")

    @classmethod
    def needs(cls, config) -> DataNeeds:
        """What the loop must supply beyond labelled pairs of its sampler (default: nothing)."""
        return DataNeeds(iteration_steps=config.iteration_steps if cls.snapshots else 0)

    def _iterates(self) -> list[TinyLM]:
        return [getattr(self, name) for name in ("snapshot", "previous")[: self.snapshots]]

    def attach_reference(self, reference: TinyLM, copy_into_policy: bool) -> None:
        """The loop hands over the stacked reference; a fresh run starts the policy (and pi_0, pi_{-1}) from it."""
        self._reference = (reference,)
        if copy_into_policy:
            with torch.no_grad():
                for model in [self.policy, *self._iterates()]:
                    for mine, ref in zip(model.parameters(), reference.parameters()):
                        mine.copy_(ref)

    @torch.no_grad()
    def next_iteration(self) -> None:
        """An iteration boundary: pi_{t-1} <- pi_t, pi_t <- pi_theta (a no-op for methods without iterates)."""
        models = [self.policy, *self._iterates()]
        for newer, older in reversed(list(zip(models, models[1:]))):
            for src, dst in zip(newer.parameters(), older.parameters()):
                dst.copy_(src)

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError("preference agents are evaluated exactly by the preference loop")

    def update(self, batch) -> dict[str, torch.Tensor]:
        if isinstance(batch, PreferenceGroups):
            return self.update_groups(batch)
        return self.update_pairs(batch)

    def update_groups(self, groups: PreferenceGroups) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{self.name} trains on pairs, not on groups")

    def update_pairs(self, pairs: Pairs) -> dict[str, torch.Tensor]:
        p, b = pairs.contexts.shape
        flat = lambda x: None if x is None else x.reshape(p * b, *x.shape[2:])   # noqa: E731
        # the full distributions come with the log-probs at no extra cost, so the token KL (TDPO) and the
        # true token rewards (TGDPO's oracle token-reward model) are always in the batch
        # (chosen and rejected in one forward pass)
        contexts = pairs.contexts.repeat(1, 2)
        tokens = torch.cat([pairs.chosen, pairs.rejected], 1)
        mask = torch.cat([pairs.chosen_mask, pairs.rejected_mask], 1)
        logp, dist = self.policy.token_logprobs(contexts, tokens, mask, full=True)
        (logp_w, logp_l), (dist_w, dist_l) = logp.split(b, 1), dist.split(b, 1)
        kl_w = None if pairs.ref_chosen_dist is None else token_kl(pairs.ref_chosen_dist, dist_w, pairs.chosen_mask)
        kl_l = None if pairs.ref_rejected_dist is None else token_kl(pairs.ref_rejected_dist, dist_l,
                                                                     pairs.rejected_mask)
        batch = PairBatch(
            flat(logp_w), flat(logp_l), flat(pairs.ref_chosen), flat(pairs.ref_rejected),
            flat(pairs.chosen_mask), flat(pairs.rejected_mask),
            chosen_token_kl=flat(kl_w), rejected_token_kl=flat(kl_l),
            chosen_token_reward=flat(pairs.chosen_token_reward),
            rejected_token_reward=flat(pairs.rejected_token_reward),
            first_won=flat(pairs.first_won), preference=flat(pairs.preference))
        if self.uses_gold:
            batch.gold_logps = flat(self.policy.token_logprobs(pairs.contexts, pairs.gold, pairs.gold_mask))
            batch.gold_mask = flat(pairs.gold_mask)
        if self.snapshots:
            with torch.no_grad():
                snap_w, snap_l = self.snapshot.token_logprobs(contexts, tokens, mask).split(b, 1)
                batch.snapshot_logps_w, batch.snapshot_logps_l = flat(snap_w), flat(snap_l)
                if self.snapshots > 1:
                    prev_w, prev_l = self.previous.token_logprobs(contexts, tokens, mask).split(b, 1)
                    batch.previous_logps_w, batch.previous_logps_l = flat(prev_w), flat(prev_l)
        loss, metrics = ALL_LOSSES[self.loss](batch, **self.loss_kwargs)
        out = self._step(loss.view(p, b), pairs.weight)
        for key, value in metrics.items():
            if value.numel() == p * b:
                out[key] = value.detach().float().view(p, b).mean(1)
        if "chosen_reward" in out and "rejected_reward" in out:
            margin = (metrics["chosen_reward"] - metrics["rejected_reward"]).detach().view(p, b)
            out["reward_accuracy"] = (margin > 0).float().mean(1)
        return out

    def _step(self, loss: torch.Tensor, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One Adam step on the sum over members of each member's batch-mean loss (P, B), weighted
        (sum w l / max(sum w, 1)) when `weight` (P, B) is given."""
        per_member = loss.mean(1) if weight is None else (loss * weight).sum(1) / weight.sum(1).clamp_min(1)
        self.optimizers["policy"].zero_grad(set_to_none=True)
        per_member.sum().backward()
        self.optimizers["policy"].step()
        return {"loss": per_member.detach()}

    def group_logprobs(self, groups: PreferenceGroups) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi_theta, log pi_t) per token of every candidate, (P*B, K, L); pi_t is pi_ref for a
        method without iterates."""
        p, b, k, length = groups.tokens.shape
        contexts = groups.contexts.repeat_interleave(k, 1)
        tokens, mask = groups.tokens.reshape(p, b * k, length), groups.mask.reshape(p, b * k, length)
        logp = self.policy.token_logprobs(contexts, tokens, mask)
        if self.snapshots:
            with torch.no_grad():
                snap = self.snapshot.token_logprobs(contexts, tokens, mask)
        else:
            snap = groups.ref_logps
        return logp.reshape(p * b, k, length), snap.reshape(p * b, k, length)

    def group_batch(self, groups: PreferenceGroups, win_rate: torch.Tensor) -> GroupBatch:
        p, b, k, length = groups.tokens.shape
        logp, snap = self.group_logprobs(groups)
        return GroupBatch(logp, snap, groups.mask.reshape(p * b, k, length), win_rate.reshape(p * b, k))
