"""Off-policy Mirror Descent Policy Optimization: Tomar, Shani, Efroni, Ghavamzadeh, "Mirror
Descent Policy Optimization" (ICLR 2022, arXiv 2005.09814), Sec. 5 (off-policy MDPO), as in the
authors' code (manantomar/Mirror-Descent-Policy-Optimization@c9bd3ba, mdpo_off/). specs/algorithms.md §4.

Mirror descent: iteration k approximately solves, with m = `old_policy_interval` SGD steps,
    theta_{k+1} = argmin_theta E_{s~D, eps}[ c (log pi_theta(a~|s) - log pi_k(a~|s)) + lambda log pi_k(a~|s) - Q(s, a~) ],
a~ = tanh(mu_theta(s) + sigma_theta(s) eps) reparameterised, where c = `kl_coeff` (the inverse
Bregman step size 1/t_k; the code's klcoeff), lambda = `entropy_coeff` (the code's lam), and
pi_k is a frozen copy of the policy taken every m updates. Written as the code does:
    J_pi = mean[ c log pi_theta(a~|s) + q' (lambda - c) log pi_k(a~|s) - Q1(s, a~) ]
           + reg (mean mu^2 + mean log sigma^2),
with q' = `tsallis_q` (1 = Shannon: the paper's KL and entropy) and Q1 the first critic.
Critics (SAC v1 structure, as the code): twin Q, a state value V and its Polyak target V-bar:
    Q_i target  y = r + gamma (1 - d) V-bar(s'),                 J_Q = 1/2 mean (Q_i(s, a) - y)^2,
    V target    v = min_i Q_i(s, a~) - lambda log pi_theta(a~|s),   J_V = 1/2 mean (V(s) - v)^2,
one Adam for Q1 + Q2 + V, one for the policy. Every target and a~ comes from the networks before
this update's steps (the code runs the policy step, then the value step, on one forward pass).
Policy: 256-256 ReLU, mean and log sigma heads, log sigma clipped to [-20, 2], tanh squashing.

Deviations of the official code from the paper, each selectable in agents/mdpo_off.toml:
- `log_prob = "code"`: the code's Tsallis "q-log" path, taken even for q' = 1, returns
  0.5 * sum_i log max(p_i, 1e-6) over per-dimension densities p_i (tf_log_q's 0.5 factor and
  floor), with sigma + 1e-6 and log(1 - a^2 + 1e-6). "paper" is the exact tanh-Gaussian
  log-density (sum_i log p_i).
- `explore = "deterministic"`: after the random warm-up the code collects data with tanh(mu),
  no noise; "stochastic" samples a ~ pi_theta.
- `policy_reg` = 1e-3: the code's penalty on the Gaussian parameters (0 = the paper's loss).
- `actor_q = "q1"` (the code): Q1 in the policy loss; "min" uses min(Q1, Q2).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from drlbench.agents.base import Agent, Batch
from drlbench.domains import hp
from drlbench.nn import LOG_SQRT_2PI, PopMLP, adam, polyak_update, tanh_gaussian

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0     # mdpo_off/policies.py
CODE_EPS = 1e-6                           # policies.py EPS; tf_log_q's floor on densities


@dataclass(frozen=True)
class MDPOOffConfig:
    gamma: float = hp("(0, 1]")
    tau: float = hp("(0, 1]")
    actor_lr: float = hp("(0, inf)")
    critic_lr: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    kl_coeff: float = hp("[0, inf)")  # c = 1/t_k: weight of log pi_theta - log pi_k (the code's klcoeff)
    entropy_coeff: float = hp("[0, inf)")  # lambda (the code's lam)
    tsallis_q: float = hp("(0, inf)")  # q' (the code's tsallis_coeff); 1 = Shannon entropy / KL
    old_policy_interval: int = hp("[1, inf)")  # m: SGD steps per mirror-descent iteration (the code's sgd_steps)
    policy_reg: float = hp("[0, inf)")  # weight of mean(mu^2) + mean(log sigma^2) (code: 1e-3; paper: 0)
    log_prob: str = hp(choices=("paper", "code"))  # "paper" or "code" (see the module docstring)
    explore: str = hp(choices=("deterministic", "stochastic"))  # "deterministic" (code) or "stochastic"
    actor_q: str = hp(choices=("q1", "min"))  # "q1" (code) or "min"
    target_update_interval: int = hp("[1, inf)")


def gaussian_heads(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Actor output -> (mean, log sigma clipped to [-20, 2])."""
    mean, log_std = out.chunk(2, dim=-1)
    return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


def tanh_log_density_per_dim(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor,
                             code_form: bool) -> torch.Tensor:
    """log of the per-dimension density of a = tanh(u), u ~ N(mean, sigma^2), at (u, a): (..., A).
    code_form: the official code's epsilons, sigma + 1e-6 and log(1 - a^2 + 1e-6)."""
    if code_form:
        z = (u - mean) / (log_std.exp() + CODE_EPS)
        return -0.5 * z.pow(2) - log_std - LOG_SQRT_2PI - torch.log(1.0 - action.pow(2) + CODE_EPS)
    z = (u - mean) / log_std.exp()
    log_jacobian = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))   # log(1 - tanh(u)^2)
    return -0.5 * z.pow(2) - log_std - LOG_SQRT_2PI - log_jacobian


def log_term(per_dim: torch.Tensor, tsallis_q: float, code_form: bool) -> torch.Tensor:
    """The policy's log-probability as the loss uses it, from per-dimension log densities (..., A).

    Shannon (q' = 1): sum_i log p_i. Tsallis: sum_i log_q(p_i), log_q(x) = (x^(1-q) - 1) / (1 - q),
    q = 2 - q' (mdpo_off/policies.py, tf_tsallis_statistics.py). code_form: densities floored at
    1e-6 and the result halved, as tf_log_q returns 0.5 log_q(max(x, 1e-6)).
    """
    if code_form:
        per_dim = per_dim.clamp(min=math.log(CODE_EPS))
    q = 2.0 - tsallis_q
    if q != 1.0:
        per_dim = torch.expm1((1.0 - q) * per_dim) / (1.0 - q)
    total = per_dim.sum(-1)
    return 0.5 * total if code_form else total


class MDPOOff(Agent):
    name = "mdpo_off"
    summary = "Off-policy MDPO (Tomar et al. 2022): KL-proximal actor to a policy copied every m steps, SAC-v1 critics"
    loop = "off_policy"
    Config = MDPOOffConfig

    def __init__(self, observation_space, action_space, config: MDPOOffConfig, population):
        super().__init__(observation_space, action_space, config, population)
        obs_dim, act_dim = self.continuous_dims(observation_space, action_space)
        self.act_dim = act_dim
        hidden = list(config.hidden_sizes)
        self.actor = PopMLP(population, [obs_dim, *hidden, 2 * act_dim])
        self.old_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = PopMLP(population, [obs_dim + act_dim, *hidden, 1], copies=2)
        self.value = PopMLP(population, [obs_dim, *hidden, 1])
        self.value_target = copy.deepcopy(self.value).requires_grad_(False)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), config.actor_lr),
            "critic": adam([*self.critic.parameters(), *self.value.parameters()], config.critic_lr),
        }
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        mean, log_std = gaussian_heads(self.actor(obs))
        if deterministic or self.config.explore == "deterministic":
            return torch.tanh(mean)
        return torch.tanh(mean + log_std.exp() * self.population.randn(obs.shape[1], self.act_dim))

    def policy_terms(self, out: torch.Tensor, old_out: torch.Tensor, noise: torch.Tensor):
        """From the actor's and pi_k's outputs: a~, log pi_theta(a~|s), log pi_k(a~|s) (both as the loss
        uses them), mean and log sigma. Differentiable in `out`."""
        cfg = self.config
        code_form = cfg.log_prob == "code"
        mean, log_std = gaussian_heads(out)
        u = mean + log_std.exp() * noise
        action = torch.tanh(u)
        if not code_form and cfg.tsallis_q == 1.0:
            log_pi = tanh_gaussian(mean, log_std.exp(), noise)[1]   # exact, in the reparameterised form
        else:
            log_pi = log_term(tanh_log_density_per_dim(u, mean, log_std, action, code_form), cfg.tsallis_q, code_form)
        old_mean, old_log_std = gaussian_heads(old_out)
        log_pi_old = log_term(tanh_log_density_per_dim(u, old_mean, old_log_std, action, code_form),
                              cfg.tsallis_q, code_form)
        return action, log_pi, log_pi_old, mean, log_std

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One policy step, then one value step. Matrix products and their backward passes by hand
        (`PopMLP.trace`/`backward`); autograd only for the element-wise maths on the actor's output."""
        cfg = self.config
        p, b = batch.reward.shape
        c, lam = cfg.kl_coeff, cfg.entropy_coeff

        # policy step, on the critics before this update's value step
        out, actor_trace = self.actor.trace(batch.obs)
        noise = self.population.randn(b, self.act_dim)
        with torch.enable_grad():
            out.requires_grad_(True)
            action, log_pi, log_pi_old, mean, log_std = self.policy_terms(out, self.old_actor(batch.obs), noise)
        q_pi, q_trace = self.critic.trace(torch.cat([batch.obs, action.detach()], -1))
        q_pi = q_pi.view(p, 2, b)
        chosen = torch.zeros(p, b, dtype=torch.long, device=q_pi.device) if cfg.actor_q == "q1" else q_pi.argmin(dim=1)
        q_actor = q_pi.gather(1, chosen.unsqueeze(1)).squeeze(1)
        dq_da = self.critic.chosen_copy_input_grad(q_trace, chosen, 1.0, slice(-self.act_dim, None))
        with torch.enable_grad():
            # dJ/dout: the Q term through a~ by the chain rule (dQ/da~ computed above), the rest by autograd
            actor_loss = (c * log_pi + cfg.tsallis_q * (lam - c) * log_pi_old).mean(-1) - q_actor.mean(-1)   # (P,)
            surrogate = (c * log_pi + cfg.tsallis_q * (lam - c) * log_pi_old - (dq_da * action).sum(-1)).mean(-1)
            reg = cfg.policy_reg * (mean.pow(2).mean((1, 2)) + log_std.pow(2).mean((1, 2)))
            grad_out, = torch.autograd.grad((surrogate + reg).sum(), out)
        self.actor.backward(actor_trace, grad_out)
        self.optimizers["actor"].step()

        # value step: Q_i -> r + gamma (1 - d) Vbar(s'), V -> min_i Q_i(s, a~) - lambda log pi(a~|s)
        log_pi = log_pi.detach()
        v_target = q_pi.min(dim=1).values - lam * log_pi
        q_target = batch.reward + cfg.gamma * (1.0 - batch.terminated) * self.value_target(batch.next_obs).squeeze(-1)
        q, critic_trace = self.critic.trace(torch.cat([batch.obs, batch.action], -1))
        q_error = q.view(p, 2, b) - q_target.unsqueeze(1)
        v, value_trace = self.value.trace(batch.obs)
        v_error = v.view(p, b) - v_target
        q_loss = 0.5 * q_error.pow(2).mean(-1).sum(1)                        # (P,): Q1 + Q2
        value_loss = 0.5 * v_error.pow(2).mean(-1)
        self.critic.backward(critic_trace, q_error.view(2 * p, b, 1) / b)     # d/dq of 1/2 mean (q - y)^2
        self.value.backward(value_trace, v_error.view(p, b, 1) / b)
        self.optimizers["critic"].step()

        if self.updates % cfg.target_update_interval == 0:
            polyak_update(self.value_target, self.value, cfg.tau)
        if self.updates % cfg.old_policy_interval == 0:   # the code copies after the update of every m-th step
            self.old_actor.load_state_dict(self.actor.state_dict())
        self.updates += 1
        return {
            "critic_loss": q_loss,
            "value_loss": value_loss,
            "actor_loss": actor_loss.detach(),
            "kl": (log_pi - log_pi_old.detach()).mean(-1),
            "entropy": -log_pi.mean(-1),
        }

    def extra_checkpoint(self) -> dict:
        return {"updates": self.updates}

    def restore_extra(self, state: dict) -> None:
        self.updates = state["updates"]
