"""APO, *Accelerated* Preference Optimization: He, Yuan, Gu 2024, "Accelerated Preference Optimization
for Large Language Model Alignment" (arXiv 2410.06293); not TRL's Anchored PO (apo_zero/apo_down).
[recon] (specs/llm_track.md §1.B: the update rule is the spec's reconstruction.) Iterative DPO seen as
a proximal-point method, with Nesterov extrapolation between iterations: iteration t runs DPO whose
reference is the extrapolated iterate

    log pi_hat_t = (1 + alpha) log pi_t - alpha log pi_{t-1}    (pi_0 = pi_{-1} = pi_ref)
    L = -log sigma(beta [h_hat(y_w) - h_hat(y_l)]),  h_hat = log pi - log pi_hat_t

(drlbench.llm.losses.apo), on pairs labelled by the annotator; pi_{t-1} <- pi_t, pi_t <- pi_theta every
`iteration_steps` gradient steps. DEVIATION: the pairs come from pi_t (sampling = "snapshot"), not
from pi_hat_t, which has no token-wise sampler.
"""
from __future__ import annotations

from dataclasses import dataclass

from drlbench.agents._preference import IterativeConfig, PreferenceAgent
from drlbench.domains import hp


@dataclass(frozen=True)
class APOConfig(IterativeConfig):
    beta: float = hp("(0, inf)")
    alpha: float = hp("[0, inf)")    # momentum of the extrapolation (alpha = 0: iterative DPO against pi_t)


class APO(PreferenceAgent):
    name = "apo"
    summary = "APO (He et al. 2024) [recon]: iterative DPO with an extrapolated (Nesterov) reference"
    loss = "apo"
    Config = APOConfig
    snapshots = 2
