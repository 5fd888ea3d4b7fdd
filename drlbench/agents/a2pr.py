"""A2PR: Liu, Li, Lan, Gao, Pan, Xu, "Adaptive Advantage-Guided Policy Regularization for Offline
Reinforcement Learning" (ICML 2024, arXiv 2405.19909), as in the authors' code (ltlhuuu/A2PR@f92a2a4,
A2PR.py train(), core/network/{actor,critic}.py, utils/config.py). Summary: specs/algorithms.md §8.

Networks: actor mu(s) (3 x 256 ReLU, tanh); twin critic Q1, Q2 (4 x 256 each); value V(s) (4 x 256);
a BCQ-style VAE: encoder [s, a] -> 750 -> 750 -> (m, log sigma clamped to [-4, 15]), z = m + sigma eps,
latent dim 2|A|, decoder [s, z] -> 750 -> 750 -> tanh.
Per population member, one `update` does, in the code's order:
1. critic: TD3's step (drlbench.agents.td3, hand-written gradients): a~' = clip(mu'(s') + clip(eps, -c, c), -1, 1),
   y_tgt = r + gamma (1 - d) min_i Qbar_i(s', a~'), loss MSE(Q1, y_tgt) + MSE(Q2, y_tgt);
2. value: y_cur = r + gamma (1 - d) min_i Q_i(s', a~') with the just-updated online critic (same a~'),
   loss MSE(V(s), min(y_cur, y_tgt));
3. VAE ("elevating positive behaviour learning"), with A(s, a) = Q1(s, a) - V(s):
   loss = mean(vae_weight 1[Q1(s, a) > V(s)] (a_rec - a)^2) + 0.5 KL, KL = -1/2 mean(1 + log sigma^2 - m^2 - sigma^2)
   (means over batch and action / latent dims), a_rec the reconstruction of the dataset action;
4. every `policy_delay` updates, the actor:
     pi = mu(s), lambda = alpha / mean|Q1(s, pi)| (detached), a_vae = VAE reconstruction of (s, pi),
     A_data = Q1(s, a) - V(s), A_vae = Q1(s, a_vae) - V(s),
     target = a_vae where A_vae >= A_data, else a (the advantage-guided target action),
     w = mask 1[Q1(s, a_vae) >= V(s) or Q1(s, a) > V(s)],
     L_actor = -lambda mean Q1(s, pi) + mean(w (pi - target)^2),
   then Polyak updates (tau) of the critic and actor targets (V has no target network).
As in the code: the target a_vae is NOT detached (the BC term differentiates through the VAE into pi;
only the actor's parameters step); V(s) in steps 3 and 4 is the value computed before step 2's
update; Q1(s, a) in steps 3 and 4 is the critic after step 1; the paper's advantage threshold
epsilon is 0.
The weight w: the code adds two boolean tensors, which in torch is a logical OR, so w is mask or 0
(not 0, mask or 2 mask, as a sum of indicators would give). We keep the code's OR.

Differences from the code: `act` is the deterministic policy whether or not `deterministic` is set;
actions live in [-1, 1] (the code uses the environment's units: the same for D4RL, bounds +-1);
the VAE's mean and log-sigma heads are one output layer of width 2 x latent (the same function and
initial distribution as the code's two heads).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from drlbench.agents._offline import frozen, q1, q_normaliser
from drlbench.agents.base import Batch
from drlbench.agents.td3 import TD3
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update

LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0   # A2PR.py VAE.forward clamp


@dataclass(frozen=True)
class A2PRConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    value_lr: float = hp("(0, inf)")
    vae_lr: float = hp("(0, inf)")
    actor_hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    critic_hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    value_hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    vae_hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    policy_noise: float = hp("[0, inf)")
    noise_clip: float = hp("[0, inf)")
    policy_delay: int = hp("[1, inf)")
    alpha: float = hp("[0, inf)")        # Q-term weight: lambda = alpha / mean|Q|
    vae_weight: float = hp("[0, inf)")   # weight of positive-advantage reconstructions in the VAE loss
    mask: float = hp("[0, inf)")         # weight of the advantage-guided BC term


class A2PR(TD3):
    name = "a2pr"
    summary = ("A2PR (Liu et al. 2024): TD3+BC towards the dataset or advantage-weighted-VAE action, "
               "whichever has the higher advantage")
    loop = "offline"
    Config = A2PRConfig
    graph_cycle = None   # offline loop: no CUDA-graph path
    compiled_parts = ()  # nor a compiled one
    ACTOR_METRICS = ("actor_loss", "bc_loss", "q_pi", "vae_target_fraction", "bc_weight")

    def __init__(self, observation_space, action_space, config: A2PRConfig, population):
        super().__init__(observation_space, action_space, config, population)   # actor, twin critic, targets
        obs_dim = self.continuous_dims(observation_space, action_space)[0]
        self.latent_dim = 2 * self.act_dim
        vae = list(config.vae_hidden_sizes)
        self.value = PopMLP(population, [obs_dim, *config.value_hidden_sizes, 1])
        self.encoder = PopMLP(population, [obs_dim + self.act_dim, *vae, 2 * self.latent_dim])
        self.decoder = PopMLP(population, [obs_dim + self.latent_dim, *vae, self.act_dim])
        self.optimizers["value"] = adam(self.value.parameters(), config.value_lr)
        self.optimizers["vae"] = adam([*self.encoder.parameters(), *self.decoder.parameters()], config.vae_lr)

    @staticmethod
    def hidden_sizes(config) -> tuple[list[int], list[int]]:
        return list(config.actor_hidden_sizes), list(config.critic_hidden_sizes)

    def vae(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, m, log sigma) of `action` (P, B, act_dim): z = m + sigma eps, eps from the members'
        generators."""
        mean, log_std = self.encoder(torch.cat([obs, action], -1)).split(self.latent_dim, -1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        z = mean + log_std.exp() * self.population.randn(obs.shape[1], self.latent_dim)
        return torch.tanh(self.decoder(torch.cat([obs, z], -1))), mean, log_std

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return torch.tanh(self.actor(obs))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        with torch.no_grad():
            critic_loss, next_input, y_tgt = self._critic_step(batch)                # 1. TD3 critic
        # 2. value, towards min(y with the updated online critic, y with the target critic)
        with torch.no_grad():
            next_q = self.critic(next_input).squeeze(-1).min(1).values                # online critic, after step 1
            y_cur = batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_q
            value_target = torch.minimum(y_cur, y_tgt)
            q_data = q1(self.critic, batch.obs, batch.action)                        # Q1(s, a), (P, B)
        v = self.value(batch.obs).squeeze(-1)
        value_loss = (v - value_target).pow(2).mean(-1)
        self.optimizers["value"].zero_grad(set_to_none=True)
        value_loss.sum().backward()
        self.optimizers["value"].step()
        v = v.detach()                                                               # V(s) before this step's update
        # 3. advantage-weighted VAE on the dataset actions
        recon, mean, log_std = self.vae(batch.obs, batch.action)
        weight = cfg.vae_weight * (q_data > v).to(recon.dtype).unsqueeze(-1)
        recon_loss = (weight * (recon - batch.action).pow(2)).mean((1, 2))
        kl_loss = -0.5 * (1.0 + 2.0 * log_std - mean.pow(2) - (2.0 * log_std).exp()).mean((1, 2))
        vae_loss = recon_loss + 0.5 * kl_loss
        self.optimizers["vae"].zero_grad(set_to_none=True)
        vae_loss.sum().backward()
        self.optimizers["vae"].step()

        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            self.last_actor = self.actor_step(batch, q_data, v)
            polyak_update(self.critic_target, self.critic, cfg.tau)
            polyak_update(self.actor_target, self.actor, cfg.tau)
        return {"critic_loss": critic_loss, "value_loss": value_loss.detach(), "vae_loss": vae_loss.detach(),
                "recon_loss": recon_loss.detach(), "kl_loss": kl_loss.detach(), **self.last_actor}

    def bc_target(self, action: torch.Tensor, recon_pi: torch.Tensor, q_data: torch.Tensor, q_vae: torch.Tensor,
                  v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target action (P, B, act_dim), weight (P, B, 1), VAE-chosen (P, B)) of the advantage-guided BC term:
        the VAE action where its advantage is at least the dataset action's, weight mask where either action
        has Q1 above V (>= for the VAE action, > for the dataset action, as the code)."""
        choose_vae = (q_vae - v) >= (q_data - v)
        target = torch.where(choose_vae.unsqueeze(-1), recon_pi, action)     # recon_pi keeps its graph
        weight = self.config.mask * ((q_vae >= v) | (q_data > v)).to(action.dtype).unsqueeze(-1)
        return target, weight, choose_vae

    def actor_step(self, batch: Batch, q_data: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
        pi = torch.tanh(self.actor(batch.obs))
        with frozen(self.critic, self.encoder, self.decoder):
            q = q1(self.critic, batch.obs, pi)                                       # (P, B)
            recon_pi, _, _ = self.vae(batch.obs, pi)                                 # differentiable in pi
            with torch.no_grad():
                q_vae = q1(self.critic, batch.obs, recon_pi)
        lam = q_normaliser(self.config.alpha, q)
        target, weight, choose_vae = self.bc_target(batch.action, recon_pi, q_data, q_vae, v)
        bc_loss = (weight * (pi - target).pow(2)).mean((1, 2))
        loss = -(lam * q).mean(-1) + bc_loss
        self.optimizers["actor"].zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optimizers["actor"].step()
        return {"actor_loss": loss.detach(), "bc_loss": bc_loss.detach(), "q_pi": q.detach().mean(-1),
                "vae_target_fraction": choose_vae.to(q.dtype).mean(-1), "bc_weight": weight.mean((1, 2))}
