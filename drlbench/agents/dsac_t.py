"""DSAC-T (DSAC-v2): Duan, Wang, Xiao, Gao, Li, Lv, Wang, Li, Cheng, Li, "Distributional Soft
Actor-Critic with Three Refinements" (IEEE TPAMI 2025, arXiv 2310.05858), as in the authors' code
(Jingliang-Duan/DSAC-v2: dsac_v2.py before c5105eb for the paper's loss, networks/mlp.py,
utils/act_distribution_cls.py, example_train/dsacv2_mlp_mujoco_offserial.py). specs/algorithms.md §3.

Each critic Z_i(s, a) = N(mu_i, sigma_i^2) is a Gaussian value distribution (one MLP -> mu and
softplus -> sigma). Per population member, one `update` does:
- target action a' ~ pi_target(.|s') (the Polyak-averaged policy), with log pi_target(a'|s');
  sampled targets z'_j = mu'_j + clip(eps, -3, 3) sigma'_j from the target critics j = 1, 2.
- twin value distribution learning: per sample j* = argmin_j mu'_j (the lower mean);
- expected value substitution: the mean is learned from the expected target
      y   = r + gamma (1 - d) (mu'_{j*} - alpha log pi(a'|s')),
  the std from the sampled target y_s = r + gamma (1 - d) (z'_{j*} - alpha log pi(a'|s')),
  clipped around the current mean: y_b,i = mu_i + clip(y_s - mu_i, -xi sigma_bar_i, xi sigma_bar_i), xi = 3;
- variance-based critic gradient adjustment: sigma_bar_i <- (1 - tau_b) sigma_bar_i + tau_b mean_B(sigma_i)
  (initialised to the first batch's mean), and the surrogate (sg = stop-gradient, eps_b = `std_bias`)
      L_i = (sigma_bar_i^2 + eps_b) mean_B[ -(y - mu_i,sg) / (sigma_i,sg^2 + eps_b) mu_i
                                           - ((mu_i,sg - y_b,i)^2 - sigma_i,sg^2) / (sigma_i,sg^3 + eps_b) sigma_i ],
  whose gradient is the Gaussian negative log-likelihood gradient of -log Z_i(y | s, a) in mu and of
  -log Z_i(y_b | s, a) in sigma, scaled by omega = sigma_bar^2 + eps_b (`critic_loss = "paper"`).
  `critic_loss = "huber"` is the authors' 2025 code (c5105eb): per-sample ratio
  r = clip(sigma_bar^2 / (sigma_sg^2 + eps_b), 0.1, 10) and
      L_i = mean_B[ r (Huber_delta(mu_i, y) + sigma_i (sigma_sg^2 - Huber_delta(mu_sg, y_b)) / (sigma_sg + eps_b)) ].
- actor: J_pi = mean_B[alpha log pi(a~|s) - min_i mu_i(s, a~)], a~ ~ pi reparameterised, critics frozen;
- temperature: J(alpha) = -log alpha mean_B(log pi(a~|s) + Hbar)_sg, Hbar = -|A|.
The critics' and the actor's gradients come from the networks before this update (as the code:
all gradients, then the steps). Critics step every update; every `policy_delay` updates (the first
one included) the actor and alpha step, then all targets (both critics, the policy) move by tau.
Policy: tanh-Gaussian, log sigma clamped to [log_std_min, log_std_max]; the log-density includes the
affine rescale to the environment's bounds, -sum log((high - low) / 2), as the code's distribution
does (it matters for the temperature); evaluation action tanh(mean).
Implementation notes (same maths): both critics are one batched network with one Adam (Adam is
element-wise, so this equals the code's two optimisers); members' losses are summed, so each member's
gradients are its own; gradients by autograd; the actor's and alpha's gradients are computed only on
the updates that step them (the code computes and discards them on the others).
Deviation: the tanh Jacobian is the exact log(1 - tanh^2) (the code adds 1e-6 inside the log).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update, tanh_gaussian

CRITIC_LOSSES = ("paper", "huber")


@dataclass(frozen=True)
class DSACTConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")     # Polyak rate of the target critics and the target policy
    tau_b: float = hp("(0, 1]")   # rate of the moving average sigma_bar of the critics' std
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    alpha_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    activation: str = hp(choices=("gelu", "relu", "tanh"))  # hidden activation of every network: "gelu" (code), "relu", "tanh"
    policy_delay: int = hp("[1, inf)")  # the code's delay_update
    initial_log_alpha: float = hp("(-inf, inf)")
    target_entropy: float | str = hp("(-inf, inf)", choices=("auto",))  # "auto" = -|A|
    reward_scale: float = hp("(0, inf)")
    clip_boundary: float = hp("(0, inf)")  # xi: the sampled target is clipped to mu +- xi sigma_bar
    std_bias: float = hp("[0, inf)")  # eps_b ("bias" in the code)
    sample_clip: float = hp("(0, inf)")  # the standard-normal draw of a target sample is clipped to +-this
    critic_loss: str = hp(choices=CRITIC_LOSSES)  # "paper" or "huber" (the code since 2025-07)
    huber_delta: float = hp("(0, inf)")  # delta of the "huber" loss
    log_std_min: float = hp("(-inf, inf)", below="log_std_max")
    log_std_max: float = hp("(-inf, inf)")


# --- the critic loss, as pure functions of tensors (tests call these) -------------------------
def update_sigma_bar(sigma_bar: torch.Tensor, sigma: torch.Tensor, tau_b: float) -> torch.Tensor:
    """sigma_bar (P, 2) <- (1 - tau_b) sigma_bar + tau_b mean_B(sigma), sigma (P, 2, B); a negative
    sigma_bar means "not set yet" and takes the batch mean (the code's -1 sentinel)."""
    batch_mean = sigma.detach().mean(-1)
    return torch.where(sigma_bar < 0, batch_mean, torch.lerp(sigma_bar, batch_mean, tau_b))


def clipped_sample_target(mu: torch.Tensor, target_sample: torch.Tensor, sigma_bar: torch.Tensor,
                          clip_boundary: float) -> torch.Tensor:
    """y_b,i = mu_i + clip(y_s - mu_i, -xi sigma_bar_i, xi sigma_bar_i). mu (P, 2, B), target_sample
    (P, B), sigma_bar (P, 2)."""
    bound = (clip_boundary * sigma_bar).unsqueeze(-1)
    mu = mu.detach()
    return mu + torch.maximum(torch.minimum(target_sample.unsqueeze(1) - mu, bound), -bound)


def critic_surrogate(mu: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor, target_bound: torch.Tensor,
                     sigma_bar: torch.Tensor, std_bias: float, kind: str = "paper",
                     huber_delta: float = 50.0) -> torch.Tensor:
    """Per-critic surrogate loss (P, 2) whose gradient is DSAC-T's critic update.

    mu, sigma (P, 2, B) with gradients; target y (P, B), the expected-value target; target_bound
    y_b (P, 2, B), the clipped sampled target; sigma_bar (P, 2). See the module docstring."""
    sigma_sg = sigma.detach().clamp(min=0.0)
    mu_sg = mu.detach()
    y = target.unsqueeze(1)
    sigma_bar = sigma_bar.unsqueeze(-1)
    if kind == "paper":
        mean_part = -(y - mu_sg) / (sigma_sg.pow(2) + std_bias) * mu
        std_part = -((mu_sg - target_bound).pow(2) - sigma_sg.pow(2)) / (sigma_sg.pow(3) + std_bias) * sigma
        return (sigma_bar.pow(2) + std_bias).squeeze(-1) * (mean_part + std_part).mean(-1)
    ratio = (sigma_bar.pow(2) / (sigma_sg.pow(2) + std_bias)).clamp(0.1, 10.0)
    mean_part = F.huber_loss(mu, y.expand_as(mu), reduction="none", delta=huber_delta)
    std_part = sigma * (sigma_sg.pow(2) - F.huber_loss(mu_sg, target_bound, reduction="none", delta=huber_delta)) \
        / (sigma_sg + std_bias)
    return (ratio * (mean_part + std_part)).mean(-1)


class DSACT(Agent):
    name = "dsac_t"
    summary = "DSAC-T (Duan et al. 2025): twin Gaussian value distributions, variance-scaled critic gradients"
    loop = "off_policy"
    Config = DSACTConfig

    def __init__(self, observation_space, action_space, config: DSACTConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        auto = config.target_entropy == "auto"
        self.target_entropy = -float(act_dim) if auto else float(config.target_entropy)
        low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
        # log |d(env action)/d(tanh)| per sample: the harness maps [-1, 1] affinely onto [low, high]
        finite = np.isfinite(low).all() and np.isfinite(high).all()
        self.log_action_scale = float(np.log((high - low) / 2).sum()) if finite else 0.0
        self.act_dim = act_dim
        hidden, act = list(config.hidden_sizes), config.activation
        self.actor = PopMLP(population, [obs_dim, *hidden, 2 * act_dim], activation=act)
        self.critic = PopMLP(population, [obs_dim + act_dim, *hidden, 2], copies=2, activation=act)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(
            torch.full((population.size,), float(config.initial_log_alpha), device=population.device))
        self.register_buffer("sigma_bar", torch.full((population.size, 2), -1.0, device=population.device))
        self.optimizers = {
            "actor": adam(self.actor.parameters(), config.actor_lr),
            "critic": adam(self.critic.parameters(), config.critic_lr),
            "alpha": adam([self.log_alpha], config.alpha_lr),
        }
        self.updates = 0
        zeros = torch.zeros(population.size, device=population.device)
        self.last_actor_loss, self.last_entropy = zeros, zeros.clone()

    # --- networks ---------------------------------------------------------------------------
    def _policy(self, actor: PopMLP, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = actor(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.config.log_std_min, self.config.log_std_max).exp()

    def _sample(self, actor: PopMLP, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised a ~ pi(.|s) in [-1, 1] and its log-density in environment units."""
        mean, std = self._policy(actor, obs)
        action, log_prob = tanh_gaussian(mean, std, self.population.randn(obs.shape[1], self.act_dim))
        return action, log_prob - self.log_action_scale

    @staticmethod
    def value_distribution(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic output (P, 2, B, 2) -> mean and std (P, 2, B) of each value distribution."""
        return out[..., 0], F.softplus(out[..., 1])

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self._policy(self.actor, obs)[0])
        return self._sample(self.actor, obs)[0]

    # --- update -----------------------------------------------------------------------------
    @torch.no_grad()
    def targets(self, batch: Batch, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, y_s), each (P, B): the expected-value target and the sampled target, both from the target
        critic with the lower mean at (s', a'), a' ~ pi_target."""
        cfg = self.config
        next_action, next_log_prob = self._sample(self.actor_target, batch.next_obs)
        mu_next, sigma_next = self.value_distribution(
            self.critic_target(torch.cat([batch.next_obs, next_action], -1)))
        noise = self.population.randn(2, batch.reward.shape[1]).clamp(-cfg.sample_clip, cfg.sample_clip)
        sample_next = mu_next + noise * sigma_next
        chosen = mu_next.argmin(dim=1, keepdim=True)                     # twin: the lower mean, per sample
        q_next = mu_next.gather(1, chosen).squeeze(1)
        q_next_sample = sample_next.gather(1, chosen).squeeze(1)
        not_done = cfg.gamma * (1.0 - batch.terminated)
        reward = cfg.reward_scale * batch.reward
        soft = alpha * next_log_prob
        return reward + not_done * (q_next - soft), reward + not_done * (q_next_sample - soft)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        alpha = self.log_alpha.detach().exp()[:, None]                       # (P, 1)
        target, target_sample = self.targets(batch, alpha)

        # critics
        mu, sigma = self.value_distribution(self.critic(torch.cat([batch.obs, batch.action], -1)))
        self.sigma_bar.copy_(update_sigma_bar(self.sigma_bar, sigma, cfg.tau_b))
        target_bound = clipped_sample_target(mu, target_sample, self.sigma_bar, cfg.clip_boundary)
        critic_loss = critic_surrogate(mu, sigma, target, target_bound, self.sigma_bar, cfg.std_bias,
                                       cfg.critic_loss, cfg.huber_delta)              # (P, 2)
        critic_params = list(self.critic.parameters())
        critic_grads = torch.autograd.grad(critic_loss.sum(), critic_params)

        step_policy = self.updates % cfg.policy_delay == 0
        if step_policy:
            # actor, through the critics before their step (their parameters get no gradient)
            action, log_prob = self._sample(self.actor, batch.obs)
            mu_pi, _ = self.value_distribution(self.critic(torch.cat([batch.obs, action], -1)))
            actor_loss = (alpha * log_prob - mu_pi.min(dim=1).values).mean(-1)        # (P,)
            actor_params = list(self.actor.parameters())
            for p, g in zip(actor_params, torch.autograd.grad(actor_loss.sum(), actor_params)):
                p.grad = g
            # temperature: d/dlog alpha of -log alpha mean(log pi + Hbar)
            log_prob = log_prob.detach()
            self.log_alpha.grad = -(log_prob + self.target_entropy).mean(-1)
            self.last_actor_loss, self.last_entropy = actor_loss.detach(), -log_prob.mean(-1)

        for p, g in zip(critic_params, critic_grads):
            p.grad = g
        self.optimizers["critic"].step()
        if step_policy:
            self.optimizers["actor"].step()
            self.optimizers["alpha"].step()
            polyak_update(self.critic_target, self.critic, cfg.tau)
            polyak_update(self.actor_target, self.actor, cfg.tau)
        self.updates += 1
        return {
            "critic_loss": critic_loss.detach().sum(1),
            "q_mean": mu.detach().mean((1, 2)),
            "q_std": sigma.detach().mean((1, 2)),
            "sigma_bar": self.sigma_bar.mean(1),
            "actor_loss": self.last_actor_loss,
            "alpha": alpha.squeeze(1),
            "entropy": self.last_entropy,
        }

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates, "last_actor_loss": self.last_actor_loss, "last_entropy": self.last_entropy}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
        self.last_actor_loss, self.last_entropy = state["last_actor_loss"], state["last_entropy"]
