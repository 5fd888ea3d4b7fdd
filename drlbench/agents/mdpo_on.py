"""On-policy Mirror Descent Policy Optimization: Tomar, Shani, Efroni, Ghavamzadeh, "Mirror Descent
Policy Optimization" (ICLR 2022, arXiv 2005.09814), as in the authors' code
(manantomar/Mirror-Descent-Policy-Optimization, mdpo_on/mdpo.py and run_mujoco.py, on stable-baselines 2).

Iteration k (k = 0, 1, ...) on a rollout of n_steps x num_envs steps of pi_k with GAE(lambda):
- policy, the MD update approximated by `sgd_steps` full-batch Adam steps from theta = theta_k on
      J(theta) = mean[ pi_theta(a|s) / pi_k(a|s) * A ] - (1 / t_k) mean_s KL(pi_theta(.|s) || pi_k(.|s))
  (the paper's on-policy objective: the linearised RL objective plus the Bregman (KL) proximity term,
  new policy first), A standardised over the batch ((A - mean) / std), the member's gradient
  clipped to global norm `max_grad_norm`; Adam (eps 1e-5), no entropy bonus;
- step size t_k = 1 - (k - 1) / K, K = floor(H / rollout size): annealed linearly toward 0 (the KL
  weight 1/t_k grows), mdpo.py's `lr_now` (iteration counter from 0). H, `kl_horizon_steps`, is the
  run's own step budget (0, the paper: anneal over training) or a fixed number (the official
  run_mujoco.py hard-codes 10M whatever the run length: --set kl_horizon_steps=10000000). t_k is
  kept >= 1/K if a run outlasts H;
- value: `vf_epochs` passes of minibatches of `vf_batch_size` (the last partial one dropped), Adam
  (eps 1e-8, MpiAdam's) on mean[max((V - R)^2, (V_clip - R)^2)], V_clip = V_k + clip(V - V_k, +-clip_range_vf),
  R the TD(lambda) returns; after the policy steps, as mdpo.py;
- pi_{k+1} = pi_theta (the KL reference for the next iteration is the policy that collects its data).
Closed-form KL: diagonal Gaussians (Box) or categorical (Discrete). Networks: drlbench.agents.actor_critic
(stable-baselines MlpPolicy: separate 64-64 tanh policy and value MLPs, orthogonal init, log-std 0).

Official code vs paper / what is not reproduced (see agents/mdpo_on.toml):
- run_mujoco.py wraps the environment in VecNormalize (observation and reward normalisation): on by
  default here too (drlbench.normalize, the same running statistics and clipping); the paper does not
  mention it: --set normalize_observations=false normalize_rewards=false;
- the code treats time-limit ends as terminal: --set bootstrap_truncation=false;
- in the code, the old-policy network of the very first iteration is a separately initialised network,
  not a copy of pi_0; here pi_0 is its own reference (the KL term starts at 0, as every later iteration);
- the Tsallis-entropy variant (tsallis_q != 1) and the "closed-form" methods are not implemented.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents.actor_critic import ActorCritic, Rollout, clip_grad_norm_per_member_, minibatches, take
from drlbench.domains import hp
from drlbench.nn import adam


@dataclass(frozen=True)
class MDPOOnConfig:
    learning_rate: float = hp("(0, inf)")  # policy Adam step size
    value_learning_rate: float = hp("(0, inf)")  # value Adam step size
    sgd_steps: int = hp("[1, inf)")  # m: full-batch policy steps per iteration
    kl_horizon_steps: int = hp("[0, inf)")  # H of the t_k schedule; 0 = the run's step budget
    max_grad_norm: float = hp("(0, inf)")
    adam_eps: float = hp("(0, inf)")  # policy Adam epsilon
    vf_epochs: int = hp("[1, inf)")
    vf_batch_size: int = hp("[1, inf)", at_most="n_steps*num_envs")
    clip_range_vf: float = hp("[0, inf)")  # 0: plain squared error
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    log_std_init: float = hp("(-inf, inf)")
    ortho_init: bool = hp()
    normalize_observations: bool = hp()  # running observation standardisation (drlbench.normalize)


class MDPOOn(ActorCritic):
    name = "mdpo_on"
    summary = "On-policy MDPO (Tomar et al. 2022): KL-proximal multi-step policy update, annealed step size"
    Config = MDPOOnConfig

    def __init__(self, observation_space, action_space, config: MDPOOnConfig, population):
        super().__init__(observation_space, action_space, config, population)
        self.optimizers = {
            "policy": adam(self.policy_parameters(), config.learning_rate, eps=config.adam_eps),
            "value": adam(self.critic.parameters(), config.value_learning_rate, eps=1e-8),
        }
        self.iterations = 0

    def step_size(self, rollout: Rollout) -> float:
        """t_k = 1 - (k - 1) / K (mdpo.py `lr_now`), floored at 1/K."""
        horizon = self.config.kl_horizon_steps or rollout.total_steps
        iterations = max(horizon // rollout.value.shape[1], 1)
        return max(1.0 - (self.iterations - 1.0) / iterations, 1.0 / iterations)

    def policy_objective(self, obs, action, old_log_prob, advantage, old_dist, t_k: float):
        """J(theta) per member (P,) and its KL term, on a (P, B) batch."""
        dist = self.distribution(obs)
        ratio = torch.exp(dist.log_prob(action) - old_log_prob)
        kl = dist.kl(old_dist).mean(1)
        return (ratio * advantage).mean(1) - kl / t_k, kl

    def value_loss(self, obs, old_value, returns) -> torch.Tensor:
        value = self.critic(obs).squeeze(-1)
        loss = (value - returns).pow(2)
        if self.config.clip_range_vf > 0:
            clipped = old_value + (value - old_value).clamp(-self.config.clip_range_vf, self.config.clip_range_vf)
            loss = torch.max(loss, (clipped - returns).pow(2))
        return loss.mean(1)

    def learn(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        cfg = self.config
        members = rollout.value.shape[0]
        t_k = self.step_size(rollout)
        advantage = rollout.advantage
        advantage = (advantage - advantage.mean(1, keepdim=True)) / advantage.std(1, unbiased=False, keepdim=True)
        old_dist = self.distribution(rollout.obs).detach()     # pi_k = the policy that collected the rollout
        policy_params = self.policy_parameters()
        optimizer = self.optimizers["policy"]
        for _ in range(cfg.sgd_steps):
            objective, kl = self.policy_objective(rollout.obs, rollout.action, rollout.log_prob, advantage,
                                                  old_dist, t_k)
            optimizer.zero_grad(set_to_none=True)
            (-objective).sum().backward()      # members' objectives summed: each member's gradients are its own
            clip_grad_norm_per_member_(policy_params, cfg.max_grad_norm, members)
            optimizer.step()
        with torch.no_grad():
            objective, kl = self.policy_objective(rollout.obs, rollout.action, rollout.log_prob, advantage,
                                                  old_dist, t_k)
            entropy = self.distribution(rollout.obs).entropy().mean(1)

        value_losses = []
        for _ in range(cfg.vf_epochs):
            for index in minibatches(self.population, rollout.value.shape[1], cfg.vf_batch_size, drop_last=True):
                loss = self.value_loss(*(take(x, index) for x in (rollout.obs, rollout.value, rollout.returns)))
                self.optimizers["value"].zero_grad(set_to_none=True)
                loss.sum().backward()
                self.optimizers["value"].step()
                value_losses.append(loss.detach())
        self.iterations += 1
        return {
            "objective": objective, "kl": kl, "entropy": entropy,
            "value_loss": torch.stack(value_losses).mean(0) if value_losses else torch.zeros_like(kl),
            "t_k": torch.full_like(kl, t_k),
        }

    def extra_checkpoint(self) -> dict:
        return {"iterations": self.iterations}

    def restore_extra(self, state: dict) -> None:
        self.iterations = state["iterations"]
