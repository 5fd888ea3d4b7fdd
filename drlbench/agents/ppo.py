"""Proximal Policy Optimization: Schulman, Wolski, Dhariwal, Radford, Klimov 2017 (arXiv 1707.06347),
with stable-baselines3's conventions and defaults (stable_baselines3/ppo/ppo.py, 2.x).

Per iteration, on a rollout of n_steps x num_envs steps with GAE(lambda) advantages (eq. 11-12;
computed by the on-policy loop), `n_epochs` passes over fresh random minibatches of `batch_size`,
each one Adam step on, per member,
    L = L^CLIP + c1 L^VF - c2 S                                              (eq. 9, as a loss)
    L^CLIP = -mean[min(r A, clip(r, 1 - eps, 1 + eps) A)],  r = pi(a|s) / pi_old(a|s)   (eq. 7)
    L^VF   = mean[(V(s) - R)^2]  (R = A_old + V_old, the TD(lambda) return; with clip_range_vf > 0,
             V(s) is replaced by V_old + clip(V(s) - V_old, -clip_range_vf, clip_range_vf), SB3's option)
    S      = mean entropy of pi(.|s)
with A standardised per minibatch ((A - mean) / (std + 1e-8), `normalize_advantage`), the member's
gradient clipped to global norm `max_grad_norm`, one Adam (eps 1e-5) for policy and value.
Policy: diagonal Gaussian with state-independent log-std (Box; actions sampled unbounded and
clipped to [-1, 1] for the environment) or categorical (Discrete); evaluation takes the mean
(clipped) or the most probable action. With `use_sde`, exploration is gSDE (state-dependent noise, as
SB3's use_sde; drlbench.agents.actor_critic). Networks and initialisation: drlbench.agents.actor_critic.

Differences from SB3 (by design): actions are exchanged in [-1, 1] units (SB3 samples in the
environment's units, so where bounds are not [-1, 1], e.g. Pendulum's [-2, 2], the same log_std
means a different exploration scale); the step budget is exact (SB3 finishes the last rollout);
gSDE matrices are drawn from drlbench's generators.
`target_kl` (SB3's early stopping: a member stops its iteration's updates at the first minibatch
whose approx_kl = mean((r - 1) - log r) exceeds 1.5 target_kl, before that minibatch's step) is per
member, with a per-member Adam (drlbench.nn.MemberAdam): a stopped member is untouched while the
others go on. Schedules: "linear" decays from the value
to 0 over the run, evaluated after each rollout as SB3's progress_remaining.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents.actor_critic import ActorCritic, Rollout, clip_grad_norm_per_member_, minibatches, take
from drlbench.domains import hp
from drlbench.errors import UsageError
from drlbench.nn import MemberAdam, adam

SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class PPOConfig:
    learning_rate: float = hp("(0, inf)")
    learning_rate_schedule: str = hp(choices=SCHEDULES)  # "constant" or "linear" (to 0 over the run)
    n_epochs: int = hp("[1, inf)")
    batch_size: int = hp("[1, inf)", divides="n_steps*num_envs", soft=True)
    clip_range: float = hp("(0, inf)")
    clip_range_schedule: str = hp(choices=SCHEDULES)  # "constant" or "linear"
    clip_range_vf: float = hp("[0, inf)")  # 0: no value clipping (SB3's None)
    normalize_advantage: bool = hp()
    ent_coef: float = hp("[0, inf)")
    vf_coef: float = hp("[0, inf)")
    max_grad_norm: float = hp("(0, inf)")
    adam_eps: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    log_std_init: float = hp("(-inf, inf)")
    ortho_init: bool = hp()
    normalize_observations: bool = hp()  # running observation standardisation (drlbench.normalize)
    target_kl: float = hp("[0, inf)")  # 0: off (SB3's None); else early stopping at approx_kl > 1.5 target_kl
    use_sde: bool = hp()            # gSDE exploration (Box actions; drlbench.agents.actor_critic)
    sde_sample_freq: int = hp("(-inf, inf)")  # gSDE: new exploration matrices every this many steps (<= 0: per rollout)


def scheduled(value: float, schedule: str, rollout: Rollout) -> float:
    if schedule == "constant":
        return value
    return value * max(1.0 - rollout.steps_done / rollout.total_steps, 0.0)


class PPO(ActorCritic):
    name = "ppo"
    summary = "PPO (Schulman et al. 2017): clipped surrogate, GAE, stable-baselines3 conventions"
    Config = PPOConfig

    def __init__(self, observation_space, action_space, config: PPOConfig, population):
        super().__init__(observation_space, action_space, config, population)
        if config.batch_size < 2 and config.normalize_advantage:
            raise UsageError(f"batch_size={config.batch_size}: advantage normalisation needs at least 2")
        self.optimizers = {"policy": self.make_optimizer()}

    def make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.target_kl > 0:
            return MemberAdam(self.parameters(), cfg.learning_rate, cfg.adam_eps, self.population.size)
        return adam(self.parameters(), cfg.learning_rate, eps=cfg.adam_eps)

    def losses(self, obs, action, old_log_prob, old_value, advantage, returns, clip_range: float):
        """The per-member loss terms of one minibatch (each (P,)) and diagnostics."""
        cfg = self.config
        dist = self.distribution(obs)
        log_prob, entropy = dist.log_prob(action), dist.entropy()
        value = self.critic(obs).squeeze(-1)
        if cfg.normalize_advantage and advantage.shape[1] > 1:
            advantage = (advantage - advantage.mean(1, keepdim=True)) / (advantage.std(1, keepdim=True) + 1e-8)
        log_ratio = log_prob - old_log_prob
        ratio = log_ratio.exp()
        policy_loss = -torch.min(advantage * ratio, advantage * ratio.clamp(1 - clip_range, 1 + clip_range)).mean(1)
        if cfg.clip_range_vf > 0:
            value = old_value + (value - old_value).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
        value_loss = (returns - value).pow(2).mean(1)
        entropy_loss = -entropy.mean(1)
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean(1)
            clip_fraction = ((ratio - 1).abs() > clip_range).float().mean(1)
        return policy_loss, value_loss, entropy_loss, approx_kl, clip_fraction

    def learn(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        cfg = self.config
        optimizer = self.optimizers["policy"]
        for group in optimizer.param_groups:
            group["lr"] = scheduled(cfg.learning_rate, cfg.learning_rate_schedule, rollout)
        clip_range = scheduled(cfg.clip_range, cfg.clip_range_schedule, rollout)
        members, size = rollout.value.shape
        params = list(self.parameters())
        early_stopping = cfg.target_kl > 0
        active = torch.ones(members, dtype=torch.bool, device=rollout.value.device)
        sums: dict[str, torch.Tensor] = {}
        count = torch.zeros(members, device=rollout.value.device)   # minibatches logged per member
        steps = torch.zeros_like(count)                              # minibatch steps taken per member
        fields = (rollout.obs, rollout.action, rollout.log_prob, rollout.value, rollout.advantage, rollout.returns)
        for _ in range(cfg.n_epochs):
            for index in minibatches(self.population, size, cfg.batch_size):
                obs, action, old_log_prob, old_value, advantage, returns = (take(x, index) for x in fields)
                policy_loss, value_loss, entropy_loss, approx_kl, clip_fraction = self.losses(
                    obs, action, old_log_prob, old_value, advantage, returns, clip_range)
                extra = self.extra_losses(obs, action, returns)
                policy_term = policy_loss
                for term in extra.values():
                    policy_term = policy_term + term
                loss = policy_term + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
                # metrics of every minibatch a member computed, the one that stops it included (as SB3 logs)
                logged = active.to(count.dtype)
                for key, value in (("policy_loss", policy_loss), ("value_loss", value_loss),
                                   ("entropy", -entropy_loss), ("approx_kl", approx_kl),
                                   ("clip_fraction", clip_fraction), *extra.items()):
                    sums[key] = sums.get(key, 0) + value.detach() * logged
                count += logged
                if early_stopping:
                    active = active & (approx_kl <= 1.5 * cfg.target_kl)
                    if not bool(active.any()):
                        break
                    loss = torch.where(active, loss, 0.0)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()      # members' losses summed: each member's gradients are its own
                clip_grad_norm_per_member_(params, cfg.max_grad_norm, members)
                optimizer.step(active) if early_stopping else optimizer.step()
                steps += active.to(count.dtype)
            if early_stopping and not bool(active.any()):
                break
        metrics = {key: value / count.clamp(min=1.0) for key, value in sums.items()}
        metrics["minibatch_steps"] = steps
        return metrics

    def extra_losses(self, obs, action, returns) -> dict[str, torch.Tensor]:
        """Further per-member loss terms (each (P,)) a variant adds to the policy term and reports apart;
        PPO has none."""
        return {}
