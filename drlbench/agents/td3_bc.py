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

Differences from the code: `act` returns mu(s) whether or not `deterministic` is set (the code
evaluates mu(s); there is no exploration offline). Gradients are written out by hand as in
drlbench's TD3 (`PopMLP.backward`): dL/dpi = -lambda/B dQ1/da + 2 (pi - a)/(B |A|), then tanh';
equal to autograd's to float rounding. Actions live in [-1, 1] (max_action = 1, so the code's
noise scaling by max_action is the identity).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update


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


class TD3BC(Agent):
    name = "td3_bc"
    summary = "TD3+BC (Fujimoto & Gu 2021): TD3 with an MSE behaviour-cloning term, Q term scaled by alpha/mean|Q|"
    loop = "offline"
    Config = TD3BCConfig

    def __init__(self, observation_space, action_space, config: TD3BCConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.act_dim = act_dim
        hidden = list(config.hidden_sizes)
        self.actor = PopMLP(population, [obs_dim, *hidden, act_dim])
        self.critic = PopMLP(population, [obs_dim + act_dim, *hidden, 1], copies=2)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), config.actor_lr),
            "critic": adam(self.critic.parameters(), config.critic_lr),
        }
        self.updates = 0
        zeros = torch.zeros(population.size, device=population.device)
        self.last_actor = {k: zeros.clone() for k in ("actor_loss", "bc_loss", "q_pi", "lambda")}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return torch.tanh(self.actor(obs))

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        p, b = batch.reward.shape
        noise = (self.population.randn(b, self.act_dim) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
        next_action = (torch.tanh(self.actor_target(batch.next_obs)) + noise).clamp(-1.0, 1.0)
        next_q, _ = self.critic_target.trace(torch.cat([batch.next_obs, next_action], -1))
        target = batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_q.view(p, 2, b).min(1).values
        q, critic_trace = self.critic.trace(torch.cat([batch.obs, batch.action], -1))
        error = q.view(p, 2, b) - target.unsqueeze(1)
        critic_loss = error.pow(2).mean(-1).sum(1)                                  # (P,)
        self.critic.backward(critic_trace, error.view(2 * p, b, 1) * (2.0 / b))     # d/dq of mean (q - y)^2
        self.optimizers["critic"].step()

        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            self.last_actor = self._actor_step(batch)
            polyak_update(self.critic_target, self.critic, cfg.tau)
            polyak_update(self.actor_target, self.actor, cfg.tau)
        return {"critic_loss": critic_loss, **self.last_actor}

    def _actor_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        p, b = batch.reward.shape
        out, actor_trace = self.actor.trace(batch.obs)
        pi = torch.tanh(out)
        q1, q1_trace = self.critic.trace(torch.cat([batch.obs, pi], -1), first_copy_only=True)   # (P, B, 1)
        lam = self.config.alpha / q1.abs().mean((1, 2))                             # (P,), per member, detached
        diff = pi - batch.action
        bc_loss = diff.pow(2).mean((1, 2))
        q_pi = q1.squeeze(-1).mean(-1)
        actor_loss = -lam * q_pi + bc_loss
        grad_q = (-lam / b).view(p, 1, 1).expand(p, b, 1).contiguous()
        grad_pi = self.critic.backward(q1_trace, grad_q, weight_grads=False, input_columns=slice(-self.act_dim, None),
                                       first_copy_only=True)
        grad_pi += diff * (2.0 / (b * self.act_dim))
        self.actor.backward(actor_trace, grad_pi * (1.0 - pi * pi))                 # tanh' = 1 - tanh^2
        self.optimizers["actor"].step()
        return {"actor_loss": actor_loss, "bc_loss": bc_loss, "q_pi": q_pi, "lambda": lam}

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates, "last_actor": self.last_actor}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
        self.last_actor = state["last_actor"]
