"""Nash-MD: Munos et al. 2024, "Nash Learning from Human Feedback" (ICML, arXiv 2312.00886), in TRL's
practical form (NashMDTrainer, trl <= 1.9 `trl.experimental.nash_md`). Nash-MD plays against the
geometric mixture pi_mix ∝ pi_t^(1 - eta beta) pi_ref^(eta beta); TRL builds it token by token as
the mixture of logits (1 - mixture_coef) logits_theta + mixture_coef logits_ref
(drlbench.llm.data.sample_mixture). Each step: y ~ pi_theta, y' ~ that mixture, p = P(y > y') from
the preference model (here the task's true preference: the oracle), and

    L = beta sum_t sg(log pi(y_t) - log pi_ref(y_t)) log pi(y_t) - (p - 1/2) log pi(y)

(drlbench.llm.losses.nash_md): REINFORCE with a 1/2 control variate plus a REINFORCE estimate of the
KL(pi || pi_ref) gradient. Adam at a constant rate rescaled to the tiny model (agents/_preference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import PreferenceAgent, PreferenceConfig
from drlbench.domains import hp
from drlbench.llm.data import DataNeeds


@dataclass(frozen=True)
class NashMDConfig(PreferenceConfig):
    beta: float = hp("(0, inf)")
    mixture_coef: float = hp("[0, 1]")


class NashMD(PreferenceAgent):
    name = "nash_md"
    summary = "Nash-MD (Munos et al. 2024), TRL's loss: REINFORCE against a policy/reference logit mixture"
    loss = "nash_md"
    Config = NashMDConfig

    @classmethod
    def needs(cls, config) -> DataNeeds:
        return DataNeeds(mixture_coef=config.mixture_coef)
