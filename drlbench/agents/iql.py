"""Implicit Q-Learning: Kostrikov, Nair, Levine 2021, "Offline Reinforcement Learning with Implicit
Q-Learning" (ICLR 2022, arXiv 2110.06169), as in the authors' code (ikostrikov/implicit_q_learning@7bd6d76:
learner.py, critic.py, actor.py, policy.py, value_net.py, common.py, train_offline.py,
configs/mujoco_config.py).

Per population member, one `update` does, in the order of learner.py's `_update_jit`:
- value, paper eq. (5): L_V(psi) = E[L2^tau(Qbar(s, a) - V_psi(s))], L2^tau(u) = |tau - 1(u < 0)| u^2,
  Qbar = min(Qbar_1, Qbar_2) of the *target* critics, tau = `expectile`;
- actor, paper eq. (7) (advantage-weighted regression):
      L_pi(phi) = -E[min(exp(beta (Qbar(s, a) - V(s))), max_weight) log pi_phi(a|s)],
  with Qbar the target critics' min and V the value network just updated, beta = `temperature`;
- critics, paper eq. (6): L_Q(theta_i) = E[(r + gamma (1 - d) V(s') - Q_i(s, a))^2], i = 1, 2, with the
  updated V (critic.py sums both critics' squared errors and averages over the batch);
- target critics: Qbar <- tau Q + (1 - tau) Qbar.
Policy (policy.py NormalTanhPolicy as learner.py builds it: state_dependent_std=False,
tanh_squash_distribution=False): pi(.|s) = N(tanh(m(s)), diag(exp(clip(log_std, log_std_min,
log_std_max))^2)), m a 256-256 ReLU MLP, log_std a learned vector (zeros at start) per member, clipped
to [-5, 2] (learner.py log_std_min=-5.0, policy.py LOG_STD_MAX=2.0). The tanh is on the mean only:
the density is a plain Gaussian, no change of variables. Evaluation (`deterministic`) uses the mean
tanh(m(s)) (evaluation.py, temperature 0); a stochastic action is clip(tanh(m) + std eps, -1, 1)
(learner.py sample_actions clips). All networks are initialised as common.py does: orthogonal
weights with gain sqrt(2) (output layers included), zero biases; the target critics start equal to
the critics. Adam 3e-4 for all three; the actor's step size follows optax's cosine decay over the
run, actor_lr (1 + cos(pi min(k, T) / T)) / 2 for the k-th actor step (k = 0, 1, ...), T =
`total_updates` from `attach_dataset` (learner.py opt_decay_schedule="cosine", max_steps), or stays
constant (`actor_lr_schedule = "constant"`).
The data conventions of train_offline.py live in the loop, not here: rewards of the locomotion
datasets scaled by 1000 / (max - min episode return) (`normalize_rewards = "return_range"`),
states NOT normalised (`normalize_states = false`).

Differences from the code: dropout is not implemented (dropout_rate=None in the locomotion and
AntMaze configs; only the Kitchen/Adroit config sets it). The code clips dataset actions to
+-(1 - 1e-5) (dataset_utils.py); the loop clips to [-1, 1], which changes nothing for a Gaussian
without tanh. Gradients are written out by hand (`PopMLP.backward`): value dL/dV = -2 w u / B,
w = |tau - 1(u < 0)|; actor d(-c log pi)/dm_pre = -c (a - mu)/sigma^2 (1 - mu^2),
d(-c log pi)/dlog_std = -c ((a - mu)^2/sigma^2 - 1) inside the clip range (0 outside, as clip's
gradient), c = weight / B; equal to autograd's to float rounding.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import LOG_SQRT_2PI, PopMLP, adam, orthogonal_, polyak_update


@dataclass(frozen=True)
class IQLConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    value_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    expectile: float = hp("(0, 1)")           # the paper's tau in L2^tau
    temperature: float = hp("[0, inf)")       # beta; 0 weighs every sample 1 (plain Gaussian BC)
    max_weight: float = hp("(0, inf)")        # exp(beta A) clipped at this (actor.py: 100)
    log_std_min: float = hp("(-inf, inf)", below="log_std_max")
    log_std_max: float = hp("(-inf, inf)")
    actor_lr_schedule: str = hp(choices=("cosine", "constant"))


class IQL(Agent):
    name = "iql"
    summary = "IQL (Kostrikov et al. 2021): expectile value, Q from V(s'), advantage-weighted Gaussian policy"
    loop = "offline"
    Config = IQLConfig

    def __init__(self, observation_space, action_space, config: IQLConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.act_dim = act_dim
        hidden = list(config.hidden_sizes)
        self.actor = PopMLP(population, [obs_dim, *hidden, act_dim])
        self.critic = PopMLP(population, [obs_dim + act_dim, *hidden, 1], copies=2)
        self.value = PopMLP(population, [obs_dim, *hidden, 1])
        for network in (self.actor, self.critic, self.value):
            for layer in network.layers:
                orthogonal_(layer, population, gain=math.sqrt(2.0))          # common.py default_init
        self.log_std = torch.nn.Parameter(torch.zeros(population.size, 1, act_dim, device=population.device))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizers = {
            "actor": adam([*self.actor.parameters(), self.log_std], config.actor_lr),
            "critic": adam(self.critic.parameters(), config.critic_lr),
            "value": adam(self.value.parameters(), config.value_lr),
        }
        self.updates = 0
        self.total_updates: int | None = None      # from attach_dataset (the cosine schedule's length)

    def attach_dataset(self, observations: torch.Tensor, actions: torch.Tensor, total_updates: int) -> None:
        self.total_updates = int(total_updates)

    def actor_lr_now(self) -> float:
        """The actor's step size for the next update (optax.cosine_decay_schedule(actor_lr, T), alpha = 0)."""
        cfg = self.config
        if cfg.actor_lr_schedule == "constant":
            return cfg.actor_lr
        if self.total_updates is None:
            raise RuntimeError("iql: attach_dataset must be called before update with actor_lr_schedule=cosine "
                               "(the offline loop does)")
        horizon = max(self.total_updates, 1)
        return cfg.actor_lr * 0.5 * (1.0 + math.cos(math.pi * min(self.updates, horizon) / horizon))

    def _std(self) -> tuple[torch.Tensor, torch.Tensor]:
        log_std = self.log_std.clamp(self.config.log_std_min, self.config.log_std_max)
        return log_std, log_std.exp()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        mean = torch.tanh(self.actor(obs))
        if deterministic:
            return mean
        return (mean + self._std()[1] * self.population.randn(obs.shape[1], self.act_dim)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        p, b = batch.reward.shape
        lr = self.actor_lr_now()
        state_action = torch.cat([batch.obs, batch.action], -1)
        target_q = self.critic_target(state_action).squeeze(-1).min(1).values        # (P, B): min of the targets

        # value, eq. (5): expectile regression of V(s) on min Qbar(s, a)
        v, value_trace = self.value.trace(batch.obs)
        v = v.squeeze(-1)
        u = target_q - v
        w = torch.where(u > 0, cfg.expectile, 1.0 - cfg.expectile)
        value_loss = (w * u * u).mean(-1)
        self.value.backward(value_trace, (-2.0 / b * w * u).unsqueeze(-1))
        self.optimizers["value"].step()

        # the updated V at s (advantages) and s' (critic targets), one pass
        v_new, next_v = self.value(torch.cat([batch.obs, batch.next_obs], 1)).squeeze(-1).split(b, 1)

        # actor, eq. (7): advantage-weighted log-likelihood of the dataset actions
        adv = target_q - v_new
        weight = torch.exp(cfg.temperature * adv).clamp(max=cfg.max_weight)
        out, actor_trace = self.actor.trace(batch.obs)
        mean = torch.tanh(out)
        log_std, std = self._std()
        z = (batch.action - mean) / std
        log_prob = (-0.5 * z * z - log_std - LOG_SQRT_2PI).sum(-1)                   # (P, B)
        actor_loss = -(weight * log_prob).mean(-1)
        c = (weight / b).unsqueeze(-1)                                                # dL/dlog_prob = -c
        self.actor.backward(actor_trace, -c * z / std * (1.0 - mean * mean))
        inside = (self.log_std >= cfg.log_std_min) & (self.log_std <= cfg.log_std_max)
        self.log_std.grad = (-c * (z * z - 1.0)).sum(1, keepdim=True) * inside
        for group in self.optimizers["actor"].param_groups:
            group["lr"] = lr
        self.optimizers["actor"].step()

        # critics, eq. (6): regress both Q_i(s, a) on r + gamma (1 - d) V(s')
        target = batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_v
        q, critic_trace = self.critic.trace(state_action)
        error = q.view(p, 2, b) - target.unsqueeze(1)
        critic_loss = error.pow(2).mean(-1).sum(1)
        self.critic.backward(critic_trace, error.view(2 * p, b, 1) * (2.0 / b))
        self.optimizers["critic"].step()
        polyak_update(self.critic_target, self.critic, cfg.tau)

        self.updates += 1
        return {
            "value_loss": value_loss,
            "actor_loss": actor_loss,
            "critic_loss": critic_loss,
            "v": v.mean(-1),
            "q": q.view(p, 2, b).mean((1, 2)),
            "adv": adv.mean(-1),
            "weight": weight.mean(-1),
            "actor_lr": torch.full((p,), lr, device=v.device),
        }

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
