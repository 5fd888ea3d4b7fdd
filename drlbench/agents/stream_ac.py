"""Stream AC(lambda): Elsayed, Vasan, Mahmood 2024, "Streaming Deep Reinforcement Learning Finally Works"
(arXiv 2410.14606), as in the authors' code (mohmdelsayed/streaming-drl, stream_ac_continuous.py,
stream_ac_discrete.py, optim.py). Facts: specs/algorithms.md §5.

One agent for both action types (the algorithm is the same; only the policy head differs, and the
preset's suite sections pick the network widths of the two official scripts). Per member and step,
from the single transition (s, a, r, s'):
- delta = r + gamma (1 - terminal) V(s') - V(s)
- policy trace z_pi <- gamma lambda z_pi + grad[log pi(a|s) + beta sign(delta) H(pi(.|s))]   (beta = entropy_coef)
- value trace  z_v  <- gamma lambda z_v + grad V(s)
- both ObGD steps with the same delta (policy first, kappa_policy; then value, kappa_value); traces
  cleared at episode ends.
Policy: continuous, a Gaussian with mean = linear head and std = softplus(linear head), actions
unsquashed (the environment receives them clipped to the bounds; evaluation: the clipped mean);
discrete, a softmax (evaluation: the most probable action). Separate actor and critic StreamMLPs.
Gradients by hand: d(log pi + beta sign(delta) H)/d(head) in closed form, then `StreamMLP.backward`.
Deviation: time limits bootstrap (loop option `truncation_is_terminal`). Actions are in [-1, 1] units
(the harness rescales), i.e. the official ClipAction for environments whose bounds are [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from drlbench.agents._stream import OPTIMIZERS, StreamAgent, StreamMLP, make_optimizer
from drlbench.domains import hp
from drlbench.nn import LOG_SQRT_2PI


@dataclass(frozen=True)
class StreamACConfig:
    gamma: float = hp("(0, 1]")
    trace_lambda: float = hp("[0, 1]")
    lr: float = hp("(0, inf)")
    optimizer: str = hp(choices=tuple(OPTIMIZERS))  # "obgd" (the paper's) or "adaptive_obgd" (optim.py's AdaptiveObGD)
    kappa_policy: float = hp("(0, inf)")
    kappa_value: float = hp("(0, inf)")
    entropy_coef: float = hp("[0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    sparsity: float = hp("[0, 1)")
    normalize_observations: bool = hp()
    scale_rewards: bool = hp()
    time_feature: bool = hp()


def gaussian_objective(head: torch.Tensor, action: torch.Tensor, entropy_weight: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log pi(a) + w H(pi) for a diagonal Gaussian with head = [mean, pre_std], std = softplus(pre_std);
    returns (objective (P, B), entropy (P, B), d objective / d head). w: (P, B)."""
    mean, pre_std = head.chunk(2, -1)
    std = F.softplus(pre_std)
    z = (action - mean) / std
    log_prob = (-0.5 * z.pow(2) - std.log() - LOG_SQRT_2PI).sum(-1)
    entropy = (0.5 + LOG_SQRT_2PI + std.log()).sum(-1)
    w = entropy_weight.unsqueeze(-1)
    d_mean = z / std
    d_std = (z.pow(2) - 1.0 + w) / std                  # d log pi/d std = (z^2 - 1)/std; dH/d std = 1/std
    return log_prob + entropy_weight * entropy, entropy, torch.cat([d_mean, d_std * torch.sigmoid(pre_std)], -1)


def softmax_objective(logits: torch.Tensor, action: torch.Tensor, entropy_weight: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log pi(a) + w H(pi) for a softmax policy; returns (objective, entropy, d objective / d logits).
    d log pi(a)/d l = onehot(a) - pi; dH/d l_j = -pi_j (log pi_j + H)."""
    log_pi = logits.log_softmax(-1)
    pi = log_pi.exp()
    entropy = -(pi * log_pi).sum(-1)
    one_hot = torch.zeros_like(logits).scatter_(-1, action.unsqueeze(-1), 1.0)
    grad = one_hot - pi - entropy_weight.unsqueeze(-1) * pi * (log_pi + entropy.unsqueeze(-1))
    log_prob = log_pi.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    return log_prob + entropy_weight * entropy, entropy, grad


class StreamAC(StreamAgent):
    name = "stream_ac"
    summary = "Stream AC(lambda) (Elsayed et al. 2024): ObGD actor-critic with traces, continuous or discrete"
    Config = StreamACConfig

    def __init__(self, observation_space, action_space, config: StreamACConfig, population):
        super().__init__(observation_space, action_space, config, population)
        hidden = list(config.hidden_sizes)
        heads = self.act_dim if self.discrete else 2 * self.act_dim
        self.actor = StreamMLP(population, [self.obs_dim, *hidden, heads], config.sparsity)
        self.critic = StreamMLP(population, [self.obs_dim, *hidden, 1], config.sparsity)
        self.optimizers = {
            "policy": make_optimizer(config.optimizer, self.actor.parameters(), config.lr, config.gamma,
                                     config.trace_lambda, config.kappa_policy),
            "value": make_optimizer(config.optimizer, self.critic.parameters(), config.lr, config.gamma,
                                    config.trace_lambda, config.kappa_value),
        }

    @torch.no_grad()
    def policy(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        head = self.actor.trace(features)[0]
        if self.discrete:
            if deterministic:
                return head.argmax(-1)
            p, n, k = head.shape
            probs = head.softmax(-1)
            draws = self.population.rand(n, 1)
            return (probs.cumsum(-1) < draws).sum(-1).clamp(max=k - 1)          # inverse-CDF categorical sample
        mean, pre_std = head.chunk(2, -1)
        if deterministic:
            return mean.clamp(-1.0, 1.0)
        return mean + F.softplus(pre_std) * self.population.randn(features.shape[1], self.act_dim)

    def learn(self, features, action, reward, next_features, terminal, reset):
        cfg = self.config
        values, critic_cache = self.critic.trace(torch.cat([features, next_features], 1))
        value, next_value = values[:, :1, 0], values[:, 1:, 0]                    # (P, 1)
        delta = reward + cfg.gamma * (1.0 - terminal) * next_value - value

        head, actor_cache = self.actor.trace(features)
        objective = softmax_objective if self.discrete else gaussian_objective
        _, entropy, grad_head = objective(head, action, cfg.entropy_coef * delta.sign())
        self.actor.backward(actor_cache, grad_head)
        policy_step = self.optimizers["policy"].step(delta[:, 0], reset[:, 0])
        self.critic.backward(critic_cache, torch.ones_like(values[:, :1]))
        value_step = self.optimizers["value"].step(delta[:, 0], reset[:, 0])
        return {"td_error": delta[:, 0], "value": value[:, 0], "entropy": entropy[:, 0],
                "policy_step_size": policy_step, "value_step_size": value_step}

