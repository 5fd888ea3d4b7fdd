"""TD3+BC: Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning" (NeurIPS,
arXiv 2106.06860), as in the authors' code (sfujim/TD3_BC@76cdd14, TD3_BC.py, main.py, utils.py).

TD3 (specs/algorithms.md §2) on a fixed dataset, with a behaviour-cloning term in the actor loss.
Per population member, one `update` does:
- critic, as TD3: a~' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, policy_noise^2),
  c = noise_clip; y = r + gamma (1 - d) min_{i=1,2} Qbar_i(s', a~'); loss MSE(Q1, y) + MSE(Q2, y),
  one optimiser for both twins (d = 1 only for true terminations; D4RL timeouts are not terminals);
- every `policy_delay` critic updates, the actor (the paper's objective, as TD3_BC.py computes it):
      pi = mu(s),  lambda = alpha / ((1/B) sum_b |Q1(s_b, pi_b)|)   (detached, this member's batch),
      L_actor = -lambda (1/B) sum_b Q1(s_b, pi_b) + (1/(B |A|)) sum_{b,j} (pi_bj - a_bj)^2,
  then Polyak updates (tau) of the critic and actor targets. (The paper writes lambda's average
  over the minibatch pairs (s_i, a_i); the code, followed here, averages |Q1(s, pi(s))|.)
States arrive normalised with the dataset's mean and std + 1e-3 (main.py --normalize True,
utils.py normalize_states; the offline loop's `normalize_states`). Networks: TD3_BC.py's 256-256
ReLU actor (tanh output) and twin critics, torch's default initialisation, Adam 3e-4 for both.

The critic step, the policy delay and the target updates are drlbench's TD3 (`TD3BC` subclasses it
and replaces only the actor step). Differences from the code: `act` returns mu(s) whether or not `deterministic` is set (the code
evaluates mu(s); there is no exploration offline). Gradients are written out by hand as in
drlbench's TD3 (`PopMLP.backward`): dL/dpi = -lambda/B dQ1/da + 2 (pi - a)/(B |A|), then tanh';
equal to autograd's to float rounding. Actions live in [-1, 1] (max_action = 1, so the code's
noise scaling by max_action is the identity).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents.base import Batch
from drlbench.agents.td3 import TD3
from drlbench.domains import hp


@dataclass(frozen=True)
class TD3BCConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    policy_noise: float = hp("[0, inf)")
    noise_clip: float = hp("[0, inf)")
    policy_delay: int = hp("[1, inf)")
    alpha: float = hp("[0, inf)")            # lambda = alpha / mean|Q1(s, pi(s))|; 0 gives pure BC


class TD3BC(TD3):
    name = "td3_bc"
    summary = "TD3+BC (Fujimoto & Gu 2021): TD3 with an MSE behaviour-cloning term, Q term scaled by alpha/mean|Q|"
    loop = "offline"
    Config = TD3BCConfig
    graph_cycle = None   # offline loop: no CUDA-graph path
    compiled_parts = ()  # nor a compiled one
    BC_METRIC = "bc_loss"     # the name the behaviour term is logged under
    ACTOR_METRICS = ("actor_loss", BC_METRIC, "q_pi", "lambda")

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self._mu(self.actor, obs)

    def bc_target(self, batch: Batch, pi: torch.Tensor) -> torch.Tensor:
        """The action the policy is pulled towards: the dataset's (PRDC: its nearest neighbour's)."""
        return batch.action

    def _actor_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        p, b = batch.reward.shape
        out, actor_trace = self.actor.trace(batch.obs)
        pi = torch.tanh(out)
        q1, q1_trace = self.critic.trace(torch.cat([batch.obs, pi], -1), first_copy_only=True)   # (P, B, 1)
        lam = self.config.alpha / q1.abs().mean((1, 2))                             # (P,), per member, detached
        diff = pi - self.bc_target(batch, pi)
        bc_loss = diff.pow(2).mean((1, 2))
        q_pi = q1.squeeze(-1).mean(-1)
        actor_loss = -lam * q_pi + bc_loss
        grad_q = (-lam / b).view(p, 1, 1).expand(p, b, 1).contiguous()
        grad_pi = self.critic.backward(q1_trace, grad_q, weight_grads=False, input_columns=slice(-self.act_dim, None),
                                       first_copy_only=True)
        grad_pi += diff * (2.0 / (b * self.act_dim))
        self.actor.backward(actor_trace, grad_pi * (1.0 - pi * pi))                 # tanh' = 1 - tanh^2
        self.optimizers["actor"].step()
        return {"actor_loss": actor_loss, self.BC_METRIC: bc_loss, "q_pi": q_pi, "lambda": lam}
