"""H2O: Niu et al., NeurIPS 2022, "When to Trust Your Simulator: Dynamics-Aware Hybrid Offline-and-Online
Reinforcement Learning" (arXiv 2206.13464), as in the authors' code (t6-thu/H2O@bc98dc0: SimpleSAC/
sim2real_sac.py, sim2real_sac_main.py, model.py, Network/Weight_net.py). Trained by the hybrid loop
(`drlbench.loops.hybrid`): a fixed real dataset plus a FIFO buffer of the agent's own transitions in a
simulator whose dynamics differ; evaluated in the real environment only.

Per population member, one `update` does, in the order of `Sim2realSAC.train`:
1. discriminators (`train_discriminator`), on their own minibatch of real and sim (s, a, s'), each input
   perturbed by N(0, `discriminator_noise`^2): D_sa(s, a) and D_sas(s, a, s') are MLPs whose two logits
   are 2 tanh(.) (class 0 = real, 1 = sim); P_sa = softmax(D_sa), P_sas = softmax(D_sas + D_sa). Losses
   (cross-entropy) L_sa = E_real[-log P_sa(0)] + E_sim[-log P_sa(1)], L_sas the same with P_sas; the code
   back-propagates both, so D_sa's gradient is that of L_sa + L_sas, D_sas's that of L_sas.
2. From here every loss is computed at the parameters before this step's actor / critic / temperature
   updates (the code builds all graphs first, then steps alpha -> policy -> Q):
   - dynamics ratio, paper eq. (6): P_M(s'|s,a) / P_Mhat(s'|s,a) = [P_sas(0)/P_sas(1)] [P_sa(1)/P_sa(0)];
     with D_sa logits (a0, a1) and D_sas logits (b0, b1) it equals exp(b0 - b1) (D_sa cancels).
   - critic, paper eq. (7)-(8): y = r + gamma (1 - d) min_j Qbar_j(s', a'), a' ~ pi(.|s') (no entropy term,
     `backup_entropy = false`), for real and sim samples alike;
       L_Q_i = E_real[(Q_i - y)^2] + E_sim[w (Q_i - y)^2] + beta Penalty_i,   w = clip(ratio, 1e-5, 1),
     Penalty_i = clip(log sum_{sim batch} exp(Q_i(s, a) + log omega(s, a)) - E_real[Q_i(s, a)], -1000, 1000)
     with omega = u / sum_batch u, u(s, a) = clip(mean over N perturbed s~' = s' + N(0, sigma^2) of
     log[P_Mhat/P_M](s, a, s~'), 1e-45, 10) (the dynamics-gap measure, a KL estimate); sigma = the
     per-dimension state std the code takes from its mixed buffer at construction (see
     `state_std_zero_padding`) times `s_prime_std_ratio`; beta = `penalty_weight` (cql_min_q_weight).
   - policy (SAC) on real and sim states together: L_pi = E[alpha log pi(a~|s) - min_j Q_j(s, a~)];
   - temperature: L_alpha = -E[log alpha (log pi(a~|s) + Hbar)], Hbar = -|A|, the same a~.
3. Polyak: Qbar <- tau Q + (1 - tau) Qbar.
Policy (model.py TanhGaussianPolicy): an MLP gives (mean, l); log sigma = clip(m l + o, -20, 2) with m, o
learned scalars (initial 1 and -1, trained by the policy optimiser as the code's `Scalar`s are); the output
layer starts at xavier_uniform(gain 1e-2) weights and zero bias; a = tanh(mean + sigma eps); the
deterministic (evaluation) action is tanh(mean). Critics: two 256-256 ReLU MLPs, same output-layer init.
Implementation: autograd over `PopMLP` (population axis P first); members' losses are summed, so each
member's gradients are its own.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from drlbench.agents.base import Agent
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update, tanh_gaussian


@dataclass(frozen=True)
class H2OConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    alpha_lr: float = hp("(0, inf)")
    discriminator_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    discriminator_hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    target_entropy: float | str = hp("(-inf, inf)", choices=("auto",))   # "auto" = -|A|
    backup_entropy: bool = hp()                        # alpha log pi(a'|s') in the target (code: false)
    discriminator_noise: float = hp("[0, inf)")        # std of the Gaussian noise on D inputs
    ratio_clip_min: float = hp("(0, inf)")
    ratio_clip_max: float = hp("(0, inf)")
    penalty_weight: float = hp("[0, inf)")             # beta, cql_min_q_weight
    penalty_clip: float = hp("(0, inf)")               # |Penalty| <= this (cql_clip_diff_min/max)
    penalty_temperature: float = hp("(0, inf)")        # cql_temp
    u_clip_min: float = hp("(0, inf)")
    u_clip_max: float = hp("(0, inf)")
    next_state_samples: int = hp("[1, inf)")           # N perturbed s~' per sim sample
    s_prime_std_ratio: float = hp("[0, inf)")          # sigma multiplier for s~'
    state_std_zero_padding: float = hp("[0, inf)")     # zero rows per data row in the std (code: 10; 0: data std)
    log_std_min: float = hp("(-inf, inf)", below="log_std_max")
    log_std_max: float = hp("(-inf, inf)")
    log_std_multiplier: float = hp("(-inf, inf)")      # initial m of log sigma = m l + o (learned)
    log_std_offset: float = hp("(-inf, inf)")          # initial o (learned)
    output_init_gain: float = hp("(0, inf)")           # xavier_uniform gain of the policy / Q output layers


def xavier_uniform_(layer, population, gain: float) -> None:
    """torch.nn.init.xavier_uniform_(weight, gain) and zero bias, per member and copy, from the member's stream."""
    m, fan_in, fan_out = layer.weight.shape
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        for index in range(m):
            layer.weight[index].uniform_(-bound, bound, generator=population.generators[index // layer.copies])
        layer.bias.zero_()


def dynamics_log_ratio(sa_logits: torch.Tensor, sas_logits: torch.Tensor) -> torch.Tensor:
    """log[P_M(s'|s,a) / P_Mhat(s'|s,a)] = log P_sas(0) - log P_sas(1) - log P_sa(0) + log P_sa(1), from the
    2-logit outputs of D_sa and D_sas (..., 2); P_sas = softmax(D_sas + D_sa)."""
    log_sa = F.log_softmax(sa_logits, -1)
    log_sas = F.log_softmax(sas_logits + sa_logits, -1)
    return log_sas[..., 0] - log_sas[..., 1] - log_sa[..., 0] + log_sa[..., 1]


def importance_weight(sa_logits, sas_logits, low: float, high: float) -> torch.Tensor:
    """w = clip(P_M / P_Mhat, low, high): the weight of a sim sample's Bellman error (code: 1e-5, 1)."""
    return dynamics_log_ratio(sa_logits, sas_logits).exp().clamp(low, high)


def gap_penalty(q_sim: torch.Tensor, q_real: torch.Tensor, u: torch.Tensor, temperature: float,
                clip: float) -> torch.Tensor:
    """clip(T logsumexp_batch((Q(s_sim, a_sim) + log omega) / T) - mean Q(s_real, a_real), -clip, clip) with
    omega = u / sum_batch u. q_sim (..., Bs), q_real (..., Br), u (..., Bs) broadcastable; sums over the last axis."""
    omega = u / u.sum(-1, keepdim=True)
    gap = torch.logsumexp((q_sim + omega.log()) / temperature, -1) * temperature
    return (gap - q_real.mean(-1)).clamp(-clip, clip)


class H2O(Agent):
    name = "h2o"
    summary = "H2O (Niu et al. 2022): SAC on real data + a simulator, dynamics-ratio weights and gap penalty"
    loop = "hybrid"
    Config = H2OConfig

    def __init__(self, observation_space, action_space, config: H2OConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.target_entropy = -float(act_dim) if config.target_entropy == "auto" else float(config.target_entropy)
        hidden, p, dev = list(config.hidden_sizes), population.size, population.device
        self.actor = PopMLP(population, [obs_dim, *hidden, 2 * act_dim])
        self.critic = PopMLP(population, [obs_dim + act_dim, *hidden, 1], copies=2)
        for network in (self.actor, self.critic):
            xavier_uniform_(network.layers[-1], population, config.output_init_gain)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_std_scale = torch.nn.Parameter(torch.full((p, 1, 1), config.log_std_multiplier, device=dev))
        self.log_std_shift = torch.nn.Parameter(torch.full((p, 1, 1), config.log_std_offset, device=dev))
        self.log_alpha = torch.nn.Parameter(torch.zeros(p, device=dev))
        d_hidden = list(config.discriminator_hidden_sizes)
        self.d_sa = PopMLP(population, [obs_dim + act_dim, *d_hidden, 2])
        self.d_sas = PopMLP(population, [2 * obs_dim + act_dim, *d_hidden, 2])
        self.register_buffer("state_std", torch.ones(obs_dim, device=dev))
        self.optimizers = {
            "actor": adam([*self.actor.parameters(), self.log_std_scale, self.log_std_shift], config.actor_lr),
            "critic": adam(self.critic.parameters(), config.critic_lr),
            "alpha": adam([self.log_alpha], config.alpha_lr),
            "d_sa": adam(self.d_sa.parameters(), config.discriminator_lr),
            "d_sas": adam(self.d_sas.parameters(), config.discriminator_lr),
        }

    # --- the data's state scale ---------------------------------------------------------------
    def attach_dataset(self, observations: torch.Tensor, actions: torch.Tensor, total_updates: int) -> None:
        """sigma of the perturbed next states: the code's MixedReplayBuffer std, taken at construction over
        the data followed by `state_std_zero_padding` x as many zero rows (np.std, ddof 0), + 1e-3."""
        k = self.config.state_std_zero_padding
        x = observations.double()
        mean, square = x.mean(0) / (1.0 + k), (x * x).mean(0) / (1.0 + k)
        std = (square - mean * mean).clamp_min(0.0).sqrt() + 1e-3
        self.state_std.copy_(std.to(self.state_std))

    # --- networks -----------------------------------------------------------------------------
    def _policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.actor(obs).chunk(2, dim=-1)
        log_std = (self.log_std_scale * raw + self.log_std_shift).clamp(self.config.log_std_min, self.config.log_std_max)
        return mean, log_std.exp()

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self._policy(obs)
        return tanh_gaussian(mean, std, self.population.randn(obs.shape[1], self.act_dim))

    def discriminate(self, obs, action, next_obs) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_sa, D_sas) logits, each (P, B, 2), bounded by 2 tanh."""
        sa = torch.cat([obs, action], -1)
        return (2.0 * torch.tanh(self.d_sa(sa)),
                2.0 * torch.tanh(self.d_sas(torch.cat([sa, next_obs], -1))))

    def log_ratio(self, obs, action, next_obs) -> torch.Tensor:
        """log[P_M/P_Mhat](s, a, s') (P, B) = `dynamics_log_ratio` of (D_sa, D_sas), computed as b0 - b1 from
        D_sas's logits alone: the D_sa terms cancel (to float rounding), so D_sa need not run here."""
        logits = 2.0 * torch.tanh(self.d_sas(torch.cat([obs, action, next_obs], -1)))
        return logits[..., 0] - logits[..., 1]

    def dynamics_gap(self, obs, action, next_obs) -> torch.Tensor:
        """u(s, a) (P, B): the mean of log[P_Mhat/P_M] over N perturbed next states, clipped."""
        cfg = self.config
        n = cfg.next_state_samples
        p, b, _ = obs.shape
        repeat = lambda x: x.repeat_interleave(n, dim=1)
        noisy = repeat(next_obs) + self.population.randn(b * n, self.obs_dim) * (self.state_std * cfg.s_prime_std_ratio)
        log_ratio = -self.log_ratio(repeat(obs), repeat(action), noisy)
        return log_ratio.view(p, b, n).mean(-1).clamp(cfg.u_clip_min, cfg.u_clip_max)

    def _q(self, network: PopMLP, obs, action) -> torch.Tensor:
        return network(torch.cat([obs, action], -1)).squeeze(-1)        # (P, 2, B)

    # --- the harness contract -----------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        mean, std = self._policy(obs)
        if deterministic:
            return torch.tanh(mean)
        return torch.tanh(mean + std * self.population.randn(obs.shape[1], self.act_dim))

    def update(self, batch) -> dict[str, torch.Tensor]:
        """`batch`: a `drlbench.loops.MixedBatch` (real, sim, discriminator_real, discriminator_sim)."""
        cfg = self.config
        dsa_loss, dsas_loss = self._discriminator_step(batch.discriminator_real, batch.discriminator_sim)
        real, sim = batch.real, batch.sim
        br = real.reward.shape[1]

        # the dynamics-gap quantities, from the discriminators just updated (no gradient)
        with torch.no_grad():
            weight = self.log_ratio(sim.obs, sim.action, sim.next_obs).exp().clamp(cfg.ratio_clip_min,
                                                                                   cfg.ratio_clip_max)
            u = self.dynamics_gap(sim.obs, sim.action, sim.next_obs)
            alpha = self.log_alpha.exp()[:, None]
            next_obs = torch.cat([real.next_obs, sim.next_obs], 1)
            next_action, next_log_pi = self._sample(next_obs)
            target_q = self._q(self.critic_target, next_obs, next_action).min(1).values
            if cfg.backup_entropy:
                target_q = target_q - alpha * next_log_pi
            reward = torch.cat([real.reward, sim.reward], 1)
            done = torch.cat([real.terminated, sim.terminated], 1)
            y = reward + cfg.gamma * (1.0 - done) * target_q                   # (P, Br + Bs)

        # policy and temperature on real and sim states, through the critics before their step
        obs = torch.cat([real.obs, sim.obs], 1)
        action, log_pi = self._sample(obs)
        alpha_loss = -(self.log_alpha[:, None] * (log_pi.detach() + self.target_entropy)).mean(-1)
        q_pi = self._q(self.critic, obs, action).min(1).values
        actor_loss = (alpha * log_pi - q_pi).mean(-1)

        # critics: real Bellman error + weighted sim Bellman error + the dynamics-gap penalty
        q = self._q(self.critic, torch.cat([real.obs, sim.obs], 1), torch.cat([real.action, sim.action], 1))
        error = (q - y.unsqueeze(1)).pow(2)                                     # (P, 2, Br + Bs)
        real_loss, sim_loss = error[..., :br].mean(-1), (weight.unsqueeze(1) * error[..., br:]).mean(-1)
        penalty = gap_penalty(q[..., br:], q[..., :br], u.unsqueeze(1), cfg.penalty_temperature, cfg.penalty_clip)
        critic_loss = (real_loss + sim_loss + cfg.penalty_weight * penalty).sum(1)

        actor_params = [*self.actor.parameters(), self.log_std_scale, self.log_std_shift]
        critic_params = list(self.critic.parameters())
        grads = torch.autograd.grad(actor_loss.sum(), actor_params, retain_graph=True)
        (self.log_alpha.grad,) = torch.autograd.grad(alpha_loss.sum(), [self.log_alpha])
        critic_grads = torch.autograd.grad(critic_loss.sum(), critic_params)
        for param, grad in zip(actor_params, grads):
            param.grad = grad
        for param, grad in zip(critic_params, critic_grads):
            param.grad = grad
        self.optimizers["alpha"].step()      # the code's order: alpha, policy, Q, then the targets
        self.optimizers["actor"].step()
        self.optimizers["critic"].step()
        polyak_update(self.critic_target, self.critic, cfg.tau)
        return {
            "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(), "alpha": alpha.squeeze(1),
            "real_q_loss": real_loss.sum(1).detach(), "sim_q_loss": sim_loss.sum(1).detach(),
            "gap_penalty": penalty.mean(1).detach(), "dsa_loss": dsa_loss, "dsas_loss": dsas_loss,
            "sim_weight": weight.mean(-1), "u_sa": u.mean(-1), "entropy": -log_pi.detach().mean(-1),
        }

    def _discriminator_step(self, real, sim) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of D_sa and D_sas, real -> class 0, sim -> class 1, on noisy inputs; one Adam step each."""
        sigma = self.config.discriminator_noise
        noisy = lambda x: x + sigma * self.population.randn(*x.shape[1:]) if sigma > 0 else x
        inputs = [noisy(x) for x in (real.obs, real.action, real.next_obs, sim.obs, sim.action, sim.next_obs)]
        real_sa, real_sas = self.discriminate(*inputs[:3])
        sim_sa, sim_sas = self.discriminate(*inputs[3:])
        dsa_loss = -(F.log_softmax(real_sa, -1)[..., 0].mean(-1) + F.log_softmax(sim_sa, -1)[..., 1].mean(-1))
        dsas_loss = -(F.log_softmax(real_sas + real_sa, -1)[..., 0].mean(-1)
                      + F.log_softmax(sim_sas + sim_sa, -1)[..., 1].mean(-1))
        for key in ("d_sa", "d_sas"):
            self.optimizers[key].zero_grad(set_to_none=True)
        (dsa_loss + dsas_loss).sum().backward()
        self.optimizers["d_sa"].step()
        self.optimizers["d_sas"].step()
        return dsa_loss.detach(), dsas_loss.detach()
