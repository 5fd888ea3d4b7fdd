"""Stream TD(lambda): Elsayed, Vasan, Mahmood 2024, "Streaming Deep Reinforcement Learning Finally Works"
(arXiv 2410.14606), as in the authors' code (mohmdelsayed/streaming-drl, stream_td.py, optim.py).
Facts: specs/algorithms.md §5.

Prediction, not control: it learns V^mu, the value of a fixed behaviour policy mu, from the stream it
generates. Per member and step, from (s, r, s'):
- delta = r + gamma (1 - terminal) V(s') - V(s); z <- gamma lambda z + grad V(s); ObGD step; traces
  cleared at episode ends.
The behaviour policy is the preset's `behaviour_policy`: "uniform" (uniformly random actions: a
discrete action drawn uniformly, or a continuous one uniform in [-1, 1]) or "first" (always action 0,
or the zero action for a continuous space; a fixed deterministic policy). `act` (the harness's
evaluation) runs the same policy, so the recorded returns are mu's. `predict` gives V(s) in the
environment's reward units for raw observations, for comparing with exact values.
Deviations: the official script predicts a time series (ETTm2 oil temperatures) and adds an
"ObservationTraces" wrapper (exponential averages of past observations) specific to that data; here
the predicted process is any drlbench environment under mu, without that wrapper. Reward scaling is
off in the preset so that V is in reward units (the official ScaleReward choice for stream_td.py was not
retrieved). Time limits bootstrap (loop option `truncation_is_terminal`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drlbench.agents._stream import OPTIMIZERS, StreamAgent, StreamMLP, make_optimizer
from drlbench.domains import hp

BEHAVIOUR_POLICIES = ("uniform", "first")


@dataclass(frozen=True)
class StreamTDConfig:
    gamma: float = hp("(0, 1]")
    trace_lambda: float = hp("[0, 1]")
    lr: float = hp("(0, inf)")
    optimizer: str = hp(choices=tuple(OPTIMIZERS))  # "obgd" (the paper's) or "adaptive_obgd" (optim.py's AdaptiveObGD)
    kappa: float = hp("(0, inf)")
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")
    sparsity: float = hp("[0, 1)")
    behaviour_policy: str = hp(choices=BEHAVIOUR_POLICIES)
    normalize_observations: bool = hp()
    scale_rewards: bool = hp()
    time_feature: bool = hp()


class StreamTD(StreamAgent):
    name = "stream_td"
    summary = "Stream TD(lambda) (Elsayed et al. 2024): ObGD value prediction for a fixed behaviour policy"
    Config = StreamTDConfig

    def __init__(self, observation_space, action_space, config: StreamTDConfig, population):
        super().__init__(observation_space, action_space, config, population)
        self.value = StreamMLP(population, [self.obs_dim, *config.hidden_sizes, 1], config.sparsity)
        self.optimizers = {"value": make_optimizer(config.optimizer, self.value.parameters(), config.lr, config.gamma,
                                                   config.trace_lambda, config.kappa)}

    @torch.no_grad()
    def policy(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        n = features.shape[1]
        pop = self.population
        if self.config.behaviour_policy == "first":
            if self.discrete:
                return torch.zeros(pop.size, n, dtype=torch.int64, device=features.device)
            return torch.zeros(pop.size, n, self.act_dim, device=features.device)
        if self.discrete:
            return pop.randint(self.act_dim, n)
        return pop.rand(n, self.act_dim) * 2.0 - 1.0

    @torch.no_grad()
    def predict(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) (P, N) for raw observations (P, N, obs_dim), in the environment's reward units."""
        value = self.value.trace(self.features(obs, update=False))[0][..., 0]
        return value * self.reward_scaler.scale() if self.config.scale_rewards else value

    def learn(self, features, action, reward, next_features, terminal, reset):
        cfg = self.config
        values, cache = self.value.trace(torch.cat([features, next_features], 1))
        value, next_value = values[:, :1, 0], values[:, 1:, 0]
        delta = reward + cfg.gamma * (1.0 - terminal) * next_value - value
        self.value.backward(cache, torch.ones_like(values[:, :1]))
        step_size = self.optimizers["value"].step(delta[:, 0], reset[:, 0])
        return {"td_error": delta[:, 0], "value": value[:, 0], "step_size": step_size}
