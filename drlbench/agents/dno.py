"""DNO-Prct: Rosset et al. 2024, "Direct Nash Optimization: Teaching Language Models to Self-Improve with
General Preferences" (arXiv 2404.03715), Alg. 2, the practical batched on-policy version. Iteration t:
K answers per prompt from pi_t (sampling = "snapshot") plus the gold (teacher) answer (`gold`), ranked by the
annotator's win rate among the K + 1 candidates; the best and the worst form the pair, kept only
when their win rates differ by at least `margin` (drlbench.llm.data.large_margin_pairs); then DPO
with pi_t as the reference,

    L = -log sigma(beta [log pi/pi_t (y_w) - log pi/pi_t (y_l)])

(drlbench.llm.losses.dno), averaged over the kept pairs; pi_t <- pi_theta every `iteration_steps`
gradient steps. The annotator's scores are the task's true preference probabilities; the gold answer
is the context's highest-reward response (llm.tasks.Task.gold). Labelled pairs (no groups) are used
as they are, all kept.
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import IterativeConfig, PreferenceAgent
from drlbench.domains import hp
from drlbench.llm.data import DataNeeds, PreferenceGroups, large_margin_pairs


@dataclass(frozen=True)
class DNOConfig(IterativeConfig):
    beta: float = hp("(0, inf)")
    group_size: int = hp("[2, 64]")    # K on-policy answers per prompt (the gold answer comes on top)
    margin: float = hp("[0, 1]")       # least win-rate gap of a kept pair
    gold: bool = hp()                  # the gold (teacher) answer as one more candidate


class DNO(PreferenceAgent):
    name = "dno"
    summary = "DNO-Prct (Rosset et al. 2024): iterative DPO against pi_t on large-margin pairs (+ gold)"
    loss = "dno"
    Config = DNOConfig
    snapshots = 1

    @classmethod
    def needs(cls, config) -> DataNeeds:
        return DataNeeds(group_size=config.group_size, gold=config.gold, iteration_steps=config.iteration_steps)

    def update_groups(self, groups: PreferenceGroups):
        pairs = large_margin_pairs(groups, self.config.margin)
        out = self.update_pairs(pairs)
        out["kept_fraction"] = pairs.weight.mean(1)
        return out
