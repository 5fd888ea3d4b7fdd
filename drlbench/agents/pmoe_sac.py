"""PMOE on SAC: Ren, Li, Ding, Pan, Dong, "Probabilistic Mixture-of-Experts for Efficient Deep
Reinforcement Learning" (arXiv 2104.09122). No official repository; the reference is the
implementation by co-author Zihan Ding, quantumiracle/Popular-RL-Algorithms@02ecae2 pmoe.py
(= pmoe_sac.py). specs/algorithms.md §6.

Policy: a mixture of K tanh-squashed diagonal Gaussians (experts) sharing one trunk,
    pi(a|s) = sum_k w_k(s) pi_k(a|s),  pi_k: a = tanh(mu_k(s) + sigma_k(s) eps), log sigma_k clipped to [-20, 2],
with mixing weights w(s) = softmax(linear(s)) from a separate gating layer on the raw state.
Acting samples k ~ Categorical(w(s)), then a ~ pi_k; the deterministic action is tanh(mu_k*) of the
expert with the largest weight (`eval_expert = "argmax"`; the code samples k here too: "sample").

Per population member, one `update` does, in this order (the rest is SAC, drlbench.agents.sac):
- critic: k' ~ Categorical(w(s')), a' ~ pi_k'(.|s'),
  y = r + gamma (1 - d) [min_j Qbar_j(s', a') - alpha log pi_k'(a'|s')]  (the expert's own density),
  J_Q = 1/2 mean (Q_j(s, a) - y)^2 for j = 1, 2;
- actor, the frequency ("best-expert") estimator: a~_k ~ pi_k(.|s) reparameterised for every k,
  k* = argmax_k Q^(s, a~_k) with Q^ = min_j Q_j (`actor_q`), and
  J_pi = mean[alpha log pi_k*(a~_k*|s) - Q^(s, a~_k*)]   (gradient through the best expert only)
       + mean_{s,k} (w_k(s) - onehot(k*)_k)^2           (the gate learns how often each expert wins);
- temperature: J(alpha) = -alpha mean(log pi_k*(a~_k*|s) + Hbar) as in SAC, on the actor step's
  samples (`alpha_resample = false`, as pmoe.py) or re-sampled from expert k* after the step;
- Polyak update of the target critics.
Matrix products and their backward passes run by hand (drlbench.nn `PopMLP.trace`/`backward`);
autograd differentiates only the element-wise maths on the networks' outputs.
Reference-code settings that are not SAC's (reward normalised per batch, K = 2, 4 x 512 trunk,
batch 300, tau 0.01, no warm-up, final-layer init U(+-3e-3)) are listed in agents/pmoe_sac.toml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from drlbench.agents.base import Batch
from drlbench.agents.mdpo_off import LOG_STD_MAX, LOG_STD_MIN
from drlbench.agents.sac import SAC, SACConfig
from drlbench.domains import hp
from drlbench.nn import LOG_SQRT_2PI, PopMLP, adam, tanh_gaussian
from drlbench.population import Population


@dataclass(frozen=True)
class PMOESACConfig(SACConfig):
    num_experts: int = hp("[1, inf)")  # K
    reward_normalization: str = hp(choices=("none", "batch"))  # "none" (SAC), or "batch": r <- reward_scale (r - mean) / (std + 1e-6) per minibatch
    eval_expert: str = hp(choices=("argmax", "sample"))  # deterministic action from the "argmax" expert, or a "sample"d one (pmoe.py)


def sample_categorical(population: Population, probs: torch.Tensor) -> torch.Tensor:
    """One index per row of probs (P, N, K), drawn with each member's own generator -> (P, N)."""
    u = population.rand(probs.shape[1]).unsqueeze(-1)
    return (probs.cumsum(-1) < u).sum(-1).clamp(max=probs.shape[-1] - 1)


def mixture_log_prob(log_weights: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(x; mu_k, diag sigma_k^2): log_weights (..., K), mean/std (..., K, A), x (..., A) -> (...)."""
    z = (x.unsqueeze(-2) - mean) / std
    log_normal = (-0.5 * z.pow(2) - std.log() - LOG_SQRT_2PI).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-1)


def tanh_mixture_log_prob(log_weights: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                          action: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) of the tanh-squashed mixture: every expert shares u = atanh(a), so
    log pi(a) = log sum_k w_k N(u; mu_k, sigma_k) - sum_i log(1 - a_i^2)."""
    u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    log_jacobian = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return mixture_log_prob(log_weights, mean, std, u) - log_jacobian.sum(-1)


class PMOESAC(SAC):
    name = "pmoe_sac"
    summary = "PMOE on SAC (Ren et al. 2021): mixture of K tanh-Gaussian experts, best-expert gradient, gate frequency loss"
    Config = PMOESACConfig
    graph_cycle = None   # not checked for CUDA-graph capture
    compiled_parts = ()   # its update is its own

    def __init__(self, observation_space, action_space, config: PMOESACConfig, population):
        super().__init__(observation_space, action_space, config, population)   # critics, targets, alpha
        obs_dim = observation_space.shape[0]
        self.num_experts = k = config.num_experts
        self.actor = PopMLP(population, [obs_dim, *config.hidden_sizes, 2 * k * self.act_dim])   # replaces SAC's
        self.gate = PopMLP(population, [obs_dim, k])                                              # one linear layer
        self.optimizers["actor"] = adam([*self.actor.parameters(), *self.gate.parameters()], config.actor_lr)

    def experts(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor output (P, N, 2KA) -> mean, std, each (P, N, K, A)."""
        mean, log_std = out.unflatten(-1, (2, self.num_experts, self.act_dim)).unbind(-3)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()

    def _pick(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """x (P, N, K, A), index (P, N) -> x[p, n, index[p, n]] (P, N, A)."""
        return x.gather(2, index[..., None, None].expand(*index.shape, 1, x.shape[-1])).squeeze(2)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        mean, std = self.experts(self.actor(obs))
        weights = torch.softmax(self.gate(obs), -1)
        if deterministic and self.config.eval_expert == "argmax":
            expert = weights.argmax(-1)
        else:
            expert = sample_categorical(self.population, weights)
        if deterministic:
            return torch.tanh(self._pick(mean, expert))
        noise = self.population.randn(obs.shape[1], self.act_dim)
        return torch.tanh(self._pick(mean, expert) + self._pick(std, expert) * noise)

    @torch.no_grad()
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        p, b = batch.reward.shape
        k, a_dim = self.num_experts, self.act_dim
        alpha = self.log_alpha.detach().exp()[:, None]                      # (P, 1)
        both = torch.cat([batch.next_obs, batch.obs], 1)                    # one pass over [s', s]
        out, actor_trace = self.actor.trace(both)
        logits, gate_trace = self.gate.trace(both)

        # critic: one expert per s' drawn from the gate, its own log-density in the soft target
        next_mean, next_std = self.experts(out[:, :b])
        next_expert = sample_categorical(self.population, torch.softmax(logits[:, :b], -1))
        next_action, next_log_prob = tanh_gaussian(self._pick(next_mean, next_expert), self._pick(next_std, next_expert),
                                                   self.population.randn(b, a_dim))
        next_q, _ = self.critic_target.trace(torch.cat([batch.next_obs, next_action], -1))
        reward = batch.reward
        if cfg.reward_normalization == "batch":   # pmoe.py, with torch's unbiased std
            reward = (reward - reward.mean(-1, keepdim=True)) / (reward.std(-1, keepdim=True) + 1e-6)
        target = cfg.reward_scale * reward + cfg.gamma * (1.0 - batch.terminated) * (
            next_q.view(p, 2, b).min(dim=1).values - alpha * next_log_prob)
        q, critic_trace = self.critic.trace(torch.cat([batch.obs, batch.action], -1))
        error = q.view(p, 2, b) - target.unsqueeze(1)
        critic_loss = 0.5 * error.pow(2).mean(-1).sum(1)
        self.critic.backward(critic_trace, error.view(2 * p, b, 1) / b)
        self.optimizers["critic"].step()

        # actor: every expert's reparameterised action, scored by the critics just updated
        out, logits = out[:, b:].clone().requires_grad_(True), logits[:, b:].clone().requires_grad_(True)
        noise = self.population.randn(b, k, a_dim)
        with torch.enable_grad():
            mean, std = self.experts(out)
            actions, log_probs = tanh_gaussian(mean, std, noise)           # (P, B, K, A), (P, B, K)
        obs_k = batch.obs.unsqueeze(2).expand(p, b, k, batch.obs.shape[-1])
        q_all, q_trace = self.critic.trace(torch.cat([obs_k, actions.detach()], -1).view(p, b * k, -1))
        q_all = q_all.view(p, 2, b, k)
        q_hat = q_all.min(dim=1).values if cfg.actor_q == "min" else q_all.mean(dim=1)
        best_q, best = q_hat.max(dim=-1)                                    # (P, B): k*
        # dQ^/da at the best experts' rows only
        rows = (torch.arange(b, device=best.device) * k).view(1, b) + best                      # (P, B) row index in the B*K trace
        best_trace = [x.view(p, 2, b * k, -1).gather(2, rows[:, None, :, None].expand(p, 2, b, x.shape[-1]))
                      .view(2 * p, b, -1) for x in q_trace]
        action_columns = slice(-a_dim, None)
        if cfg.actor_q == "min":
            chosen = self._pick(q_all.permute(0, 2, 3, 1), best).argmin(-1)  # the twin the min picked, (P, B)
            dq_da = self.critic.chosen_copy_input_grad(best_trace, chosen, 1.0, action_columns)
        else:
            dq_da = self.critic.backward(best_trace, q_all.new_full((2 * p, b, 1), 0.5), weight_grads=False,
                                         input_columns=action_columns).view(p, 2, b, -1).sum(1)
        with torch.enable_grad():
            best_action = self._pick(actions, best)
            best_log_prob = log_probs.gather(2, best.unsqueeze(-1)).squeeze(-1)
            weights = torch.softmax(logits, -1)
            gate_loss = (weights - F.one_hot(best, k).to(weights.dtype)).pow(2).mean((1, 2))      # (P,)
            # the Q term's gradient through a~_k* by the chain rule (dQ^/da~ above); the rest by autograd
            surrogate = (alpha * best_log_prob - (dq_da * best_action).sum(-1)).mean(-1) + gate_loss
            grad_out, grad_logits = torch.autograd.grad(surrogate.sum(), [out, logits])
        actor_loss = (alpha * best_log_prob.detach() - best_q).mean(-1)
        self.actor.backward([x[:, b:] for x in actor_trace], grad_out)
        self.gate.backward([x[:, b:] for x in gate_trace], grad_logits)
        self.optimizers["actor"].step()

        # temperature, as SAC
        log_prob = best_log_prob.detach()
        if cfg.alpha_resample:   # expert k*'s action from the actor after its step
            mean, std = self.experts(self.actor(batch.obs))
            log_prob = tanh_gaussian(self._pick(mean, best), self._pick(std, best), self.population.randn(b, a_dim))[1]
        alpha_loss = self._temperature_step_and_targets(log_prob)
        return {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "gate_loss": gate_loss.detach(),
            "alpha_loss": alpha_loss,
            "alpha": alpha.squeeze(1),
            "entropy": -log_prob.mean(-1),
            "best_expert_share": F.one_hot(best, k).float().mean(1).max(-1).values,
        }
