"""One-Step Flow Q-learning (OFQL): Nguyen & Yoo, "Revisiting Diffusion Q-Learning: From Iterative
Denoising to One-Step Action Generation" (arXiv 2508.13904, ICLR 2026); specs/algorithms.md §10. No
official code was found; the actor-critic around the flow policy is Diffusion-QL's (Wang et al. 2023,
Zhendong-Wang/Diffusion-Policies-for-Offline-RL@a37a009 agents/ql_diffusion.py, agents/model.py, main.py).

Policy: a linear flow path between the data action a (t = 0) and noise eps ~ N(0, I) (t = 1),
    a_t = (1 - t) a + t eps,   v_t = eps - a,
and an average-velocity network u_theta(a_t, r, t; s) ~ 1/(t - r) int_r^t v(a_tau, tau; s) dtau
(MeanFlow, Geng et al. 2025): input [a_t, e_t(t), e_r(r), s] -> 3 x 256 Mish -> |A|, with DQL's time
MLP (sinusoidal 16 -> Linear 32 -> Mish -> Linear 16) for t and a second one of the same shape for r.
One-step sampling: a = eps - u_theta(eps, 0, 1; s), clipped to [-1, 1] as DQL's sampler clips; with
`sampling_steps` K > 1, K MeanFlow steps z <- z - (t_k - t_{k+1}) u_theta(z, t_{k+1}, t_k; s) on the grid
t_k = 1 - k/K (K = 1 is OFQL's sampler; the Q loss backpropagates through all K steps, as DQL's).

Per population member, one `update` does, in the order of DQL's `train`:
- critic (DQL): y = r + gamma (1 - d) min_i Qbar_i(s', a'), a' sampled from the EMA actor (with
  `max_q_backup`: `backup_samples` actions, max over them per head, then the min over heads);
  L = MSE(Q_1(s, a), y) + MSE(Q_2(s, a), y); gradient norm clipped at `grad_norm` (per member);
- actor: the flow behaviour loss (MeanFlow identity, paper eq. for L_FBC)
      u_tgt = v_t - (t - r) (v_t . d_a u_theta + d_t u_theta),   L_FBC = E w ||u_theta(a_t, r, t; s) - sg(u_tgt)||^2,
  the total derivative computed in one forward-mode pass, torch.func.jvp with tangent (v_t, 0, 1) for
  (a_t, r, t); (t, r) = (max, min) of two logit-normal(time_mu, time_sigma) draws, and r = t for
  int(flow_ratio B) samples chosen at random (MeanFlow's sample_t_r; flow_ratio = lambda, the fraction
  trained as plain flow matching); ||.||^2 is the mean over action dimensions (DQL's mse_loss) and
  w = sg(1/(||.||^2 + c)^p) MeanFlow's adaptive weight (p = 0: plain MSE). Then
      L = L_FBC - eta E[Q_j(s, a_theta)] / sg(E|Q_k(s, a_theta)|),  a_theta = the (one-step) sample,
  i.e. alpha = eta / E|Q|, with (j, k) = (1, 2) or (2, 1) at random per member and step (DQL,
  `actor_q = "random"`; or "min": j = k = min of the twins; "q1": j = k = 1); gradient norm clipped;
- every `ema_every` steps from step `ema_start` on, the EMA actor <- ema_decay EMA + (1 - ema_decay)
  actor (before then it stays at the initial actor, as DQL's step_ema); critic targets Polyak (tau).

`act` is DQL's sample_action: `act_candidates` samples per state, one drawn with probability
softmax(min_i Qbar_i(s, a)) (or the argmax); `deterministic` changes nothing (DQL evaluates so too).
Where the paper is silent the choices are options (see agents/ofql.toml). Gradients by autograd.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from drlbench.agents._offline import frozen
from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import PopMLP, adam, polyak_update


@dataclass(frozen=True)
class OFQLConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    lr_decay: bool = hp()                     # cosine decay of both step sizes to 0 over the run
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    time_embed_dim: int = hp("[4, inf)")       # sinusoidal width of e_t and e_r (DQL t_dim = 16)
    time_scale: float = hp("(0, inf)")         # the embedding sees time_scale * t
    r_embedding: str = hp(choices=("r", "t_minus_r"))   # what the second embedding reads
    eta: float = hp("[0, inf)")               # Q-loss weight; alpha = eta / E|Q|
    flow_ratio: float = hp("[0, 1]")          # lambda: fraction of the batch with r = t
    time_mu: float = hp("(-inf, inf)")         # logit-normal location
    time_sigma: float = hp("(0, inf)")         # logit-normal scale
    adaptive_p: float = hp("[0, inf)")         # MeanFlow adaptive loss weight power (0 = plain MSE)
    adaptive_c: float = hp("(0, inf)")
    sampling_steps: int = hp("[1, inf)")       # K; 1 = OFQL's one-step sampler
    actor_q: str = hp(choices=("random", "min", "q1"))
    max_q_backup: bool = hp()
    backup_samples: int = hp("[1, inf)")
    grad_norm: float = hp("[0, inf)")         # 0: no clipping
    ema_decay: float = hp("[0, 1]")
    ema_start: int = hp("[0, inf)")
    ema_every: int = hp("[1, inf)")
    act_candidates: int = hp("[1, inf)")       # 1: the plain sample
    act_selection: str = hp(choices=("softmax", "argmax"))


def sinusoidal(x: torch.Tensor, dim: int) -> torch.Tensor:
    """DQL's SinusoidalPosEmb: (..., 1) -> (..., 2 (dim // 2)), [sin(x f_i), cos(x f_i)], f_i = 10000^(-i/(h-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=x.device, dtype=x.dtype) * (-math.log(10000.0) / (half - 1)))
    arg = x * freqs
    return torch.cat([arg.sin(), arg.cos()], -1)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float, p: int) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ per member (every parameter's leading axis is member-major)."""
    grads = [q.grad for q in params if q.grad is not None]
    norm = torch.stack([g.reshape(p, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()       # (P,)
    if max_norm > 0:
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.view(p, -1).mul_(coef.unsqueeze(1))
    return norm


class FlowActor(nn.Module):
    """u_theta(z, r, t; s) with the population axis: z (P, B, A), r and t (P, B, 1), s (P, B, obs)."""

    def __init__(self, population, obs_dim: int, act_dim: int, cfg: OFQLConfig):
        super().__init__()
        width = 2 * (cfg.time_embed_dim // 2)
        self.cfg, self.width = cfg, width
        self.t_mlp = PopMLP(population, [width, 2 * width, width], activation="mish")
        self.r_mlp = PopMLP(population, [width, 2 * width, width], activation="mish")
        self.u = PopMLP(population, [act_dim + 2 * width + obs_dim, *cfg.hidden_sizes, act_dim], activation="mish")

    def forward(self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        second = r if cfg.r_embedding == "r" else t - r
        e_t = self.t_mlp(sinusoidal(cfg.time_scale * t, self.width))
        e_r = self.r_mlp(sinusoidal(cfg.time_scale * second, self.width))
        return self.u(torch.cat([z, e_t, e_r, obs], -1))

    def sample(self, obs: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """K MeanFlow steps from z = noise at t = 1 to t = 0 (K = 1: a = eps - u(eps, 0, 1; s)), clipped."""
        z = noise
        ones = obs.new_ones(*obs.shape[:-1], 1)
        for k in range(steps):
            t, r = 1.0 - k / steps, 1.0 - (k + 1) / steps
            z = z - (t - r) * self(z, ones * r, ones * t, obs)
        return z.clamp(-1.0, 1.0)


class OFQL(Agent):
    name = "ofql"
    summary = "OFQL (Nguyen & Yoo 2025): DQL with a one-step MeanFlow policy (average velocity, JVP target)"
    loop = "offline"
    Config = OFQLConfig

    def __init__(self, observation_space, action_space, config: OFQLConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.act_dim = act_dim
        self.actor = FlowActor(population, obs_dim, act_dim, config)
        self.actor_ema = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = PopMLP(population, [obs_dim + act_dim, *config.hidden_sizes, 1], copies=2, activation="mish")
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizers = {"actor": adam(self.actor.parameters(), config.actor_lr),
                           "critic": adam(self.critic.parameters(), config.critic_lr)}
        self.updates = 0
        self.total_updates: int | None = None

    def attach_dataset(self, observations: torch.Tensor, actions: torch.Tensor, total_updates: int) -> None:
        self.total_updates = int(total_updates)

    # --- pieces (each testable alone) -------------------------------------------------
    def sample_times(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, r), each (P, B, 1): max and min of two logit-normal draws; r = t on int(flow_ratio B) random rows."""
        cfg = self.config
        pair = torch.sigmoid(self.population.randn(b, 2) * cfg.time_sigma + cfg.time_mu)
        t, r = pair.max(-1).values, pair.min(-1).values
        chosen = self.population.rand(b).argsort(-1)[:, :int(cfg.flow_ratio * b)]      # a random subset per member
        same = torch.zeros_like(t, dtype=torch.bool).scatter_(1, chosen, True)
        return t.unsqueeze(-1), torch.where(same, t, r).unsqueeze(-1)

    def flow_loss(self, obs, action, noise, t, r) -> tuple[torch.Tensor, torch.Tensor]:
        """L_FBC per member (P,) (differentiable w.r.t. the actor) and the stop-gradient target u_tgt."""
        cfg = self.config
        a_t = (1.0 - t) * action + t * noise
        v = noise - action
        u, dudt = torch.func.jvp(lambda z, rr, tt: self.actor(z, rr, tt, obs), (a_t, r, t),
                                 (v, torch.zeros_like(r), torch.ones_like(t)))
        target = (v - (t - r) * dudt).detach()
        err = (u - target).pow(2).mean(-1)                                            # (P, B)
        weight = 1.0 / (err.detach() + cfg.adaptive_c).pow(cfg.adaptive_p) if cfg.adaptive_p > 0 else 1.0
        return (weight * err).mean(-1), target

    def q_loss(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-E[Q_j] / sg(E|Q_k|) per member, and alpha = 1 / sg(E|Q_k|) (times eta elsewhere); q (P, 2, B)."""
        kind = self.config.actor_q
        if kind == "random":
            first = self.population.rand(1) > 0.5                                     # (P, 1): DQL's coin
            q_j = torch.where(first, q[:, 0], q[:, 1])
            q_k = torch.where(first, q[:, 1], q[:, 0])
        else:
            q_j = q_k = q.min(1).values if kind == "min" else q[:, 0]
        inv = 1.0 / q_k.detach().abs().mean(-1)
        return -q_j.mean(-1) * inv, inv

    def _lr_scale(self) -> float:
        if not self.config.lr_decay or not self.total_updates:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(self.updates, self.total_updates) / self.total_updates))

    # --- the contract -----------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        cfg = self.config
        p, n, d = obs.shape
        c = cfg.act_candidates
        if c == 1:
            return self.actor.sample(obs, self.population.randn(n, self.act_dim), cfg.sampling_steps)
        rep = obs.unsqueeze(2).expand(p, n, c, d).reshape(p, n * c, d)
        actions = self.actor.sample(rep, self.population.randn(n * c, self.act_dim), cfg.sampling_steps)
        q = self.critic_target(torch.cat([rep, actions], -1)).min(1).values.view(p, n, c)
        if cfg.act_selection == "argmax":
            index = q.argmax(-1)
        else:                                        # one categorical draw per state from the member's generator
            cdf = torch.softmax(q, -1).cumsum(-1)
            index = (cdf < self.population.rand(n, 1)).sum(-1).clamp(max=c - 1)
        return actions.view(p, n, c, -1).gather(2, index[..., None, None].expand(p, n, 1, self.act_dim)).squeeze(2)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        p, b = batch.reward.shape
        scale = self._lr_scale()
        for key, lr in (("actor", cfg.actor_lr), ("critic", cfg.critic_lr)):
            for group in self.optimizers[key].param_groups:
                group["lr"] = lr * scale

        # critic: twin Q regressed on r + gamma (1 - d) min_i Qbar_i(s', a'), a' from the EMA actor
        with torch.no_grad():
            m = cfg.backup_samples if cfg.max_q_backup else 1
            next_obs = batch.next_obs.repeat_interleave(m, 1) if m > 1 else batch.next_obs
            next_action = self.actor_ema.sample(next_obs, self.population.randn(b * m, self.act_dim),
                                                cfg.sampling_steps)
            next_q = self.critic_target(torch.cat([next_obs, next_action], -1)).view(p, 2, b, m).max(-1).values
            target = batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_q.min(1).values
        q = self.critic(torch.cat([batch.obs, batch.action], -1)).squeeze(-1)          # (P, 2, B)
        critic_loss = (q - target.unsqueeze(1)).pow(2).mean(-1).sum(1)
        self.optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        critic_norm = clip_grad_norm(list(self.critic.parameters()), cfg.grad_norm, p)
        self.optimizers["critic"].step()

        # actor: flow behaviour loss + alpha-weighted Q of the (one-step) sample
        t, r = self.sample_times(b)
        bc_loss, _ = self.flow_loss(batch.obs, batch.action, self.population.randn(b, self.act_dim), t, r)
        new_action = self.actor.sample(batch.obs, self.population.randn(b, self.act_dim), cfg.sampling_steps)
        with frozen(self.critic):
            q_new = self.critic(torch.cat([batch.obs, new_action], -1)).squeeze(-1)
        q_loss, inv = self.q_loss(q_new)
        actor_loss = bc_loss + cfg.eta * q_loss
        self.optimizers["actor"].zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        actor_norm = clip_grad_norm(list(self.actor.parameters()), cfg.grad_norm, p)
        self.optimizers["actor"].step()

        # targets: DQL's EMA actor (from ema_start, every ema_every steps) and Polyak critics
        if self.updates % cfg.ema_every == 0 and self.updates >= cfg.ema_start:
            polyak_update(self.actor_ema, self.actor, 1.0 - cfg.ema_decay)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        self.updates += 1
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "bc_loss": bc_loss.detach(),
            "q_loss": q_loss.detach(),
            "alpha": cfg.eta * inv,
            "q": q.detach().mean((1, 2)),
            "critic_grad_norm": critic_norm,
            "actor_grad_norm": actor_norm,
        }

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
