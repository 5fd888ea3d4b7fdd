"""Stream Q(lambda): Elsayed, Vasan, Mahmood 2024, "Streaming Deep Reinforcement Learning Finally Works"
(arXiv 2410.14606), as in the authors' code (mohmdelsayed/streaming-drl, stream_q.py, optim.py).
Facts: specs/algorithms.md §5.

Per member and step, from the single transition (s, a, r, s'):
- delta = r + gamma (1 - terminal) max_a' Q(s', a') - Q(s, a)         (Watkins' Q(lambda) TD error)
- z <- gamma lambda z + grad Q(s, a); ObGD step theta <- theta + alpha_eff delta z (see `_stream.ObGD`)
- the trace is cleared after the update when the episode ended or the executed action was a
  non-greedy exploratory one (a random action that differs from argmax_a Q(s, a)).
Behaviour: epsilon-greedy, epsilon decaying linearly from `epsilon_start` to `epsilon_end` over
`exploration_fraction` of the run's steps. Evaluation: greedy.
Network: StreamMLP (LayerNorm + LeakyReLU hidden layers, sparse init), observation normalisation,
reward scaling and time feature (`_stream`).
Deviations: time limits bootstrap (loop option `truncation_is_terminal`); the official classic-control
runs lengthen episodes to 10,000 steps, drlbench keeps each environment's own limit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents._stream import OPTIMIZERS, StreamAgent, StreamMLP, make_optimizer
from drlbench.domains import hp
from drlbench.errors import UsageError


@dataclass(frozen=True)
class StreamQConfig:
    gamma: float = hp("(0, 1]")
    trace_lambda: float = hp("[0, 1]")
    lr: float = hp("(0, inf)")
    optimizer: str = hp(choices=tuple(OPTIMIZERS))  # "obgd" (the paper's) or "adaptive_obgd" (optim.py's AdaptiveObGD)
    kappa: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    sparsity: float = hp("[0, 1)")
    epsilon_start: float = hp("[0, 1]")
    epsilon_end: float = hp("[0, 1]")
    exploration_fraction: float = hp("[0, 1]")
    normalize_observations: bool = hp()
    scale_rewards: bool = hp()
    time_feature: bool = hp()


class StreamQ(StreamAgent):
    name = "stream_q"
    summary = "Stream Q(lambda) (Elsayed et al. 2024): ObGD, eligibility traces, no replay, batch size 1"
    Config = StreamQConfig

    def __init__(self, observation_space, action_space, config: StreamQConfig, population):
        super().__init__(observation_space, action_space, config, population)
        if not self.discrete:
            raise UsageError(f"stream_q needs a Discrete action space, not {action_space}; use stream_ac")
        self.q = StreamMLP(population, [self.obs_dim, *config.hidden_sizes, self.act_dim], config.sparsity)
        self.optimizers = {"q": make_optimizer(config.optimizer, self.q.parameters(), config.lr, config.gamma,
                                               config.trace_lambda, config.kappa)}

    def epsilon(self, step: int, total_steps: int) -> float:
        """Linear schedule at the (step + 1)-th action (the official agent counts before it draws)."""
        cfg = self.config
        duration = max(cfg.exploration_fraction * total_steps, 1e-12)
        slope = (cfg.epsilon_end - cfg.epsilon_start) / duration
        return max(cfg.epsilon_start + slope * (step + 1), cfg.epsilon_end)

    @torch.no_grad()
    def policy(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.q.trace(features)[0].argmax(-1)

    @torch.no_grad()
    def sample(self, features: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        greedy = self.policy(features, deterministic=True)                       # (P, N)
        n = features.shape[1]
        explore = self.population.rand(n) < self.epsilon(step, total_steps)
        return torch.where(explore, self.population.randint(self.act_dim, n), greedy)

    def learn(self, features, action, reward, next_features, terminal, reset):
        cfg = self.config
        q_both, cache = self.q.trace(torch.cat([features, next_features], 1))   # one pass over s and s'
        q_all, next_q = q_both[:, :1], q_both[:, 1:].max(-1).values
        q_sa = q_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)                 # (P, 1)
        delta = reward + cfg.gamma * (1.0 - terminal) * next_q - q_sa
        non_greedy = action != q_all.argmax(-1)
        one_hot = torch.zeros_like(q_all).scatter_(-1, action.unsqueeze(-1), 1.0)  # dQ(s, a)/d output
        self.q.backward(cache, one_hot)
        step_size = self.optimizers["q"].step(delta[:, 0], (reset | non_greedy)[:, 0])
        return {"td_error": delta[:, 0], "q": q_sa[:, 0], "step_size": step_size}
