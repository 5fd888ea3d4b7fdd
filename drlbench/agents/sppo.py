"""SPPO: Wu et al. 2024, "Self-Play Preference Optimization for Language Model Alignment" (arXiv
2405.00675), Alg. 1. Iteration t: K answers per prompt from pi_t (the loop's sampling = "snapshot"),
their win rates against pi_t estimated from the preference model's probabilities,
P^(y_k > pi_t) = (1/K) sum_j P(y_k > y_j) (drlbench.llm.data.win_rates; the task's true preference
plays PairRM), and per answer the squared loss

    L = (log pi_theta(y)/pi_t(y) - eta (P^(y > pi_t) - 1/2))^2,   eta = 1/beta

(drlbench.llm.losses.sppo), averaged over the K answers; pi_t <- pi_theta every `iteration_steps`
gradient steps (the paper: one iteration = generate, then train on the new dataset to the end; here
fresh samples of the frozen pi_t at every step). DEVIATION: the paper's code trains on the best and
worst of the K answers only; here on all K (the paper's equation). A labelled pair is a group of two.
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import IterativeConfig, PreferenceAgent
from drlbench.domains import hp
from drlbench.llm.data import DataNeeds, Pairs, PreferenceGroups, groups_from_pairs, win_rates
from drlbench.llm.losses import sppo


@dataclass(frozen=True)
class SPPOConfig(IterativeConfig):
    beta: float = hp("(0, inf)")
    group_size: int = hp("[2, 64]")    # K answers per prompt


class SPPO(PreferenceAgent):
    name = "sppo"
    summary = "SPPO (Wu et al. 2024): squared loss to eta (win rate - 1/2) against the iterate pi_t"
    loss = "sppo"
    Config = SPPOConfig
    snapshots = 1

    @classmethod
    def needs(cls, config) -> DataNeeds:
        return DataNeeds(group_size=config.group_size, iteration_steps=config.iteration_steps)

    def update_pairs(self, pairs: Pairs):
        return self.update_groups(groups_from_pairs(pairs))

    def update_groups(self, groups: PreferenceGroups):
        p, b = groups.contexts.shape
        loss, metrics = sppo(self.group_batch(groups, win_rates(groups.preference)), **self.loss_kwargs)
        out = self._step(loss.view(p, b))
        out.update({k: v.float().view(p, b).mean(1) for k, v in metrics.items()})
        return out
